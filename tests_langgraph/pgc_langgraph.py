"""pytest plugin: LangGraph's own test suite, run against pgcheckpoint's savers.

``scripts/langgraph_suite.py`` unpacks the ``tests/`` package of the installed
langgraph's sdist and runs it with ``-p pgc_langgraph``. This plugin then:

* replaces LangGraph's ``sync_checkpointer`` / ``async_checkpointer`` fixtures
  (``tests/conftest.py``) by ours, with one parameter each: a pgcheckpoint
  saver on a fresh database cloned from a migrated template;
* points the ``_checkpointer_postgres*`` helpers of
  ``tests/conftest_checkpointer.py``, which ``tests/test_prune_postgres.py``
  imports, at the same savers;
* keeps only the tests that use a checkpointer fixture, plus the prune tests;
* marks the by-design exclusions (``EXCLUDED``) and drops the tests that drive
  the official saver's private statements (``NOT_APPLICABLE``);
* on the controlling process, writes every outcome to ``$PGC_LG_REPORT`` (JSON)
  for the driver to count and group.

Nothing in LangGraph's files is edited. The variant comes from
``$PGC_LG_VARIANT``: ``conn`` gives the savers one psycopg connection each,
``pool`` a psycopg_pool pool (``max_size=10``, autocommit), as the official
fixtures ``postgres`` / ``postgres_pool`` do.

The trap this file must avoid: some tests patch ``uuid.uuid4`` with a fixed
sequence *before* the checkpointer fixture runs (``deterministic_uuids``), so
nothing here may call ``uuid.uuid4``; database names use ``secrets``.
"""

from __future__ import annotations

import json
import os
import secrets
import time
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager, contextmanager, suppress
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import psycopg
import pytest
from psycopg import sql
from psycopg.conninfo import make_conninfo

# Environment set by scripts/langgraph_suite.py for every pytest process.
SERVER_ENV = "PGC_LG_SERVER_URL"  # database "postgres" on the test server
TEMPLATE_ENV = "PGC_LG_TEMPLATE"  # migrated template database to clone
VARIANT_ENV = "PGC_LG_VARIANT"  # "conn" or "pool"
REPORT_ENV = "PGC_LG_REPORT"  # where the controller writes the outcomes (JSON)

VARIANTS = ("conn", "pool")
DB_PREFIX = "pgc_lg_"
# Databases are named pgc_lg_<unix time>_<random>; a killed run leaves some
# behind, and the next run drops those older than this.
STALE_AFTER_SECONDS = 3 * 3600

# Tests excluded by design: they are run, and must fail (strict xfail), because
# they expect the official saver's limitation. The official saver cannot prune
# a thread that has a DeltaChannel and raises NotImplementedError;
# pgcheckpoint can, so `pytest.raises(NotImplementedError)` fails with DID NOT
# RAISE. If one of them ever passes, pgcheckpoint lost that ability: the run fails.
EXCLUDED: dict[str, str] = {
    "test_keep_latest_refuses_a_batch_with_a_delta_channel_thread": (
        "by design: expects NotImplementedError; pgcheckpoint prunes DeltaChannel threads"
    ),
    "test_akeep_latest_refuses_a_batch_with_a_delta_channel_thread": (
        "by design: expects NotImplementedError; pgcheckpoint prunes DeltaChannel threads"
    ),
}

# Tests that cannot be pointed at another saver, so they are not collected: they
# open the *official* PostgresSaver as a second "pruner" on the checkpointer's
# database and inject a concurrent turn between two of its private statements
# (`_cursor` hooked, `query is PRUNE_HEADS_SQL` / `PRUNE_DELTA_THREADS_SQL`).
# pgcheckpoint's prune is one SQL call with no such seam.
NOT_APPLICABLE: dict[str, str] = {
    "test_keep_latest_keeps_a_turn_saved_after_it_read_the_heads": (
        "hooks the official saver's PRUNE_HEADS_SQL"
    ),
    "test_keep_latest_refuses_a_thread_that_switches_to_a_delta_channel_mid_batch": (
        "hooks the official saver's PRUNE_DELTA_THREADS_SQL"
    ),
    "test_keep_latest_keeps_a_delta_channel_turn_saved_after_the_thread_check": (
        "hooks the official saver's PRUNE_DELTA_THREADS_SQL"
    ),
}

PRUNE_MODULE = "test_prune_postgres.py"
CHECKPOINTER_FIXTURES = ("sync_checkpointer", "async_checkpointer")


# -- databases (also used by the driver) ------------------------------------


