"""Where plans meet PostgreSQL: the sync and async runners.

Everything that touches a connection goes through a runner, so retry, error
translation, metrics hooks and failover live in one place. A runner wraps
either one connection (guarded by a lock: a psycopg connection runs one
statement at a time) or a pool (no lock: each call takes its own connection,
so concurrent callers run in parallel; the official saver locks even around
its pool).

Failure handling, in order (see docs/resilience.md):
* a connection that failed mid-statement (no SQLSTATE, class 08, 57P0x) is
  closed before it goes back to the pool, so the pool discards it and never
  hands it out again;
* transient errors of idempotent plans are retried with jittered backoff until
  the policy's deadline, on a fresh pooled connection; libpq picks the host of
  a multi-host DSN (``target_session_attrs=read-write`` follows a failover);
* while the pool is empty and reconnecting (after a restart or failover) the
  runner does not wait for the pool's own reconnect backoff (1, 2, 4, 8 s...):
  once an attempt of an operation has failed on the connection, its later
  attempts wait briefly for the pool and otherwise open a plain connection of
  their own (same conninfo and settings, at most ``max_size`` at a time, closed
  after use), so the first operation after the database returns succeeds at
  the runner's next retry, not at the pool's next reconnect;
* a connection attempt that fails is sorted by :mod:`._conninfo`: a refused
  login, a missing database, a TLS refusal or a bad DSN is raised at once
  (``ConnectionFailedError``), as is a server that does not answer before the
  runner has ever connected (a typo in host or port, most likely), unless
  ``RetryPolicy.wait_for_server`` says to wait for it; a server that answered
  before, or that is starting up or full, is retried. Until the runner has had
  its first connection it waits only briefly for the pool and then connects
  itself, so the cause is known at once instead of after the pool's timeout;
* "prepared statement does not exist / already exists" (a transaction-mode
  PgBouncer older than 1.21) switches prepared statements off for the runner
  and retries, once, with a warning.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import threading
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager, nullcontext
from typing import Any, TypeVar

import psycopg
from psycopg.rows import tuple_row
from psycopg_pool import AsyncConnectionPool, ConnectionPool, PoolClosed, PoolTimeout

from ._conninfo import check, connect_failure_kind, describe, guard_logs, mask
from ._plans import Plan, Query
from .concurrency import PipelinePlan, QueryMany
from .errors import (
    ConcurrentUpdateError,
    ConfigurationError,
    ConnectionFailedError,
    MissingParentError,
    RetryExhaustedError,
    StorageError,
    TransientStorageError,
)
from .metrics import OperationHook, OperationResult, bytes_in
from .retry import Backoff, RetryPolicy, decide, is_transient, pool_wait

logger = logging.getLogger("pgcheckpoint")

T = TypeVar("T")

SyncSource = psycopg.Connection[Any] | ConnectionPool[Any]
AsyncSource = psycopg.AsyncConnection[Any] | AsyncConnectionPool[Any]


FORK_GUARD_STATE = "PGC01"
MISSING_PARENT_STATE = "PGC02"


def translate(
    exc: BaseException, operation: str, secrets: tuple[str, ...] = ()
) -> BaseException:
    """The pgcheckpoint error for a driver error (others are returned unchanged);
    ``secrets`` are masked in its message."""
    if not isinstance(exc, psycopg.Error):
        return exc
    if exc.sqlstate in (FORK_GUARD_STATE, MISSING_PARENT_STATE):
        # Raised by put_checkpoint's one-writer-per-thread check (migration 0006),
        # whose message already says what happened and what to do.
        message = exc.diag.message_primary or str(exc)
        if exc.sqlstate == MISSING_PARENT_STATE:
            return MissingParentError(message)
        return ConcurrentUpdateError(message)
    state = f" [SQLSTATE {exc.sqlstate}]" if exc.sqlstate else ""
    text = mask(str(exc).strip() or type(exc).__name__, secrets)
    message = f"{operation} failed{state}: {text}"
    if isinstance(exc, PoolClosed):
        return StorageError(f"{message} (open the pool before using the saver)")
    if is_transient(exc):
        return TransientStorageError(message)
    return StorageError(message)


class _ConnectFailed(Exception):
    """A connection attempt of the runner's own failed with ``cause`` (nothing was sent)."""

    def __init__(self, cause: psycopg.Error) -> None:
        super().__init__(str(cause))
        self.cause = cause


