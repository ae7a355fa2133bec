"""``setup`` and ``migrate``: create and upgrade the schema."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import click

from ._app import common_options, emit, handle_errors, open_saver

if TYPE_CHECKING:
    from rich.console import Console


@click.command()
@common_options
@handle_errors
def setup(dsn: str | None, schema: str, as_json: bool) -> None:
    """Create or upgrade pgcheckpoint's tables (idempotent, safe to run concurrently).

    \b
    Example:
        pgcheckpoint setup --dsn postgresql://localhost/app
    """
    with open_saver(dsn, schema) as saver:
        before = set(saver.migration_status())
        saver.setup()
        applied = sorted(set(saver.migration_status()) - before)

    def render(out: Console) -> None:
        if applied:
            out.print(f"[green]applied migrations {', '.join(map(str, applied))}[/] to {schema!r}")
        else:
            out.print(f"schema {schema!r} is up to date")

    emit(as_json, {"schema": schema, "applied": applied}, render)


@click.group()
def migrate() -> None:
    """Inspect and apply schema migrations.

    \b
    Example:
        pgcheckpoint migrate status
        pgcheckpoint migrate apply --print-sql > upgrade.sql
    """


def _status_rows(applied: dict[int, str]) -> list[dict[str, Any]]:
    from ..migrations import all_migrations  # psycopg: imported when a command runs

    return [
        {
            "version": m.version,
            "name": m.name,
            "applied": m.version in applied,
            "checksum_ok": applied.get(m.version, m.checksum) == m.checksum,
        }
        for m in all_migrations()
    ]


@migrate.command()
@common_options
@handle_errors
def status(dsn: str | None, schema: str, as_json: bool) -> None:
    """Show which migrations are applied.

    \b
    Example:
        pgcheckpoint migrate status --json
    """
    with open_saver(dsn, schema) as saver:
        rows = _status_rows(saver.migration_status())

    def render(out: Console) -> None:
        from rich.table import Table

        table = Table("version", "name", "applied", "checksum", title=f"schema {schema!r}")
        for r in rows:
            table.add_row(
                str(r["version"]),
                r["name"],
                "yes" if r["applied"] else "[yellow]no",
                "ok" if r["checksum_ok"] else "[red]changed",
            )
        out.print(table)

    emit(as_json, rows, render)


@migrate.command()
@click.option(
    "--print-sql",
    is_flag=True,
    help="Print the SQL of the pending migrations instead of applying them.",
)
@common_options
@handle_errors
def apply(dsn: str | None, schema: str, as_json: bool, print_sql: bool) -> None:
    """Apply pending migrations, or print their SQL for a DBA with --print-sql.

    \b
    Example:
        pgcheckpoint migrate apply
        pgcheckpoint migrate apply --print-sql | psql "$DATABASE_URL"
    """
    with open_saver(dsn, schema) as saver:
        applied = saver.migration_status()
        if print_sql:
            from ..migrations import render_pending

            click.echo(render_pending(schema, applied), nl=False)
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
