"""``setup(distributed=...)`` on plain PostgreSQL (the Citus side: tests/test_citus.py).

Without the ``citus`` extension, ``"auto"`` and ``False`` leave the schema as it
always was; ``True`` is refused before any migration runs, and a value that is
none of the three is refused before anything is sent.
"""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from pgcheckpoint import AsyncPostgresSaver, PostgresSaver
from pgcheckpoint.errors import ConfigurationError, SchemaError


def _has_citus(url: str) -> bool:
    import psycopg

    with psycopg.connect(url, autocommit=True) as conn:
        row = conn.execute(
            "SELECT count(*) FROM pg_available_extensions WHERE name = 'citus' "
            "AND installed_version IS NOT NULL"
        ).fetchone()
    return bool(row and row[0])


def test_distributed_true_without_citus_changes_nothing(empty_db_url: str) -> None:
    if _has_citus(empty_db_url):
        pytest.skip("the test server is a Citus coordinator")
    with PostgresSaver.from_conn_string(empty_db_url) as saver:
        with pytest.raises(SchemaError, match="citus extension is not installed"):
            saver.setup(distributed=True)
        assert saver.migration_status() == {}
        saver.setup()  # "auto": plain PostgreSQL, nothing distributed
        saver.setup(distributed=False)
        assert saver.migration_status()


@pytest.mark.parametrize("value", ["yes", 1, None, "AUTO"])
async def test_distributed_rejects_other_values(empty_db_url: str, value: object) -> None:
    with PostgresSaver.from_conn_string(empty_db_url) as saver:
        with pytest.raises(ConfigurationError, match="distributed must be"):
            saver.setup(distributed=value)  # type: ignore[arg-type]
        assert saver.migration_status() == {}
    async with AsyncPostgresSaver.from_conn_string(empty_db_url) as asaver:
        with pytest.raises(ConfigurationError, match="distributed must be"):
            await asaver.setup(distributed=value)  # type: ignore[arg-type]


def test_cli_setup_distributed_without_citus_fails_cleanly(empty_db_url: str) -> None:
    if _has_citus(empty_db_url):
        pytest.skip("the test server is a Citus coordinator")
    env = {**os.environ, "DATABASE_URL": empty_db_url}
    env.pop("PGCHECKPOINT_DSN", None)
    done = subprocess.run(
        [sys.executable, "-m", "pgcheckpoint.cli", "setup", "--distributed"],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    assert done.returncode == 1, done
    assert "citus extension is not installed" in done.stderr + done.stdout
    done = subprocess.run(
        [sys.executable, "-m", "pgcheckpoint.cli", "setup", "--no-distributed", "--json"],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    assert done.returncode == 0, done
    assert '"applied": [' in done.stdout


def test_printed_citus_steps_quote_the_schema_and_need_print_sql(empty_db_url: str) -> None:
    """``migrate apply --print-sql --distributed``: the Citus section after the
    migrations, names as quoted literals (run on a cluster in tests/test_citus.py);
    ``--distributed`` alone is a usage error that touches nothing."""
    from pgcheckpoint.distribution import render_sql

    text = render_sql('we"ird')
    assert "create_distributed_table('\"we\"\"ird\".threads'::regclass, 'thread_id'" in text
    assert 'colocate_with => \'"we""ird".threads\')' in text  # the other tables
    assert 'create_reference_table(\'"we""ird".pgcheckpoint_migrations\'' in text
    assert "n.nspname = 'we\"ird'" in text
    assert text.count("WHERE NOT EXISTS") == 6
    env = {**os.environ, "DATABASE_URL": empty_db_url}
    env.pop("PGCHECKPOINT_DSN", None)
    cli = [sys.executable, "-m", "pgcheckpoint.cli", "migrate", "apply"]
    done = subprocess.run(
        [*cli, "--print-sql", "--distributed"], capture_output=True, text=True, env=env, timeout=120
    )
    assert done.returncode == 0, done
    migrations, _, citus = done.stdout.partition("-- Citus (docs/scaling.md)")
    assert "CREATE TABLE" in migrations and "create_distributed_function" in citus
    alone = subprocess.run(
        [*cli, "--distributed"], capture_output=True, text=True, env=env, timeout=120
    )
    assert alone.returncode == 2 and "--distributed goes with --print-sql" in alone.stderr
    with PostgresSaver.from_conn_string(empty_db_url) as saver:
        assert saver.migration_status() == {}


def test_list_asks_for_citus_once_until_setup(saver: PostgresSaver) -> None:
    """list(None) keeps the answer of its citus check on the saver; setup(), which
    may distribute the schema, makes the next list(None) ask again."""
    assert saver.has_citus is None
    assert list(saver.list(None)) == []
    assert saver.has_citus is False  # plain PostgreSQL: kept, not asked again
    saver.setup()
    assert saver.has_citus is None
    assert list(saver.list(None)) == []
    assert saver.has_citus is False
