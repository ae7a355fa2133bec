"""Operations as plans: I/O-free generators of statements (sans-I/O).

Each saver operation is written once, as a generator that yields
:class:`Query` objects and receives their rows. A runner
(:mod:`pgcheckpoint._runner_async`, and its generated sync twin
:mod:`pgcheckpoint._runner`) runs a plan on a connection; nothing here touches
one. That is how the sync and async savers share a single logic path.

This module is the vocabulary every layer shares: a plan, a statement, a
statement run once per parameter set (:class:`QueryMany`) and a plan sent in
pipeline mode (:class:`PipelinePlan`).
"""

from __future__ import annotations

from collections.abc import Callable, Generator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Generic, Literal, TypeVar

T = TypeVar("T")

Rows = list[tuple[Any, ...]]


@dataclass(frozen=True, slots=True)
class Query:
    """One statement to run, and what to send back to the plan."""

    sql: str
    params: Mapping[str, Any] | None
    fetch: Literal["none", "all"] = "none"
    # Unprepared: for statements whose plans depend on their array arguments.
    prepare: bool | None = None
    # A small write whose rows are not needed: may run on the connection's kept
    # cursor (_runner_base.py, _WRITE_CURSORS).
    reuse_cursor: bool = False


@dataclass(frozen=True, slots=True)
class QueryMany(Query):
    """One statement run for each parameter set (psycopg's pipelined ``executemany``;
    one statement per set behind a transaction pooler, see _NO_PIPELINE)."""

    params_seq: Sequence[Mapping[str, Any]] = field(default_factory=tuple)


PlanGen = Generator[Query, Rows | None, T]


@dataclass(frozen=True, slots=True)
class Plan(Generic[T]):
    """A named operation: a factory of statement generators.

    ``make`` is called once per attempt, so a retried operation starts over.
    ``transaction`` says whether its statements must commit together; a plan
    of one statement never needs it (a single statement is atomic).
    ``idempotent`` says whether running it twice equals running it once, which
    is what makes a retry after an in-doubt commit safe.
    ``own_transactions`` plans send their own BEGIN/COMMIT (migrations, some of
    which must run outside any transaction); they run in autocommit mode.
    ``cleanup`` is a statement run on the same connection once the plan ends,
    however it ends (migrations release their advisory lock with it).
    """

    name: str
    make: Callable[[], PlanGen[T]]
    transaction: bool = False
    idempotent: bool = True
    own_transactions: bool = False
    cleanup: Query | None = None


@dataclass(frozen=True, slots=True)
class PipelinePlan(Plan[T]):
    """A transactional plan the runner sends in pipeline mode: BEGIN and every
    statement up to the first one whose rows the plan needs go out in one network
    flush (not behind a transaction pooler: _runner_base.py, _NO_PIPELINE)."""


def pipelined(plan: Plan[Any]) -> bool:
    """Whether ``plan`` asks to be sent in pipeline mode."""
    return isinstance(plan, PipelinePlan)


def execute_plan(name: str, sql: str, params: Mapping[str, Any]) -> Plan[None]:
    """A plan of one statement whose rows are not needed."""

    def make() -> PlanGen[None]:
        yield Query(sql, params)

    return Plan(name, make)


def fetch_decoded(
    name: str, sql: str, params: Mapping[str, Any], decode: Callable[[Rows], T]
) -> Plan[T]:
    """A plan of one statement whose rows ``decode`` turns into the result."""

    def make() -> PlanGen[T]:
        rows = yield Query(sql, params, fetch="all")
        return decode(rows or [])

    return Plan(name, make)


def fetch_all(name: str, sql: str, params: Mapping[str, Any]) -> Plan[Rows]:
    """A plan of one statement returning its rows."""
    return fetch_decoded(name, sql, params, list)
