"""Each fake in tests/fakes.py implements its ports as the Protocols of ports.py spell them: every
method, with the same parameters (names, order, defaults), so a use case cannot tell it from the
adapter. The type checker holds the adapters to the same Protocols (bootstrap.py)."""

from __future__ import annotations

import inspect

import pytest
from analytics_pipeline import ports

from tests.fakes import (
    FakeBots,
    FakeChangeFeed,
    FakeClaimStore,
    FakeHotStore,
    FakeParityLog,
    FakeReplica,
    FakeRolloutRecord,
    FakeRollups,
    FakeSiteReader,
    FakeSpool,
)

FAKES = [
    (ports.HotStore, FakeHotStore),
    (ports.Spool, FakeSpool),
    (ports.BotDetector, FakeBots),
    (ports.Claims, FakeClaimStore),
    (ports.FlushLog, FakeClaimStore),
    (ports.ChangeBacklog, FakeClaimStore),
    (ports.CheckLog, FakeClaimStore),
    (ports.ChangeFeed, FakeChangeFeed),
    (ports.RollupStore, FakeRollups),
    (ports.Mirror, FakeReplica),
    (ports.RolloutLedger, FakeReplica),
    (ports.LegacySource, FakeReplica),
    (ports.LabelReader, FakeReplica),
    (ports.RolloutRecord, FakeRolloutRecord),
    (ports.ParityLog, FakeParityLog),
    (ports.SiteReader, FakeSiteReader),
]
WIDEST = 8  # a port is one reason to change: none is wider than this


def methods(protocol: type) -> dict[str, inspect.Signature]:
    return {
        name: inspect.signature(member)
        for name, member in vars(protocol).items()
        if callable(member) and not name.startswith("_")
    }


def parameters(signature: inspect.Signature) -> list[tuple[str, object]]:
    return [(p.name, p.default) for p in signature.parameters.values()]


@pytest.mark.parametrize(("port", "fake"), FAKES, ids=[f"{p.__name__}-{f.__name__}" for p, f in FAKES])
def test_the_fake_has_every_method_of_its_port_with_the_same_parameters(port, fake):
    for name, signature in methods(port).items():
        assert hasattr(fake, name), f"{fake.__name__} lacks {port.__name__}.{name}"
        assert parameters(inspect.signature(getattr(fake, name))) == parameters(signature), name


def test_every_narrow_port_has_a_fake_and_none_is_wider_than_eight_methods():
    narrow = {port for port, _ in FAKES}
    for port in narrow:
        assert 0 < len(methods(port)) <= WIDEST, port.__name__
    every = {
        value
        for value in vars(ports).values()
        if isinstance(value, type)
        and getattr(value, "_is_protocol", False)
        and value.__module__ == ports.__name__
    }
    composites = {ports.ClaimStore, ports.ReplicaStore, ports.Rollups}  # one adapter's ports together
    assert every - composites == narrow | {ports.RollupReader}  # the query's reads: tested with a store