def _forget_conninfo(exc: BaseException) -> None:
    """Drop the failed connection a driver error keeps: its repr lists the password.
    (psycopg does the same when it pickles an error.)"""
    with contextlib.suppress(AttributeError):
        exc._pgconn = None  # type: ignore[attr-defined]


def _source_conninfo(source: Any) -> tuple[str | None, tuple[str, ...]]:
    """The connection string of ``source`` (None if unknown) and passwords given beside it."""
    extra: list[str] = []
    if isinstance(source, ConnectionPool | AsyncConnectionPool):
        kwargs = source.kwargs if isinstance(source.kwargs, dict) else {}
        extra = [str(kwargs[k]) for k in ("password", "sslpassword") if kwargs.get(k)]
        conninfo = source.conninfo if isinstance(source.conninfo, str) else None
        return conninfo, tuple(extra)
    if isinstance(source, psycopg.Connection | psycopg.AsyncConnection):
        password = source.info.password
        return source.info.dsn, (password,) if password else ()
    return None, ()


def breaks_connection(exc: BaseException) -> bool:
    """Whether the connection that raised ``exc`` must not be used again
    (or, for a failed connection attempt, whether to keep probing)."""
    if isinstance(exc, _ConnectFailed):
        return True
    if not isinstance(exc, psycopg.Error):
        return False
    state = exc.sqlstate
    if state is None:
        return isinstance(exc, psycopg.OperationalError | psycopg.InterfaceError)
    return state.startswith("08") or state in ("57P01", "57P02", "57P03")


# How long an attempt waits for the pool once the operation has seen the
# connection fail, before it opens a connection of its own (see module doc).
RECOVERY_WAIT = 0.2


def _direct_args(
    pool: ConnectionPool[Any] | AsyncConnectionPool[Any], timeout: float | None
) -> tuple[str, dict[str, Any], bool] | None:
    """The conninfo and settings of a plain connection like one of ``pool``'s
    (None if they are callables), its connect timeout capped at ``timeout``, and
    whether it can stand in for a pooled one (no ``configure`` callback)."""
    kwargs = pool.kwargs if pool.kwargs is not None else {}
    if not isinstance(pool.conninfo, str) or not isinstance(kwargs, dict):
        return None
    if timeout is not None:
        configured = int(kwargs.get("connect_timeout") or 0) or math.inf
        kwargs = {**kwargs, "connect_timeout": max(1, min(configured, math.ceil(timeout)))}
    return pool.conninfo, kwargs, getattr(pool, "_configure", None) is None


def _first_wait(timeout: float | None) -> float:
    return min(timeout or RECOVERY_WAIT, RECOVERY_WAIT)


# _PIPELINE_CURSORS: in pipeline mode a result is delivered to the cursor that
# sent its statement whenever it arrives, so a cursor reused for the next
# statement can be handed the previous statement's result and fetchall()
# returns it instead of waiting (seen once in 200 fault runs: "the last
# operation didn't produce records (command status: INSERT 0 1)"). Pipelined
# plans therefore send each statement on its own cursor.


def _pipelined(plan: Plan[Any]) -> bool:
    return isinstance(plan, PipelinePlan)


# _NO_PIPELINE: with prepared statements off (the PgBouncer setting), plans are
# never sent in pipeline mode and QueryMany runs its statement once per
# parameter set instead of through psycopg's executemany (which pipelines on
# its own). Behind PgBouncer 1.18 in transaction mode a pipelined transaction
# now and then left its server connection linked to the client after COMMIT
# (the backend idle, PgBouncer's SHOW CLIENTS still "active"): with a pool of
# two servers, the next operations waited until query_wait_timeout (seen in
# tests/test_health.py about once in ten runs of batch_save_checkpoints).


def _pipelined_on(plan: Plan[Any], prepared_statements: bool) -> bool:
    return prepared_statements and _pipelined(plan)


