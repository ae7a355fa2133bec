"""Shared fixtures: a real PostgreSQL for every test, with no set-up.

The server comes from ``PGCHECKPOINT_TEST_DSN`` or ``DATABASE_URL`` when set,
otherwise an embedded PostgreSQL is started once per session in a temporary
directory. As in procrastinate's test suite, the schema is migrated once into a
template database and each test gets its own clone of it (``db_url``), which
is dropped afterwards, so tests never see each other's rows and cloning costs
milliseconds instead of a migration run.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
import time
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from typing import TYPE_CHECKING

import psycopg
import pytest
from psycopg import sql

from _dsn import dsn_for_database

if TYPE_CHECKING:
    from _cluster import Cluster
    from _helpers import Api
    from pgcheckpoint import AsyncPostgresSaver, PostgresSaver

DSN_ENV_VARS = ("PGCHECKPOINT_TEST_DSN", "DATABASE_URL")
DB_PREFIX = "pgc_test_"
# Test databases are named pgc_test_<unix time>_<random>. A session killed before
# its finalizers ran leaves its databases behind; the next session drops those
# older than this (no session lives that long: the whole suite takes minutes).
STALE_AFTER_SECONDS = 3 * 3600


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "unit: no server and no database (tests/unit, see its conftest)"
    )


class Databases:
    """Creates and drops databases on the test server through short autocommit sessions."""

    def __init__(self, server_url: str) -> None:
        self.server_url = server_url

    def _execute(self, statement: sql.Composed) -> None:
        # CREATE/DROP DATABASE cannot run in a transaction block.
        with psycopg.connect(self.server_url, autocommit=True) as conn:
            conn.execute(statement)

    def create(self, template: str = "template0") -> str:
        """Create a database cloned from ``template``; return its name."""
        name = f"{DB_PREFIX}{int(time.time())}_{uuid.uuid4().hex[:12]}"
        self._execute(
            sql.SQL("CREATE DATABASE {} TEMPLATE {}").format(
                sql.Identifier(name), sql.Identifier(template)
            )
        )
        return name

    def drop(self, name: str) -> None:
        """Drop ``name``, disconnecting anything still attached to it."""
        self._execute(
            sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
        )

    def url(self, name: str) -> str:
        return dsn_for_database(self.server_url, name)

    def drop_stale(self) -> None:
        """Drop test databases that crashed sessions left behind."""
        with psycopg.connect(self.server_url, autocommit=True) as conn:
            rows = conn.execute(
                "SELECT datname FROM pg_database WHERE datname LIKE %s", [DB_PREFIX + "%"]
            ).fetchall()
        cutoff = time.time() - STALE_AFTER_SECONDS
        for (name,) in rows:
            stamp, sep, _ = name[len(DB_PREFIX) :].partition("_")
            if sep and stamp.isdigit() and int(stamp) < cutoff:
                with contextlib.suppress(psycopg.Error):
                    self.drop(name)


@pytest.fixture(scope="session")
def pg_server_url() -> Iterator[str]:
    """A URL for database ``postgres`` on the server the tests use."""
    for var in DSN_ENV_VARS:
        if os.environ.get(var):
            yield os.environ[var]
            return

    from pgcheckpoint.embedded import start_embedded

    # A short path under /tmp rather than pytest's tmp_path: the unix socket
    # lives in the data directory and socket paths are limited to ~100 bytes.
    root = tempfile.mkdtemp(prefix="pgc-test-")
    server = start_embedded(os.path.join(root, "pgdata"))
    try:
        yield server.url
    finally:
        server.stop()
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture(scope="session")
def databases(pg_server_url: str) -> Iterator[Databases]:
    """Helper to create and drop extra databases on the test server. On a Citus
    coordinator (tests/_citus.py) they are made on every node, and ``setup()``
    distributes the template's tables, so the whole suite runs distributed."""
    from _citus import CitusDatabases, citus_workers

    workers = citus_workers(pg_server_url)
    if workers is None:
        dbs = Databases(pg_server_url)
        dbs.drop_stale()
        yield dbs
        return
    citus = CitusDatabases(pg_server_url, workers)
    citus.drop_stale()
    try:
        yield citus  # type: ignore[misc]
    finally:
        citus.close()


@pytest.fixture(scope="session")
def template_db(databases: Databases) -> Iterator[str]:
    """Name of a database holding the fully migrated schema, made once per session."""
    from pgcheckpoint import PostgresSaver

    name = databases.create()
    try:
        with PostgresSaver.from_conn_string(databases.url(name)) as saver:
            saver.setup()
        yield name
    finally:
        databases.drop(name)


@pytest.fixture
def db_url(databases: Databases, template_db: str) -> Iterator[str]:
    """URL of a fresh, migrated database for this test only."""
    name = databases.create(template=template_db)
    try:
        yield databases.url(name)
    finally:
        databases.drop(name)


@pytest.fixture
def empty_db_url(databases: Databases) -> Iterator[str]:
    """URL of a fresh database with no pgcheckpoint schema (for migration tests)."""
    name = databases.create()
    try:
        yield databases.url(name)
    finally:
        databases.drop(name)


@pytest.fixture
def make_db_url(databases: Databases, template_db: str) -> Iterator[Callable[[bool], str]]:
    """Factory for more databases in one test: ``make_db_url(migrated)``."""
    created: list[str] = []

    def make(migrated: bool = True) -> str:
        name = databases.create(template=template_db if migrated else "template0")
        created.append(name)
        return databases.url(name)

    try:
        yield make
    finally:
        for name in created:
            databases.drop(name)


@pytest.fixture
def saver(db_url: str) -> Iterator[PostgresSaver]:
    """A set-up ``PostgresSaver`` on this test's database."""
    from pgcheckpoint import PostgresSaver

    with PostgresSaver.from_conn_string(db_url) as s:
        s.setup()
        yield s


@pytest.fixture
async def asaver(db_url: str) -> AsyncIterator[AsyncPostgresSaver]:
    """A set-up ``AsyncPostgresSaver`` on this test's database."""
    from pgcheckpoint import AsyncPostgresSaver

    async with AsyncPostgresSaver.from_conn_string(db_url) as s:
        await s.setup()
        yield s


@pytest.fixture(params=["sync", "async"])
async def either_saver(
    request: pytest.FixtureRequest, db_url: str
) -> AsyncIterator[PostgresSaver | AsyncPostgresSaver]:
    """A set-up saver on ``db_url``: the test runs once with a ``PostgresSaver`` and once
    with an ``AsyncPostgresSaver``."""
    from pgcheckpoint import AsyncPostgresSaver, PostgresSaver

    if request.param == "sync":
        with PostgresSaver.from_conn_string(db_url) as s:
            s.setup()
            yield s
    else:
        async with AsyncPostgresSaver.from_conn_string(db_url) as a:
            await a.setup()
            yield a


@pytest.fixture
def api(either_saver: PostgresSaver | AsyncPostgresSaver, db_url: str) -> Api:
    """The same tests against both savers, called one way (``_helpers.Api``)."""
    from _helpers import Api

    return Api(either_saver, db_url)


@pytest.fixture(scope="module")
def server() -> Iterator[Cluster]:
    """A throwaway migrated server of the module's own (tests/_cluster.py), for the fault
    tests that stop, restart or cut it; modules using it skip when ``_cluster.available()``
    is false."""
    from _cluster import migrated_cluster

    with migrated_cluster() as cluster:
        yield cluster
