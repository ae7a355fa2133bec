"""Storage reports and VACUUM: what the database holds, and keeping it tidy.

:func:`storage_plan` reports bytes per table (heap, TOAST, indexes) and the
fattest threads; :func:`optimize_plan` runs ``VACUUM (ANALYZE)`` on the
schema's tables. VACUUM cannot run inside a transaction block, so that plan is
``own_transactions`` (run in autocommit mode), like migrations.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from psycopg import sql

from ._plans import Plan, PlanGen, Query
from ._queries import compose
from .errors import InvalidInputError

if TYPE_CHECKING:
    from ._core import SaverCore

# The tables pgcheckpoint's runtime writes to (migration 0001); optimize()
# vacuums these, storage_report() lists every table of the schema.
TABLES = ("threads", "checkpoints", "blobs", "chunks", "writes")


@dataclass(frozen=True, slots=True)
class TableSize:
    """One table's size in bytes; ``total`` = heap + toast + indexes.

    ``rows_estimate`` is PostgreSQL's ``reltuples`` (kept by VACUUM, ANALYZE and
    autovacuum) when the table has been analyzed; a table never analyzed (reltuples
    -1, e.g. just after a bulk load) is counted exactly instead, and ``rows_exact``
    says so.
    """

    name: str
    rows_estimate: int
    heap: int
    toast: int
    indexes: int
    total: int
    rows_exact: bool = False


@dataclass(frozen=True, slots=True)
class ThreadSize:
    """One thread's stored bytes (pg_column_size of its rows' values)."""

    thread_id: str
    checkpoints: int
    bytes: int


@dataclass(frozen=True, slots=True)
class StorageReport:
    """What :meth:`PostgresSaver.storage_report` returns."""

    tables: tuple[TableSize, ...]
    threads: tuple[ThreadSize, ...]
    thread_count: int

    @property
    def total_bytes(self) -> int:
        """pg_total_relation_size of every table in the schema, summed."""
        return sum(t.total for t in self.tables)


def storage_plan(core: SaverCore, top: int = 10) -> Plan[StorageReport]:
    """Bytes per table and the ``top`` fattest threads (scans every row: not for hot paths)."""
    if isinstance(top, bool) or not isinstance(top, int) or top < 0:
        raise InvalidInputError(f"top must be an int >= 0, got {top!r}")
    q = core.queries
    schema = core.schema

    def make() -> PlanGen[StorageReport]:
        rows = yield Query(q["storage_tables"], {"schema": schema}, fetch="all")
        found: list[TableSize] = []
        for r in rows or []:
            name, estimate = str(r[0]), int(r[1])
            exact = estimate < 0  # never analyzed: reltuples is -1, count instead
            if exact:
                counted = yield Query(count_statement(schema, name), None, fetch="all")
                estimate = int(counted[0][0]) if counted else 0
            found.append(
                TableSize(name, estimate, int(r[2]), int(r[3]), int(r[4]), int(r[5]), exact)
            )
        tables = tuple(found)
        fat: tuple[ThreadSize, ...] = ()
        if top:
            rows = yield Query(q["storage_threads"], {"limit": top}, fetch="all")
            fat = tuple(ThreadSize(str(r[0]), int(r[1]), int(r[2])) for r in rows or [])
        rows = yield Query(q["storage_thread_count"], None, fetch="all")
        count = int(rows[0][0]) if rows else 0
        return StorageReport(tables, fat, count)

    return Plan("storage_report", make)


def count_statement(schema: str, table: str) -> str:
    """``SELECT count(*)`` of one table (identifiers quoted by psycopg)."""
    return compose("count_rows", schema, table=sql.Identifier(table))


@dataclass(frozen=True, slots=True)
class OptimizeReport:
    """What :meth:`PostgresSaver.optimize` did: the tables vacuumed, and those PostgreSQL
    would skip (it only warns, e.g. ``skipping "x" --- only table or database owner can
    vacuum it``), each with the reason; those are not sent to VACUUM at all."""

    vacuumed: tuple[str, ...]
    skipped: tuple[tuple[str, str], ...]
    full: bool


def vacuum_statements(schema: str, full: bool = False) -> list[str]:
    """The VACUUM statements of :func:`optimize_plan` (identifiers quoted by psycopg)."""
    name = "vacuum_full" if full else "vacuum"
    return [compose(name, schema, table=sql.Identifier(table)) for table in TABLES]


def optimize_plan(core: SaverCore, full: bool = False) -> Plan[OptimizeReport]:
    """VACUUM (ANALYZE) each table we may vacuum, outside any transaction (autocommit).

    PostgreSQL lets the table's owner, the database's owner, a superuser (and, from
    PostgreSQL 17, a role with MAINTAIN) vacuum a table; for anyone else VACUUM only
    warns and does nothing. Those tables, and missing ones, are reported as skipped.
    """
    if not isinstance(full, bool):
        raise InvalidInputError(f"full must be a bool, got {full!r}")
    statements = dict(zip(TABLES, vacuum_statements(core.schema, full), strict=True))
    q = core.queries
    schema = core.schema

    def make() -> PlanGen[OptimizeReport]:
        rows = yield Query(q["vacuum_permissions"], {"schema": schema, "tables": list(TABLES)},
                           fetch="all")
        allowed = {str(r[0]): bool(r[1]) for r in rows or []}
        vacuumed: list[str] = []
        skipped: list[tuple[str, str]] = []
        for table in TABLES:
            if table not in allowed:
                skipped.append((table, "does not exist (run `pgcheckpoint setup`)"))
            elif not allowed[table]:
                skipped.append((table, "not the owner of the table or the database"))
            else:
                yield Query(statements[table], None, prepare=False)
                vacuumed.append(table)
        return OptimizeReport(tuple(vacuumed), tuple(skipped), full)

    return Plan("optimize", make, own_transactions=True)
