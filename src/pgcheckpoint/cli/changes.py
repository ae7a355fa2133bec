"""Commands that change a thread: ``rollback`` (a new head copying an earlier
state) and ``delete`` (a thread, or one leaf checkpoint). Checkpoint ids may be
given as unique prefixes, resolved as the reading commands in :mod:`.threads` do."""

from __future__ import annotations

import click

from ._app import common_options, current_target, emit, handle_errors, open_saver
from ._output import clean, text
from .threads import resolve_checkpoint


@click.command()
@click.argument("thread_id")
@click.argument("checkpoint_id")
@click.option("--ns", default="", help="Checkpoint namespace (default: root).")
@common_options
@handle_errors
def rollback(
    dsn: str | None, schema: str, as_json: bool, thread_id: str, checkpoint_id: str, ns: str
) -> None:
    """Make an earlier checkpoint's state the head again, as a new checkpoint (history
    kept). CHECKPOINT_ID may be a unique prefix.

    \b
    Example:
        pgcheckpoint rollback user-42 1ef6a3c2-0d6e-6b8e-8003-5d9c8f1d2a11
    """
    with open_saver(dsn, schema) as saver:
        full = resolve_checkpoint(saver, thread_id, checkpoint_id, ns)
        config = saver.rollback(thread_id, full, checkpoint_ns=ns)
    new = config["configurable"]["checkpoint_id"]
    emit(
        as_json,
        config,
        lambda out: out.print(
            text(f"thread {thread_id!r} rolled back to {full}; new head {new}")
        ),
    )


@click.command()
@click.argument("thread_id")
@click.option(
    "--checkpoint",
    "checkpoint_id",
    default=None,
    help="Delete only this checkpoint (it must have no children; a unique prefix is enough).",
)
@click.option("--ns", default="", help="Namespace of --checkpoint (default: root).")
@click.option("--yes", "-y", is_flag=True, help="Do not ask for confirmation.")
@common_options
@handle_errors
def delete(
    dsn: str | None,
    schema: str,
    as_json: bool,
    thread_id: str,
    checkpoint_id: str | None,
    ns: str,
    yes: bool,
) -> None:
    """Delete a thread (every checkpoint, value and write), or one leaf checkpoint.

    \b
    Example:
        pgcheckpoint delete user-42 --yes
        pgcheckpoint delete user-42 --checkpoint 1ef6a3c2-0d6e-6b8e-8003-5d9c8f1d2a11
    """
    with open_saver(dsn, schema) as saver:
        if checkpoint_id:
            checkpoint_id = resolve_checkpoint(saver, thread_id, checkpoint_id, ns)
        what = (
            f"checkpoint {checkpoint_id} of thread {thread_id!r}"
            if checkpoint_id
            else f"thread {thread_id!r}"
        )
        if not yes:
            click.confirm(
                f"Delete {clean(what, newlines=False)} from {current_target()}?", abort=True
            )
        if checkpoint_id:
            saver.delete_checkpoint(thread_id, checkpoint_id, checkpoint_ns=ns)
        else:
            if saver.thread_stats(thread_id) is None:
                raise click.ClickException(f"thread {thread_id!r} does not exist")
            saver.delete_thread(thread_id)
    emit(as_json, {"deleted": what}, lambda out: out.print(text(f"deleted {what}")))


def register(group: click.Group) -> None:
    group.add_command(rollback)
    group.add_command(delete)
