"""Where plans meet PostgreSQL: the sync and async runners.

Everything that touches a connection goes through a runner, so retry, error
translation and (later) metrics live in one place. A runner wraps either one
connection (guarded by a lock: a psycopg connection runs one statement at a
time) or a pool (no lock: each call takes its own connection, so concurrent
callers run in parallel; the official saver locks even around its pool).
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager, nullcontext
from typing import Any, TypeVar

import psycopg
from psycopg.rows import tuple_row
from psycopg_pool import AsyncConnectionPool, ConnectionPool

from ._plans import Plan, Query
from .errors import (
    ConfigurationError,
    RetryExhaustedError,
    StorageError,
    TransientStorageError,
)
from .retry import Backoff, RetryPolicy, is_transient

T = TypeVar("T")

SyncSource = psycopg.Connection[Any] | ConnectionPool[Any]
AsyncSource = psycopg.AsyncConnection[Any] | AsyncConnectionPool[Any]


def translate(exc: BaseException, operation: str) -> BaseException:
    """The pgcheckpoint error for a driver error (others are returned unchanged)."""
    if not isinstance(exc, psycopg.Error):
        return exc
    state = f" [SQLSTATE {exc.sqlstate}]" if exc.sqlstate else ""
    message = f"{operation} failed{state}: {str(exc).strip() or type(exc).__name__}"
    if is_transient(exc):
        return TransientStorageError(message)
    return StorageError(message)


class _RunnerBase:
    """What both runners share: settings and the retry decision."""

    def __init__(self, *, retry: RetryPolicy, prepared_statements: bool) -> None:
        self.retry = retry
        self.prepared_statements = prepared_statements

    def _prepare(self, query: Query) -> bool | None:
        if not self.prepared_statements or query.prepare is False:
            return False
        return None

    def _after_failure(
        self, exc: BaseException, plan: Plan[Any], backoff: Backoff, started: float, can_retry: bool
    ) -> float:
        """The delay before retrying ``plan``, or raise the error to give up."""
        err = translate(exc, plan.name)
        if not (isinstance(err, TransientStorageError) and plan.idempotent and can_retry):
            raise err from exc
        elapsed = time.monotonic() - started
        delay = backoff.next_delay(elapsed)
        if delay is None:
            if backoff.attempts <= 1 or not self.retry.enabled:
                raise err from exc
            raise RetryExhaustedError(plan.name, backoff.attempts, elapsed, exc) from exc
        return delay


class SyncRunner(_RunnerBase):
    """Runs plans on a psycopg ``Connection`` or ``ConnectionPool``."""

    def __init__(self, source: SyncSource, *, retry: RetryPolicy, prepared_statements: bool) -> None:
        super().__init__(retry=retry, prepared_statements=prepared_statements)
        if not isinstance(source, psycopg.Connection | ConnectionPool):
            raise ConfigurationError(
                "PostgresSaver needs a psycopg Connection or a psycopg_pool ConnectionPool, "
                f"got {type(source).__name__}"
            )
        self.source = source
        self._lock = threading.Lock()

    @contextmanager
    def connection(self) -> Iterator[psycopg.Connection[Any]]:
        if isinstance(self.source, ConnectionPool):
            with self.source.connection() as conn:
                yield conn
        else:
            with self._lock:
                yield self.source

    def _can_retry(self) -> bool:
        return isinstance(self.source, ConnectionPool) or not self.source.closed

    def run(self, plan: Plan[T]) -> T:
        backoff = Backoff(self.retry)
        started = time.monotonic()
        while True:
            try:
                with self.connection() as conn:
                    return self._execute(conn, plan)
            except psycopg.Error as exc:
                delay = self._after_failure(exc, plan, backoff, started, self._can_retry())
            time.sleep(delay)

    def _execute(self, conn: psycopg.Connection[Any], plan: Plan[T]) -> T:
        if plan.own_transactions:
            return self._execute_own(conn, plan)
        tx = conn.transaction() if plan.transaction or not conn.autocommit else nullcontext()
        with tx:
            return self._drive(conn, plan)

    def _execute_own(self, conn: psycopg.Connection[Any], plan: Plan[T]) -> T:
        was_autocommit = conn.autocommit
        conn.autocommit = True
        try:
            return self._drive(conn, plan)
        finally:
            if not conn.closed:
                if conn.info.transaction_status != psycopg.pq.TransactionStatus.IDLE:
                    conn.rollback()
                if plan.cleanup is not None:
                    conn.execute(plan.cleanup.sql, plan.cleanup.params, prepare=False)
                conn.autocommit = was_autocommit

    def _drive(self, conn: psycopg.Connection[Any], plan: Plan[T]) -> T:
        gen = plan.make()
        with conn.cursor(row_factory=tuple_row) as cur:
            try:
                query = next(gen)
                while True:
                    cur.execute(
                        query.sql,
                        query.params,
                        prepare=self._prepare(query),
                        binary=query.params is not None,
                    )
                    rows = cur.fetchall() if query.fetch == "all" else None
                    query = gen.send(rows)
            except StopIteration as stop:
                result: T = stop.value
                return result


class AsyncRunner(_RunnerBase):
    """Runs plans on a psycopg ``AsyncConnection`` or ``AsyncConnectionPool``."""

    def __init__(
        self, source: AsyncSource, *, retry: RetryPolicy, prepared_statements: bool
    ) -> None:
        super().__init__(retry=retry, prepared_statements=prepared_statements)
        if not isinstance(source, psycopg.AsyncConnection | AsyncConnectionPool):
            raise ConfigurationError(
                "AsyncPostgresSaver needs a psycopg AsyncConnection or a psycopg_pool "
                f"AsyncConnectionPool, got {type(source).__name__}"
            )
        self.source = source
        self._lock: asyncio.Lock | None = None

    @asynccontextmanager
    async def connection(self) -> AsyncIterator[psycopg.AsyncConnection[Any]]:
        if isinstance(self.source, AsyncConnectionPool):
            async with self.source.connection() as conn:
                yield conn
        else:
            if self._lock is None:
                self._lock = asyncio.Lock()
            async with self._lock:
                yield self.source

    def _can_retry(self) -> bool:
        return isinstance(self.source, AsyncConnectionPool) or not self.source.closed

    async def run(self, plan: Plan[T]) -> T:
        backoff = Backoff(self.retry)
        started = time.monotonic()
        while True:
            try:
                async with self.connection() as conn:
                    return await self._execute(conn, plan)
            except psycopg.Error as exc:
                delay = self._after_failure(exc, plan, backoff, started, self._can_retry())
            await asyncio.sleep(delay)

    async def _execute(self, conn: psycopg.AsyncConnection[Any], plan: Plan[T]) -> T:
        if plan.own_transactions:
            return await self._execute_own(conn, plan)
        if plan.transaction or not conn.autocommit:
            async with conn.transaction():
                return await self._drive(conn, plan)
        return await self._drive(conn, plan)

    async def _execute_own(self, conn: psycopg.AsyncConnection[Any], plan: Plan[T]) -> T:
        was_autocommit = conn.autocommit
        await conn.set_autocommit(True)
        try:
            return await self._drive(conn, plan)
        finally:
            if not conn.closed:
                if conn.info.transaction_status != psycopg.pq.TransactionStatus.IDLE:
                    await conn.rollback()
                if plan.cleanup is not None:
                    await conn.execute(plan.cleanup.sql, plan.cleanup.params, prepare=False)
                await conn.set_autocommit(was_autocommit)

    async def _drive(self, conn: psycopg.AsyncConnection[Any], plan: Plan[T]) -> T:
        gen = plan.make()
        async with conn.cursor(row_factory=tuple_row) as cur:
            try:
                query: Query = next(gen)
                while True:
                    await cur.execute(
                        query.sql,
                        query.params,
                        prepare=self._prepare(query),
                        binary=query.params is not None,
                    )
                    rows = await cur.fetchall() if query.fetch == "all" else None
                    query = gen.send(rows)
            except StopIteration as stop:
                result: T = stop.value
                return result
