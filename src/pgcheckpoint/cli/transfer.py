"""``import sqlite|official|ndjson`` and ``export``, with rich progress bars."""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from ._app import common_options, console, emit, handle_errors, open_saver, parse_filter
from ._output import escape

if TYPE_CHECKING:
    # Imported where used: the importers pull in LangGraph, rich.progress is slow to
    # import; `pgcheckpoint --help` needs neither.
    from rich.console import Console

    from ..importers import ImportReport, ThreadResult


class _Bar:
    """A progress bar on stderr counting threads done and the checkpoints they held."""

    def __init__(self, label: str, disable: bool) -> None:
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress,
            TextColumn,
            TimeElapsedColumn,
        )

        self.progress = Progress(
            TextColumn(label),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("{task.fields[checkpoints]:,}{task.fields[of]} checkpoints"),
            TimeElapsedColumn(),
            console=console(stderr=True),
            disable=disable,
        )
        self.task = self.progress.add_task(label, total=None, checkpoints=0, of="")
        self.checkpoints = 0

    def start(self, threads: int, checkpoints: int | None = None) -> None:
        """The totals, once known (``checkpoints`` too when the source can tell)."""
        of = "" if checkpoints is None else f"/{checkpoints:,}"
        self.progress.update(self.task, total=threads, of=of)

    def thread_done(self, checkpoints: int) -> None:
        self.checkpoints += checkpoints
        self.progress.update(self.task, advance=1, checkpoints=self.checkpoints)


@contextmanager
def _progress(
    label: str, quiet: bool
) -> Iterator[tuple[Callable[[int], None], Callable[[ThreadResult], None]]]:
    """An importer's on_start/on_thread callbacks drawing a :class:`_Bar`."""
    bar = _Bar(label, quiet)
    with bar.progress:
        yield bar.start, lambda result: bar.thread_done(result.checkpoints)


def _report(as_json: bool, report: ImportReport) -> None:
    def render(out: Console) -> None:
        from rich.table import Table

        table = Table(show_header=False, title="import report")
        for key, value in report.as_dict().items():
            if key != "left_out":
                table.add_row(
                    key,
                    f"{value:,}"
                    if isinstance(value, int) and not isinstance(value, bool)
                    else str(value),
                )
        out.print(table)
        for item in report.left_out:
            out.print(f"[yellow]left out: {escape(item)}")

    emit(as_json, report.as_dict(), render)


def _import_options(func: Any) -> Any:
    func = click.option(
        "--no-verify", is_flag=True, help="Skip reading every checkpoint back to compare it."
    )(func)
    func = click.option("--quiet", "-q", is_flag=True, help="No progress bar.")(func)
    return func


@click.group("import")
def import_() -> None:
    """Import checkpoints from another store (resumable: run again to finish).

    \b
    Example:
        pgcheckpoint import sqlite checkpoints.sqlite
    """


