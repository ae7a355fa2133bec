"""Schema migrations: numbered SQL files, the only source of DDL.

``sql/migrations/NNNN_name.sql`` files are applied in order, each recorded in
``pgcheckpoint_migrations`` with a SHA-256 checksum of its text. A file whose
first line is ``-- pgcheckpoint: no-transaction`` is run statement by statement
outside any transaction (``CREATE INDEX CONCURRENTLY`` cannot run inside one);
every other file runs in one transaction together with its version row.

``setup()`` first reads the recorded versions without any lock: if everything
is applied and unchanged it returns at once, so calling it at every start is
cheap. Otherwise it takes a session advisory lock keyed on the schema, so ten
processes calling it together apply each migration once, and checks again.

Rolling upgrades (docs/migrations.md): a migration may declare, in its leading
comment, ``-- pgcheckpoint: compatible-with <V>``: a release whose newest
migration is ``V`` or later keeps working after it is applied. The value is
recorded beside the version. A release that finds migrations newer than it
knows carries on (with a log line) when every one of them declares
compatibility with its newest version, and raises ``SchemaError`` otherwise.

Functions and procedures are not defined by migrations (after 0008): each has
its current text in ``sql/functions/`` and ``setup()`` re-applies a changed one
after the migrations, under the same lock (:mod:`pgcheckpoint.routines`).
Every statement here is a named one (``sql/queries/migrations.sql``).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import logging
import re
import zlib
from dataclasses import dataclass
from functools import cache
from importlib import resources

from psycopg import sql as pgsql

from . import routines
from ._plans import Plan, PlanGen, Query
from ._queries import quote_schema, statement, with_literals
from .distribution import NO_CITUS, Distributed, distribute_steps
from .errors import MigrationError, SchemaError

NO_TRANSACTION = "-- pgcheckpoint: no-transaction"
_COMPATIBLE = re.compile(r"^--\s*pgcheckpoint:\s*compatible-with\s+(\d+)\s*$")
_FILE = re.compile(r"^(\d{4})_([a-z0-9_]+)\.sql$")
TABLE = "pgcheckpoint_migrations"

logger = logging.getLogger("pgcheckpoint")


@dataclass(frozen=True, slots=True)
class Migration:
    """One numbered migration file."""

    version: int
    name: str
    text: str

    @property
    def checksum(self) -> str:
        return hashlib.sha256(self.text.encode("utf-8")).hexdigest()

    @property
    def transactional(self) -> bool:
        return not self.text.startswith(NO_TRANSACTION)

    @property
    def compatible_with(self) -> int | None:
        """The oldest newest-migration of a release that keeps working after this one
        (its ``-- pgcheckpoint: compatible-with V`` line), or None: none older."""
        for line in self.text.splitlines():
            if not line.startswith("--"):
                break  # only the leading comment declares
            match = _COMPATIBLE.match(line.strip())
            if match:
                return int(match[1])
        return None

    def render(self, schema: str) -> str:
        """The migration's SQL for one schema."""
        return self.text.replace("{schema}", quote_schema(schema))

    def statements(self, schema: str) -> list[str]:
        """The statements of a no-transaction file, one by one (split at ``;`` ending a line)."""
        parts = re.split(r";\s*$", self.render(schema), flags=re.MULTILINE)
        out = []
        for part in parts:
            body = "\n".join(
                ln for ln in part.splitlines() if ln.strip() and not ln.lstrip().startswith("--")
            )
            if body.strip():
                out.append(body)
        return out


@cache
def all_migrations() -> tuple[Migration, ...]:
    """Every migration shipped with this version of pgcheckpoint, in order."""
    found = []
    for entry in resources.files("pgcheckpoint.sql").joinpath("migrations").iterdir():
        match = _FILE.match(entry.name)
        if match:
            found.append(Migration(int(match[1]), match[2], entry.read_text("utf-8")))
    found.sort(key=lambda m: m.version)
    for expected, migration in enumerate(found, start=1):
        if migration.version != expected:
            raise MigrationError(
                f"migration numbers must run 1, 2, 3...; found {migration.version}"
            )
    return tuple(found)


def latest_version() -> int:
    return all_migrations()[-1].version


