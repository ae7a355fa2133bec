"""The sweeper: dry runs, concurrency, orphans, background runs and the edges.

Real PostgreSQL, real LangGraph graphs: two sweepers at once do the work once,
a sweep during live graph runs loses nothing, a dry run matches the real run.
"""

from __future__ import annotations

import asyncio
import threading
import time
from datetime import timedelta
from typing import Any

import psycopg
import pytest
from langgraph.checkpoint.base import empty_checkpoint

from pgcheckpoint import AsyncPostgresSaver, PostgresSaver
from pgcheckpoint.retention import RetentionPolicy
from test_retention import cfg, counts, graph, ids, run, sql


def test_dry_run_matches_real_run_and_changes_nothing(db_url: str) -> None:
    with PostgresSaver.from_conn_string(db_url, max_versions=2) as saver:
        for t in range(5):
            run(saver, f"t{t}", 3)
        saver.put_writes(cfg("t0", "never-committed"), [("msgs", ["x"])], "task")
        sql(db_url, "UPDATE writes SET created_at = now() - interval '2 hours' "
                    "WHERE checkpoint_id = 'never-committed'")
        before = counts(db_url)
        dry = saver.cleanup_old_checkpoints(dry_run=True, batch_size=2)
        assert dry.dry_run and dry.checkpoints_deleted > 0 and dry.bytes_freed > 0
        assert counts(db_url) == before
        real = saver.cleanup_old_checkpoints(batch_size=2)
        assert real.counts() == dry.counts()
        assert real.batches == 3 and real.threads_scanned == 5
        after = counts(db_url)
        assert before["checkpoints"] - after["checkpoints"] == real.checkpoints_deleted
        assert before["writes"] - after["writes"] == real.writes_deleted
        assert before["blobs"] - after["blobs"] == real.blobs_deleted


def test_second_sweeper_skips_while_one_runs(db_url: str) -> None:
    with PostgresSaver.from_conn_string(db_url, max_versions=1) as saver:
        run(saver, "t", 2)
        with psycopg.connect(db_url, autocommit=True) as other:
            other.execute("SELECT pg_advisory_lock(pgcheckpoint_sweep_lock_key())")
            report = saver.cleanup_old_checkpoints()
            assert report.skipped and report.checkpoints_deleted == 0
            assert len(ids(saver, "t")) == 8
            # Released explicitly: a closed session's locks go only when its backend exits.
            other.execute("SELECT pg_advisory_unlock(pgcheckpoint_sweep_lock_key())")
        assert saver.cleanup_old_checkpoints().checkpoints_deleted == 7


def test_many_sweepers_at_once_do_the_work_once(db_url: str) -> None:
    with PostgresSaver.from_conn_string(db_url, max_versions=1) as saver:
        for t in range(20):
            run(saver, f"t{t}", 2)
        expected = saver.cleanup_old_checkpoints(dry_run=True)
        reports = []
        barrier = threading.Barrier(4)

        def sweep() -> None:
            with PostgresSaver.from_conn_string(db_url, max_versions=1) as s:
                barrier.wait()
                reports.append(s.cleanup_old_checkpoints(batch_size=3))

        workers = [threading.Thread(target=sweep) for _ in range(4)]
        for w in workers:
            w.start()
        for w in workers:
            w.join()
        assert sum(r.checkpoints_deleted for r in reports) == expected.checkpoints_deleted
        assert sum(r.blobs_deleted for r in reports) == expected.blobs_deleted
        assert all(len(ids(saver, f"t{t}")) == 1 for t in range(20))


def test_sweep_during_live_runs_loses_nothing(db_url: str) -> None:
    errors: list[BaseException] = []
    stop = threading.Event()
    with PostgresSaver.from_conn_string(db_url, max_versions=2) as saver:
        turns = 6

        def worker(n: int) -> None:
            try:
                run(saver, f"live{n}", turns)
            except BaseException as exc:
                errors.append(exc)

        def sweeper() -> None:
            while not stop.is_set():
                try:
                    saver.cleanup_old_checkpoints(batch_size=2)
                except BaseException as exc:
                    errors.append(exc)

        sweeping = threading.Thread(target=sweeper)
        sweeping.start()
        workers = [threading.Thread(target=worker, args=(n,)) for n in range(8)]
        for w in workers:
            w.start()
        for w in workers:
            w.join()
        stop.set()
        sweeping.join()
        assert errors == []
        g = graph(saver)
        for n in range(8):
            assert len(g.get_state(cfg(f"live{n}")).values["msgs"]) == 3 * turns
        saver.cleanup_old_checkpoints()
        for n in range(8):
            assert len(ids(saver, f"live{n}")) == 2
            assert len(g.get_state(cfg(f"live{n}")).values["msgs"]) == 3 * turns


