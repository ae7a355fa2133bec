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
"""

from __future__ import annotations

import hashlib
import re
import zlib
from dataclasses import dataclass
from functools import cache
from importlib import resources

from ._plans import Plan, PlanGen, Query
from ._queries import quote_schema
from .distribution import HAS_CITUS, NO_CITUS, Distributed, distribute_steps
from .errors import MigrationError, SchemaError

NO_TRANSACTION = "-- pgcheckpoint: no-transaction"
_FILE = re.compile(r"^(\d{4})_([a-z0-9_]+)\.sql$")
TABLE = "pgcheckpoint_migrations"


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


def pending(applied: dict[int, str]) -> list[Migration]:
    """The migrations still to apply, after checking the applied ones are ours and unchanged."""
    known = {m.version: m for m in all_migrations()}
    for version, checksum in sorted(applied.items()):
        migration = known.get(version)
        if migration is None:
            raise SchemaError(
                f"the database has migration {version}, newer than this pgcheckpoint knows "
                f"(latest {latest_version()}); upgrade pgcheckpoint"
            )
        if migration.checksum != checksum:
            raise MigrationError(
                f"migration {version} ({migration.name}) was applied with a different text "
                f"(checksum {checksum[:12]}..., expected {migration.checksum[:12]}...); "
                "the schema may have been changed by hand"
            )
    return [m for m in all_migrations() if m.version not in applied]


def _sql(schema: str) -> dict[str, str]:
    q = quote_schema(schema)
    return {
        "applied": f"SELECT version, checksum FROM {q}.{TABLE}",
        "exists": "SELECT to_regclass(%(table)s) IS NOT NULL",
        "schema": f"CREATE SCHEMA IF NOT EXISTS {q}",
        "table": (
            f"CREATE TABLE IF NOT EXISTS {q}.{TABLE} (version integer PRIMARY KEY, "
            "name text NOT NULL, checksum text NOT NULL, "
            "applied_at timestamptz NOT NULL DEFAULT now())"
        ),
        "record": (
            f"INSERT INTO {q}.{TABLE} (version, name, checksum) "
            "VALUES (%(version)s, %(name)s, %(checksum)s)"
        ),
    }


def _applied(rows: list[tuple[object, ...]] | None) -> dict[int, str]:
    return {int(str(v)): str(c) for v, c in rows or []}


def status_plan(schema: str) -> Plan[dict[int, str]]:
    """Read which migrations are applied (an empty dict for a fresh database)."""
    sql = _sql(schema)
    table = f"{quote_schema(schema)}.{TABLE}"

    def make() -> PlanGen[dict[int, str]]:
        rows = yield Query(sql["exists"], {"table": table}, fetch="all")
        if not rows or not rows[0][0]:
            return {}
        rows = yield Query(sql["applied"], None, fetch="all", prepare=False)
        return _applied(rows)

    return Plan("migration status", make)


def setup_plan(schema: str, distributed: Distributed = "auto") -> Plan[list[int]]:
    """Apply pending migrations, then distribute the schema on Citus when asked
    (distribution.py); returns the versions applied (empty when up to date)."""
    sql = _sql(schema)
    table = f"{quote_schema(schema)}.{TABLE}"
    key = lock_key(schema)

    def make() -> PlanGen[list[int]]:
        if distributed is True:
            # Refused before any migration runs, so the database is left as it was.
            citus = yield Query(HAS_CITUS, None, fetch="all", prepare=False)
            if not (citus and citus[0][0]):
                raise SchemaError(NO_CITUS)
        rows = yield Query(sql["exists"], {"table": table}, fetch="all")
        if rows and rows[0][0]:
            rows = yield Query(sql["applied"], None, fetch="all", prepare=False)
            if not pending(_applied(rows)):
                if distributed is False:
                    return []
                # On Citus the lock is taken every time: two setups must not
                # both distribute the same table (the second would fail).
                citus = yield Query(HAS_CITUS, None, fetch="all", prepare=False)
                if distributed == "auto" and not (citus and citus[0][0]):
                    return []
        yield Query("SELECT pg_advisory_lock(%(key)s)", {"key": key}, fetch="all")
        ours = yield Query(sql["exists"], {"table": table}, fetch="all")
        if not (ours and ours[0][0]):
            theirs = yield Query(
                sql["exists"], {"table": f"{quote_schema(schema)}.checkpoints"}, fetch="all"
            )
            if theirs and theirs[0][0]:
                raise SchemaError(
                    f"schema {schema!r} already has a table named checkpoints that pgcheckpoint "
                    "did not create (langgraph-checkpoint-postgres uses that name); give "
                    "pgcheckpoint a schema of its own, e.g. PostgresSaver(conn, "
                    "schema='pgcheckpoint'), and import the old threads with "
                    "`pgcheckpoint import official`"
                )
        yield Query(sql["schema"], None, prepare=False)
        yield Query(sql["table"], None, prepare=False)
        rows = yield Query(sql["applied"], None, fetch="all", prepare=False)
        todo = pending(_applied(rows))
        done: list[int] = []
        for migration in todo:
            record = {
                "version": migration.version,
                "name": migration.name,
                "checksum": migration.checksum,
            }
            if migration.transactional:
                yield Query("BEGIN", None, prepare=False)
                yield Query(migration.render(schema), None, prepare=False)
                yield Query(sql["record"], record, prepare=False)
                yield Query("COMMIT", None, prepare=False)
            else:
                for statement in migration.statements(schema):
                    yield Query(statement, None, prepare=False)
                yield Query(sql["record"], record, prepare=False)
            done.append(migration.version)
        yield from distribute_steps(schema, distributed)
        return done

    return Plan(
        "setup",
        make,
        own_transactions=True,
        cleanup=Query("SELECT pg_advisory_unlock_all()", None),
    )


def render_pending(schema: str, applied: dict[int, str]) -> str:
    """The SQL a DBA would run by hand to bring ``schema`` up to date."""
    sql = _sql(schema)
    out = [f"{sql['schema']};", f"{sql['table']};"]
    for m in pending(applied):
        out.append(f"-- migration {m.version}: {m.name}")
        if m.transactional:
            out.append("BEGIN;")
        out.append(m.render(schema).strip())
        out.append(
            f"INSERT INTO {quote_schema(schema)}.{TABLE} (version, name, checksum) "
            f"VALUES ({m.version}, '{m.name}', '{m.checksum}');"
        )
        if m.transactional:
            out.append("COMMIT;")
    return "\n".join(out) + "\n"
