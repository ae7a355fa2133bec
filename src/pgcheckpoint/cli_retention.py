"""CLI commands for retention and maintenance: ``cleanup``, ``size`` (``stats``), ``optimize``.

A thin skin over the library: each command opens a :class:`PostgresSaver` and
calls one public method. They are plain click commands so the CLI package
(``pgcheckpoint.cli``) can add them to its group with :func:`register`; until
it exists they also run on their own (``python -m pgcheckpoint.cli_retention``).

``cleanup`` is what a system cron job, a Kubernetes CronJob or a pg_cron-less
scheduler runs (pg_cron can only run SQL; the policies are applied by the
library, see docs/retention.md).
"""

from __future__ import annotations

import json
from dataclasses import asdict
from datetime import timedelta
from typing import Any

import click

from .retention import RetentionPolicy
from .saver import PostgresSaver

_dsn = click.option(
    "--dsn",
    envvar="DATABASE_URL",
    default=None,
    help="Connection string (default: $DATABASE_URL).",
)
_schema = click.option("--schema", default="public", show_default=True, help="Schema name.")
_json = click.option("--json", "as_json", is_flag=True, help="Print JSON instead of text.")


def _policy(
    keep_last: int | None, max_age_days: float | None, ttl_days: float | None, from_env: bool
) -> RetentionPolicy:
    if from_env and keep_last is None and max_age_days is None and ttl_days is None:
        return RetentionPolicy.from_env()
    return RetentionPolicy(
        keep_last=keep_last,
        max_age=None if max_age_days is None else timedelta(days=max_age_days),
        thread_ttl=None if ttl_days is None else timedelta(days=ttl_days),
    )


def _print(data: dict[str, Any], as_json: bool) -> None:
    if as_json:
        click.echo(json.dumps(data, indent=2, default=str))
        return
    for key, value in data.items():
        click.echo(f"{key:22s} {value:,}" if isinstance(value, int) else f"{key:22s} {value}")


@click.command("cleanup")
@_dsn
@_schema
@click.option("--keep-last", type=click.IntRange(min=1), help="Keep the newest N per thread.")
@click.option("--max-age-days", type=click.FloatRange(min=0, min_open=True),
              help="Remove checkpoints older than this.")
@click.option("--thread-ttl-days", type=click.FloatRange(min=0, min_open=True),
              help="Remove threads idle for longer than this.")
@click.option("--dry-run", is_flag=True, help="Report what would be removed; remove nothing.")
@click.option("--batch-size", type=click.IntRange(min=1), default=100, show_default=True)
@_json
def cleanup(
    dsn: str | None,
    schema: str,
    keep_last: int | None,
    max_age_days: float | None,
    thread_ttl_days: float | None,
    dry_run: bool,
    batch_size: int,
    as_json: bool,
) -> None:
    """Apply retention policies (per-thread overrides included) now.

    Without policy options the saver's policy comes from CHECKPOINT_MAX_VERSIONS
    and CHECKPOINT_RETENTION_DAYS.

    Example: pgcheckpoint cleanup --keep-last 20 --thread-ttl-days 30 --dry-run
    """
    policy = _policy(keep_last, max_age_days, thread_ttl_days, from_env=True)
    with PostgresSaver.from_conn_string(dsn, schema=schema, retention=policy) as saver:
        report = saver.cleanup_old_checkpoints(dry_run=dry_run, batch_size=batch_size)
    _print(asdict(report), as_json)


@click.command("size")
@_dsn
@_schema
@click.option("--top", type=click.IntRange(min=0), default=10, show_default=True,
              help="How many of the fattest threads to list.")
@_json
def size(dsn: str | None, schema: str, top: int, as_json: bool) -> None:
    """Bytes per table (heap, TOAST, indexes) and the fattest threads.

    Example: pgcheckpoint size --top 5
    """
    with PostgresSaver.from_conn_string(dsn, schema=schema) as saver:
        report = saver.storage_report(top=top)
    if as_json:
        _print({**asdict(report), "total_bytes": report.total_bytes}, True)
        return
    click.echo(f"{'table':28s} {'rows~':>10} {'heap':>12} {'toast':>12} {'indexes':>12} "
               f"{'total':>12}")
    for t in report.tables:
        click.echo(f"{t.name:28s} {t.rows_estimate:>10,} {t.heap:>12,} {t.toast:>12,} "
                   f"{t.indexes:>12,} {t.total:>12,}")
    click.echo(f"{'total':28s} {'':>10} {'':>12} {'':>12} {'':>12} {report.total_bytes:>12,}")
    click.echo(f"\n{report.thread_count:,} threads; fattest:")
    for th in report.threads:
        click.echo(f"  {th.thread_id:40s} {th.checkpoints:>8,} checkpoints {th.bytes:>14,} bytes")


@click.command("optimize")
@_dsn
@_schema
@click.option("--full", is_flag=True,
              help="VACUUM FULL: return space to the OS (locks each table while rewriting it).")
def optimize(dsn: str | None, schema: str, full: bool) -> None:
    """VACUUM (ANALYZE) pgcheckpoint's tables.

    Example: pgcheckpoint optimize
    """
    with PostgresSaver.from_conn_string(dsn, schema=schema) as saver:
        saver.optimize(full=full)
    click.echo("vacuumed" + (" (full)" if full else ""))


COMMANDS = (cleanup, size, optimize)


def register(group: click.Group) -> None:
    """Add this module's commands to the CLI's group (``stats`` is an alias of ``size``)."""
    for command in COMMANDS:
        group.add_command(command)
    group.add_command(size, name="stats")


@click.group()
def main() -> None:
    """pgcheckpoint retention and maintenance commands."""


register(main)

if __name__ == "__main__":
    main()
