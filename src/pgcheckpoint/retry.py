"""Which errors are worth retrying, and how long to wait (pure, no I/O).

Retry is decided by SQLSTATE class, as DBOS and most PostgreSQL drivers do:
connection exceptions (08), insufficient resources (53), the server shutting
down or restarting (57P01-57P03), serialization failures (40001) and deadlocks
(40P01), plus a connection lost with no SQLSTATE at all. Waits grow
exponentially with full jitter, until a deadline.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

import psycopg

from .errors import ConfigurationError

# The server is shutting down or restarting: the connection is gone.
_SHUTDOWN_STATES = frozenset({"57P01", "57P02", "57P03"})
# Serialization failure, deadlock: the transaction lost a race and may win the next.
_RACE_STATES = frozenset({"40001", "40P01"})


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