def test_orphans_are_removed_after_the_grace_period(db_url: str) -> None:
    with PostgresSaver.from_conn_string(db_url) as saver:  # no policy: orphans only
        run(saver, "t", 1)
        saver.put_writes(cfg("t", "gone-1"), [("msgs", ["a"])], "task")
        saver.put_writes(cfg("nothread", "gone-2"), [("msgs", ["b"])], "task")
        saver.put_writes(cfg("t", "recent"), [("msgs", ["c"])], "task")
        sql(db_url, "UPDATE writes SET created_at = now() - interval '2 hours' "
                    "WHERE checkpoint_id IN ('gone-1', 'gone-2')")
        sql(db_url, "INSERT INTO blobs (thread_id, checkpoint_ns, channel, version, type, value) "
                    "VALUES ('t', '', 'msgs', 'orphan-version', 'msgpack', '\\x00')")
        sql(db_url, "INSERT INTO chunks (thread_id, hash, compressed, data) "
                    "VALUES ('t', '\\x0102', false, '\\x00')")
        before = counts(db_url)
        report = saver.cleanup_old_checkpoints()
        assert report.writes_deleted == 2
        assert report.blobs_deleted == 1 and report.chunks_deleted == 1
        assert report.checkpoints_deleted == 0
        after = counts(db_url)
        assert after["checkpoints"] == before["checkpoints"]
        assert sql(db_url, "SELECT checkpoint_id FROM writes WHERE checkpoint_id IN "
                           "('gone-1', 'gone-2', 'recent')") == [("recent",)]
        assert len(graph(saver).get_state(cfg("t")).values["msgs"]) == 3


def test_empty_thread_rows_go_but_settings_stay(db_url: str) -> None:
    with PostgresSaver.from_conn_string(db_url) as saver:
        saver.put(cfg("empty"), empty_checkpoint(), {}, {})
        saver.delete_for_runs([])  # no-op
        sql(db_url, "DELETE FROM checkpoints WHERE thread_id = 'empty'")
        saver.set_thread_retention("configured", RetentionPolicy(keep_last=1))
        sql(db_url, "UPDATE threads SET updated_at = now() - interval '2 hours'")
        report = saver.cleanup_old_checkpoints()
        assert report.threads_deleted == 1
        assert sql(db_url, "SELECT thread_id FROM threads") == [("configured",)]


def test_background_sweeper_thread(db_url: str) -> None:
    with PostgresSaver.from_conn_string(
        db_url, max_versions=1, auto_cleanup=True, cleanup_interval=0.1
    ) as saver:
        saver.setup()
        run(saver, "t", 2)
        sweeper = saver._sweeper
        assert sweeper is not None and sweeper.running
        deadline = time.monotonic() + 10
        # The stats are recorded when the sweep returns, a moment after its commit.
        while sweeper.stats.totals.checkpoints_deleted < 7 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert len(ids(saver, "t")) == 1
        assert sweeper.stats.runs >= 1 and sweeper.stats.totals.checkpoints_deleted == 7
    assert not sweeper.running
    with PostgresSaver.from_conn_string(db_url, cleanup_interval=timedelta(seconds=5)) as saver:
        assert saver._sweeper is None
        started = saver.start_sweeper()
        assert started.running and saver.start_sweeper() is started
        saver.stop_sweeper()
        assert not started.running


def test_auto_sweeper_runs_without_auto_cleanup(db_url: str) -> None:
    """Entering `auto_sweeper()` asks for a sweeper: it runs even with auto_cleanup off,
    and its counters are public (`sweeper_stats`), also after the block."""
    with PostgresSaver.from_conn_string(db_url, max_versions=1, cleanup_interval=0.1) as saver:
        run(saver, "t", 2)
        assert not saver.auto_cleanup and saver.sweeper_stats is None
        with saver.auto_sweeper():
            deadline = time.monotonic() + 10
            while time.monotonic() < deadline:
                stats = saver.sweeper_stats
                if stats is not None and stats.totals.checkpoints_deleted >= 7:
                    break
                time.sleep(0.05)
        stats = saver.sweeper_stats
        assert stats is not None and stats.runs >= 1 and stats.totals.checkpoints_deleted == 7
        assert len(ids(saver, "t")) == 1 and saver._sweeper is None
    with PostgresSaver.from_conn_string(
        db_url, auto_cleanup=True, cleanup_interval=timedelta(seconds=5)
    ) as saver:
        running = saver._sweeper
        with saver.auto_sweeper():  # nested in from_conn_string's: leaves it running
            pass
        assert running is not None and running.running and saver._sweeper is running


