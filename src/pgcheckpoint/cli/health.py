"""``health``: the saver's health check as a probe (exit status) or a report."""

from __future__ import annotations

from typing import TYPE_CHECKING

import click

from ._app import common_options, emit, handle_errors, open_saver
from ._output import text

if TYPE_CHECKING:
    from rich.console import Console


@click.command()
@common_options
@handle_errors
def health(dsn: str | None, schema: str, as_json: bool) -> None:
    """Check the database a saver would use: reachable, schema applied and current,
    durable settings, standby or primary. Exit status 0 when healthy, 1 when not, so
    it can serve as a liveness or readiness probe.

    \b
    Example:
        pgcheckpoint health
        pgcheckpoint health --json || alert "checkpoint store down"
    """
    with open_saver(dsn, schema) as saver:
        report = saver.health_check()

    def render(out: Console) -> None:
        from rich.table import Table

        status = "[green]healthy[/]" if report.ok else "[red]unhealthy[/]"
        out.print(f"{status} (schema {text(repr(schema), newlines=False).markup})")
        table = Table(show_header=False, box=None, padding=(0, 1))
        table.add_column(style="bold", no_wrap=True)
        table.add_column(overflow="fold")
        rows = [
            ("latency", f"{report.latency_seconds * 1000:.1f} ms"),
            ("server", report.server_version or "-"),
            ("schema version", f"{report.schema_version} (this library: "
                               f"{report.latest_schema_version})"),
            ("standby", "-" if report.in_recovery is None else str(report.in_recovery).lower()),
            ("durable", "-" if report.durable is None else str(report.durable).lower()),
        ]
        if report.error:
            rows.append(("error", report.error))
        for name, value in rows:
            table.add_row(name, text(value))
        out.print(table)
        for warning in report.warnings:
            out.print(text(f"warning: {warning}", "yellow"))

    emit(as_json, report, render)
    if not report.ok:
        raise click.exceptions.Exit(1)


def register(group: click.Group) -> None:
    group.add_command(health)
