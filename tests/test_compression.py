"""Client-side zstd: the policy (pure), and rows written under any setting read back."""

from __future__ import annotations

import os
from typing import Any

import psycopg
import pytest

from _helpers import cfg, make_checkpoint
from pgcheckpoint import (
    ChunkingPolicy,
    CompressionPolicy,
    ConfigurationError,
    DeserializationError,
    PostgresSaver,
)
from pgcheckpoint import compression as z


def test_maybe_compress_policy() -> None:
    text = b"hello world " * 1000
    packed = z.maybe_compress(text, CompressionPolicy())
    assert packed is not None and z.decompress(packed) == text
    assert z.maybe_compress(b"x" * 100, CompressionPolicy()) is None  # under threshold
    assert z.maybe_compress(text, CompressionPolicy(enabled=False)) is None
    assert z.maybe_compress(os.urandom(50_000), CompressionPolicy()) is None  # incompressible


def test_levels_trade_size() -> None:
    data = b"".join(str(i).encode() for i in range(200_000))
    fast = z.maybe_compress(data, CompressionPolicy(level=1))
    small = z.maybe_compress(data, CompressionPolicy(level=19))
    assert fast is not None and small is not None and len(small) <= len(fast)


@pytest.mark.parametrize("kwargs", [{"threshold": -1}, {"level": 0}, {"level": 23},
                                    {"min_saving": 1.0}, {"min_saving": -0.1}])
def test_policy_validation(kwargs: dict[str, Any]) -> None:
    with pytest.raises(ConfigurationError):
        CompressionPolicy(**kwargs)


def test_decompress_garbage() -> None:
    with pytest.raises(DeserializationError, match="not valid zstd"):
        z.decompress(b"definitely not zstd")


def _types(url: str) -> dict[str, set[str]]:
    with psycopg.connect(url, autocommit=True) as conn:
        return {
            "checkpoints": {r[0] for r in conn.execute("SELECT type FROM checkpoints")},
            "blobs": {r[0] for r in conn.execute("SELECT type FROM blobs")},
            "writes": {r[0] for r in conn.execute("SELECT type FROM writes")},
        }


VALUES = {
    "text": "compressible " * 500,
    "noise": os.urandom(4000),
    "small": [1, 2, 3],
}


def _put_all(s: PostgresSaver, thread: str) -> None:
    cp = make_checkpoint(VALUES)
    saved = s.put(cfg(thread), cp, {"k": "v"}, dict(cp["channel_versions"]))
    s.put_writes(saved, [("text", "w" * 5000), ("small", 1)], "task")


def test_settings_are_recorded_per_row(db_url: str) -> None:
    """Rows carry +zstd when compressed; rows of either setting read back under the other."""
    off = CompressionPolicy(enabled=False)
    no_cdc = ChunkingPolicy(enabled=False)
    with PostgresSaver.from_conn_string(db_url, compression=off, chunking=no_cdc) as s:
        _put_all(s, "raw")
    raw_types = _types(db_url)
    assert not any(t.endswith("+zstd") for ts in raw_types.values() for t in ts)
    with PostgresSaver.from_conn_string(db_url, chunking=no_cdc) as s:
        _put_all(s, "zstd")
        for thread in ("raw", "zstd"):
            got = s.get_tuple(cfg(thread))
            assert got is not None
            assert got.checkpoint["channel_values"] == VALUES
            assert got.pending_writes == [("task", "text", "w" * 5000), ("task", "small", 1)]
    with PostgresSaver.from_conn_string(db_url, compression=off) as s:
        got = s.get_tuple(cfg("zstd"))
        assert got is not None and got.checkpoint["channel_values"] == VALUES
    types = _types(db_url)
    assert "msgpack+zstd" in types["blobs"] and "msgpack+zstd" in types["writes"]
    # Random bytes do not compress: that blob stays raw even with compression on.
    with psycopg.connect(db_url) as conn:
        noise = conn.execute(
            "SELECT type FROM blobs WHERE thread_id = 'zstd' AND channel = 'noise'"
        ).fetchone()
    assert noise == ("bytes",)  # the serde stores bytes as they are