async def test_async_auto_sweeper_without_auto_cleanup(db_url: str) -> None:
    async with AsyncPostgresSaver.from_conn_string(db_url, cleanup_interval=0.05) as saver:
        assert saver.sweeper_stats is None
        async with saver.auto_sweeper():
            for _ in range(200):
                stats = saver.sweeper_stats
                if stats is not None and stats.runs:
                    break
                await asyncio.sleep(0.05)
        stats = saver.sweeper_stats
        assert stats is not None and stats.runs >= 1 and stats.errors == 0


async def test_background_sweeper_task_and_async_api(db_url: str) -> None:
    async with AsyncPostgresSaver.from_conn_string(
        db_url, retention=RetentionPolicy(keep_last=1), auto_cleanup=True, cleanup_interval=0.1
    ) as saver:
        await saver.setup()
        conf: Any = cfg("a")
        for i in range(3):
            cp = empty_checkpoint()
            cp["id"] = f"1ef0000{i}"
            conf = await saver.aput(conf, cp, {"step": i}, {})
        for _ in range(100):
            if len([c async for c in saver.alist(cfg("a"))]) == 1:
                break
            await asyncio.sleep(0.05)
        assert [c.checkpoint["id"] async for c in saver.alist(cfg("a"))] == ["1ef00002"]
        await saver.apin_thread("a")
        await saver.aset_thread_retention("a", RetentionPolicy(keep_last=2))
        assert await saver.aget_thread_retention("a") == RetentionPolicy(keep_last=2)
        await saver.aunpin_thread("a")
        await saver.apin_checkpoint(conf)
        await saver.aunpin_checkpoint(conf)
        assert (await saver.acleanup_old_checkpoints(dry_run=True)).checkpoints_deleted == 0
        report = await saver.astorage_report(top=1)
        assert report.thread_count == 1
        await saver.aoptimize()
        sweeper = saver._sweeper
        assert sweeper is not None and sweeper.running
    assert not sweeper.running


def test_from_env(db_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DATABASE_URL", db_url)
    monkeypatch.setenv("CHECKPOINT_MAX_VERSIONS", "4")
    monkeypatch.setenv("CHECKPOINT_RETENTION_DAYS", "7")
    monkeypatch.setenv("CHECKPOINT_AUTO_CLEANUP", "false")
    with PostgresSaver.from_env() as saver:
        assert saver.retention == RetentionPolicy(keep_last=4, max_age=timedelta(days=7))
        assert not saver.auto_cleanup
    with PostgresSaver.from_env(max_versions=2) as saver:
        assert saver.retention == RetentionPolicy(keep_last=2)


def test_cli_cleanup_size_optimize(db_url: str) -> None:
    """The path a cron job takes: `pgcheckpoint cleanup` (dry run, then real)."""
    import json

    from click.testing import CliRunner

    from pgcheckpoint.cli import cli as main

    with PostgresSaver.from_conn_string(db_url) as saver:
        run(saver, "t", 2)
    cli = CliRunner()
    dry = cli.invoke(main, ["cleanup", "--dsn", db_url, "--keep-last", "1", "--dry-run", "--json"])
    assert dry.exit_code == 0, dry.output
    assert json.loads(dry.stdout)["checkpoints_deleted"] == 7
    assert json.loads(dry.stdout)["dry_run"] is True
    real = cli.invoke(main, ["cleanup", "--dsn", db_url, "--keep-last", "1", "--json"])
    assert json.loads(real.stdout)["checkpoints_deleted"] == 7
    again = cli.invoke(main, ["cleanup", "--dsn", db_url, "--keep-last", "1"])
    assert again.exit_code == 0 and "removed: 0 checkpoints" in again.output
    out = cli.invoke(main, ["stats", "--dsn", db_url, "--top", "1"])
    assert out.exit_code == 0 and "checkpoints" in out.output and "t " in out.output
    assert cli.invoke(main, ["optimize", "--dsn", db_url]).exit_code == 0
    bad = cli.invoke(main, ["cleanup", "--dsn", db_url, "--keep-last", "0"])
    assert bad.exit_code == 2
