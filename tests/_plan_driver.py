"""Drive a plan with canned rows, with no database: the test bench of the sans-I/O layer.

An operation is a :class:`~pgcheckpoint._plans.Plan`, a generator of
``Query`` objects that receives each statement's rows (``_plans.py``); the
runners send the statements to PostgreSQL. :class:`Driver` plays the runner's
part from a script instead: it names every statement the plan issues, answers
it with the rows scripted for that name, and records what was issued, so a
test can check a plan's statements, their order and parameters, and what the
plan makes of the rows it gets back.

Statements are named by their text: the ``-- name:`` blocks of ``queries.sql``
bound to the plan's schema, ``BEGIN`` / ``COMMIT`` / ``ROLLBACK``, and any
texts the test adds (``names=``, or a function of the text, ``namer=``, for
statements assembled from pieces); any other statement is named by its first
60 characters.

A script maps a name to its replies, taken one per issued statement of that
name, in order: rows (a list of tuples), or an exception, which the driver
raises inside the plan at that statement (as a runner does when the statement
fails). A name may map to a function of the :class:`Issued` statement instead,
which returns its rows. A statement that wants rows (``fetch="all"``) and has
no reply left fails the test, so a script must account for every read the
plan makes; statements whose rows the plan does not need get ``None`` unless
scripted.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

from pgcheckpoint._plans import Plan, Query, Rows
from pgcheckpoint._queries import Queries, _raw_statements

T = TypeVar("T")

Reply = Rows | BaseException
Replies = Sequence[Reply] | Callable[["Issued"], Rows | None]

TRANSACTION_CONTROL = ("BEGIN", "COMMIT", "ROLLBACK")


@dataclass(frozen=True, slots=True)
class Issued:
    """One statement a plan issued: its name, its parameters and the query itself."""

    name: str
    params: Mapping[str, Any] | None
    query: Query


def statement_names(
    schema: str = "public", extra: Mapping[str, str] | None = None
) -> dict[str, str]:
    """SQL text -> name: every block of ``queries.sql`` bound to ``schema``, transaction
    control, and ``extra`` (text -> name)."""
    queries = Queries(schema)
    names = {queries[name]: name for name in _raw_statements()}
    names.update({word: word for word in TRANSACTION_CONTROL})
    names.update(extra or {})
    return names


class Driver:
    """Runs plans against a script (module doc); ``issued`` records every statement."""

    def __init__(
        self,
        script: Mapping[str, Replies] | None = None,
        *,
        schema: str = "public",
        names: Mapping[str, str] | None = None,
        namer: Callable[[str], str | None] | None = None,
    ) -> None:
        self.names = statement_names(schema, names)
        self.namer = namer
        self._replies: dict[str, Callable[[Issued], Rows | None] | list[Reply]] = {
            name: replies if callable(replies) else list(replies)
            for name, replies in (script or {}).items()
        }
        self.issued: list[Issued] = []

    def name_of(self, query: Query) -> str:
        name = self.names.get(query.sql) or (self.namer(query.sql) if self.namer else None)
        return name or " ".join(query.sql.split())[:60]

    @property
    def issued_names(self) -> list[str]:
        return [i.name for i in self.issued]

    def params_of(self, name: str) -> list[Mapping[str, Any] | None]:
        """The parameters of every issued statement called ``name``, in order."""
        return [i.params for i in self.issued if i.name == name]

    def unused(self) -> dict[str, int]:
        """Scripted replies the plan never asked for (name -> how many)."""
        return {n: len(r) for n, r in self._replies.items() if isinstance(r, list) and r}

    def _answer(self, issued: Issued) -> Reply | None:
        replies = self._replies.get(issued.name)
        if callable(replies):
            return replies(issued)
        if replies:
            return replies.pop(0)
        if issued.query.fetch == "all":
            raise AssertionError(
                f"the plan read {issued.name!r} ({issued.params}) and the script has no "
                f"reply left for it; issued so far: {self.issued_names}"
            )
        return None

    def run(self, plan: Plan[T]) -> T:
        """Run one attempt of ``plan`` (``plan.make()``) to its end; returns its result."""
        gen = plan.make()
        try:
            query = next(gen)
            while True:
                issued = Issued(self.name_of(query), query.params, query)
                self.issued.append(issued)
                reply = self._answer(issued)
                # An exception is raised inside the plan at this statement.
                query = gen.throw(reply) if isinstance(reply, BaseException) else gen.send(reply)
        except StopIteration as stop:
            result: T = stop.value
            return result


def drive(
    plan: Plan[T],
    script: Mapping[str, Replies] | None = None,
    *,
    schema: str = "public",
    names: Mapping[str, str] | None = None,
    namer: Callable[[str], str | None] | None = None,
) -> tuple[T, Driver]:
    """Run ``plan`` against ``script``; returns its result and the driver (``issued``)."""
    driver = Driver(script, schema=schema, names=names, namer=namer)
    return driver.run(plan), driver
