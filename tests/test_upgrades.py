"""Rolling upgrades: this release against a database a newer release has migrated.

"Newer" is simulated by shipping one extra migration for the duration of a
``newer_release()`` block (the library then behaves as the next release would:
it applies the migration and records what it declares). Outside the block the
code is this release again, the "old" one, facing a schema it does not know.
"""

from __future__ import annotations

import logging
import os
import subprocess
import sys
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from typing import Any

import psycopg
import pytest
from langgraph.checkpoint.base import BaseCheckpointSaver, empty_checkpoint
from langgraph.checkpoint.conformance import checkpointer_test, validate
from langgraph.checkpoint.conformance.capabilities import BASE_CAPABILITIES

from pgcheckpoint import PostgresSaver, SchemaError
from pgcheckpoint import migrations as mig
from pgcheckpoint import routines as rt
from pgcheckpoint.migrations import Migration, latest_version
from pgcheckpoint.routines import Routine

OLD_LATEST = latest_version()

# What a backward-compatible migration may do (docs/migrations.md): add a
# nullable column, a table, an index, a function under a new name.
FUTURE_SQL = """-- a newer release's migration (simulated by tests/test_upgrades.py)
ALTER TABLE {schema}.checkpoints ADD COLUMN future_note text;
CREATE TABLE {schema}.future_things (thread_id text PRIMARY KEY, note text);
CREATE INDEX checkpoints_future_note_idx ON {schema}.checkpoints (future_note);
"""


def future(compatible_with: int | None, version: int = OLD_LATEST + 1) -> Migration:
    header = (
        "" if compatible_with is None else f"-- pgcheckpoint: compatible-with {compatible_with}\n"
    )
    return Migration(version, "future", header + FUTURE_SQL)


@contextmanager
def newer_release(*extra: Migration) -> Iterator[None]:
    """Run the block as a release that also ships ``extra``."""
    shipped = mig.all_migrations()
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(mig, "all_migrations", lambda: (*shipped, *extra))
        yield


def _migrate_as_newer(url: str, *extra: Migration) -> None:
    with newer_release(*extra), PostgresSaver.from_conn_string(url) as saver:
        assert saver.setup() is None
        assert max(saver.migration_status()) == extra[-1].version


def test_compatible_with_is_read_from_the_leading_comment() -> None:
    assert future(OLD_LATEST).compatible_with == OLD_LATEST
    assert future(None).compatible_with is None
    late = Migration(9, "x", "-- doc\nSELECT 1;\n-- pgcheckpoint: compatible-with 3\n")
    assert late.compatible_with is None  # only the leading comment declares
    assert all(m.compatible_with is None for m in mig.all_migrations() if m.version <= 4)


