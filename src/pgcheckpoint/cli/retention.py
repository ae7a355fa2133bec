"""``cleanup``, ``schedule-cleanup``, ``unschedule-cleanup``, ``size`` (and ``stats``,
an alias of ``size``) and ``optimize``: retention and maintenance.

Each opens a saver and calls one library method: ``cleanup_old_checkpoints``,
``schedule_cleanup``, ``unschedule_cleanup``, ``storage_report``, ``optimize``.
``cleanup`` is what a system cron job or a Kubernetes CronJob runs on a schedule;
``schedule-cleanup`` has pg_cron run the same sweep inside the server (see
docs/retention.md).
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from typing import TYPE_CHECKING, Any, TypeVar

import click

from ..retention import DEFAULT_BATCH_SIZE, DEFAULT_CRON_JOB, RetentionPolicy
from ._app import common_options, console, emit, handle_errors, open_saver
from ._output import human_bytes, jsonable, text

if TYPE_CHECKING:
    from rich.console import Console

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
        click.option("--batch-size", type=click.IntRange(min=1), default=DEFAULT_BATCH_SIZE,
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
    CHECKPOINT_RETENTION_DAYS; with neither, it says so on stderr (with --json:
    "policy_given": false) and sweeps only threads that have a policy of their own.
    If another process is already sweeping, this one skips.

    \b
    Example:
        pgcheckpoint cleanup --keep-last 20 --thread-ttl-days 30 --dry-run
    """
    policy = _policy(keep_last, max_age_days, thread_ttl_days)
    if policy == RetentionPolicy() and not as_json:
        console(stderr=True).print(
            "[yellow]no retention policy given[/]: no --keep-last, --max-age-days or "
            "--thread-ttl-days, and CHECKPOINT_MAX_VERSIONS / CHECKPOINT_RETENTION_DAYS are "
            "unset; only threads with a policy of their own are swept"
        )
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
            f"{report.chunks_deleted:,} chunks ({human_bytes(report.bytes_freed)}) "
            f"in {report.threads_scanned:,} threads"
        )
        if report.bad_policy:
            shown = ", ".join(repr(t) for t in report.bad_policy_threads[:10])
            more = "..." if report.bad_policy > 10 else ""
            out.print(text(
                f"skipped {report.bad_policy:,} thread(s) whose stored retention policy is "
                f"invalid: {shown}{more} (set a valid one with set_thread_retention)", "yellow"))

    emit(as_json, {**jsonable(report), "policy_given": policy != RetentionPolicy()}, render)


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


def _size_command(name: str, help_text: str) -> click.Command:
    @click.command(name, help=help_text)
    @common_options
    @click.option("--top", type=click.IntRange(min=0), default=10, show_default=True,
                  help="How many of the fattest threads to list.")
    @handle_errors
    def size(dsn: str | None, schema: str, as_json: bool, top: int) -> None:
        with open_saver(dsn, schema) as saver:
            report = saver.storage_report(top=top)

        def render(out: Console) -> None:
            from rich.table import Table

            tables = Table("table", "rows", "heap", "toast", "indexes", "total",
                           title=text(f"schema {schema!r}", newlines=False))
            for t in report.tables:
                rows = f"{t.rows_estimate:,}" + ("" if t.rows_exact else " (est.)")
                tables.add_row(text(t.name), rows, human_bytes(t.heap), human_bytes(t.toast),
                               human_bytes(t.indexes), human_bytes(t.total))
            tables.add_row("total", "", "", "", "", human_bytes(report.total_bytes))
            out.print(tables)
            fat = Table("thread", "checkpoints", "stored",
                        title=f"fattest of {report.thread_count:,} threads")
            fat.columns[0].overflow = "fold"
            for th in report.threads:
                fat.add_row(text(th.thread_id), f"{th.checkpoints:,}", human_bytes(th.bytes))
            out.print(fat)

        emit(as_json, {"total_bytes": report.total_bytes, "tables": report.tables,
                       "threads": report.threads, "thread_count": report.thread_count}, render)

    return size


_SIZE_HELP = """Sizes per table (heap, TOAST, indexes) and the fattest threads.

Sizes are shown in KiB/MiB/GiB (--json gives bytes). Rows are PostgreSQL's estimate
(reltuples, marked "est.") once a table has been analyzed (autovacuum, `optimize`),
and an exact count(*) for a table never analyzed.

\b
Example:
    pgcheckpoint size --top 5
    pgcheckpoint size --json | jq .total_bytes
"""

size = _size_command("size", _SIZE_HELP)
stats = _size_command(
    "stats",
    """An alias of `size` (sizes per table and the fattest threads).

For one thread's counts and sizes, use `pgcheckpoint threads stats THREAD_ID`.

\b
Example:
    pgcheckpoint stats --top 3
""",
)


@click.command()
@common_options
@click.option("--full", is_flag=True,
              help="VACUUM FULL: give space back to the OS (locks each table while rewriting it).")
@handle_errors
def optimize(dsn: str | None, schema: str, as_json: bool, full: bool) -> None:
    """VACUUM (ANALYZE) pgcheckpoint's tables, outside any transaction.

    Tables this role may not vacuum (PostgreSQL requires the owner of the table or of
    the database, or a superuser) are listed as skipped, with the reason; the exit
    status is 1 when every table was skipped.

    \b
    Example:
        pgcheckpoint optimize
        pgcheckpoint optimize --full --json
    """
    with open_saver(dsn, schema) as saver:
        report = saver.optimize(full=full)

    def render(out: Console) -> None:
        verb = "VACUUM FULL, ANALYZE" if full else "VACUUM (ANALYZE)"
        if report.vacuumed:
            out.print(text(f"{verb}: {', '.join(report.vacuumed)}"))
        for table, reason in report.skipped:
            out.print(text(f"skipped {table}: {reason}", "yellow"))

    emit(as_json, {"vacuumed": report.vacuumed,
                   "skipped": [{"table": t, "reason": r} for t, r in report.skipped],
                   "full": full}, render)
    if not report.vacuumed:
        raise click.exceptions.Exit(1)


def register(group: click.Group) -> None:
    """Add ``cleanup``, ``schedule-cleanup``, ``unschedule-cleanup``, ``size``, ``stats``
    (an alias of ``size``) and ``optimize``."""
    group.add_command(cleanup)
    group.add_command(schedule_cleanup)
    group.add_command(unschedule_cleanup)
    group.add_command(size)
    group.add_command(stats)
    group.add_command(optimize)
