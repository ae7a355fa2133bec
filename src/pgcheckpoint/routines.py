"""SQL functions and procedures: one file per routine, holding its current text.

``sql/functions/<name>.sql`` defines the routine ``<name>`` with
``CREATE OR REPLACE``; no migration after 0008 defines a function. ``setup()``
applies the migrations first, then every routine whose file changed: the file's
first line declares ``-- pgcheckpoint: revision N``, and after applying it
``setup()`` leaves the comment ``pgcheckpoint revision N sha256 HEX`` on the
routine (the record, read back from ``pg_proc`` by the next ``setup()``). A
routine is (re)applied when it is missing, carries no such comment, or carries
a revision not newer than the file's with another checksum. A routine whose
recorded revision is newer than the file's belongs to a newer release and is
left alone, so two releases running side by side during a rolling upgrade do
not undo each other's definitions (docs/migrations.md).

A file is rendered before it is applied: ``{schema}`` becomes the quoted
schema (refused when unsafe, see ``_queries.check_schema``), and the sweep's
defaults and bounds come from :mod:`pgcheckpoint.retention`, declared there
once. Every function pins ``SET search_path = pg_catalog, pg_temp`` (the
procedure, which commits and so cannot, names everything with its schema);
``tests/test_migrations.py`` checks both.
"""

from __future__ import annotations

import hashlib
import logging
import re
from dataclasses import dataclass
from functools import cache
from importlib import resources

from psycopg import sql

from . import retention
from ._plans import Plan, PlanGen, Query
from ._queries import compose, quote_schema, statement
from .errors import MigrationError

_REVISION = re.compile(r"^-- pgcheckpoint: revision (\d+)\s*$")
_RECORD = re.compile(r"^pgcheckpoint revision (\d+) sha256 ([0-9a-f]{64})$")
_FILE = re.compile(r"^(pgcheckpoint_[a-z0-9_]+)\.sql$")

logger = logging.getLogger("pgcheckpoint")


def constants() -> dict[str, str]:
    """The values rendered into the routines (placeholder -> SQL literal text)."""
    return {
        "{default_batch_size}": str(retention.DEFAULT_BATCH_SIZE),
        "{default_orphan_grace}": f"{int(retention.DEFAULT_ORPHAN_GRACE.total_seconds())} seconds",
        "{stray_limit}": str(retention.STRAY_LIMIT),
        "{report_thread_ids}": str(retention.REPORT_THREAD_IDS),
        "{max_keep_last}": str(retention.MAX_KEEP_LAST),
        "{max_duration_seconds}": str(int(retention.MAX_DURATION.total_seconds())),
    }


@dataclass(frozen=True, slots=True)
class Routine:
    """One ``sql/functions/<name>.sql`` file."""

    name: str
    revision: int
    text: str

    def render(self, schema: str) -> str:
        out = self.text.replace("{schema}", quote_schema(schema))
        for placeholder, value in constants().items():
            out = out.replace(placeholder, value)
        return out

    @property
    def checksum(self) -> str:
        """SHA-256 of the text with the constants filled in (not the schema), so a
        changed default re-applies the routines that use it."""
        text = self.text
        for placeholder, value in constants().items():
            text = text.replace(placeholder, value)
        return hashlib.sha256(text.encode("utf-8")).hexdigest()

    @property
    def record(self) -> str:
        """The comment ``setup()`` leaves on the routine."""
        return f"pgcheckpoint revision {self.revision} sha256 {self.checksum}"

    def comment_statement(self, schema: str) -> str:
        return compose(
            "routine_comment", schema, routine=sql.Identifier(self.name),
            comment=sql.Literal(self.record),
        )


@cache
def all_routines() -> tuple[Routine, ...]:
    """Every routine this release ships, by name."""
    found = []
    for entry in resources.files("pgcheckpoint.sql").joinpath("functions").iterdir():
        match = _FILE.match(entry.name)
        if not match:
            continue
        text = entry.read_text("utf-8")
        first = text.splitlines()[0] if text else ""
        revision = _REVISION.match(first)
        if not revision:
            raise MigrationError(
                f"sql/functions/{entry.name} must start with '-- pgcheckpoint: revision N'"
            )
        found.append(Routine(match[1], int(revision[1]), text))
    return tuple(sorted(found, key=lambda r: r.name))