def lock_key(schema: str) -> int:
    """The advisory lock key for migrating ``schema`` (a signed 64-bit int)."""
    digest = zlib.crc32(f"pgcheckpoint.migrate:{schema}".encode())
    return 0x5047_4350_0000_0000 | digest  # "PGCP" in the high bytes


@dataclass(frozen=True, slots=True)
class Newer:
    """A migration in the database that this release does not ship."""

    version: int
    name: str
    compatible_with: int | None

    @property
    def usable(self) -> bool:
        """Whether this release keeps working with it applied."""
        return self.compatible_with is not None and self.compatible_with <= latest_version()


def check_newer(newer: list[Newer]) -> None:
    """Raise ``SchemaError`` unless every newer migration declares this release compatible."""
    blocking = [n for n in newer if not n.usable]
    if not blocking:
        return
    names = ", ".join(
        f"{n.version} ({n.name}, "
        + ("declares no compatibility" if n.compatible_with is None
           else f"needs a release with migration {n.compatible_with} or later")
        + ")"
        for n in blocking
    )
    raise SchemaError(
        f"the database has migration(s) newer than this pgcheckpoint knows (latest "
        f"{latest_version()}) that it cannot work with: {names}; upgrade pgcheckpoint "
        "(docs/migrations.md)"
    )


def pending(applied: dict[int, str]) -> list[Migration]:
    """The migrations still to apply, after checking the applied ones this release
    ships are unchanged (newer ones are judged by :func:`check_newer`)."""
    known = {m.version: m for m in all_migrations()}
    latest = latest_version()
    for version, checksum in sorted(applied.items()):
        migration = known.get(version)
        if migration is None:
            if version > latest:
                continue
            raise SchemaError(
                f"the database has migration {version}, which pgcheckpoint never shipped"
            )
        if migration.checksum != checksum:
            raise MigrationError(
                f"migration {version} ({migration.name}) was applied with a different text "
                f"(checksum {checksum[:12]}..., expected {migration.checksum[:12]}...); "
                "the schema may have been changed by hand"
            )
    return [m for m in all_migrations() if m.version not in applied]


def migrations_table_ddl(schema: str) -> pgsql.Composed:
    """The ``CREATE TABLE IF NOT EXISTS`` of the migrations table (roles.py runs it too)."""
    return pgsql.Composed([pgsql.SQL(statement("create_migrations_table", schema))])


class _Statements:
    """The runner's named statements bound to one schema (``sql/queries/migrations.sql``)."""

    def __init__(self, schema: str) -> None:
        self.schema = schema
        self.table = f"{quote_schema(schema)}.{TABLE}"

    def __getitem__(self, name: str) -> str:
        return statement(name, self.schema)


def _applied(rows: list[tuple[object, ...]] | None) -> dict[int, str]:
    return {int(str(v)): str(c) for v, c in rows or []}


def status_plan(schema: str) -> Plan[dict[int, str]]:
    """Read which migrations are applied (an empty dict for a fresh database)."""
    sql = _Statements(schema)
    table = sql.table

    def make() -> PlanGen[dict[int, str]]:
        rows = yield Query(sql["relation_exists"], {"table": table}, fetch="all")
        if not rows or not rows[0][0]:
            return {}
        rows = yield Query(sql["migrations_applied"], None, fetch="all", prepare=False)
        return _applied(rows)

    return Plan("migration status", make)


def read_newer(schema: str, applied: dict[int, str]) -> PlanGen[list[Newer]]:
    """The applied migrations newer than this release, with what they declare
    (a sub-plan: ``yield from`` it)."""
    latest = latest_version()
    if not any(v > latest for v in applied):
        return []
    sql = _Statements(schema)
    table = sql.table
    rows = yield Query(sql["migrations_has_compat"], {"table": table}, fetch="all")
    if rows and rows[0][0]:
        rows = yield Query(sql["migrations_newer"], {"latest": latest}, fetch="all", prepare=False)
        return [
            Newer(int(str(v)), str(n), None if c is None else int(str(c)))
            for v, n, c in rows or []
        ]
    rows = yield Query(sql["migrations_details"], None, fetch="all", prepare=False)
    return [Newer(int(str(r[0])), str(r[1]), None) for r in rows or [] if int(str(r[0])) > latest]