def dsn_for_database(dsn: str, dbname: str) -> str:
    """``dsn`` pointed at database ``dbname`` (a URL stays a URL)."""
    if dsn.startswith(("postgresql://", "postgres://")):
        return urlunsplit(urlsplit(dsn)._replace(path="/" + dbname))
    return make_conninfo(dsn, dbname=dbname)


def new_database_name() -> str:
    # secrets, not uuid.uuid4: see the module docstring.
    return f"{DB_PREFIX}{int(time.time())}_{secrets.token_hex(6)}"


def create_database(server_url: str, template: str) -> str:
    """Create a database cloned from ``template``; return its name."""
    name = new_database_name()
    with psycopg.connect(server_url, autocommit=True) as conn:
        conn.execute(
            sql.SQL("CREATE DATABASE {} TEMPLATE {}").format(
                sql.Identifier(name), sql.Identifier(template)
            )
        )
    return name


def drop_database(server_url: str, name: str) -> None:
    with psycopg.connect(server_url, autocommit=True) as conn:
        conn.execute(
            sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
        )


def drop_stale_databases(server_url: str) -> None:
    """Drop the databases of runs killed before they cleaned up."""
    with psycopg.connect(server_url, autocommit=True) as conn:
        rows = conn.execute(
            "SELECT datname FROM pg_database WHERE datname LIKE %s", [DB_PREFIX + "%"]
        ).fetchall()
    cutoff = time.time() - STALE_AFTER_SECONDS
    for (name,) in rows:
        stamp, sep, _ = name[len(DB_PREFIX) :].partition("_")
        if sep and stamp.isdigit() and int(stamp) < cutoff:
            with suppress(psycopg.Error):
                drop_database(server_url, name)


@contextmanager
def fresh_database() -> Iterator[str]:
    """URL of a new clone of the migrated template, dropped afterwards."""
    server = os.environ[SERVER_ENV]
    name = create_database(server, os.environ[TEMPLATE_ENV])
    try:
        yield dsn_for_database(server, name)
    finally:
        drop_database(server, name)


# -- the savers ---------------------------------------------------------------


def _variant() -> str:
    variant = os.environ.get(VARIANT_ENV, "conn")
    if variant not in VARIANTS:
        raise pytest.UsageError(f"{VARIANT_ENV}={variant!r}: expected one of {VARIANTS}")
    return variant


@contextmanager
def pgcheckpoint() -> Iterator[Any]:
    """A set-up ``PostgresSaver`` on one psycopg connection (official: ``postgres``)."""
    from pgcheckpoint import PostgresSaver

    with fresh_database() as url, psycopg.Connection.connect(url, autocommit=True) as conn:
        saver = PostgresSaver(conn)
        saver.setup()
        yield saver


@contextmanager
def pgcheckpoint_pool() -> Iterator[Any]:
    """A set-up ``PostgresSaver`` on a pool (official: ``postgres_pool``)."""
    from psycopg_pool import ConnectionPool

    from pgcheckpoint import PostgresSaver

    with (
        fresh_database() as url,
        ConnectionPool(url, max_size=10, kwargs={"autocommit": True}) as pool,
    ):
        saver = PostgresSaver(pool)
        saver.setup()
        yield saver


@asynccontextmanager
async def pgcheckpoint_aio() -> AsyncIterator[Any]:
    """A set-up ``AsyncPostgresSaver`` on one connection (official: ``postgres_aio``)."""
    from pgcheckpoint import AsyncPostgresSaver

    with fresh_database() as url:
        async with await psycopg.AsyncConnection.connect(url, autocommit=True) as conn:
            saver = AsyncPostgresSaver(conn)
            await saver.setup()
            yield saver


@asynccontextmanager
async def pgcheckpoint_aio_pool() -> AsyncIterator[Any]:
    """A set-up ``AsyncPostgresSaver`` on a pool (official: ``postgres_aio_pool``)."""
    from psycopg_pool import AsyncConnectionPool

    from pgcheckpoint import AsyncPostgresSaver

    with fresh_database() as url:
        async with AsyncConnectionPool(url, max_size=10, kwargs={"autocommit": True}) as pool:
            saver = AsyncPostgresSaver(pool)
            await saver.setup()
            yield saver


SYNC_FACTORIES: dict[str, Callable[[], Any]] = {"conn": pgcheckpoint, "pool": pgcheckpoint_pool}
ASYNC_FACTORIES: dict[str, Callable[[], Any]] = {
    "conn": pgcheckpoint_aio,
    "pool": pgcheckpoint_aio_pool,
}


def other_variant() -> Any:
    """Stands in for the official helpers of the variants not under test."""
    raise AssertionError("deselected: a checkpointer variant not under test")


