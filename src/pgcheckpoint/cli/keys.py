"""``keys generate|status|rotate`` and ``encrypt``: encryption keys and rotation.

Keys come only from ``$PGCHECKPOINT_KEYS`` (``id:base64url,...``, the first one
encrypts), never from an option, so they stay out of shell history and process
lists. ``keys generate`` prints one new key (the only command that prints key
material, and only to stdout); every other command names key ids only.
Each is a thin skin over :mod:`pgcheckpoint.rotation` (docs/encryption.md).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING

import click

from ._app import common_options, emit, handle_errors, open_saver

if TYPE_CHECKING:
    from rich.console import Console

    from ..rotation import RotationReport


@click.group()
def keys() -> None:
    """Encryption keys: make one, see which rows each key holds, rotate to a new one.

    \b
    Example:
        export PGCHECKPOINT_KEYS="$(pgcheckpoint keys generate),$PGCHECKPOINT_KEYS"
        pgcheckpoint keys rotate
    """


@keys.command()
@click.option("--id", "key_id", default=None, metavar="ID",
              help="Key id (1-32 of A-Z a-z 0-9 _ . -) [default: today's date and time].")
def generate(key_id: str | None) -> None:
    """Print a new random key as id:base64url, the form $PGCHECKPOINT_KEYS holds.

    Put it first in $PGCHECKPOINT_KEYS to make it the key that encrypts; keep the
    older keys after it until `pgcheckpoint keys rotate` has moved every row.

    \b
    Example:
        pgcheckpoint keys generate --id 2026-12
    """
    from ..errors import ConfigurationError
    from ..keyring import KEY_ID, Keyring

    kid = key_id or dt.datetime.now(dt.timezone.utc).strftime("%Y%m%dT%H%M%S")
    if not KEY_ID.fullmatch(kid):
        raise click.BadParameter(
            str(ConfigurationError("a key id is 1 to 32 of A-Z a-z 0-9 _ . -")), param_hint="--id"
        )
    click.echo(f"{kid}:{Keyring.encode_key(Keyring.generate_key())}")


@keys.command()
@common_options
@handle_errors
def status(dsn: str | None, schema: str, as_json: bool) -> None:
    """Rows per key id of every stored column, and rows still in clear.

    \b
    Example:
        pgcheckpoint keys status --json
    """
    from ..keyring import Keyring
    from ..rotation import key_status

    ring = Keyring.from_env()
    with open_saver(dsn, schema) as saver:
        counts = key_status(saver)
    primary = ring.primary if ring else None
    key_ids = list(ring.key_ids) if ring else []
    data = {"primary": primary, "key_ids": key_ids, "columns": counts}

    def render(out: Console) -> None:
        from rich.markup import escape
        from rich.table import Table

        out.print(f"primary key: {escape(str(primary))}  "
                  f"keyring: {escape(', '.join(key_ids) or '(none)')}")
        table = Table("column", "key id", "rows")
        for column, per_key in sorted(counts.items()):
            for kid, n in sorted(per_key.items()):
                table.add_row(column, escape(kid), f"{n:,}")
        out.print(table)

    emit(as_json, data, render)


@contextmanager
def _bar(enabled: bool) -> Iterator[Callable[[str, int], None] | None]:
    if not enabled:
        yield None
        return
    from rich.progress import Progress, SpinnerColumn, TaskID, TextColumn

    progress = Progress(SpinnerColumn(), TextColumn("{task.description}: {task.completed:,} rows"),
                        transient=True)
    tasks: dict[str, TaskID] = {}

    def advance(table: str, n: int) -> None:
        if table not in tasks:
            tasks[table] = progress.add_task(table, total=None)
        progress.update(tasks[table], advance=n)

    with progress:
        yield advance


def _run(
    dsn: str | None, schema: str, as_json: bool, *, plaintext: bool, batch_size: int,
    dry_run: bool,
) -> None:
    from ..rotation import reencrypt

    with open_saver(dsn, schema) as saver, _bar(not as_json) as progress:
        report = reencrypt(saver, include_plaintext=plaintext, batch_size=batch_size,
                           dry_run=dry_run, progress=progress)
    emit(as_json, report.as_dict(), lambda out: _render(out, report))


def _render(out: Console, report: RotationReport) -> None:
    verb = "would re-encrypt" if report.dry_run else "re-encrypted"
    for table, n in report.resealed.items():
        skipped = report.skipped.get(table, 0)
        extra = f" ({skipped:,} rewritten by a writer meanwhile)" if skipped else ""
        out.print(f"{table:12s} {verb} {n:,} row(s){extra}")
    out.print(f"[green]done[/]: every value read is now under key {report.primary!r}"
              if not report.dry_run else "dry run: nothing was changed")


_batch = click.option("--batch-size", type=click.IntRange(min=1), default=500,
                      show_default=True, help="Rows per transaction.")
_dry = click.option("--dry-run", is_flag=True, help="Count the rows; change nothing.")


@keys.command()
@common_options
@_batch
@_dry
@handle_errors
def rotate(dsn: str | None, schema: str, as_json: bool, batch_size: int, dry_run: bool) -> None:
    """Re-encrypt under the primary key every value under another key.

    In batches, each a compare-and-swap, so agents may keep running; stopped, it
    resumes where it was when run again. Afterwards the older keys can be dropped
    from $PGCHECKPOINT_KEYS (check with `pgcheckpoint keys status`).

    \b
    Example:
        PGCHECKPOINT_KEYS="new:...,old:..." pgcheckpoint keys rotate
    """
    _run(dsn, schema, as_json, plaintext=False, batch_size=batch_size, dry_run=dry_run)


@click.command()
@common_options
@_batch
@_dry
@handle_errors
def encrypt(dsn: str | None, schema: str, as_json: bool, batch_size: int, dry_run: bool) -> None:
    """Encrypt a database written without a keyring (and re-encrypt rows under old keys).

    Resumable and safe while agents run; run the agents with
    allow_plaintext=True until it has finished (docs/encryption.md).

    \b
    Example:
        PGCHECKPOINT_KEYS="$(pgcheckpoint keys generate)" pgcheckpoint encrypt
    """
    _run(dsn, schema, as_json, plaintext=True, batch_size=batch_size, dry_run=dry_run)


def register(group: click.Group) -> None:
    group.add_command(keys)
    group.add_command(encrypt)