def test_newer_compatible_schema_is_recorded_and_old_setup_carries_on(
    db_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    _migrate_as_newer(db_url, future(OLD_LATEST))
    with psycopg.connect(db_url) as conn:
        row = conn.execute(
            "SELECT compatible_with FROM pgcheckpoint_migrations WHERE version = %s",
            [OLD_LATEST + 1],
        ).fetchone()
    assert row == (OLD_LATEST,)
    with (
        caplog.at_level(logging.WARNING, logger="pgcheckpoint"),
        PostgresSaver.from_conn_string(db_url) as saver,
    ):
        saver.setup()  # the old release: no error
        report = saver.health_check()
        states = saver.migration_report()
    assert "they declare this release compatible, so it carries on" in caplog.text
    assert report.ok and report.schema_version == OLD_LATEST + 1
    assert any("declared compatible" in w for w in report.warnings)
    unknown = [s for s in states if not s.known]
    assert [(s.version, s.name, s.usable) for s in unknown] == [(OLD_LATEST + 1, "future", True)]


async def test_old_release_passes_conformance_on_a_newer_schema(db_url: str) -> None:
    _migrate_as_newer(db_url, future(OLD_LATEST))

    async def make() -> AsyncIterator[BaseCheckpointSaver[Any]]:
        with PostgresSaver.from_conn_string(db_url) as saver:
            saver.setup()
            yield saver

    registered = checkpointer_test(name="old-release-on-newer-schema")(make)
    capabilities = {c.value for c in BASE_CAPABILITIES}
    report = await validate(registered, capabilities=capabilities)
    for capability in capabilities:
        result = report.results[capability]
        assert result.tests_failed == 0 and result.passed, (capability, result.failures)
        assert result.tests_passed > 0


@pytest.mark.parametrize(
    ("compatible_with", "says"),
    [(None, "declares no compatibility"), (OLD_LATEST + 1, "needs a release with migration")],
)
def test_incompatible_newer_schema_raises_and_changes_nothing(
    db_url: str, compatible_with: int | None, says: str
) -> None:
    # The newer release ships two migrations; the second is not compatible.
    header = (
        "" if compatible_with is None else f"-- pgcheckpoint: compatible-with {compatible_with}\n"
    )
    later = header + FUTURE_SQL.replace("future", "later")
    breaking = Migration(OLD_LATEST + 2, "future_break", later)
    _migrate_as_newer(db_url, future(OLD_LATEST), breaking)
    before = _rows(db_url)
    with (
        PostgresSaver.from_conn_string(db_url) as saver,
        pytest.raises(SchemaError, match=rf"{OLD_LATEST + 2} \(future_break, {says}"),
    ):
        saver.setup()
    assert _rows(db_url) == before
    with PostgresSaver.from_conn_string(db_url) as saver:
        report = saver.health_check()
    assert not report.ok and any("NOT compatible" in w for w in report.warnings)


def _rows(url: str) -> list[tuple[Any, ...]]:
    with psycopg.connect(url) as conn:
        return conn.execute("SELECT * FROM pgcheckpoint_migrations ORDER BY version").fetchall()


def test_a_table_without_the_compatibility_column_is_read_as_incompatible(db_url: str) -> None:
    """A migrations table from before compatibility was recorded (this release's
    predecessors) holding an unknown version: refused, not guessed."""
    with psycopg.connect(db_url, autocommit=True) as conn:
        conn.execute("ALTER TABLE pgcheckpoint_migrations DROP COLUMN compatible_with")
        conn.execute(
            "INSERT INTO pgcheckpoint_migrations (version, name, checksum) "
            "VALUES (%s, 'from_the_future', 'x')",
            [OLD_LATEST + 1],
        )
    with (
        PostgresSaver.from_conn_string(db_url) as saver,
        pytest.raises(SchemaError, match="from_the_future, declares no compatibility"),
    ):
        saver.setup()


def _cli(url: str, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "DATABASE_URL": url, "COLUMNS": "200"}
    env.pop("PGCHECKPOINT_DSN", None)
    return subprocess.run(
        [sys.executable, "-m", "pgcheckpoint.cli", *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )


def test_cli_setup_and_status_with_a_newer_schema(db_url: str) -> None:
    import json

    _migrate_as_newer(db_url, future(OLD_LATEST))
    setup = _cli(db_url, "setup")
    assert setup.returncode == 0, setup.stderr
    assert "from a newer pgcheckpoint" in setup.stdout and "compatible" in setup.stdout
    rows = json.loads(_cli(db_url, "migrate", "status", "--json").stdout)
    assert [r["version"] for r in rows] == list(range(1, OLD_LATEST + 2))
    newest = rows[-1]
    assert newest["known"] is False and newest["applied"] is True and newest["usable"] is True
    table = _cli(db_url, "migrate", "status").stdout
    assert "unknown: newer release" in table and "usable" in table

    with psycopg.connect(db_url, autocommit=True) as conn:
        conn.execute(
            "INSERT INTO pgcheckpoint_migrations (version, name, checksum) VALUES (%s, 'x', 'y')",
            [OLD_LATEST + 2],
        )
    refused = _cli(db_url, "setup")
    assert refused.returncode == 1 and "SchemaError" in refused.stderr
    assert "needs a newer release" in _cli(db_url, "migrate", "status").stdout


# --- functions (sql/functions) across releases ---------------------------------


@contextmanager
def newer_routines(*extra: Routine) -> Iterator[None]:
    """Run the block as a release whose function files include ``extra``."""
    shipped = {r.name: r for r in rt.all_routines()}
    shipped.update({r.name: r for r in extra})
    ordered = tuple(sorted(shipped.values(), key=lambda r: r.name))
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(rt, "all_routines", lambda: ordered)
        yield


def _gc_body(url: str) -> str:
    with psycopg.connect(url) as conn:
        row = conn.execute("SELECT prosrc FROM pg_proc WHERE proname = 'pgcheckpoint_gc'")
        found = row.fetchone()
        assert found is not None
        return str(found[0])


def test_a_newer_revision_of_a_function_is_left_alone(db_url: str) -> None:
    """A newer release fixed pgcheckpoint_gc (revision + 1); this release, still
    running beside it, neither reverts it nor fails, and its prune still works."""
    gc = next(r for r in rt.all_routines() if r.name == "pgcheckpoint_gc")
    text = gc.text.replace(f"revision {gc.revision}", f"revision {gc.revision + 1}", 1)
    text = text.replace("BEGIN\n", "BEGIN\n    -- the newer release's fix\n", 1)
    newer = Routine(gc.name, gc.revision + 1, text)
    with (
        newer_release(future(OLD_LATEST)),
        newer_routines(newer),
        PostgresSaver.from_conn_string(db_url) as saver,
    ):
        saver.setup()
    assert "the newer release's fix" in _gc_body(db_url)
    with PostgresSaver.from_conn_string(db_url) as saver:
        saver.setup()
        config: Any = {"configurable": {"thread_id": "t", "checkpoint_ns": ""}}
        from langgraph.checkpoint.base import empty_checkpoint

        for _ in range(3):
            config = saver.put(config, empty_checkpoint(), {}, {})
        saver.prune(["t"], strategy="keep_latest")
        assert len(list(saver.list({"configurable": {"thread_id": "t"}}))) == 1
    assert "the newer release's fix" in _gc_body(db_url)


def test_the_release_before_function_files_carries_on(
    db_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    """A process of the release whose newest migration is 0008 (functions only in
    migrations) meets this release's schema: 0009 declares it compatible, so its
    setup() carries on without touching any function, and its health check is ok."""
    before = _gc_body(db_url)
    shipped = mig.all_migrations()
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(mig, "all_migrations", lambda: shipped[:8])
        mp.setattr(rt, "all_routines", lambda: ())
        with (
            caplog.at_level(logging.WARNING, logger="pgcheckpoint"),
            PostgresSaver.from_conn_string(db_url) as saver,
        ):
            saver.setup()
            report = saver.health_check()
    assert "0009" in caplog.text or "9 (functions)" in caplog.text
    assert report.ok
    assert _gc_body(db_url) == before


def test_a_function_this_release_calls_missing_says_to_run_setup(db_url: str) -> None:
    """Code newer than its schema (a rolling upgrade before setup() ran): a call of a
    function the database lacks raises SchemaError naming it and telling to run
    setup(), changes nothing, and setup() brings it back (on Citus:
    tests/test_citus.py, pgcheckpoint_put)."""
    with PostgresSaver.from_conn_string(db_url) as saver:
        saver.setup()
        thread: Any = {"configurable": {"thread_id": "t", "checkpoint_ns": ""}}
        head = thread
        for _ in range(2):
            head = saver.put(head, empty_checkpoint(), {}, {})
        with psycopg.connect(db_url, autocommit=True) as conn:
            conn.execute("DROP FUNCTION pgcheckpoint_prune_thread(text)")
        missing = r"no function \S*pgcheckpoint_prune_thread.*run setup\(\)"
        with pytest.raises(SchemaError, match=missing):
            saver.prune(["t"])
        assert len(list(saver.list(thread))) == 2
        saver.setup()
        saver.prune(["t"])
        assert len(list(saver.list(thread))) == 1


def test_a_function_older_than_its_file_is_reported_until_setup(db_url: str) -> None:
    """A database whose pgcheckpoint_gc records an older revision than this
    release's file (a release upgraded without setup()): health_check warns and
    names it, `migrate status` shows it, and setup() brings it current."""
    with PostgresSaver.from_conn_string(db_url) as saver:
        saver.setup()
        assert saver.health_check().stale_functions == ()
        assert not [f for f in saver.function_report() if f.stale]
        with psycopg.connect(db_url, autocommit=True) as conn:
            conn.execute(
                "COMMENT ON FUNCTION pgcheckpoint_gc(text[]) IS "
                f"'pgcheckpoint revision 0 sha256 {'0' * 64}'"
            )
        report = saver.health_check()
        assert report.ok  # the old definition keeps working meanwhile
        assert report.stale_functions == ("pgcheckpoint_gc",)
        gc = next(r for r in rt.all_routines() if r.name == "pgcheckpoint_gc")
        older = f"pgcheckpoint_gc is at revision 0, older than this release's {gc.revision}"
        assert any(older in w for w in report.warnings)
        states = {f.name: f for f in saver.function_report()}
        assert states["pgcheckpoint_gc"].state == "older"
        assert states["pgcheckpoint_gc"].recorded == 0
        assert all(f.state == "current" for n, f in states.items() if n != "pgcheckpoint_gc")
        status = _cli(db_url, "migrate", "status")
        assert status.returncode == 0, status.stderr
        assert older in " ".join(status.stdout.split())
        saver.setup()
        assert saver.health_check().stale_functions == ()
    assert "all at this release's revision" in _cli(db_url, "migrate", "status").stdout
