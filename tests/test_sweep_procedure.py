"""The sweep inside the database (sql/functions): CALL pgcheckpoint_sweep, and pg_cron.

The procedure is the one driver: the library's sweeper CALLs it too, so it
must remove exactly what the library's dry run reports, keep
what the policies keep, refuse bad arguments with the database unchanged, skip
while another sweeper holds the lock, and run unattended from pg_cron.
"""

from __future__ import annotations

import asyncio
import json
import time
from datetime import timedelta
from typing import Any

import psycopg
import pytest
from click.testing import CliRunner

import _cluster
from pgcheckpoint import (
    AsyncPostgresSaver,
    ConfigurationError,
    InvalidInputError,
    PostgresSaver,
    RetentionPolicy,
    StorageError,
)
from pgcheckpoint.cli import cli as pgcheckpoint_cli
from test_retention import cfg, counts, graph, ids, run, sql


def call(url: str, *args: Any) -> list[str]:
    """CALL pgcheckpoint_sweep(args...) on its own connection; the NOTICEs it raised."""
    notices: list[str] = []
    with psycopg.connect(url, autocommit=True) as conn:
        conn.add_notice_handler(lambda d: notices.append(d.message_primary or ""))
        marks = ", ".join(["%s"] * len(args))
        conn.execute(f"CALL pgcheckpoint_sweep({marks})", args)
    return notices


def test_procedure_removes_what_the_library_reports(db_url: str) -> None:
    with PostgresSaver.from_conn_string(db_url, max_versions=2) as saver:
        for t in range(5):
            run(saver, f"t{t}", 3)
        saver.set_thread_retention("t0", RetentionPolicy(keep_last=4))
        saver.pin_thread("t1")
        expected = saver.cleanup_old_checkpoints(dry_run=True)
        before = counts(db_url)
        notices = call(db_url, json.dumps({"keep_last": 2}), 2)
        after = counts(db_url)
        assert before["checkpoints"] - after["checkpoints"] == expected.checkpoints_deleted
        assert before["blobs"] - after["blobs"] == expected.blobs_deleted
        assert before["writes"] - after["writes"] == expected.writes_deleted
        assert notices and f'"checkpoints": {expected.checkpoints_deleted}' in notices[-1]
        assert len(ids(saver, "t0")) == 4  # its own policy
        assert len(ids(saver, "t1")) == 12  # pinned: untouched
        assert all(len(ids(saver, f"t{t}")) == 2 for t in (2, 3, 4))
        # Nothing left to do: the library's next sweep finds nothing.
        assert saver.cleanup_old_checkpoints().checkpoints_deleted == 0
        g = graph(saver)
        g.invoke({"msgs": ["again"]}, cfg("t2"))
        assert len(g.get_state(cfg("t2")).values["msgs"]) == 3 * 4


def test_procedure_dry_run_and_defaults_change_nothing(db_url: str) -> None:
    with PostgresSaver.from_conn_string(db_url) as saver:
        run(saver, "t", 3)
    before = counts(db_url)
    notices = call(db_url, json.dumps({"keep_last": 1}), 100, timedelta(hours=1), True)
    assert "dry run" in notices[-1] and '"checkpoints": 11' in notices[-1]
    assert counts(db_url) == before
    call(db_url)  # no policy: only orphans older than an hour, and there are none
    assert counts(db_url) == before


def test_procedure_thread_ttl(db_url: str) -> None:
    with PostgresSaver.from_conn_string(db_url) as saver:
        run(saver, "old", 1)
        run(saver, "new", 1)
    sql(db_url, "UPDATE threads SET updated_at = now() - interval '2 days' "
                "WHERE thread_id = 'old'")
    call(db_url, RetentionPolicy(thread_ttl=timedelta(days=1)).to_json())
    assert sql(db_url, "SELECT thread_id FROM threads ORDER BY 1") == [("new",)]
    assert sql(db_url, "SELECT count(*) FROM checkpoints WHERE thread_id = 'old'") == [(0,)]


def test_procedure_skips_while_another_sweeper_runs(db_url: str) -> None:
    with PostgresSaver.from_conn_string(db_url) as saver:
        run(saver, "t", 2)
    before = counts(db_url)
    with psycopg.connect(db_url, autocommit=True) as other:
        other.execute("SELECT pg_advisory_lock(pgcheckpoint_sweep_lock_key())")
        notices = call(db_url, json.dumps({"keep_last": 1}))
        assert "skipped" in notices[-1]
        assert counts(db_url) == before
        other.execute("SELECT pg_advisory_unlock(pgcheckpoint_sweep_lock_key())")
    call(db_url, json.dumps({"keep_last": 1}))
    assert counts(db_url)["checkpoints"] == 1


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("[1, 2]",), "policy must be a JSON object"),
        (("{}", 0), "batch size must be >= 1"),
        (("{}", 10, timedelta(hours=-1)), "orphan grace must be >= 0"),
    ],
)
def test_procedure_refuses_bad_arguments(db_url: str, args: tuple[Any, ...], message: str) -> None:
    with PostgresSaver.from_conn_string(db_url) as saver:
        run(saver, "t", 2)
    before = counts(db_url)
    with pytest.raises(psycopg.errors.InvalidParameterValue, match=message):
        call(db_url, *args)
    assert counts(db_url) == before
    # The lock was not left behind: a sweep runs.
    call(db_url, json.dumps({"keep_last": 1}))
    assert counts(db_url)["checkpoints"] == 1