# _WRITE_CURSORS: outside pipelines, a statement marked ``Query.reuse_cursor``
# (small writes whose rows the plan does not need: put, put_writes,
# delete_thread) runs on one cursor kept per connection. A new cursor starts
# with an empty adapter cache and looks up a dumper for every parameter again:
# 15 to 18 us of a 0.32 ms put 1 KB (synchronous_commit=off A/B, psycopg 3.3).
# A kept cursor holds its last statement's dumped parameters until its next
# one, which is why only small statements use it; every other statement runs
# on a cursor of the plan's own, closed when the plan ends, so no result set
# or large parameter outlives its operation.


class _Stats:
    """Counters of one operation, kept only while hooks are installed."""

    __slots__ = ("attempts", "read", "tokens", "written")

    def __init__(self, tokens: list[Any]) -> None:
        self.tokens = tokens
        self.attempts = 0
        self.written = 0
        self.read = 0


class _RunnerBase:
    """What both runners share: settings, hooks and the retry decision."""

    def __init__(self, *, retry: RetryPolicy, prepared_statements: bool) -> None:
        self.retry = retry
        self.prepared_statements = prepared_statements
        self.hooks: tuple[OperationHook, ...] = ()
        self.secrets: tuple[str, ...] = ()
        self.target = "the database"
        # Whether a connection to the server ever succeeded (see the module doc).
        self._reached = False

    def _init_target(self, source: Any) -> None:
        """Check ``source``'s connection string, learn its secrets (masked in every
        message and log line from now on) and the name of its database."""
        conninfo, extra = _source_conninfo(source)
        if conninfo is None:
            return
        if isinstance(source, ConnectionPool | AsyncConnectionPool):
            check(conninfo)
        self.secrets = tuple(sorted({*guard_logs(conninfo), *extra}, key=len, reverse=True))
        self.target = describe(conninfo)
        if isinstance(source, psycopg.Connection | psycopg.AsyncConnection):
            self._reached = True
        else:
            # pool_size and connections_num also count attempts in progress;
            # connections_ms grows only when one succeeds. (Wrong only towards
            # False, which merely makes the first operation probe.)
            stats = source.get_stats()
            self._reached = bool(stats.get("pool_available") or stats.get("connections_ms"))

    def _connect_error(
        self, cause: psycopg.Error, policy: RetryPolicy, elapsed: float
    ) -> StorageError:
        """What a failed connection attempt means (see the module doc)."""
        kind = connect_failure_kind(cause)
        text = mask(str(cause).strip() or type(cause).__name__, self.secrets)
        text = text.removeprefix("connection failed: ")  # psycopg's, redundant here
        message = f"could not connect to {self.target}: {text}"
        if kind == "busy":
            return TransientStorageError(message)
        if kind == "unreachable" and (self._reached or elapsed < policy.wait_for_server):
            return TransientStorageError(message)
        if kind == "unreachable":
            message += (
                " (no server has answered since this saver started: check the host and port; "
                "RetryPolicy(wait_for_server=...) waits for a server that is still starting)"
            )
        return ConnectionFailedError(message, target=self.target)

    def _prepare(self, query: Query) -> bool | None:
        if not self.prepared_statements or query.prepare is False:
            return False
        return None

    @staticmethod
    def _on_kept_cursor(query: Query, pipelined: bool) -> bool:
        """Whether ``query`` runs on the connection's kept cursor (see _WRITE_CURSORS)."""
        return query.reuse_cursor and query.fetch != "all" and not pipelined

    def _start(self, plan: Plan[Any]) -> _Stats | None:
        if not self.hooks:
            return None
        return _Stats([hook.start(plan.name) for hook in self.hooks])

    def _finish(
        self, stats: _Stats | None, plan: Plan[Any], started: float, error: BaseException | None
    ) -> None:
        if stats is None:
            return
        result = OperationResult(
            operation=plan.name,
            seconds=time.monotonic() - started,
            attempts=stats.attempts,
            error=None if error is None else type(error).__name__,
            bytes_written=stats.written,
            bytes_read=stats.read,
        )
        for hook, token in zip(self.hooks, stats.tokens, strict=False):
            try:
                hook.finish(token, result)
            except Exception:  # a metrics failure must never fail the operation
                logger.exception("pgcheckpoint metrics hook %r failed", hook)

    def _sent(self, stats: _Stats | None, query: Query) -> None:
        if stats is not None:
            if isinstance(query, QueryMany):
                stats.written += sum(bytes_in(p) for p in query.params_seq)
            elif query.params is not None:
                stats.written += bytes_in(query.params)

    def _received(self, stats: _Stats | None, rows: list[tuple[Any, ...]]) -> None:
        if stats is not None:
            stats.read += sum(bytes_in(row) for row in rows)

    def _after_failure(
        self,
        exc: psycopg.Error | _ConnectFailed,
        plan: Plan[Any],
        backoff: Backoff,
        started: float,
        can_retry: bool,
        stats: _Stats | None,
    ) -> float:
        """The delay before retrying ``plan``, or raise the error to give up
        (the decision is :func:`.retry.decide`; this carries it out)."""
        elapsed = time.monotonic() - started
        if isinstance(exc, _ConnectFailed):
            cause: psycopg.Error = exc.cause
            _forget_conninfo(cause)
            err: BaseException = self._connect_error(cause, backoff.policy, elapsed)
        else:
            cause = exc
            err = translate(exc, plan.name, self.secrets)
        decision = decide(
            backoff,
            elapsed,
            sqlstate=cause.sqlstate,
            transient=isinstance(err, TransientStorageError),
            sent=not isinstance(exc, _ConnectFailed),
            idempotent=plan.idempotent,
            can_retry=can_retry,
            prepared_statements=self.prepared_statements,
        )
        if decision.action == "unprepare":
            logger.warning(
                "pgcheckpoint: the server lost a prepared statement (%s); a "
                "transaction-mode pooler such as PgBouncer is probably in between. "
                "Prepared statements are now off for this saver; pass "
                "prepared_statements=False to skip this.",
                cause.sqlstate,
            )
            self.prepared_statements = False
            return 0.0
        if decision.action == "again":
            # Another call switched them off while this one was in flight with
            # a prepared statement (seen under PgBouncer with concurrent graph
            # tasks): run it again, unprepared.
            return 0.0
        if decision.action == "raise":
            raise err from cause
        if decision.action == "exhausted":
            detail = (
                str(err)
                if isinstance(exc, _ConnectFailed)
                else f"{type(cause).__name__}: {mask(str(cause), self.secrets)}"
            )
            raise RetryExhaustedError(
                plan.name, backoff.attempts, elapsed, cause, detail
            ) from cause
        delay = decision.delay
        logger.info(
            "pgcheckpoint: %s attempt %d failed (%s); retrying in %.3fs",
            plan.name,
            backoff.attempts,
            err,
            delay,
        )
        if stats is not None:
            for hook, token in zip(self.hooks, stats.tokens, strict=False):
                try:
                    hook.retry(token, plan.name, err)
                except Exception:
                    logger.exception("pgcheckpoint metrics hook %r failed", hook)
        return delay

    def _wait_limit(self, policy: RetryPolicy, started: float, pool_timeout: float) -> float:
        """How long to wait for a pooled connection: never past the policy's deadline
        (with retries off too: a health check's deadline is its timeout)."""
        return pool_wait(policy, time.monotonic() - started, pool_timeout)


