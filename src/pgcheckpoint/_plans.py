"""Operations as plans: I/O-free generators of statements (sans-I/O).

Each saver operation is written once, as a generator that yields
:class:`Query` objects and receives their rows. :mod:`pgcheckpoint._connections`
runs a plan on a sync or an async connection; nothing here touches one. That
is how the sync and async savers share a single logic path.
"""

from __future__ import annotations

from collections.abc import Callable, Generator, Mapping
from dataclasses import dataclass
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
    # cursor (_connections.py, _WRITE_CURSORS).
    reuse_cursor: bool = False


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


def single(name: str, sql: str, params: Mapping[str, Any]) -> Plan[None]:
    """A plan of one statement whose rows are not needed."""

    def make() -> PlanGen[None]:
        yield Query(sql, params)

    return Plan(name, make)


def fetch_all(name: str, sql: str, params: Mapping[str, Any]) -> Plan[Rows]:
    """A plan of one statement returning its rows."""

    def make() -> PlanGen[Rows]:
        rows = yield Query(sql, params, fetch="all")
        return rows or []

    return Plan(name, make)
