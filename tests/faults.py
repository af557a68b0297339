"""Faults injected by wrapping the ports a Container builds, never by hooks in the use cases.

A flush is a sequence of port calls; a process that dies "after a step" dies right after the call
that completes it returns. `crash_after(fault)` wraps the ports so that `fault(step)` runs then:
a fault that raises Crash (not a StoreError: nothing in the pipeline catches it) stops the process
there, with everything before it done and nothing after it.
"""

from __future__ import annotations

import functools
from collections import defaultdict
from collections.abc import Callable
from typing import Any

from analytics_pipeline.bootstrap import Wrap


class Crash(Exception):
    """A process dying at a step boundary."""


# the steps of a flush, in order, and the port call that completes each
STEPS: dict[str, tuple[str, str]] = {
    "claim": ("claims", "claim"),
    "confirm": ("claims", "confirm"),
    "mongo": ("rollups", "apply"),
    "site": ("rollups", "apply_site"),
    "capture": ("replica", "capture_baselines"),
    "totals": ("rollups", "totals"),
    "baseline": ("rollups", "apply_baselines"),
    "mysql": ("replica", "write_totals"),
    "finish": ("claims", "finish"),
}


class AfterCall:
    """A port whose named methods call `fault(step)` once they have returned."""

    def __init__(self, inner: Any, steps: dict[str, str], fault: Callable[[str], None]) -> None:
        self._inner, self._steps, self._fault = inner, steps, fault

    def __getattr__(self, name: str) -> Any:
        attribute = getattr(self._inner, name)
        step = self._steps.get(name)
        if step is None:
            return attribute

        @functools.wraps(attribute)
        def call(*args: Any, **kwargs: Any) -> Any:
            result = attribute(*args, **kwargs)
            self._fault(step)
            return result

        return call


def crash_after(fault: Callable[[str], None], inner: Wrap | None = None) -> Wrap:
    """A Container `wrap` calling `fault(step)` after each step; `inner` wraps the ports first."""
    by_port: dict[str, dict[str, str]] = defaultdict(dict)
    for step, (port, method) in STEPS.items():
        by_port[port][method] = step

    def wrap(name: str, port: Any) -> Any:
        if inner is not None:
            port = inner(name, port)
        if port is None or name not in by_port:
            return port
        return AfterCall(port, by_port[name], fault)

    return wrap
