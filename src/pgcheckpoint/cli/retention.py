"""``cleanup``, ``schedule-cleanup``, ``unschedule-cleanup``, ``size`` (alias ``stats``)
and ``optimize``: retention and maintenance.

Each opens a saver and calls one library method: ``cleanup_old_checkpoints``,
``schedule_cleanup``, ``unschedule_cleanup``, ``storage_report``, ``optimize``.
``cleanup`` is what a system cron job or a Kubernetes CronJob runs on a schedule;
``schedule-cleanup`` has pg_cron run the same sweep inside the server (see
docs/retention.md).
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from typing import Any, TypeVar

import click
from rich.console import Console
from rich.table import Table

from ..retention import RetentionPolicy
from ..sweeper import DEFAULT_CRON_JOB
from ._app import common_options, emit, handle_errors, open_saver

F = TypeVar("F", bound=Callable[..., Any])


def _policy(
    keep_last: int | None, max_age_days: float | None, ttl_days: float | None
) -> RetentionPolicy:
    if keep_last is None and max_age_days is None and ttl_days is None:
        return RetentionPolicy.from_env()
    return RetentionPolicy(
        keep_last=keep_last,
        max_age=None if max_age_days is None else timedelta(days=max_age_days),
        thread_ttl=None if ttl_days is None else timedelta(days=ttl_days),
    )


def policy_options(func: F) -> F:
    """--keep-last, --max-age-days, --thread-ttl-days and --batch-size."""
    options = [
        click.option("--keep-last", type=click.IntRange(min=1),
                     help="Keep the newest N checkpoints of each thread and namespace."),
        click.option("--max-age-days", type=click.FloatRange(min=0, min_open=True),
                     help="Remove checkpoints older than this many days."),
        click.option("--thread-ttl-days", type=click.FloatRange(min=0, min_open=True),
                     help="Remove whole threads idle for longer than this many days."),
        click.option("--batch-size", type=click.IntRange(min=1), default=100,
                     show_default=True, help="Threads per transaction."),
    ]
    for option in reversed(options):
        func = option(func)
    return func


@click.command()
@common_options
@policy_options
@click.option("--dry-run", is_flag=True, help="Report what would be removed; remove nothing.")
@handle_errors
def cleanup(
    dsn: str | None,
    schema: str,
    as_json: bool,
    keep_last: int | None,
    max_age_days: float | None,
    thread_ttl_days: float | None,
    batch_size: int,
    dry_run: bool,
) -> None:
    """Apply retention policies now (per-thread policies and pins are honoured).

    Without policy options, the default policy comes from CHECKPOINT_MAX_VERSIONS and
    CHECKPOINT_RETENTION_DAYS. If another process is already sweeping, this one skips.

    \b
    Example:
        pgcheckpoint cleanup --keep-last 20 --thread-ttl-days 30 --dry-run
    """
    policy = _policy(keep_last, max_age_days, thread_ttl_days)
    with open_saver(dsn, schema) as saver:
        saver.retention = policy
        report = saver.cleanup_old_checkpoints(dry_run=dry_run, batch_size=batch_size)

    def render(out: Console) -> None:
        if report.skipped:
            out.print("[yellow]another sweeper is running on this schema; skipped")
            return
        verb = "would remove" if dry_run else "removed"
        out.print(
            f"{verb}: {report.checkpoints_deleted:,} checkpoints, {report.threads_deleted:,} "
            f"threads, {report.writes_deleted:,} writes, {report.blobs_deleted:,} blobs, "
            f"{report.chunks_deleted:,} chunks ({report.bytes_freed:,} bytes) "
            f"in {report.threads_scanned:,} threads"
        )

    emit(as_json, report, render)


@click.command("schedule-cleanup")
@common_options
@click.argument("schedule")
@policy_options
@click.option("--name", default=DEFAULT_CRON_JOB, show_default=True,
              help="The pg_cron job's name; a job of that name is replaced.")
@handle_errors
def schedule_cleanup(
    dsn: str | None,
    schema: str,
    as_json: bool,
    schedule: str,
    keep_last: int | None,
    max_age_days: float | None,
    thread_ttl_days: float | None,
    batch_size: int,
    name: str,
) -> None:
    """Have pg_cron run the sweep inside PostgreSQL on SCHEDULE (a cron expression).

    The job CALLs pgcheckpoint_sweep with the policy given here (or, without policy
    options, CHECKPOINT_MAX_VERSIONS / CHECKPOINT_RETENTION_DAYS); per-thread policies
    and pins are honoured as by `cleanup`. Needs the pg_cron extension in this database.

    \b
    Example:
        pgcheckpoint schedule-cleanup '*/15 * * * *' --keep-last 20 --thread-ttl-days 90
    """
    policy = _policy(keep_last, max_age_days, thread_ttl_days)
    with open_saver(dsn, schema) as saver:
        saver.retention = policy
        job = saver.schedule_cleanup(schedule, name=name, batch_size=batch_size)
    emit(as_json, job, lambda out: out.print(
        f"pg_cron job {job.job_id} {job.name!r} runs {job.schedule!r}: {job.command}"))


@click.command("unschedule-cleanup")
@common_options
@click.option("--name", default=DEFAULT_CRON_JOB, show_default=True,
              help="The pg_cron job's name.")
@handle_errors
def unschedule_cleanup(dsn: str | None, schema: str, as_json: bool, name: str) -> None:
    """Remove the pg_cron job that `schedule-cleanup` made.

    \b
    Example:
        pgcheckpoint unschedule-cleanup
    """
    with open_saver(dsn, schema) as saver:
        saver.unschedule_cleanup(name=name)
    emit(as_json, {"unscheduled": name}, lambda out: out.print(f"removed pg_cron job {name!r}"))


@click.command()
@common_options
@click.option("--top", type=click.IntRange(min=0), default=10, show_default=True,
              help="How many of the fattest threads to list.")
@handle_errors
def size(dsn: str | None, schema: str, as_json: bool, top: int) -> None:
    """Bytes per table (heap, TOAST, indexes) and the fattest threads.

    \b
    Example:
        pgcheckpoint size --top 5
    """
    with open_saver(dsn, schema) as saver:
        report = saver.storage_report(top=top)

    def render(out: Console) -> None:
        tables = Table("table", "rows (est.)", "heap", "toast", "indexes", "total",
                       title=f"schema {schema!r}")
        for t in report.tables:
            tables.add_row(t.name, f"{t.rows_estimate:,}", f"{t.heap:,}", f"{t.toast:,}",
                           f"{t.indexes:,}", f"{t.total:,}")
        tables.add_row("total", "", "", "", "", f"{report.total_bytes:,}")
        out.print(tables)
        fat = Table("thread", "checkpoints", "bytes",
                    title=f"fattest of {report.thread_count:,} threads")
        for th in report.threads:
            fat.add_row(th.thread_id, f"{th.checkpoints:,}", f"{th.bytes:,}")
        out.print(fat)

    emit(as_json, {"total_bytes": report.total_bytes, "tables": report.tables,
                   "threads": report.threads, "thread_count": report.thread_count}, render)


@click.command()
@common_options
@click.option("--full", is_flag=True,
              help="VACUUM FULL: give space back to the OS (locks each table while rewriting it).")
@handle_errors
def optimize(dsn: str | None, schema: str, as_json: bool, full: bool) -> None:
    """VACUUM (ANALYZE) pgcheckpoint's tables, outside any transaction.

    \b
    Example:
        pgcheckpoint optimize
    """
    with open_saver(dsn, schema) as saver:
        saver.optimize(full=full)
    emit(as_json, {"vacuumed": True, "full": full},
         lambda out: out.print("vacuumed" + (" (full)" if full else "")))


def register(group: click.Group) -> None:
    """Add ``cleanup``, ``schedule-cleanup``, ``unschedule-cleanup``, ``size``, ``stats``
    (an alias of ``size``) and ``optimize``."""
    group.add_command(cleanup)
    group.add_command(schedule_cleanup)
    group.add_command(unschedule_cleanup)
    group.add_command(size)
    group.add_command(size, name="stats")
    group.add_command(optimize)
