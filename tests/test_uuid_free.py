"""Nothing on the saver's set-up, put or read path calls ``uuid.uuid4``.

LangGraph's own tests (the ``deterministic_uuids`` fixture) patch ``uuid.uuid4``
with a fixed sequence before the checkpointer is built and compare the ids
their graphs make with snapshots; a saver that drew from ``uuid.uuid4`` on the
way would shift that sequence and fail them (scripts/langgraph_suite.py runs
them). Here ``uuid.uuid4`` raises, and each kind of saver (connection or pool,
sync or async) is built, set up, written and read.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from typing import Any, NoReturn

import psycopg
import pytest
from psycopg_pool import AsyncConnectionPool, ConnectionPool

from _helpers import cfg, make_checkpoint
from pgcheckpoint import AsyncPostgresSaver, PostgresSaver


def _forbidden(*args: Any, **kwargs: Any) -> NoReturn:
    raise AssertionError("uuid.uuid4 called on the saver's path")


@pytest.fixture
def no_uuid4(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(uuid, "uuid4", _forbidden)


@contextmanager
def _sync_saver(kind: str, url: str) -> Iterator[PostgresSaver]:
    if kind == "conn":
        with psycopg.Connection.connect(url, autocommit=True) as conn:
            yield PostgresSaver(conn)
    elif kind == "pool":
        with ConnectionPool(url, max_size=4, kwargs={"autocommit": True}) as pool:
            yield PostgresSaver(pool)
    else:
        with PostgresSaver.from_conn_string(url) as saver:
            yield saver


@asynccontextmanager
async def _async_saver(kind: str, url: str) -> AsyncIterator[AsyncPostgresSaver]:
    if kind == "conn":
        async with await psycopg.AsyncConnection.connect(url, autocommit=True) as conn:
            yield AsyncPostgresSaver(conn)
    elif kind == "pool":
        async with AsyncConnectionPool(url, max_size=4, kwargs={"autocommit": True}) as pool:
            yield AsyncPostgresSaver(pool)
    else:
        async with AsyncPostgresSaver.from_conn_string(url) as saver:
            yield saver


KINDS = ["conn", "pool", "from_conn_string"]


@pytest.mark.parametrize("kind", KINDS)
def test_sync_saver_never_calls_uuid4(empty_db_url: str, kind: str, no_uuid4: None) -> None:
    first = make_checkpoint({"messages": ["hi"]})
    second = make_checkpoint({"messages": ["hi", "there"]})
    with _sync_saver(kind, empty_db_url) as saver:
        saver.setup()
        one = saver.put(cfg("t"), first, {"step": 0}, dict(first["channel_versions"]))
        two = saver.put(one, second, {"step": 1}, dict(second["channel_versions"]))
        saver.put_writes(two, [("messages", "again")], "task-1")
        got = saver.get_tuple(cfg("t"))
        assert got is not None
        assert got.checkpoint["id"] == second["id"]
        assert got.parent_config == one
        assert [w[1:] for w in got.pending_writes or []] == [("messages", "again")]
        assert [t.checkpoint["id"] for t in saver.list(cfg("t"))] == [second["id"], first["id"]]


@pytest.mark.parametrize("kind", KINDS)
async def test_async_saver_never_calls_uuid4(
    empty_db_url: str, kind: str, no_uuid4: None
) -> None:
    first = make_checkpoint({"messages": ["hi"]})
    second = make_checkpoint({"messages": ["hi", "there"]})
    async with _async_saver(kind, empty_db_url) as saver:
        await saver.setup()
        one = await saver.aput(cfg("t"), first, {"step": 0}, dict(first["channel_versions"]))
        two = await saver.aput(one, second, {"step": 1}, dict(second["channel_versions"]))
        await saver.aput_writes(two, [("messages", "again")], "task-1")
        got = await saver.aget_tuple(cfg("t"))
        assert got is not None
        assert got.checkpoint["id"] == second["id"]
        assert got.parent_config == one
        assert [w[1:] for w in got.pending_writes or []] == [("messages", "again")]
        ids = [t.checkpoint["id"] async for t in saver.alist(cfg("t"))]
        assert ids == [second["id"], first["id"]]
