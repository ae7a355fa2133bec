"""What the runner does after a failed attempt (``retry.decide``), with synthetic driver
errors and no database: retry or not by SQLSTATE, in-doubt writes, the prepared
statement fallback, the deadline; and the SQLSTATE classification itself."""

from __future__ import annotations

import psycopg
import pytest
from psycopg import errors as pgerr
from psycopg_pool import PoolClosed

from pgcheckpoint._connections import breaks_connection, translate
from pgcheckpoint.errors import StorageError, TransientStorageError
from pgcheckpoint.retry import Backoff, Decision, RetryPolicy, decide, is_transient, pool_wait

STEADY = RetryPolicy(jitter=False, initial_delay=0.1, max_delay=0.4, deadline=10)


def _decide(
    exc: psycopg.Error,
    backoff: Backoff | None = None,
    elapsed: float = 0.0,
    *,
    idempotent: bool = True,
    can_retry: bool = True,
    prepared_statements: bool = True,
    sent: bool = True,
) -> Decision:
    """The runner's decision for a statement that raised ``exc`` (translated as the
    runner translates it)."""
    err = translate(exc, "op")
    return decide(
        backoff or Backoff(STEADY),
        elapsed,
        sqlstate=exc.sqlstate,
        transient=isinstance(err, TransientStorageError),
        sent=sent,
        idempotent=idempotent,
        can_retry=can_retry,
        prepared_statements=prepared_statements,
    )


# --- classification (moved here from the cluster-gated test_resilience.py) ----
@pytest.mark.parametrize(
    ("error", "transient"),
    [
        (pgerr.SerializationFailure(), True),  # 40001
        (pgerr.DeadlockDetected(), True),  # 40P01
        (pgerr.AdminShutdown(), True),  # 57P01
        (pgerr.CrashShutdown(), True),  # 57P02
        (pgerr.CannotConnectNow(), True),  # 57P03
        (pgerr.TooManyConnections(), True),  # 53300
        (pgerr.DiskFull(), True),  # 53100
        (pgerr.ConnectionFailure(), True),  # 08006
        (psycopg.OperationalError("server closed the connection unexpectedly"), True),
        (psycopg.InterfaceError("the connection is closed"), True),
        (pgerr.UniqueViolation(), False),
        (pgerr.DivisionByZero(), False),
        (pgerr.QueryCanceled(), False),  # statement_timeout: retrying repeats the wait
        (pgerr.UndefinedTable(), False),
        (pgerr.InsufficientPrivilege(), False),
        (ValueError("not a database error"), False),
    ],
)
def test_transient_classification(error: BaseException, transient: bool) -> None:
    assert is_transient(error) is transient


@pytest.mark.parametrize(
    ("error", "breaks"),
    [
        (pgerr.AdminShutdown(), True),  # the server ended the session
        (pgerr.ConnectionFailure(), True),
        (psycopg.OperationalError("server closed the connection unexpectedly"), True),
        (pgerr.SerializationFailure(), False),  # the connection is fine: retry on it
        (pgerr.TooManyConnections(), False),
        (pgerr.UniqueViolation(), False),
    ],
)
def test_which_errors_retire_the_connection(error: psycopg.Error, breaks: bool) -> None:
    assert breaks_connection(error) is breaks


# --- decisions -------------------------------------------------------------------
@pytest.mark.parametrize(
    "error",
    [
        pgerr.SerializationFailure(),
        pgerr.DeadlockDetected(),
        pgerr.AdminShutdown(),
        pgerr.TooManyConnections(),
        psycopg.OperationalError("server closed the connection unexpectedly"),
    ],
)
def test_transient_errors_of_idempotent_plans_are_retried_with_growing_waits(
    error: psycopg.Error,
) -> None:
    backoff = Backoff(STEADY)
    delays = [_decide(error, backoff, elapsed=1.0) for _ in range(4)]
    assert [d.action for d in delays] == ["retry"] * 4
    assert [d.delay for d in delays] == [0.1, 0.2, 0.4, 0.4]  # doubled up to max_delay
    assert backoff.attempts == 4


@pytest.mark.parametrize(
    "error", [pgerr.UniqueViolation(), pgerr.DivisionByZero(), pgerr.QueryCanceled()]
)
def test_other_errors_are_raised_at_once(error: psycopg.Error) -> None:
    assert _decide(error) == Decision("raise")


