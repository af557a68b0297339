"""ClusterClient packs a node's commands as redis-py would, argument for argument."""

from __future__ import annotations

from typing import Any

import pytest
from analytics_pipeline.adapters.redis_cluster_client import ClusterClient
from redis.connection import Encoder, PythonRespSerializer
from redis.exceptions import DataError


def redis_py(commands: list[tuple[Any, ...]]) -> bytes:
    encoder = Encoder("utf-8", "strict", False)
    serializer = PythonRespSerializer(6000, encoder.encode)
    return b"".join(b"".join(serializer.pack(*command)) for command in commands)


def test_a_nodes_commands_are_packed_as_redis_py_packs_them():
    client = ClusterClient("redis://127.0.0.1:1")  # never connects: packing needs no server
    commands: list[tuple[Any, ...]] = [
        ("EVALSHA", "0123abcd", 2, b"{p:s3}:m:17", "{p:s3}:c:jav:movie:é:2026-03-01", 12, -3, 0, 1.5),
        ("EVALSHA", "0123abcd", 1, b"{p:s4}:n:2", b"\x00\xff\r\n" * 3000, ""),  # a long packed argument
        ("EVALSHA", "0123abcd", 1, "{p:rl}", 100),
    ]
    assert client._pack(commands) == redis_py(commands)


def test_an_argument_redis_py_refuses_is_refused():
    client = ClusterClient("redis://127.0.0.1:1")
    with pytest.raises(DataError):
        client._pack([("EVALSHA", "0123abcd", 1, "k", True)])
