"""``setup`` and ``migrate``: create and upgrade the schema."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import click

from ._app import common_options, emit, handle_errors, open_saver
from ._output import text

if TYPE_CHECKING:
    from rich.console import Console

    from ..migrations import MigrationState

# ..migrations (psycopg) and rich are imported when a command runs: `--help` stays fast.


@click.command()
@click.option(
    "--distributed/--no-distributed",
    default=None,
    help="On a Citus coordinator, distribute the tables by thread id (docs/scaling.md). "
    "Default: when the citus extension is installed. --distributed fails without it.",
)
@common_options
@handle_errors
def setup(dsn: str | None, schema: str, as_json: bool, distributed: bool | None) -> None:
    """Create or upgrade pgcheckpoint's tables (idempotent, safe to run concurrently).

    A database already migrated by a newer pgcheckpoint is left alone when its newer
    migrations declare this release compatible (exit 0, saying so); otherwise this
    fails and says which migration needs a newer release (docs/migrations.md).

    \b
    Example:
        pgcheckpoint setup --dsn postgresql://localhost/app
        pgcheckpoint setup --distributed --dsn postgresql://coordinator/app
    """
    with open_saver(dsn, schema) as saver:
        before = set(saver.migration_status())
        saver.setup(distributed="auto" if distributed is None else distributed)
        report = saver.migration_report()
    applied = sorted({m.version for m in report if m.applied} - before)
    newer = [m for m in report if not m.known]

    def render(out: Console) -> None:
        from ..migrations import latest_version

        if applied:
            out.print(f"[green]applied migrations {', '.join(map(str, applied))}[/] to {schema!r}")
        elif newer:
            out.print(
                f"schema {schema!r} has migration(s) "
                f"{', '.join(str(m.version) for m in newer)} from a newer pgcheckpoint "
                f"(this one knows up to {latest_version()}); they declare this release "
                "compatible, nothing to do",
                markup=False,
            )
        else:
            out.print(f"schema {schema!r} is up to date")

    emit(
        as_json,
        {"schema": schema, "applied": applied, "newer": [m.version for m in newer]},
        render,
    )


@click.group()
def migrate() -> None:
    """Inspect and apply schema migrations.

    \b
    Example:
        pgcheckpoint migrate status
        pgcheckpoint migrate apply --print-sql > upgrade.sql
    """


def _status_rows(report: list[MigrationState]) -> list[dict[str, Any]]:
    return [
        {
            "version": m.version,
            "name": m.name,
            "applied": m.applied,
            "known": m.known,
            "checksum_ok": (m.checksum_ok is not False) if m.known else None,
            "compatible_with": m.compatible_with,
            "usable": m.usable,
            "applied_at": m.applied_at,
        }
        for m in report
    ]


@migrate.command()
@common_options
@handle_errors
def status(dsn: str | None, schema: str, as_json: bool) -> None:
    """Show every migration: those this release ships, applied or not, and those a
    newer release applied ("unknown"), with whether this release works with them;
    then the SQL functions whose definition is not this release's (an older
    revision, changed or missing: `setup` applies them). With --json, the
    migrations only (`pgcheckpoint health --json` lists the functions too).

    \b
    Example:
        pgcheckpoint migrate status --json
    """
    with open_saver(dsn, schema) as saver:
        rows = _status_rows(saver.migration_report())
        set_up = any(r["applied"] for r in rows)
        stale = [f for f in saver.function_report() if f.stale] if set_up else []

    def render(out: Console) -> None:
        from rich.table import Table

        from ._output import escape

        table = Table(
            "version", "name", "applied", "checksum", "compatible with", title=f"schema {schema!r}"
        )
        for r in rows:
            compat = "-" if r["compatible_with"] is None else str(r["compatible_with"])
            if not r["known"]:
                compat += " [green](usable)" if r["usable"] else " [red](needs a newer release)"
            table.add_row(
                str(r["version"]),
                escape(r["name"]) + ("" if r["known"] else " [yellow](unknown: newer release)"),
                "yes" if r["applied"] else "[yellow]no",
                "-" if not r["known"] else ("ok" if r["checksum_ok"] else "[red]changed"),
                compat,
            )
        out.print(table)
        if set_up:
            for f in stale:
                out.print(text(f"{f.describe()}: run `pgcheckpoint setup`", "yellow"))
            if not stale:
                out.print("SQL functions: all at this release's revision")

    emit(as_json, rows, render)


@migrate.command()
@click.option(
    "--print-sql",
    is_flag=True,
    help="Print the SQL of the pending migrations instead of applying them.",
)
@click.option(
    "--distributed",
    is_flag=True,
    help="With --print-sql: add the Citus steps setup() runs on a coordinator "
    "(distribute the tables and functions; docs/scaling.md).",
)
@common_options
@handle_errors
def apply(dsn: str | None, schema: str, as_json: bool, print_sql: bool, distributed: bool) -> None:
    """Apply pending migrations, or print their SQL for a DBA with --print-sql.

    \b
    Example:
        pgcheckpoint migrate apply
        pgcheckpoint migrate apply --print-sql | psql "$DATABASE_URL"
        pgcheckpoint migrate apply --print-sql --distributed | psql "$COORDINATOR_URL"
    """
    if distributed and not print_sql:
        raise click.UsageError("--distributed goes with --print-sql (setup() distributes itself)")
    with open_saver(dsn, schema) as saver:
        applied = saver.migration_status()
        if print_sql:
            from ..migrations import render_pending

            click.echo(render_pending(schema, applied), nl=False)
            if distributed:
                from ..distribution import render_sql

                click.echo(render_sql(schema), nl=False)
            return
        saver.setup()
        done = sorted(set(saver.migration_status()) - set(applied))
    emit(
        as_json,
        {"schema": schema, "applied": done},
        lambda out: out.print(f"applied: {done or 'nothing (up to date)'}"),
    )


def register(group: click.Group) -> None:
    group.add_command(setup)
    group.add_command(migrate)
