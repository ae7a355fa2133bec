"""Content-defined chunking: pure properties, then storage behaviour on PostgreSQL."""

from __future__ import annotations

import os
import random
from typing import Any

import psycopg
import pytest

from _helpers import Api, cfg, make_checkpoint
from pgcheckpoint import ChunkingPolicy, ConfigurationError, PostgresSaver
from pgcheckpoint import chunking as ck


def _data(n: int, seed: int = 1) -> bytes:
    return random.Random(seed).randbytes(n)


@pytest.mark.parametrize("size", [0, 1, 8192, 100_000, 3_000_000])
def test_split_concatenates_back(size: int) -> None:
    data = _data(size)
    pieces = ck.split(data, ChunkingPolicy())
    assert b"".join(pieces) == data
    if size:
        assert len(pieces) <= ChunkingPolicy().target_chunks * 4


def test_average_size_bounds() -> None:
    p = ChunkingPolicy()
    assert ck.average_size(10, p) == p.min_avg
    assert ck.average_size(10**9, p) == p.max_avg
    avg = ck.average_size(1_000_000, p)
    assert avg & (avg - 1) == 0 and p.min_avg <= avg <= p.max_avg


def test_edit_in_the_middle_changes_few_chunks() -> None:
    data = _data(1_000_000)
    edited = data[:500_000] + b"XYZ" + data[500_000:]
    a = {ck.digest(x) for x in ck.split(data, ChunkingPolicy())}
    b = {ck.digest(x) for x in ck.split(edited, ChunkingPolicy())}
    assert len(b - a) <= 3, "a small edit must only change the chunks around it"


def test_digest_and_refs() -> None:
    h = ck.digest(b"abc")
    assert len(h) == ck.HASH_SIZE and h != ck.digest(b"abd")
    assert ck.split_refs(h + ck.digest(b"x")) == [h, ck.digest(b"x")]


@pytest.mark.parametrize("kwargs", [{"min_avg": 100}, {"min_avg": 4096, "max_avg": 2048},
                                    {"target_chunks": 0}])
def test_policy_validation(kwargs: dict[str, Any]) -> None:
    with pytest.raises(ConfigurationError):
        ChunkingPolicy(**kwargs)


def _rows(url: str, sql: str) -> list[tuple[Any, ...]]:
    with psycopg.connect(url, autocommit=True) as conn:
        return [tuple(r) for r in conn.execute(sql)]


async def test_growing_list_shares_chunks(api: Api) -> None:
    """Each step of a growing message list stores about the new part, not the whole list."""
    msgs: list[str] = []
    parent = None
    rnd = random.Random(3)
    for step in range(12):
        msgs = [*msgs, "".join(rnd.choice("abcdefgh ") for _ in range(4000)) + str(step)]
        cp = make_checkpoint({"messages": msgs}, {"messages": f"{step + 1:032}.0"})
        saved = await api.call("put", cfg("g", "", parent), cp, {"step": step},
                               dict(cp["channel_versions"]))
        parent = saved["configurable"]["checkpoint_id"]
    got = await api.call("get_tuple", cfg("g"))
    assert got.checkpoint["channel_values"]["messages"] == msgs
    for t in await api.call("list", cfg("g")):
        assert t.checkpoint["channel_values"]["messages"] == msgs[: t.metadata["step"] + 1]
    total_raw = sum(len(m) for i in range(12) for m in msgs[: i + 1])
    stored = _rows(api.url, "SELECT coalesce(sum(length(data)), 0) FROM chunks")[0][0]
    assert stored < total_raw / 3, (stored, total_raw)
    types = {r[0] for r in _rows(api.url, "SELECT type FROM blobs")}
    assert any(t.endswith("+cdc") for t in types)


async def test_chunks_are_collected_with_their_blobs(api: Api) -> None:
    big = {"v": list(range(200_000))}
    first = await api.put("gc", big)
    await api.put("gc", {"v": [1]}, parent=first["configurable"]["checkpoint_id"])
    assert _rows(api.url, "SELECT count(*) FROM chunks")[0][0] > 0
    await api.call("prune", ["gc"], strategy="keep_latest")
    assert _rows(api.url, "SELECT count(*) FROM chunks")[0][0] == 0
    got = await api.call("get_tuple", cfg("gc"))
    assert got.checkpoint["channel_values"] == {"v": [1]}


async def test_same_content_in_two_threads_is_stored_per_thread(api: Api) -> None:
    value = {"blob": os.urandom(50_000)}
    await api.put("one", value)
    await api.put("two", value)
    per_thread = dict(_rows(api.url, "SELECT thread_id, count(*) FROM chunks GROUP BY 1"))
    assert per_thread["one"] == per_thread["two"] > 0
    await api.call("delete_thread", "one")
    got = await api.call("get_tuple", cfg("two"))
    assert got.checkpoint["channel_values"] == value


def test_chunking_disabled_stores_whole_values(db_url: str) -> None:
    with PostgresSaver.from_conn_string(db_url, chunking=ChunkingPolicy(enabled=False)) as s:
        cp = make_checkpoint({"v": list(range(100_000))})
        s.put(cfg("plain"), cp, {}, dict(cp["channel_versions"]))
        got = s.get_tuple(cfg("plain"))
    assert got is not None and got.checkpoint["channel_values"]["v"] == list(range(100_000))
    assert _rows(db_url, "SELECT count(*) FROM chunks")[0][0] == 0
    assert _rows(db_url, "SELECT type FROM blobs") == [("msgpack+zstd",)]