def test_procedure_inside_a_transaction_is_refused(db_url: str) -> None:
    with PostgresSaver.from_conn_string(db_url) as saver:
        run(saver, "t", 2)
    before = counts(db_url)
    with psycopg.connect(db_url) as conn, pytest.raises(psycopg.Error, match="transaction"):
        conn.execute("CALL pgcheckpoint_sweep('{\"keep_last\": 1}')")
    assert counts(db_url) == before


# --- pg_cron --------------------------------------------------------------------


def test_schedule_cleanup_refuses_bad_input_and_a_database_without_pg_cron(db_url: str) -> None:
    with PostgresSaver.from_conn_string(db_url, max_versions=2) as saver:
        run(saver, "t", 1)
        before = counts(db_url)
        for bad in ("every minute", "* * *", "", 15):
            with pytest.raises(InvalidInputError, match="cron expression"):
                saver.schedule_cleanup(bad)  # type: ignore[arg-type]
        with pytest.raises(InvalidInputError, match="job name"):
            saver.schedule_cleanup("* * * * *", name=" ")
        with pytest.raises(InvalidInputError, match="batch_size"):
            saver.schedule_cleanup("* * * * *", batch_size=0)
        with pytest.raises(ConfigurationError, match="pg_cron is not installed"):
            saver.schedule_cleanup("*/5 * * * *")
        with pytest.raises(ConfigurationError, match="pg_cron is not installed"):
            saver.unschedule_cleanup()
        assert counts(db_url) == before
    out = CliRunner().invoke(pgcheckpoint_cli, ["schedule-cleanup", "--dsn", db_url, "@hourly"])
    assert out.exit_code == 1 and "pg_cron is not installed" in out.output

CRON_LIB = _cluster.BIN.parent / "lib" / "pg_cron.so"


@pytest.mark.slow
@pytest.mark.skipif(
    not (_cluster.available() and CRON_LIB.exists()),
    reason="needs PostgreSQL 15 server binaries and Debian's postgresql-15-cron "
    "(scripts/test.sh installs it as root)",
)
def test_pg_cron_runs_the_sweep_unattended() -> None:
    cluster = _cluster.Cluster.create(
        shared_preload_libraries="'pg_cron'",
        **{"cron.database_name": "'postgres'", "cron.use_background_workers": "on"},
        max_worker_processes="16",
    )
    try:
        cluster.start()
        url = cluster.url()
        with PostgresSaver.from_conn_string(url) as saver:
            saver.setup()
            for t in range(3):
                run(saver, f"t{t}", 3)
            saver.pin_thread("t0")
            with psycopg.connect(url, autocommit=True) as conn:
                conn.execute("CREATE EXTENSION pg_cron")
                jobs = "SELECT jobname, schedule, command FROM cron.job ORDER BY jobid"
                # pg_cron parses the fields itself: a bad one is refused, nothing scheduled.
                with pytest.raises(StorageError, match="invalid schedule"):
                    saver.schedule_cleanup("99 * * * *")
                assert conn.execute(jobs).fetchall() == []
                # pg_cron 1.4 (Debian 12) schedules by the minute: the job runs at
                # the next minute boundary, so this waits up to ~70 s.
                saver.retention = RetentionPolicy(keep_last=2)
                job = saver.schedule_cleanup("* * * * *")
                assert job.name == "pgcheckpoint-sweep" and job.schedule == "* * * * *"
                assert job.command == (
                    'CALL public.pgcheckpoint_sweep(\'{"keep_interrupted": true, "keep_last": 2, '
                    '"max_age": null, "thread_ttl": null}\'::jsonb, 100, \'01:00:00\'::interval)'
                )
                assert conn.execute(jobs).fetchall() == [(job.name, job.schedule, job.command)]
                deadline = time.monotonic() + 80
                status: list[tuple[Any, ...]] = []
                while time.monotonic() < deadline:
                    status = conn.execute(
                        "SELECT status, return_message FROM cron.job_run_details "
                        "WHERE status IN ('succeeded', 'failed')"
                    ).fetchall()
                    if status:
                        break
                    time.sleep(0.5)
                cli = CliRunner()
                gone = cli.invoke(pgcheckpoint_cli, ["unschedule-cleanup", "--dsn", url])
                assert gone.exit_code == 0, gone.output
                assert conn.execute(jobs).fetchall() == []
                again = cli.invoke(pgcheckpoint_cli, ["unschedule-cleanup", "--dsn", url])
                assert again.exit_code == 1 and "no pg_cron job named" in again.output
                made = cli.invoke(pgcheckpoint_cli, ["schedule-cleanup", "--dsn", url, "--json",
                                                     "--keep-last", "5", "--name", "nightly",
                                                     "0 3 * * *"])
                assert made.exit_code == 0, made.output
                assert '"keep_last": 5' in json.loads(made.stdout)["command"]

                async def async_api() -> None:
                    async with AsyncPostgresSaver.from_conn_string(url) as asaver:
                        await asaver.aschedule_cleanup("@daily", name="nightly")
                        await asaver.aunschedule_cleanup(name="nightly")

                asyncio.run(async_api())
                assert conn.execute(jobs).fetchall() == []
            assert status and status[0][0] == "succeeded", status
            assert len(ids(saver, "t0")) == 12  # pinned
            assert [len(ids(saver, f"t{t}")) for t in (1, 2)] == [2, 2]
            g = graph(saver)
            g.invoke({"msgs": ["again"]}, cfg("t1"))
            assert len(g.get_state(cfg("t1")).values["msgs"]) == 3 * 4
    finally:
        cluster.destroy()