def _carry_on(schema: str, newer: list[Newer]) -> None:
    logger.warning(
        "pgcheckpoint: schema %r has migration(s) %s, newer than this pgcheckpoint (latest "
        "%d); they declare this release compatible, so it carries on",
        schema,
        ", ".join(f"{n.version} ({n.name})" for n in newer),
        latest_version(),
    )


def setup_plan(schema: str, distributed: Distributed = "auto") -> Plan[list[int]]:
    """Apply pending migrations, then distribute the schema on Citus when asked
    (distribution.py); returns the versions applied (empty when up to date).

    Migrations newer than this release are left alone when they declare it
    compatible (logged), and raise ``SchemaError`` when they do not.
    """
    sql = _Statements(schema)
    table = sql.table
    key = lock_key(schema)

    def make() -> PlanGen[list[int]]:
        if distributed is True:
            # Refused before any migration runs, so the database is left as it was.
            citus = yield Query(sql["has_citus"], None, fetch="all", prepare=False)
            if not (citus and citus[0][0]):
                raise SchemaError(NO_CITUS)
        rows = yield Query(sql["relation_exists"], {"table": table}, fetch="all")
        if rows and rows[0][0]:
            rows = yield Query(sql["migrations_applied"], None, fetch="all", prepare=False)
            applied = _applied(rows)
            newer = yield from read_newer(schema, applied)
            check_newer(newer)
            todo = pending(applied)
            changed = yield from routines.read_stale(schema)
            if not todo and not changed:
                if distributed is False:
                    if newer:
                        _carry_on(schema, newer)
                    return []
                # On Citus the lock is taken every time: two setups must not
                # both distribute the same table (the second would fail).
                citus = yield Query(sql["has_citus"], None, fetch="all", prepare=False)
                if distributed == "auto" and not (citus and citus[0][0]):
                    if newer:
                        _carry_on(schema, newer)
                    return []
            # A role that cannot migrate (the runtime role) gets a clear error
            # instead of a permission error halfway; with nothing to apply it
            # leaves the distribution to the owner's setup and returns.
            rights = yield Query(sql["may_migrate"], {"table": table}, fetch="all")
            if rights and not rights[0][0]:
                if not todo and not changed:
                    if newer:
                        _carry_on(schema, newer)
                    return []
                needs = [f"migration {m.version}" for m in todo]
                needs += [f"function {r.name} (revision {r.revision})" for r in changed]
                raise SchemaError(
                    f"schema {schema!r} needs {', '.join(needs)} and role {rights[0][1]!r} "
                    "does not own pgcheckpoint's tables: run setup() (or `pgcheckpoint "
                    "setup`) as the owner role (docs/security.md)"
                )
        yield Query(sql["migrate_lock"], {"key": key}, fetch="all")
        ours = yield Query(sql["relation_exists"], {"table": table}, fetch="all")
        if not (ours and ours[0][0]):
            theirs = yield Query(
                sql["relation_exists"], {"table": f"{quote_schema(schema)}.checkpoints"},
                fetch="all",
            )
            if theirs and theirs[0][0]:
                raise SchemaError(
                    f"schema {schema!r} already has a table named checkpoints that pgcheckpoint "
                    "did not create (langgraph-checkpoint-postgres uses that name); give "
                    "pgcheckpoint a schema of its own, e.g. PostgresSaver(conn, "
                    "schema='pgcheckpoint'), and import the old threads with "
                    "`pgcheckpoint import official`"
                )
        found = yield Query(sql["schema_exists"], {"schema": schema}, fetch="all")
        if not (found and found[0][0]):
            yield Query(sql["create_schema"], None, prepare=False)
        yield Query(sql["create_migrations_table"], None, prepare=False)
        yield Query(sql["migrations_compat_column"], None, prepare=False)
        rows = yield Query(sql["migrations_applied"], None, fetch="all", prepare=False)
        applied = _applied(rows)
        newer = yield from read_newer(schema, applied)
        check_newer(newer)
        todo = pending(applied)
        done: list[int] = []
        for migration in todo:
            record = {
                "version": migration.version,
                "name": migration.name,
                "checksum": migration.checksum,
                "compatible_with": migration.compatible_with,
            }
            if migration.transactional:
                yield Query(sql["begin"], None, prepare=False)
                yield Query(migration.render(schema), None, prepare=False)
                yield Query(sql["migration_record"], record, prepare=False)
                yield Query(sql["commit"], None, prepare=False)
            else:
                for each in migration.statements(schema):
                    yield Query(each, None, prepare=False)
                yield Query(sql["migration_record"], record, prepare=False)
            done.append(migration.version)
        # After the migrations (a migration may drop what a routine replaces).
        changed = yield from routines.read_stale(schema)
        yield from routines.apply_steps(schema, changed)
        yield from distribute_steps(schema, distributed)
        if newer:
            _carry_on(schema, newer)
        return done

    return Plan(
        "setup",
        make,
        own_transactions=True,
        cleanup=Query(statement("unlock_all", schema), None),
    )


