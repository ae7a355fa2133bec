# generated from src/pgcheckpoint/_runner_async.py by tools/async_to_sync.py; do not edit.
# Edit the source, then run `python tools/async_to_sync.py` (docs/architecture.md).
"""The sync runner: runs plans on a psycopg ``Connection`` or ``ConnectionPool``.

Generated from the async runner by tools/async_to_sync.py (see the first line).
What a runner does, and in which order it handles failures, is in
:mod:`pgcheckpoint._runner_base`.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, TypeVar

import psycopg
from psycopg.rows import tuple_row
from psycopg_pool import ConnectionPool, PoolTimeout

from ._acompat import Gate, Lock, sleep
from ._connections import ConnectFailed, SyncSource, breaks_connection, direct_args, first_wait
from ._plans import Plan, Query, QueryMany
from ._runner_base import DirectSlots, OperationStats, RunnerBase, pipelined_on
from .errors import ConfigurationError
from .retry import Backoff, RetryPolicy

T = TypeVar("T")

# The least a caller waits for the pool after its time ran out in the gate: the
# pool answers at once with a connection that is ready, else with PoolTimeout
# (psycopg_pool refuses a wait of 0 or less without looking).
GATE_MIN_WAIT = 0.001


class SyncRunner(RunnerBase):
    """Runs plans on a psycopg ``Connection`` or ``ConnectionPool``."""

    def __init__(
        self, source: SyncSource, *, retry: RetryPolicy, transaction_pooler: bool
    ) -> None:
        super().__init__(retry=retry, transaction_pooler=transaction_pooler)
        if not isinstance(source, psycopg.Connection | ConnectionPool):
            raise ConfigurationError(
                "PostgresSaver needs a psycopg Connection or a psycopg_pool "
                f"ConnectionPool, got {type(source).__name__}"
            )
        self.source = source
        self._init_target(source)
        self._lock = Lock()  # a single connection runs one statement at a time
        self._gate = Gate()  # callers queue here before the pool (see _acompat.Gate)
        size = source.max_size if isinstance(source, ConnectionPool) else 1
        self._direct = DirectSlots(size)  # plain connections open while the pool recovers
        self._writers: dict[int, psycopg.Cursor[Any]] = {}  # see _WRITE_CURSORS
        self._writers_lock = threading.Lock()  # held for a dict update only

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
        """A connection for one attempt (see _runner_base.py for ``recovering``)."""
        pool = self.source
        if not isinstance(pool, ConnectionPool):
            with self._lock:
                yield pool
            return
        probing = recovering or not self._reached
        gated = False
        if not probing:  # probing attempts skip the gate: they must learn the server's state soon
            entered = time.monotonic()
            gated = self._gate.enter(pool.max_size, timeout)
            if timeout is not None:  # the gate's wait counts against the pool's timeout
                timeout = max(timeout - (time.monotonic() - entered), GATE_MIN_WAIT)
        try:
            try:
                conn = pool.getconn(first_wait(timeout) if probing else timeout)
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
                        self._direct.give()
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
        finally:
            if gated:
                self._gate.leave()

    def _probe(
        self, pool: ConnectionPool[Any], timeout: float | None, stand_in: bool
    ) -> psycopg.Connection[Any] | None:
        """Connect on our own to learn why the pool has no connection for us.

        Raises ``ConnectFailed`` with the cause. Returns the connection when it
        may stand in for a pooled one (``stand_in``, at most ``max_size`` at a
        time; give its slot back to ``_direct`` after use), else closes it and
        returns None.
        """
        args = direct_args(pool, timeout)
        if args is None:
            return None
        conninfo, kwargs, exact = args
        use = stand_in and exact and self._direct.take()
        try:
            conn: psycopg.Connection[Any] = pool.connection_class.connect(
                conninfo, **kwargs
            )
        except psycopg.Error as exc:
            if use:
                self._direct.give()
            raise ConnectFailed(exc) from exc
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
        pool = self.source if isinstance(self.source, ConnectionPool) else None
        while True:
            try:
                if stats is not None:
                    stats.attempts += 1
                limit = None
                if pool is not None:
                    limit = self._wait_limit(policy, started, pool.timeout)
                with self.connection(limit, recovering) as conn:
                    result = self._execute(conn, plan, stats)
                self._finish(stats, plan, started, None)
                return result
            except (psycopg.Error, ConnectFailed) as exc:
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
            sleep(delay)

    def _execute(
        self, conn: psycopg.Connection[Any], plan: Plan[T], stats: OperationStats | None
    ) -> T:
        if plan.own_transactions:
            return self._execute_own(conn, plan, stats)
        if pipelined_on(plan, self.transaction_pooler):  # see _NO_PIPELINE
            # One network flush for BEGIN and every statement up to the first
            # one whose rows the plan needs, instead of one round trip each.
            with conn.pipeline(), conn.transaction():
                return self._drive(conn, plan, stats, pipelined=True)
        if plan.transaction or not conn.autocommit:
            with conn.transaction():
                return self._drive(conn, plan, stats)
        return self._drive(conn, plan, stats)

    def _execute_own(
        self, conn: psycopg.Connection[Any], plan: Plan[T], stats: OperationStats | None
    ) -> T:
        was_autocommit = conn.autocommit
        conn.set_autocommit(True)
        try:
            return self._drive(conn, plan, stats)
        finally:
            if not conn.closed:
                if conn.info.transaction_status != psycopg.pq.TransactionStatus.IDLE:
                    conn.rollback()
                if plan.cleanup is not None:
                    conn.execute(plan.cleanup.sql, plan.cleanup.params, prepare=False)
                conn.set_autocommit(was_autocommit)

    def _drive(
        self,
        conn: psycopg.Connection[Any],
        plan: Plan[T],
        stats: OperationStats | None,
        pipelined: bool = False,
    ) -> T:
        if self.transaction_pooler and conn.prepare_threshold is not None:
            conn.prepare_threshold = None  # executemany would prepare on its own
        gen = plan.make()
        plan_cur: psycopg.Cursor[Any] | None = None  # see _WRITE_CURSORS
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
                    if not self.transaction_pooler:
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