@import_.command("sqlite")
@click.argument("path", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@_import_options
@common_options
@handle_errors
def import_sqlite_cmd(
    dsn: str | None, schema: str, as_json: bool, path: Path, no_verify: bool, quiet: bool
) -> None:
    """Import a langgraph-checkpoint-sqlite database file, verifying every checkpoint.

    \b
    Example:
        pgcheckpoint import sqlite ./checkpoints.sqlite --dsn postgresql://localhost/app
    """
    from ..importers import import_sqlite

    with open_saver(dsn, schema) as saver, _progress("importing", quiet) as (start, step):
        saver.setup()
        report = import_sqlite(saver, path, verify=not no_verify, on_start=start, on_thread=step)
    _report(as_json, report)


@import_.command("official")
@click.argument("source_dsn", metavar="SOURCE_DSN")
@click.option(
    "--source-schema",
    default="public",
    show_default=True,
    help="Schema of the official tables in the source database.",
)
@_import_options
@common_options
@handle_errors
def import_official_cmd(
    dsn: str | None,
    schema: str,
    as_json: bool,
    source_dsn: str,
    source_schema: str,
    no_verify: bool,
    quiet: bool,
) -> None:
    """Import the tables of the official langgraph-checkpoint-postgres saver.

    SOURCE_DSN may be the target database itself.

    \b
    Example:
        pgcheckpoint import official postgresql://localhost/old_app --dsn postgresql://localhost/app
    """
    from ..importers import import_official

    with open_saver(dsn, schema) as saver, _progress("importing", quiet) as (start, step):
        saver.setup()
        report = import_official(
            saver,
            source_dsn,
            schema=source_schema,
            verify=not no_verify,
            on_start=start,
            on_thread=step,
        )
    _report(as_json, report)


@import_.command("ndjson")
@click.argument("path", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option(
    "--partial",
    is_flag=True,
    help="Accept a file without its trailer (cut short): import its complete threads "
    "only and list what was left out.",
)
@_import_options
@common_options
@handle_errors
def import_ndjson_cmd(
    dsn: str | None,
    schema: str,
    as_json: bool,
    path: Path,
    partial: bool,
    no_verify: bool,
    quiet: bool,
) -> None:
    """Import a file written by `pgcheckpoint export`, checked whole before anything is
    written: a file without a valid trailer, or whose digest or counts do not match, is
    refused. Rows already stored identically are skipped; a different stored row stops
    the import (it never replaces one).

    \b
    Example:
        pgcheckpoint import ndjson backup.ndjson
        pgcheckpoint import ndjson cut-short.ndjson --partial
    """
    from ..transfer import import_ndjson

    with open_saver(dsn, schema) as saver, _progress("importing", quiet) as (start, step):
        saver.setup()
        report = import_ndjson(
            saver, path, verify=not no_verify, partial=partial, on_start=start, on_thread=step
        )
    _report(as_json, report)


@click.command()
@click.option(
    "--thread",
    "thread_ids",
    multiple=True,
    metavar="THREAD_ID",
    help="Export this thread (repeatable). Default: all threads.",
)
@click.option(
    "--filter",
    "filter_",
    metavar="JSON",
    help="Only threads whose latest metadata contains this JSON object.",
)
@click.option(
    "--output",
    "-o",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Write to this file (default: stdout).",
)
@click.option("--quiet", "-q", is_flag=True, help="No progress bar.")
@click.option("--decrypt", is_flag=True,
              help="Write encrypted threads in clear (needs $PGCHECKPOINT_KEYS).")
@common_options
@handle_errors
def export(
    dsn: str | None,
    schema: str,
    as_json: bool,
    thread_ids: tuple[str, ...],
    filter_: str | None,
    output: Path | None,
    quiet: bool,
    decrypt: bool,
) -> None:
    """Export threads as NDJSON that proves itself: a trailer with per-thread counts and a
    SHA-256 that `import ndjson` checks. With -o the file appears only once complete.

    \b
    Example:
        pgcheckpoint export --filter '{"user": "alice"}' -o alice.ndjson
        pgcheckpoint export --thread user-42 > user-42.ndjson
    """
    from ..transfer import export_file, export_ndjson

    bar = _Bar("exporting", quiet or output is None)
    options: dict[str, Any] = {
        "thread_ids": thread_ids or None,
        "filter": parse_filter(filter_),
        "on_start": bar.start,
        "on_thread": lambda _tid, n: bar.thread_done(n),
        "decrypt": decrypt,
    }
    with open_saver(dsn, schema) as saver, bar.progress:
        if output is not None:
            report = export_file(saver, output, **options)
        else:
            report = export_ndjson(saver, sys.stdout, **options)
    if output is not None:
        emit(
            as_json,
            report.as_dict(),
            lambda c: c.print(
                f"exported {report.threads} thread(s), {report.checkpoints} checkpoint(s) "
                f"to {escape(str(output))} (sha256 {report.sha256})"
            ),
        )


def register(group: click.Group) -> None:
    group.add_command(import_)
    group.add_command(export)
