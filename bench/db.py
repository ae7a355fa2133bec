"""PostgreSQL plumbing for the benchmark: DSNs, scratch databases, sizes, machine facts.

Each saver gets a database of its own (``bench_official_<run>``,
``bench_pgcheckpoint_<run>``), created at the start of every run and dropped at its
end, so neither sees the other's rows, indexes or bloat. The floors get a third one
(``bench_floor_<run>``) so their plain table never counts towards a saver's storage
figure. ``<run>`` is unique per run (process id and random hex), so two runs sharing
a server never drop each other's databases (:func:`scratch_databases`).
"""

from __future__ import annotations

import contextlib
import os
import platform
import secrets
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from importlib import metadata
from typing import Any

import psycopg
from psycopg import sql
from psycopg.conninfo import conninfo_to_dict, make_conninfo

FALLBACK_DSN = "postgresql://postgres@127.0.0.1:5432/postgres"
DATABASES = ("bench_official", "bench_pgcheckpoint", "bench_floor")
PACKAGES = (
    "pgcheckpoint",
    "langgraph",
    "langgraph-checkpoint",
    "langgraph-checkpoint-postgres",
    "langchain-core",
    "psycopg",
    "psycopg-binary",
    "psycopg-pool",
)

# Every ordinary table in the database outside the system schemas, so the figures cover
# whatever tables, indexes and TOAST a saver chose, in whatever schema (indexes and
# TOAST counted with their table).
TABLE_BYTES_SQL = """
select c.relname, pg_total_relation_size(c.oid)::bigint
from pg_class c
join pg_namespace n on n.oid = c.relnamespace
where c.relkind in ('r', 'm')
  and n.nspname not in ('pg_catalog', 'information_schema')
  and n.nspname not like 'pg_toast%'
  and n.nspname not like 'pg_temp%'
"""


def default_dsn() -> str:
    """``DATABASE_URL``, else pgcheckpoint's embedded server, else a local trust login."""
    env = os.environ.get("DATABASE_URL")
    if env:
        return env
    try:
        from pgcheckpoint.embedded import resolve_dsn  # type: ignore[import-not-found,unused-ignore]
    except ImportError:
        return FALLBACK_DSN
    return str(resolve_dsn())


def with_dbname(dsn: str, dbname: str) -> str:
    """The same server and credentials, another database."""
    return make_conninfo(dsn, dbname=dbname)


def describe(dsn: str) -> str:
    """Host, port and database of a DSN, without any password."""
    parts = conninfo_to_dict(dsn)
    return f"{parts.get('host', 'localhost')}:{parts.get('port', 5432)}/{parts.get('dbname', '')}"


def run_tag() -> str:
    """A suffix unique to this run: the process id and 6 random hex digits."""
    return f"{os.getpid()}_{secrets.token_hex(3)}"


def _drop(admin_dsn: str, names: Iterable[str]) -> None:
    with psycopg.connect(admin_dsn, autocommit=True) as conn:
        for name in names:
            ident = sql.Identifier(name)
            conn.execute(sql.SQL("drop database if exists {} with (force)").format(ident))


@contextmanager
def scratch_databases(
    admin_dsn: str, bases: Iterable[str] = DATABASES, *, keep: bool = False
) -> Iterator[dict[str, str]]:
    """A fresh database per base name, ``<base>_<run_tag()>``; yields base -> DSN.

    The names are unique per run, so concurrent runs on one server (two helpers, a
    CI matrix) never drop each other's databases. They are dropped on the way out,
    also after an error or Ctrl-C, unless ``keep``; a run killed outright leaves
    them behind under that pattern.
    """
    tag = run_tag()
    names = {base: f"{base}_{tag}" for base in bases}
    made: list[str] = []
    try:
        with psycopg.connect(admin_dsn, autocommit=True) as conn:
            for name in names.values():
                conn.execute(sql.SQL("create database {}").format(sql.Identifier(name)))
                made.append(name)
        yield {base: with_dbname(admin_dsn, name) for base, name in names.items()}
    finally:
        if not keep and made:
            _drop(admin_dsn, made)


def recreate_databases(admin_dsn: str, names: Iterable[str]) -> dict[str, str]:
    """Drop and create each database of a fixed name; return name -> DSN.

    Only for a database a later run reuses by name (``bench.inspector --keep``);
    every other run uses :func:`scratch_databases`.
    """
    names = list(names)
    _drop(admin_dsn, names)
    with psycopg.connect(admin_dsn, autocommit=True) as conn:
        for name in names:
            conn.execute(sql.SQL("create database {}").format(sql.Identifier(name)))
    return {name: with_dbname(admin_dsn, name) for name in names}


def table_bytes(dsn: str) -> dict[str, int]:
    """Bytes on disk per table of the database (``pg_total_relation_size``)."""
    with psycopg.connect(dsn, autocommit=True) as conn:
        return {str(name): int(size) for name, size in conn.execute(TABLE_BYTES_SQL)}


def settle(dsn: str) -> None:
    """What autovacuum and the checkpointer would have done to a database given time.

    Without it, the first samples after a bulk load race autovacuum on the fresh rows
    and a checkpoint flushing them (seen as a 4x slower first row in a self-test).
    """
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("vacuum (analyze)")
        # Needs superuser or pg_checkpoint; without it the vacuum is still the main part.
        with contextlib.suppress(psycopg.errors.InsufficientPrivilege):
            conn.execute("checkpoint")


def bulk_connection(dsn: str, **kwargs: Any) -> psycopg.Connection[Any]:
    """A connection for populating fixtures fast: commits do not wait for the WAL flush.

    Only the set-up uses it; every timed operation runs with the server's defaults.
    """
    return psycopg.connect(
        dsn,
        autocommit=True,
        prepare_threshold=0,
        options="-c synchronous_commit=off",
        **kwargs,
    )


def package_versions() -> dict[str, str]:
    versions: dict[str, str] = {}
    for name in PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = "not installed"
    return versions


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as fh:
            for line in fh:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def machine_info(dsn: str) -> dict[str, Any]:
    with psycopg.connect(dsn, autocommit=True) as conn:
        settings = {}
        for name in (
            "server_version",
            "shared_buffers",
            "synchronous_commit",
            "fsync",
            "wal_level",
        ):
            row = conn.execute(sql.SQL("show {}").format(sql.Identifier(name))).fetchone()
            settings[name] = str(row[0]) if row else "?"
    return {
        "cpu_count": os.cpu_count(),
        "cpu_model": _cpu_model(),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "postgresql": settings.pop("server_version"),
        "postgresql_settings": settings,
        "server": describe(dsn),
        "packages": package_versions(),
    }