@dataclass(frozen=True, slots=True)
class MigrationState:
    """One migration, as ``migrate status`` shows it.

    ``known``: shipped with this pgcheckpoint (a newer release's migration is
    applied but not known). ``checksum_ok``: the applied text is the shipped
    one (None when not applied or not known). ``compatible_with``: what the
    migration declares (docs/migrations.md). ``usable``: this release works
    with it applied.
    """

    version: int
    name: str
    applied: bool
    known: bool
    checksum_ok: bool | None
    compatible_with: int | None
    usable: bool
    applied_at: dt.datetime | None


def report_plan(schema: str) -> Plan[list[MigrationState]]:
    """Every migration this release ships or the database has, in version order."""
    sql = _Statements(schema)
    table = sql.table

    def make() -> PlanGen[list[MigrationState]]:
        rows = yield Query(sql["relation_exists"], {"table": table}, fetch="all")
        found: dict[int, tuple[str, str, dt.datetime | None]] = {}
        if rows and rows[0][0]:
            rows = yield Query(sql["migrations_details"], None, fetch="all", prepare=False)
            for v, n, c, at in rows or []:
                found[int(str(v))] = (str(n), str(c), at if isinstance(at, dt.datetime) else None)
        applied = {v: c for v, (_, c, _) in found.items()}
        newer = {n.version: n for n in (yield from read_newer(schema, applied))}
        out = []
        for m in all_migrations():
            row = found.get(m.version)
            out.append(
                MigrationState(
                    version=m.version,
                    name=m.name,
                    applied=row is not None,
                    known=True,
                    checksum_ok=None if row is None else row[1] == m.checksum,
                    compatible_with=m.compatible_with,
                    usable=True,
                    applied_at=None if row is None else row[2],
                )
            )
        for version in sorted(set(found) - {m.version for m in all_migrations()}):
            name, _, at = found[version]
            n = newer.get(version)
            out.append(
                MigrationState(
                    version=version,
                    name=name,
                    applied=True,
                    known=False,
                    checksum_ok=None,
                    compatible_with=None if n is None else n.compatible_with,
                    usable=n is not None and n.usable,
                    applied_at=at,
                )
            )
        return out

    return Plan("migration_report", make)


def render_pending(schema: str, applied: dict[int, str]) -> str:
    """The SQL a DBA would run by hand to bring ``schema`` up to date: the pending
    migrations, then every function (``CREATE OR REPLACE``, so re-running is harmless).
    Only quoted identifiers and literals are formatted into it."""
    sql = _Statements(schema)
    out = [f"{sql['create_schema']};", f"{sql['create_migrations_table']};",
           f"{sql['migrations_compat_column']};"]
    for m in pending(applied):
        out.append(f"-- migration {m.version}: {m.name}")
        if m.transactional:
            out.append("BEGIN;")
        out.append(m.render(schema).strip())
        record = {"version": m.version, "name": m.name, "checksum": m.checksum,
                  "compatible_with": m.compatible_with}
        out.append(with_literals("migration_record", schema, record) + ";")
        if m.transactional:
            out.append("COMMIT;")
    out.append("BEGIN;")
    out.extend(routines.render_all(schema))
    out.append("COMMIT;")
    return "\n".join(out) + "\n"
