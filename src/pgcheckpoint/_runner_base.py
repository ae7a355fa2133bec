"""Where plans meet PostgreSQL: what both runners share (no I/O here).

The async runner (:mod:`pgcheckpoint._runner_async`, written by hand) and the
sync one (:mod:`pgcheckpoint._runner`, generated from it by
tools/async_to_sync.py) subclass :class:`RunnerBase`.

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

import logging
import threading
import time
from typing import Any

import psycopg
from psycopg_pool import AsyncConnectionPool, ConnectionPool

from ._connections import (
    ConnectFailed,
    forget_conninfo,
    source_conninfo,
    translate,
)
from ._conninfo import check, connect_failure_kind, describe, guard_logs, mask
from ._plans import Plan, Query, QueryMany, pipelined
from .errors import (
    ConnectionFailedError,
    RetryExhaustedError,
    StorageError,
    TransientStorageError,
)
from .metrics import OperationHook, OperationResult, bytes_in
from .retry import Backoff, RetryPolicy, decide, pool_wait

logger = logging.getLogger("pgcheckpoint")


# _PIPELINE_CURSORS: in pipeline mode a result is delivered to the cursor that
# sent its statement whenever it arrives, so a cursor reused for the next
# statement can be handed the previous statement's result and fetchall()
# returns it instead of waiting (seen once in 200 fault runs: "the last
# operation didn't produce records (command status: INSERT 0 1)"). Pipelined
# plans therefore send each statement on its own cursor.


# _NO_PIPELINE: behind a transaction pooler (prepared statements off), plans are
# never sent in pipeline mode and QueryMany runs its statement once per
# parameter set instead of through psycopg's executemany (which pipelines on
# its own). Behind PgBouncer 1.18 in transaction mode a pipelined transaction
# now and then left its server connection linked to the client after COMMIT
# (the backend idle, PgBouncer's SHOW CLIENTS still "active"): with a pool of
# two servers, the next operations waited until query_wait_timeout (seen in
# tests/test_health.py about once in ten runs of batch_save_checkpoints).


def pipelined_on(plan: Plan[Any], transaction_pooler: bool) -> bool:
    """Whether to send ``plan`` in pipeline mode (see _NO_PIPELINE)."""
    return not transaction_pooler and pipelined(plan)


# _WRITE_CURSORS: outside pipelines, a statement marked ``Query.reuse_cursor``
# (small writes whose rows the plan does not need: put, put_writes,
# delete_thread) runs on one cursor kept per connection. A new cursor starts
# with an empty adapter cache and looks up a dumper for every parameter again:
# 15 to 18 us of a 0.32 ms put 1 KB (synchronous_commit=off A/B, psycopg 3.3).
# A kept cursor holds its last statement's dumped parameters until its next
# one, which is why only small statements use it; every other statement runs
# on a cursor of the plan's own, closed when the plan ends, so no result set
# or large parameter outlives its operation. A small write may fetch (put_head
# returns one boolean row, kept until the cursor's next statement).


class OperationStats:
    """Counters of one operation, kept only while hooks are installed."""

    __slots__ = ("attempts", "read", "tokens", "written")

    def __init__(self, tokens: list[Any]) -> None:
        self.tokens = tokens
        self.attempts = 0
        self.written = 0
        self.read = 0


class RunnerBase:
    """What both runners share: settings, hooks and the retry decision."""

    def __init__(self, *, retry: RetryPolicy, transaction_pooler: bool) -> None:
        self.retry = retry
        # Behind a transaction-mode pooler: no prepared statements, no pipeline
        # mode, no executemany (see _NO_PIPELINE). Switched on by the first
        # lost prepared statement (see _after_failure).
        self.transaction_pooler = transaction_pooler
        self.hooks: tuple[OperationHook, ...] = ()
        self.secrets: tuple[str, ...] = ()
        self.target = "the database"
        # Whether a connection to the server ever succeeded (see the module doc).
        self._reached = False

    def _init_target(self, source: Any) -> None:
        """Check ``source``'s connection string, learn its secrets (masked in every
        message and log line from now on) and the name of its database."""
        conninfo, extra = source_conninfo(source)
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
        if self.transaction_pooler or query.prepare is False:
            return False
        return None

    @staticmethod
    def _on_kept_cursor(query: Query, pipelined: bool) -> bool:
        """Whether ``query`` runs on the connection's kept cursor (see _WRITE_CURSORS)."""
        return query.reuse_cursor and not pipelined

    def _start(self, plan: Plan[Any]) -> OperationStats | None:
        if not self.hooks:
            return None
        return OperationStats([hook.start(plan.name) for hook in self.hooks])

    def _finish(
        self,
        stats: OperationStats | None,
        plan: Plan[Any],
        started: float,
        error: BaseException | None,
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

    def _sent(self, stats: OperationStats | None, query: Query) -> None:
        if stats is not None:
            if isinstance(query, QueryMany):
                stats.written += sum(bytes_in(p) for p in query.params_seq)
            elif query.params is not None:
                stats.written += bytes_in(query.params)

    def _received(self, stats: OperationStats | None, rows: list[tuple[Any, ...]]) -> None:
        if stats is not None:
            stats.read += sum(bytes_in(row) for row in rows)

    def _after_failure(
        self,
        exc: psycopg.Error | ConnectFailed,
        plan: Plan[Any],
        backoff: Backoff,
        started: float,
        can_retry: bool,
        stats: OperationStats | None,
    ) -> float:
        """The delay before retrying ``plan``, or raise the error to give up
        (the decision is :func:`.retry.decide`; this carries it out)."""
        elapsed = time.monotonic() - started
        if isinstance(exc, ConnectFailed):
            cause: psycopg.Error = exc.cause
            forget_conninfo(cause)
            err: BaseException = self._connect_error(cause, backoff.policy, elapsed)
        else:
            cause = exc
            err = translate(exc, plan.name, self.secrets)
        decision = decide(
            backoff,
            elapsed,
            sqlstate=cause.sqlstate,
            transient=isinstance(err, TransientStorageError),
            sent=not isinstance(exc, ConnectFailed),
            idempotent=plan.idempotent,
            can_retry=can_retry,
            prepared_statements=not self.transaction_pooler,
        )
        if decision.action == "unprepare":
            logger.warning(
                "pgcheckpoint: the server lost a prepared statement (%s); a "
                "transaction-mode pooler such as PgBouncer is probably in between. "
                "Prepared statements are now off for this saver; pass "
                "transaction_pooler=True to skip this.",
                cause.sqlstate,
            )
            self.transaction_pooler = True
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
                if isinstance(exc, ConnectFailed)
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




class DirectSlots:
    """Counts the plain connections standing in for pooled ones while a pool
    recovers: at most ``size`` at a time (thread-safe; never awaits)."""

    __slots__ = ("_lock", "size", "used")

    def __init__(self, size: int) -> None:
        self.size = size
        self.used = 0
        self._lock = threading.Lock()

    def take(self) -> bool:
        """Take a slot if one is free."""
        with self._lock:
            if self.used >= self.size:
                return False
            self.used += 1
            return True

    def give(self) -> None:
        """Give back a slot taken with :meth:`take`."""
        with self._lock:
            self.used -= 1
