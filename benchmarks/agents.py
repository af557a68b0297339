"""Agent figures: what judging a `User-Agent` costs, by the agent's length and shape.

Two tables from one run, every loop interleaved with the others round after round (the order
rotating), so each ratio compares loops measured under the same load:
- the matchers side by side on the same agents: CrawlerDetect as it ships (Python's `re`, its verdict
  cache defeated by a fresh agent each call, as an attacker's agents would be) and the RE2 matcher on
  the same lists (adapters/bots.py), with and without the 512-character limit in front;
- the ingest handler's own time per request (a browser's event, counted in Redis) for a browser's
  agent, a 500-character one and a 2 KiB one; the ratios to the browser's time are the contract's
  "a 2 KiB agent takes at most 3x the time of a browser's".
Each agent is made distinct per call by a counter in its middle, so no cache answers.
"""

from __future__ import annotations

import gc
import statistics
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from common import (
    BROWSER_UA,
    SINGLE_PATH,
    Events,
    Log,
    Row,
    http_post,
    install_container,
    load_function,
    movie_ids,
    quiet,
    settings_env,
)

TARGET_RATIO = 3.0  # a 2 KiB agent: at most 3x a browser's handler time
FULL = {"rounds": 15, "calls": 200}
QUICK = {"rounds": 5, "calls": 60}


def agents() -> dict[str, Callable[[int], str]]:
    """Agent shapes by name: each a function of a call number, so every call sends a new agent."""

    def padded(length: int, filler: str) -> Callable[[int], str]:
        def make(n: int) -> str:
            head = f"{BROWSER_UA} {n} "
            return (head + filler * length)[:length]

        return make

    return {
        "browser": lambda n: BROWSER_UA.replace("537.36 (KHTML", f"537.{n} (KHTML"),
        # a run of one letter: the shape that makes the backtracking search slowest (see the docstring)
        "500 chars": padded(500, "a"),
        "2 KiB": padded(2048, "a"),
    }


def _timed(calls: list[Any], run: Callable[[Any], Any]) -> float:
    """Seconds per call over the list (gc collected first)."""
    gc.collect()
    start = time.perf_counter()
    for item in calls:
        run(item)
    return (time.perf_counter() - start) / len(calls)


def measure(redis_url: str, scratch: Path, size: dict[str, int], log: Log) -> dict[str, Any]:
    from analytics_pipeline.adapters.bots import MAX_AGENT_CHARS, CrawlerDetectBots, crawler_detect_matcher
    from analytics_pipeline.observability import StandInContext
    from crawlerdetect import CrawlerDetect

    shapes = agents()
    admin = install_container(settings_env(redis_url, "benchagents", scratch)).redis
    admin.flushdb()
    handler = load_function("ingest")
    context = StandInContext(function_name="bench")
    events = Events(movie_ids(1000, seed=11))
    re2_matcher = crawler_detect_matcher()
    bots = CrawlerDetectBots(re2_matcher)
    crawler_detect = CrawlerDetect()
    # matcher loops: (name, call on an agent); the stdlib one is slow on long agents: fewer calls
    matchers: dict[str, Callable[[str], Any]] = {
        "CrawlerDetect (re)": crawler_detect.is_crawler,
        "RE2, no length limit": re2_matcher.is_crawler,
        f"RE2 + {MAX_AGENT_CHARS}-char limit (used)": bots.is_bot,
    }
    handler_ok: dict[str, str] = {
        "browser": '"duplicate":false',
        "500 chars": '"duplicate":false',
        "2 KiB": '"reason":"bot"',
    }
    match_s: dict[str, dict[str, list[float]]] = {m: {a: [] for a in shapes} for m in matchers}
    handler_s: dict[str, list[float]] = {a: [] for a in shapes}
    failures = 0
    counter = 0
    loops = [("match", m, a) for m in matchers for a in shapes] + [("handler", "", a) for a in shapes]
    try:
        for r in range(size["rounds"] + 1):  # round 0 warms up (the DFA, connections) and is dropped
            for kind, matcher, shape in loops[r % len(loops) :] + loops[: r % len(loops)]:
                calls = size["calls"]
                if kind == "match" and matcher.startswith("CrawlerDetect") and shape != "browser":
                    calls = max(5, calls // 20)
                made = []
                for _ in range(calls):
                    counter += 1
                    made.append(shapes[shape](counter))
                if kind == "match":
                    seconds = _timed(made, matchers[matcher])
                    if r:
                        match_s[matcher][shape].append(seconds)
                    continue
                requests = [
                    http_post(SINGLE_PATH, body, {"user-agent": agent})
                    for body, agent in zip(events.many(calls), made, strict=True)
                ]
                expected = handler_ok[shape]
                answers: list[dict[str, Any]] = []

                def call(req: dict[str, Any], answers: list[dict[str, Any]] = answers) -> None:
                    answers.append(handler(req, context))

                with quiet():
                    seconds = _timed(requests, call)
                failures += sum(a["statusCode"] != 202 or expected not in a["body"] for a in answers)
                if r:
                    handler_s[shape].append(seconds)
            if r:
                log(
                    f"round {r}/{size['rounds']}: handler "
                    + ", ".join(f"{a} {handler_s[a][-1] * 1e6:,.0f} us" for a in shapes)
                )
    finally:
        admin.flushdb()
    ratios = {
        shape: [x / b for x, b in zip(handler_s[shape], handler_s["browser"], strict=True)]
        for shape in shapes
        if shape != "browser"
    }
    return {
        "lengths": {name: len(make(1)) for name, make in shapes.items()},
        "match_us": {m: {a: [x * 1e6 for x in v] for a, v in by.items()} for m, by in match_s.items()},
        "handler_us": {a: [x * 1e6 for x in v] for a, v in handler_s.items()},
        "ratios": ratios,
        "problems": [f"{failures} handler answers were not the expected 202"] if failures else [],
    }


def _median_range(values: list[float], fmt: str, unit: str) -> str:
    low, mid, high = (format(v, fmt) for v in (min(values), statistics.median(values), max(values)))
    return f"{mid}{unit} (rounds {low}-{high})"


def rows(found: dict[str, Any]) -> list[Row]:
    lengths = found["lengths"]
    out = [
        Row(f"{matcher}: {shape} ({lengths[shape]:,} chars) per agent", _median_range(v, ",.1f", " us"))
        for matcher, by in found["match_us"].items()
        for shape, v in by.items()
    ]
    out += [
        Row(f"Ingest handler, {shape} agent ({lengths[shape]:,} chars)", _median_range(v, ",.0f", " us"))
        for shape, v in found["handler_us"].items()
    ]
    for shape, ratio in found["ratios"].items():
        median = statistics.median(ratio)
        out.append(
            Row(
                f"Ingest handler, {shape} agent vs a browser's",
                _median_range(ratio, ".2f", "x"),
                f"<= {TARGET_RATIO:.0f}x",
                median <= TARGET_RATIO,
            )
        )
    return out