@dataclass(frozen=True, slots=True)
class RoutineState:
    """One routine this release ships, as the database has it.

    ``state``: ``"current"`` (the file's revision and text), ``"missing"``,
    ``"unrecorded"`` (no revision record: defined by a migration up to 0008, or
    by hand), ``"older"`` (an older revision), ``"changed"`` (the file's
    revision with another text) or ``"newer"`` (a newer release's revision,
    left alone). ``recorded``: the revision the database records, if any."""

    name: str
    revision: int
    recorded: int | None
    state: str

    @property
    def stale(self) -> bool:
        """``setup()`` would apply this release's definition."""
        return self.state not in ("current", "newer")

    def describe(self) -> str:
        """The state in words, for a warning (``stale`` ones) or a table."""
        what = {
            "current": f"is at revision {self.revision}",
            "missing": "is missing",
            "unrecorded": "carries no revision record (an old migration's or a hand-made "
            "definition)",
            "older": f"is at revision {self.recorded}, older than this release's {self.revision}",
            "changed": f"differs from revision {self.revision} of this release",
            "newer": f"is at revision {self.recorded}, from a newer release (left as is)",
        }[self.state]
        return f"SQL function {self.name} {what}"


def states(rows: list[tuple[object, ...]] | None) -> list[RoutineState]:
    """Every routine this release ships, given ``routines_state`` rows (name, comment)."""
    recorded: dict[str, str | None] = {}
    for name, comment in rows or []:
        recorded[str(name)] = None if comment is None else str(comment)
    out = []
    for routine in all_routines():
        match = _RECORD.match(recorded.get(routine.name) or "")
        revision = None if match is None else int(match[1])
        if routine.name not in recorded:
            state = "missing"
        elif match is None or revision is None:
            state = "unrecorded"  # defined by a migration (0008 and before), or by hand
        elif revision > routine.revision:
            state = "newer"
        elif revision < routine.revision:
            state = "older"
        else:
            state = "current" if match[2] == routine.checksum else "changed"
        out.append(RoutineState(routine.name, routine.revision, revision, state))
    return out


def read_states(schema: str) -> PlanGen[list[RoutineState]]:
    """Every routine's :class:`RoutineState` in ``schema`` (a sub-plan: ``yield from`` it)."""
    rows = yield Query(statement("routines_state", schema), {"schema": schema}, fetch="all",
                       prepare=False)
    return states(rows)


def function_report_plan(schema: str) -> Plan[list[RoutineState]]:
    """Every routine this release ships, as ``schema`` has it (``migrate status``)."""
    return Plan("function report", lambda: read_states(schema))


def read_stale(schema: str) -> PlanGen[list[Routine]]:
    """The routines of ``schema`` to apply (a sub-plan: ``yield from`` it)."""
    by_name = {r.name: r for r in all_routines()}
    out = []
    for found in (yield from read_states(schema)):
        if found.state == "newer":
            logger.info("pgcheckpoint: %s; this release's is %d", found.describe(), found.revision)
        elif found.stale:
            out.append(by_name[found.name])
    return out


def apply_steps(schema: str, todo: list[Routine]) -> PlanGen[None]:
    """Apply ``todo`` in one transaction (an old and a new definition never mix),
    each followed by its record. Run under the migration lock, in autocommit mode."""
    if not todo:
        return
    yield Query(statement("begin", schema), None, prepare=False)
    for routine in todo:
        yield Query(routine.render(schema), None, prepare=False)
    # CREATE OR REPLACE with other arguments adds a routine beside the old one.
    rows = yield Query(statement("routines_overloaded", schema), {"schema": schema},
                       fetch="all", prepare=False)
    if rows:
        yield Query(statement("rollback", schema), None, prepare=False)
        names = "; ".join(f"{name}({args})" for name, args in rows)
        raise MigrationError(
            f"schema {schema!r} would have two routines of one name: {names}. A function "
            "file's arguments changed: give the new form a new name, or drop the old "
            "signature in a migration (CONTRIBUTING.md, 'How to change a SQL function'); "
            "nothing was changed"
        )
    for routine in todo:
        yield Query(routine.comment_statement(schema), None, prepare=False)
    yield Query(statement("commit", schema), None, prepare=False)


def render_all(schema: str) -> list[str]:
    """Every routine and its record as SQL text (``migrate apply --print-sql``)."""
    out = []
    for routine in all_routines():
        out.append(f"-- function {routine.name}, revision {routine.revision}")
        out.append(routine.render(schema).strip())
        out.append(routine.comment_statement(schema) + ";")
    return out