def test_a_closed_pool_is_not_waited_for() -> None:
    """A pool the application closed never comes back, though psycopg raises it as an
    OperationalError without SQLSTATE (the shape of a lost connection)."""
    assert isinstance(translate(PoolClosed("the pool is closed"), "op"), StorageError)
    assert _decide(PoolClosed("the pool is closed")) == Decision("raise")


def test_a_write_that_may_have_committed_is_not_run_again() -> None:
    """A non-idempotent plan that lost its connection mid-statement is in doubt: raise."""
    lost = pgerr.AdminShutdown()
    assert _decide(lost, idempotent=False) == Decision("raise")
    # The same failure while connecting sent nothing, so any plan may run again.
    assert _decide(lost, idempotent=False, sent=False).action == "retry"


def test_a_closed_connection_of_the_caller_is_not_retried() -> None:
    """On a caller's own Connection that is closed, another attempt cannot succeed."""
    assert _decide(pgerr.AdminShutdown(), can_retry=False) == Decision("raise")


@pytest.mark.parametrize(
    "error", [pgerr.InvalidSqlStatementName(), pgerr.DuplicatePreparedStatement()]
)
def test_a_lost_prepared_statement_switches_them_off_once(error: psycopg.Error) -> None:
    backoff = Backoff(STEADY)
    assert _decide(error, backoff) == Decision("unprepare")
    assert backoff.attempts == 0  # not a retry: no wait, no attempt counted
    # Already off (another call switched them off while this one was in flight):
    # run again at once, three times at most, then give up with the error.
    again = [_decide(error, backoff, prepared_statements=False) for _ in range(4)]
    assert [d.action for d in again] == ["again", "again", "again", "raise"]
    assert all(d.delay == 0 for d in again)


def test_a_lost_prepared_statement_on_a_dead_connection_is_raised() -> None:
    assert _decide(pgerr.InvalidSqlStatementName(), can_retry=False) == Decision("raise")


def test_the_deadline_ends_retries_with_retry_exhausted() -> None:
    backoff = Backoff(STEADY)
    assert _decide(pgerr.AdminShutdown(), backoff, elapsed=9.0).action == "retry"
    assert _decide(pgerr.AdminShutdown(), backoff, elapsed=10.0) == Decision("exhausted")


def test_the_last_wait_never_passes_the_deadline() -> None:
    backoff = Backoff(RetryPolicy(jitter=False, initial_delay=1.0, max_delay=1.0, deadline=5))
    assert _decide(pgerr.AdminShutdown(), backoff, elapsed=4.75) == Decision("retry", 0.25)


def test_a_first_attempt_past_the_deadline_raises_the_error_itself() -> None:
    """Nothing was retried, so the plain error says more than 'retry exhausted'."""
    backoff = Backoff(RetryPolicy(deadline=0))
    assert _decide(pgerr.AdminShutdown(), backoff) == Decision("raise")


def test_retries_switched_off_raise_the_error_itself() -> None:
    backoff = Backoff(RetryPolicy(enabled=False))
    assert _decide(pgerr.SerializationFailure(), backoff) == Decision("raise")
    assert _decide(pgerr.SerializationFailure(), backoff) == Decision("raise")


def test_jittered_waits_stay_within_their_bound() -> None:
    policy = RetryPolicy(initial_delay=0.1, max_delay=0.4, deadline=10)
    backoff = Backoff(policy)
    for bound in (0.1, 0.2, 0.4, 0.4, 0.4):
        decision = _decide(pgerr.DeadlockDetected(), backoff, elapsed=1.0)
        assert decision.action == "retry" and 0.0 <= decision.delay <= bound


def test_the_pool_wait_is_cut_at_the_deadline() -> None:
    policy = RetryPolicy(deadline=10)
    assert pool_wait(policy, elapsed=0.0, pool_timeout=30.0) == 10.0
    assert pool_wait(policy, elapsed=8.5, pool_timeout=30.0) == 1.5
    assert pool_wait(policy, elapsed=1.0, pool_timeout=2.0) == 2.0
    assert pool_wait(policy, elapsed=12.0, pool_timeout=2.0) == 0.05  # never zero
