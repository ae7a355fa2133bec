"""Which errors are worth retrying, and how long to wait (pure, no I/O).

Retry is decided by SQLSTATE class, as DBOS and most PostgreSQL drivers do:
connection exceptions (08), insufficient resources (53), the server shutting
down or restarting (57P01-57P03), serialization failures (40001) and deadlocks
(40P01), plus a connection lost with no SQLSTATE at all. Waits grow
exponentially with full jitter, until a deadline. :func:`decide` is what a
runner does after a failed attempt, :func:`pool_wait` how long it waits for a
pooled connection; both are pure, so they are tested without a database.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Literal

import psycopg

from .errors import ConfigurationError

# The server is shutting down or restarting: the connection is gone.
_SHUTDOWN_STATES = frozenset({"57P01", "57P02", "57P03"})
# Serialization failure, deadlock: the transaction lost a race and may win the next.
_RACE_STATES = frozenset({"40001", "40P01"})
# SQLSTATEs of a server that does not know the prepared statement the driver
# expects (or already has one by that name): the sign of a transaction-mode
# pooler (PgBouncer < 1.21) moving us between server connections.
LOST_PREPARED_STATES = frozenset({"26000", "42P05"})
# How many times an operation runs again at once, unprepared, when another one
# has switched prepared statements off while it was in flight with one.
_UNPREPARED_AGAIN = 3


def connection_lost(exc: BaseException) -> bool:
    """Whether ``exc`` says the connection it came from is gone: a connection
    exception (class 08), the server shutting down (57P01-57P03), or no SQLSTATE
    at all (closed, reset or timed out before or while the server answered)."""
    if not isinstance(exc, psycopg.Error):
        return False
    state = exc.sqlstate
    if state is None:
        return isinstance(exc, psycopg.OperationalError | psycopg.InterfaceError)
    return state.startswith("08") or state in _SHUTDOWN_STATES


def is_transient(exc: BaseException) -> bool:
    """Whether ``exc`` is a database error that may pass if the operation is retried:
    a lost connection, a lost race, or a server short of resources (class 53)."""
    if not isinstance(exc, psycopg.Error):
        return False
    state = exc.sqlstate
    return connection_lost(exc) or state in _RACE_STATES or (state or "").startswith("53")


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """How transient failures are retried.

    Attributes:
        enabled: retry at all.
        deadline: give up (raising ``RetryExhaustedError``) once this many
            seconds have passed since the first attempt.
        initial_delay / max_delay: bounds of the wait before a retry, seconds.
        multiplier: growth of the wait bound per attempt.
        jitter: draw each wait uniformly from [0, bound] ("full jitter"), so
            clients that failed together do not come back together.
        wait_for_server: seconds to keep retrying a server that does not
            answer (connection refused, timed out, host not found) before the
            saver has ever connected to it. The default, 0, reports such a
            failure at once as ``ConnectionFailedError``: at start-up it is
            most likely a wrong host or port. Set it when the application may
            start before its database (containers started together). A server
            that answered once and then goes away is always retried until
            ``deadline``; see docs/resilience.md.
    """

    enabled: bool = True
    deadline: float = 30.0
    initial_delay: float = 0.05
    max_delay: float = 2.0
    multiplier: float = 2.0
    jitter: bool = True
    wait_for_server: float = 0.0

    def __post_init__(self) -> None:
        if self.wait_for_server < 0:
            raise ConfigurationError(
                f"retry wait_for_server must be >= 0, got {self.wait_for_server}"
            )
        if self.deadline < 0 or self.initial_delay < 0 or self.max_delay < self.initial_delay:
            raise ConfigurationError(
                "retry needs deadline >= 0 and 0 <= initial_delay <= max_delay, got "
                f"deadline={self.deadline}, initial_delay={self.initial_delay}, "
                f"max_delay={self.max_delay}"
            )
        if self.multiplier < 1:
            raise ConfigurationError(f"retry multiplier must be >= 1, got {self.multiplier}")


@dataclass(slots=True)
class Backoff:
    """The state of one operation's retries."""

    policy: RetryPolicy
    # Made on the first failure: seeding a Random from os.urandom on every
    # call cost 4.5% of a sync get_tuple (bench profile).
    rng: random.Random | None = None
    attempts: int = 0

    def next_delay(self, elapsed: float) -> float | None:
        """Seconds to wait before the next attempt, or ``None`` to give up."""
        self.attempts += 1
        if not self.policy.enabled or elapsed >= self.policy.deadline:
            return None
        p = self.policy
        bound = min(p.max_delay, p.initial_delay * p.multiplier ** (self.attempts - 1))
        if self.rng is None:
            self.rng = random.Random()
        delay = self.rng.uniform(0, bound) if p.jitter else bound
        return min(delay, max(0.0, p.deadline - elapsed))


Action = Literal["unprepare", "again", "retry", "raise", "exhausted"]


@dataclass(frozen=True, slots=True)
class Decision:
    """What a runner does after a failed attempt.

    ``unprepare``: switch prepared statements off and run the operation again at
    once; ``again``: run it again at once (prepared statements are already off);
    ``retry``: run it again after ``delay`` seconds; ``raise``: give up with the
    error; ``exhausted``: give up with ``RetryExhaustedError`` (retried until
    the deadline).
    """

    action: Action
    delay: float = 0.0


def decide(
    backoff: Backoff,
    elapsed: float,
    *,
    sqlstate: str | None,
    transient: bool,
    sent: bool,
    idempotent: bool,
    can_retry: bool,
    prepared_statements: bool,
) -> Decision:
    """The runner's decision after an attempt failed ``elapsed`` seconds after the first.

    ``sqlstate`` and ``transient`` describe the error (``transient``: its translation
    is a ``TransientStorageError``); ``sent`` is False when the attempt failed to
    connect, so nothing reached the server and any operation may run again;
    ``can_retry`` is False when the runner's own connection is closed for good.
    Counts the attempt in ``backoff``.
    """
    if sent and sqlstate in LOST_PREPARED_STATES and can_retry:
        if prepared_statements:
            return Decision("unprepare")
        if backoff.attempts < _UNPREPARED_AGAIN:
            backoff.attempts += 1
            return Decision("again")
    if not (transient and can_retry and (idempotent or not sent)):
        return Decision("raise")
    delay = backoff.next_delay(elapsed)
    if delay is None:
        if backoff.attempts <= 1 or not backoff.policy.enabled:
            return Decision("raise")
        return Decision("exhausted")
    return Decision("retry", delay)


def pool_wait(policy: RetryPolicy, elapsed: float, pool_timeout: float) -> float:
    """How long to wait for a pooled connection, ``elapsed`` seconds into an operation:
    never past the policy's deadline (with retries off too: a health check's deadline
    is its timeout), and at least 50 ms."""
    return max(0.05, min(pool_timeout, policy.deadline - elapsed))
