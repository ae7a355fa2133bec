"""The two contenders, and how each is opened: the same constructors for both.

A ``Side`` is one saver implementation bound to its own database. Both sides are
opened exactly the same way (``from_conn_string`` for single connections, the class
over an ``AsyncConnectionPool`` for the concurrency workload), with the connection
settings the official saver documents (autocommit, dict rows, prepare_threshold=0),
so any difference measured is the saver's.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass
from typing import Any

from langgraph.checkpoint.base import BaseCheckpointSaver
from psycopg.rows import dict_row
from psycopg_pool import AsyncConnectionPool, ConnectionPool

from bench.db import bulk_connection

OFFICIAL = "official"
OURS = "pgcheckpoint"
CONNECTION_KWARGS: dict[str, Any] = {
    "autocommit": True,
    "prepare_threshold": 0,
    "row_factory": dict_row,
}


@dataclass(frozen=True)
class Side:
    """One saver implementation on its own database."""

    name: str
    label: str
    dsn: str
    sync_cls: Any
    async_cls: Any

    @contextmanager
    def sync_saver(self) -> Iterator[BaseCheckpointSaver[Any]]:
        with self.sync_cls.from_conn_string(self.dsn) as saver:
            pool = getattr(saver, "conn", None)
            if isinstance(pool, ConnectionPool):
                pool.wait()  # a pool still filling would steal CPU from the first samples
            yield saver

    @contextmanager
    def bulk_saver(self) -> Iterator[BaseCheckpointSaver[Any]]:
        """The sync saver on a connection whose commits skip the WAL flush (set-up only)."""
        with bulk_connection(self.dsn, row_factory=dict_row) as conn:
            yield self.sync_cls(conn)

    @asynccontextmanager
    async def async_saver(self) -> AsyncIterator[BaseCheckpointSaver[Any]]:
        async with self.async_cls.from_conn_string(self.dsn) as saver:
            pool = getattr(saver, "conn", None)
            if isinstance(pool, AsyncConnectionPool):
                await pool.wait()
            yield saver

    @asynccontextmanager
    async def pooled_async_saver(self, size: int) -> AsyncIterator[BaseCheckpointSaver[Any]]:
        pool: AsyncConnectionPool[Any] = AsyncConnectionPool(
            self.dsn, min_size=size, max_size=size, kwargs=dict(CONNECTION_KWARGS), open=False
        )
        await pool.open(wait=True)
        try:
            yield self.async_cls(pool)
        finally:
            await pool.close()

    def setup(self) -> None:
        with self.sync_saver() as saver:
            saver.setup()  # type: ignore[attr-defined]


def official_classes() -> tuple[Any, Any]:
    from langgraph.checkpoint.postgres import PostgresSaver
    from langgraph.checkpoint.postgres.aio import AsyncPostgresSaver

    return PostgresSaver, AsyncPostgresSaver


def our_classes() -> tuple[Any, Any]:
    from pgcheckpoint import AsyncPostgresSaver, PostgresSaver  # type: ignore[attr-defined,unused-ignore]

    return PostgresSaver, AsyncPostgresSaver


def make_sides(dsns: dict[str, str], *, self_test: bool) -> list[Side]:
    """Official first, pgcheckpoint second; ``self_test`` puts the official saver on both."""
    off_sync, off_async = official_classes()
    if self_test:
        ours_sync, ours_async, label = off_sync, off_async, "official (self-test)"
    else:
        ours_sync, ours_async = our_classes()
        label = OURS
    return [
        Side(OFFICIAL, OFFICIAL, dsns["bench_official"], off_sync, off_async),
        Side(OURS, label, dsns["bench_pgcheckpoint"], ours_sync, ours_async),
    ]