def _make_fixtures(variant: str) -> tuple[Any, Any]:
    make_sync = SYNC_FACTORIES[variant]
    make_async = ASYNC_FACTORIES[variant]

    @pytest.fixture(name="sync_checkpointer", params=[make_sync.__name__])
    def sync_checkpointer() -> Iterator[Any]:
        with make_sync() as saver:
            yield saver

    @pytest.fixture(name="async_checkpointer", params=[make_async.__name__])
    async def async_checkpointer() -> AsyncIterator[Any]:
        async with make_async() as saver:
            yield saver

    return sync_checkpointer, async_checkpointer


# -- hooks --------------------------------------------------------------------


@pytest.hookimpl(tryfirst=True)
def pytest_load_initial_conftests(early_config: pytest.Config) -> None:
    """Import LangGraph's conftest first and swap its checkpointer fixtures.

    pytest later imports ``tests.conftest`` by name and gets this same module
    object, so it registers our fixtures in place of LangGraph's; the test
    modules, imported later still, import our helpers from
    ``tests.conftest_checkpointer``.
    """
    variant = _variant()
    import tests.conftest as lg_conftest  # the unpacked LangGraph tests
    import tests.conftest_checkpointer as lg_checkpointers

    lg_conftest.sync_checkpointer, lg_conftest.async_checkpointer = _make_fixtures(variant)
    # NO_DOCKER=true (set by the driver) keeps the cache/store fixtures on their
    # in-memory params; the prune tests skip when it is true, so it is turned
    # off for the modules that import it after this point.
    lg_conftest.NO_DOCKER = False
    lg_checkpointers._checkpointer_postgres = SYNC_FACTORIES[variant]
    lg_checkpointers._checkpointer_postgres_aio = ASYNC_FACTORIES[variant]
    for name in (
        "_checkpointer_postgres_pipe",
        "_checkpointer_postgres_pool",
        "_checkpointer_postgres_aio_pipe",
        "_checkpointer_postgres_aio_pool",
    ):
        setattr(lg_checkpointers, name, other_variant)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    keep: list[pytest.Item] = []
    dropped: list[pytest.Item] = []
    for item in items:
        name = getattr(item, "originalname", item.name)
        in_prune = item.path.name == PRUNE_MODULE
        params = getattr(getattr(item, "callspec", None), "params", {})
        uses_checkpointer = any(f in item.fixturenames for f in CHECKPOINTER_FIXTURES)
        if (
            not (in_prune or uses_checkpointer)
            or params.get("make_checkpointer") is other_variant
            or (in_prune and name in NOT_APPLICABLE)
        ):
            dropped.append(item)
            continue
        if in_prune and name in EXCLUDED:
            item.add_marker(
                pytest.mark.xfail(reason=EXCLUDED[name], strict=True, raises=pytest.fail.Exception)
            )
        keep.append(item)
    if dropped:
        config.hook.pytest_deselected(items=dropped)
        items[:] = keep


class _Outcomes:
    """Collects every test's outcome on the controlling process."""

    def __init__(self) -> None:
        self.results: dict[str, dict[str, str]] = {}

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        entry = self.results.setdefault(report.nodeid, {"outcome": "passed"})
        if report.skipped and hasattr(report, "wasxfail"):
            # An EXCLUDED test that failed as expected. (One that passes is a
            # strict XPASS: reported as failed, handled below.)
            entry["outcome"] = "excluded"
            entry["detail"] = str(report.wasxfail)
            return
        if report.failed:
            entry["outcome"] = "failed" if report.when == "call" else "error"
            crash = getattr(report.longrepr, "reprcrash", None)
            entry["detail"] = crash.message if crash is not None else str(report.longrepr)
            entry["when"] = report.when
        elif report.skipped and entry["outcome"] == "passed":
            entry["outcome"] = "skipped"
            entry["detail"] = str(report.longrepr)

    def write(self, path: str) -> None:
        with open(path, "w", encoding="utf-8") as f:
            json.dump(self.results, f, indent=1, sort_keys=True)


def pytest_configure(config: pytest.Config) -> None:
    if hasattr(config, "workerinput"):
        return  # xdist worker: the controller sees every report
    if os.environ.get(REPORT_ENV):
        config._pgc_outcomes = _Outcomes()  # type: ignore[attr-defined]
        config.pluginmanager.register(config._pgc_outcomes, "pgc-outcomes")  # type: ignore[attr-defined]


def pytest_sessionfinish(session: pytest.Session) -> None:
    outcomes = getattr(session.config, "_pgc_outcomes", None)
    if outcomes is not None:
        outcomes.write(os.environ[REPORT_ENV])
