"""Helpers shared by the contract, bad-input and storage tests (their ``api`` fixture is
in conftest.py)."""

from __future__ import annotations

import asyncio
import itertools
from typing import Any

import psycopg
from langchain_core.runnables import RunnableConfig
from langgraph.checkpoint.base import Checkpoint, empty_checkpoint
from langgraph.checkpoint.base.id import uuid6

from pgcheckpoint import AsyncPostgresSaver, PostgresSaver

_VERSIONS = itertools.count(1)
TABLES = ("threads", "checkpoints", "blobs", "chunks", "writes")


def db_snapshot(url: str, schema: str = "public") -> dict[str, list[tuple[Any, ...]]]:
    """Every row of every pgcheckpoint table, sorted, to compare before/after a call."""
    out: dict[str, list[tuple[Any, ...]]] = {}
    with psycopg.connect(url, autocommit=True) as conn:
        for table in (*TABLES, "pgcheckpoint_migrations"):
            q = psycopg.sql.SQL("SELECT * FROM {}.{}").format(
                psycopg.sql.Identifier(schema), psycopg.sql.Identifier(table)
            )
            out[table] = sorted((tuple(r) for r in conn.execute(q)), key=repr)
    return out


def row_counts(url: str, schema: str = "public") -> dict[str, int]:
    return {t: len(rows) for t, rows in db_snapshot(url, schema).items()}


def cfg(thread: Any, ns: str = "", checkpoint_id: str | None = None) -> RunnableConfig:
    conf: dict[str, Any] = {"thread_id": thread, "checkpoint_ns": ns}
    if checkpoint_id is not None:
        conf["checkpoint_id"] = checkpoint_id
    return {"configurable": conf}


def make_checkpoint(
    values: dict[str, Any] | None = None, versions: dict[str, str] | None = None
) -> Checkpoint:
    """A checkpoint with a fresh time-ordered id holding ``values`` at ``versions``."""
    cp = empty_checkpoint()
    cp["id"] = str(uuid6(clock_seq=-2))
    cp["channel_values"] = dict(values or {})
    if versions is None:
        # A new version per call, as LangGraph makes one for every changed value.
        version = f"{next(_VERSIONS):032}.0"
        versions = {k: version for k in cp["channel_values"]}
    cp["channel_versions"] = dict(versions)
    return cp


class Api:
    """One saver behind one calling convention: ``await api.call("put", ...)``.

    For the sync saver the sync method runs on a worker thread; for the async
    saver the ``a``-prefixed coroutine is awaited. ``list`` returns a list.
    """

    def __init__(self, saver: PostgresSaver | AsyncPostgresSaver, url: str) -> None:
        self.saver = saver
        self.url = url
        self.is_async = isinstance(saver, AsyncPostgresSaver)

    async def call(self, method: str, *args: Any, **kwargs: Any) -> Any:
        if self.is_async:
            fn = getattr(self.saver, "a" + method)
            if method == "list":
                return [t async for t in fn(*args, **kwargs)]
            return await fn(*args, **kwargs)
        fn = getattr(self.saver, method)
        if method == "list":
            return await asyncio.to_thread(lambda: list(fn(*args, **kwargs)))
        return await asyncio.to_thread(fn, *args, **kwargs)

    async def put(
        self, thread: Any, values: dict[str, Any] | None = None, *, ns: str = "",
        parent: str | None = None, metadata: dict[str, Any] | None = None,
    ) -> RunnableConfig:
        cp = make_checkpoint(values)
        new_versions = dict(cp["channel_versions"])
        result: RunnableConfig = await self.call(
            "put", cfg(thread, ns, parent), cp, metadata or {}, new_versions
        )
        return result


def raw_dump(url: str) -> bytes:
    """Every stored byte of every pgcheckpoint table, as one blob to search."""
    out = bytearray()
    with psycopg.connect(url) as conn:
        for table in ("checkpoints", "blobs", "chunks", "writes"):
            for row in conn.execute(f"SELECT * FROM public.{table}"):
                for v in row:
                    out += v if isinstance(v, bytes) else str(v).encode()
    return bytes(out)