class SyncRunner(_RunnerBase):
    """Runs plans on a psycopg ``Connection`` or ``ConnectionPool``."""

    def __init__(
        self, source: SyncSource, *, retry: RetryPolicy, prepared_statements: bool
    ) -> None:
        super().__init__(retry=retry, prepared_statements=prepared_statements)
        if not isinstance(source, psycopg.Connection | ConnectionPool):
            raise ConfigurationError(
                "PostgresSaver needs a psycopg Connection or a psycopg_pool ConnectionPool, "
                f"got {type(source).__name__}"
            )
        self.source = source
        self._init_target(source)
        self._lock = threading.Lock()
        size = source.max_size if isinstance(source, ConnectionPool) else 1
        self._direct = threading.BoundedSemaphore(size)
        self._writers: dict[int, psycopg.Cursor[Any]] = {}  # see _WRITE_CURSORS
        self._writers_lock = threading.Lock()

    def _writer(self, conn: psycopg.Connection[Any]) -> psycopg.Cursor[Any]:
        """The cursor kept for ``conn``'s small writes (see _WRITE_CURSORS)."""
        cur = self._writers.get(id(conn))
        if cur is not None and cur.connection is conn and not cur.closed:
            return cur
        cur = conn.cursor(row_factory=tuple_row)
        with self._writers_lock:
            # Forget the cursors of connections closed since (the pool replaced them).
            for key, old in list(self._writers.items()):
                if old.connection.closed:
                    del self._writers[key]
            self._writers[id(conn)] = cur
        return cur

    @contextmanager
    def connection(
        self, timeout: float | None = None, recovering: bool = False
    ) -> Iterator[psycopg.Connection[Any]]:
        """A connection for one attempt (see the module doc for ``recovering``)."""
        pool = self.source
        if not isinstance(pool, ConnectionPool):
            with self._lock:
                yield pool
            return
        probing = recovering or not self._reached
        try:
            conn = pool.getconn(_first_wait(timeout) if probing else timeout)
        except PoolTimeout:
            direct = self._probe(pool, timeout, stand_in=probing)
            if direct is None:
                if not probing:
                    raise  # the server answers: the pool is busy
                conn = pool.getconn(timeout)
            else:
                try:
                    with direct:
                        yield direct
                finally:
                    self._direct.release()
                return
        self._reached = True
        try:
            yield conn
        except BaseException as exc:
            # Closed here, the pool discards it instead of reusing it.
            if breaks_connection(exc) and not conn.closed:
                conn.close()
            raise
        finally:
            pool.putconn(conn)

    def _probe(
        self, pool: ConnectionPool[Any], timeout: float | None, stand_in: bool
    ) -> psycopg.Connection[Any] | None:
        """Connect on our own to learn why the pool has no connection for us.

        Raises ``_ConnectFailed`` with the cause. Returns the connection when it
        may stand in for a pooled one (``stand_in``, at most ``max_size`` at a
        time; release ``_direct`` after use), else closes it and returns None.
        """
        args = _direct_args(pool, timeout)
        if args is None:
            return None
        conninfo, kwargs, exact = args
        use = stand_in and exact and self._direct.acquire(blocking=False)
        try:
            conn: psycopg.Connection[Any] = pool.connection_class.connect(conninfo, **kwargs)
        except psycopg.Error as exc:
            if use:
                self._direct.release()
            raise _ConnectFailed(exc) from exc
        self._reached = True
        if use:
            return conn
        conn.close()
        return None

    def _can_retry(self) -> bool:
        return isinstance(self.source, ConnectionPool) or not self.source.closed

    def run(self, plan: Plan[T], *, retry: RetryPolicy | None = None) -> T:
        """Run ``plan``, retrying transient failures under ``retry`` (default: the runner's)."""
        policy = retry or self.retry
        backoff = Backoff(policy)
        started = time.monotonic()
        stats = self._start(plan)
        recovering = False
        pool_timeout = self.source.timeout if isinstance(self.source, ConnectionPool) else 0.0
        while True:
            try:
                if stats is not None:
                    stats.attempts += 1
                limit = self._wait_limit(policy, started, pool_timeout) if pool_timeout else None
                with self.connection(limit, recovering) as conn:
                    result = self._execute(conn, plan, stats)
                self._finish(stats, plan, started, None)
                return result
            except (psycopg.Error, _ConnectFailed) as exc:
                recovering = recovering or breaks_connection(exc)
                try:
                    delay = self._after_failure(
                        exc, plan, backoff, started, self._can_retry(), stats
                    )
                except BaseException as final:
                    self._finish(stats, plan, started, final)
                    raise
            except BaseException as exc:
                self._finish(stats, plan, started, exc)
                raise
            time.sleep(delay)

    def _execute(self, conn: psycopg.Connection[Any], plan: Plan[T], stats: _Stats | None) -> T:
        if plan.own_transactions:
            return self._execute_own(conn, plan, stats)
        if _pipelined_on(plan, self.prepared_statements):  # see _NO_PIPELINE
            # One network flush for BEGIN and every statement up to the first
            # one whose rows the plan needs, instead of one round trip each.
            with conn.pipeline(), conn.transaction():
                return self._drive(conn, plan, stats, pipelined=True)
        tx = conn.transaction() if plan.transaction or not conn.autocommit else nullcontext()
        with tx:
            return self._drive(conn, plan, stats)

    def _execute_own(self, conn: psycopg.Connection[Any], plan: Plan[T], stats: _Stats | None) -> T:
        was_autocommit = conn.autocommit
        conn.autocommit = True
        try:
            return self._drive(conn, plan, stats)
        finally:
            if not conn.closed:
                if conn.info.transaction_status != psycopg.pq.TransactionStatus.IDLE:
                    conn.rollback()
                if plan.cleanup is not None:
                    conn.execute(plan.cleanup.sql, plan.cleanup.params, prepare=False)
                conn.autocommit = was_autocommit

    def _drive(
        self,
        conn: psycopg.Connection[Any],
        plan: Plan[T],
        stats: _Stats | None,
        pipelined: bool = False,
    ) -> T:
        if not self.prepared_statements and conn.prepare_threshold is not None:
            conn.prepare_threshold = None  # executemany would prepare on its own
        gen = plan.make()
        plan_cur: psycopg.Cursor[Any] | None = None  # see _WRITE_CURSORS
        try:
            query = next(gen)
            while True:
                self._sent(stats, query)
                if not self._on_kept_cursor(query, pipelined):
                    if plan_cur is None or pipelined:  # pipelined: see _PIPELINE_CURSORS
                        plan_cur = conn.cursor(row_factory=tuple_row)
                    cur = plan_cur
                else:
                    cur = self._writer(conn)
                rows = None
                if isinstance(query, QueryMany):
                    if self.prepared_statements:
                        cur.executemany(query.sql, query.params_seq)
                    else:  # see _NO_PIPELINE
                        for params in query.params_seq:
                            cur.execute(query.sql, params, prepare=False, binary=True)
                else:
                    cur.execute(
                        query.sql,
                        query.params,
                        prepare=self._prepare(query),
                        binary=query.params is not None,
                    )
                    if query.fetch == "all":
                        rows = cur.fetchall()
                        self._received(stats, rows)
                query = gen.send(rows)
        except StopIteration as stop:
            result: T = stop.value
            return result
        finally:
            if plan_cur is not None:
                plan_cur.close()


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
        self._init_target(source)
        self._lock: asyncio.Lock | None = None
        self._direct_in_use = 0  # plain connections open while the pool recovers
        self._writers: dict[int, psycopg.AsyncCursor[Any]] = {}  # see _WRITE_CURSORS

    def _writer(self, conn: psycopg.AsyncConnection[Any]) -> psycopg.AsyncCursor[Any]:
        """The cursor kept for ``conn``'s small writes (see _WRITE_CURSORS)."""
        cur = self._writers.get(id(conn))
        if cur is not None and cur.connection is conn and not cur.closed:
            return cur
        cur = conn.cursor(row_factory=tuple_row)
        # Forget the cursors of connections closed since (the pool replaced them).
        for key, old in list(self._writers.items()):
            if old.connection.closed:
                del self._writers[key]
        self._writers[id(conn)] = cur
        return cur

    @asynccontextmanager
    async def connection(
        self, timeout: float | None = None, recovering: bool = False
    ) -> AsyncIterator[psycopg.AsyncConnection[Any]]:
        """A connection for one attempt (see the module doc for ``recovering``)."""
        pool = self.source
        if not isinstance(pool, AsyncConnectionPool):
            if self._lock is None:
                self._lock = asyncio.Lock()
            async with self._lock:
                yield pool
            return
        probing = recovering or not self._reached
        try:
            conn = await pool.getconn(_first_wait(timeout) if probing else timeout)
        except PoolTimeout:
            direct = await self._probe(pool, timeout, stand_in=probing)
            if direct is None:
                if not probing:
                    raise  # the server answers: the pool is busy
                conn = await pool.getconn(timeout)
            else:
                try:
                    async with direct:
                        yield direct
                finally:
                    self._direct_in_use -= 1
                return
        self._reached = True
        try:
            yield conn
        except BaseException as exc:
            if breaks_connection(exc) and not conn.closed:
                await conn.close()
            raise
        finally:
            await pool.putconn(conn)

    async def _probe(
        self, pool: AsyncConnectionPool[Any], timeout: float | None, stand_in: bool
    ) -> psycopg.AsyncConnection[Any] | None:
        """See :meth:`SyncRunner._probe` (``_direct_in_use`` counts stand-ins)."""
        args = _direct_args(pool, timeout)
        if args is None:
            return None
        conninfo, kwargs, exact = args
        use = stand_in and exact and self._direct_in_use < pool.max_size
        if use:
            self._direct_in_use += 1
        try:
            conn: psycopg.AsyncConnection[Any] = await pool.connection_class.connect(
                conninfo, **kwargs
            )
        except psycopg.Error as exc:
            if use:
                self._direct_in_use -= 1
            raise _ConnectFailed(exc) from exc
        self._reached = True
        if use:
            return conn
        await conn.close()
        return None

    def _can_retry(self) -> bool:
        return isinstance(self.source, AsyncConnectionPool) or not self.source.closed

    async def run(self, plan: Plan[T], *, retry: RetryPolicy | None = None) -> T:
        """Run ``plan``, retrying transient failures under ``retry`` (default: the runner's)."""
        policy = retry or self.retry
        backoff = Backoff(policy)
        started = time.monotonic()
        stats = self._start(plan)
        recovering = False
        pool = self.source if isinstance(self.source, AsyncConnectionPool) else None
        while True:
            try:
                if stats is not None:
                    stats.attempts += 1
                limit = self._wait_limit(policy, started, pool.timeout) if pool else None
                async with self.connection(limit, recovering) as conn:
                    result = await self._execute(conn, plan, stats)
                self._finish(stats, plan, started, None)
                return result
            except (psycopg.Error, _ConnectFailed) as exc:
                recovering = recovering or breaks_connection(exc)
                try:
                    delay = self._after_failure(
                        exc, plan, backoff, started, self._can_retry(), stats
                    )
                except BaseException as final:
                    self._finish(stats, plan, started, final)
                    raise
            except BaseException as exc:
                self._finish(stats, plan, started, exc)
                raise
            await asyncio.sleep(delay)

    async def _execute(
        self, conn: psycopg.AsyncConnection[Any], plan: Plan[T], stats: _Stats | None
    ) -> T:
        if plan.own_transactions:
            return await self._execute_own(conn, plan, stats)
        if _pipelined_on(plan, self.prepared_statements):  # see _NO_PIPELINE
            async with conn.pipeline(), conn.transaction():
                return await self._drive(conn, plan, stats, pipelined=True)
        if plan.transaction or not conn.autocommit:
            async with conn.transaction():
                return await self._drive(conn, plan, stats)
        return await self._drive(conn, plan, stats)

    async def _execute_own(
        self, conn: psycopg.AsyncConnection[Any], plan: Plan[T], stats: _Stats | None
    ) -> T:
        was_autocommit = conn.autocommit
        await conn.set_autocommit(True)
        try:
            return await self._drive(conn, plan, stats)
        finally:
            if not conn.closed:
                if conn.info.transaction_status != psycopg.pq.TransactionStatus.IDLE:
                    await conn.rollback()
                if plan.cleanup is not None:
                    await conn.execute(plan.cleanup.sql, plan.cleanup.params, prepare=False)
                await conn.set_autocommit(was_autocommit)

    async def _drive(
        self,
        conn: psycopg.AsyncConnection[Any],
        plan: Plan[T],
        stats: _Stats | None,
        pipelined: bool = False,
    ) -> T:
        if not self.prepared_statements and conn.prepare_threshold is not None:
            conn.prepare_threshold = None  # executemany would prepare on its own
        gen = plan.make()
        plan_cur: psycopg.AsyncCursor[Any] | None = None  # see _WRITE_CURSORS
        try:
            query: Query = next(gen)
            while True:
                self._sent(stats, query)
                if not self._on_kept_cursor(query, pipelined):
                    if plan_cur is None or pipelined:  # pipelined: see _PIPELINE_CURSORS
                        plan_cur = conn.cursor(row_factory=tuple_row)
                    cur = plan_cur
                else:
                    cur = self._writer(conn)
                rows = None
                if isinstance(query, QueryMany):
                    if self.prepared_statements:
                        await cur.executemany(query.sql, query.params_seq)
                    else:  # see _NO_PIPELINE
                        for params in query.params_seq:
                            await cur.execute(query.sql, params, prepare=False, binary=True)
                else:
                    await cur.execute(
                        query.sql,
                        query.params,
                        prepare=self._prepare(query),
                        binary=query.params is not None,
                    )
                    if query.fetch == "all":
                        rows = await cur.fetchall()
                        self._received(stats, rows)
                query = gen.send(rows)
        except StopIteration as stop:
            result: T = stop.value
            return result
        finally:
            if plan_cur is not None:
                await plan_cur.close()
