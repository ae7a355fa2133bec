"""Thread commands: ``threads list|show|stats``, ``history``, ``show``, ``diff``,
``rollback`` and ``delete``; each calls one method of the thread API."""

from __future__ import annotations

from typing import Any

import click
from langgraph.checkpoint.base import CheckpointTuple
from rich.console import Console, Group
from rich.panel import Panel
from rich.pretty import Pretty
from rich.table import Table

from ..codec import show_unloadable
from ..errors import InvalidInputError
from ..saver import PostgresSaver
from ..threads import ChannelDiff, ThreadStats, VersionInfo, diff_checkpoints
from ._app import common_options, current_target, emit, handle_errors, open_saver, parse_filter
from ._output import short, summarize, when


def _stats_table(s: ThreadStats) -> Table:
    table = Table(show_header=False, title=f"thread {s.thread_id}")
    for name in ("checkpoints", "namespaces", "writes", "blobs", "chunks", "stored_bytes"):
        table.add_row(name, f"{getattr(s, name):,}")
    table.add_row("first", when(s.first_at))
    table.add_row("last", when(s.last_at))
    table.add_row("head", s.head_checkpoint_id or "-")
    return table


def _history_table(title: str, versions: list[VersionInfo]) -> Table:
    table = Table(title=title)
    table.add_column("checkpoint", no_wrap=True)
    table.add_column("parent", no_wrap=True)
    table.add_column("created (UTC)", no_wrap=True)
    for name in ("ns", "step", "source", "writes"):
        table.add_column(name)
    for v in versions:
        table.add_row(
            v.checkpoint_id,
            short(v.parent_checkpoint_id),
            when(v.created_at),
            v.checkpoint_ns or "",
            str(v.metadata.get("step", "")),
            str(v.metadata.get("source", "")),
            str(v.writes),
        )
    return table


def _get(
    saver: PostgresSaver, thread_id: str, checkpoint_id: str | None, ns: str
) -> CheckpointTuple:
    conf: dict[str, Any] = {"thread_id": thread_id, "checkpoint_ns": ns}
    if checkpoint_id:
        conf["checkpoint_id"] = checkpoint_id
    found = saver.get_tuple({"configurable": conf})
    if found is None:
        what = f"no checkpoint {checkpoint_id!r}" if checkpoint_id else "no checkpoints"
        raise InvalidInputError(f"thread {thread_id!r} has {what}")
    return found


@click.group()
def threads() -> None:
    """List threads and look at one.

    \b
    Example:
        pgcheckpoint threads list --filter '{"user": "alice"}'
    """


@threads.command("list")
@click.option("--limit", default=50, show_default=True, help="How many threads.")
@click.option("--offset", default=0, show_default=True, help="Skip this many first.")
@click.option(
    "--filter",
    "filter_",
    metavar="JSON",
    help="Only threads whose latest metadata contains this JSON object.",
)
@common_options
@handle_errors
def list_(
    dsn: str | None, schema: str, as_json: bool, limit: int, offset: int, filter_: str | None
) -> None:
    """Threads, most recently updated first, with checkpoint counts and times.

    \b
    Example:
        pgcheckpoint threads list --limit 20 --offset 20
    """
    with open_saver(dsn, schema) as saver:
        found = saver.list_threads(limit=limit, offset=offset, filter=parse_filter(filter_))

    def render(out: Console) -> None:
        table = Table("thread", "checkpoints", "first", "last", "step", "source")
        for t in found:
            table.add_row(
                t.thread_id,
                str(t.checkpoints),
                when(t.first_at),
                when(t.last_at),
                str(t.metadata.get("step", "")),
                str(t.metadata.get("source", "")),
            )
        out.print(table)

    emit(as_json, found, render)


@threads.command("stats")
@click.argument("thread_id")
@common_options
@handle_errors
def stats(dsn: str | None, schema: str, as_json: bool, thread_id: str) -> None:
    """Counts and sizes of one thread.

    \b
    Example:
        pgcheckpoint threads stats user-42
    """
    with open_saver(dsn, schema) as saver:
        found = saver.thread_stats(thread_id)
    if found is None:
        raise click.ClickException(f"thread {thread_id!r} does not exist")
    emit(as_json, found, lambda out: out.print(_stats_table(found)))


@threads.command("show")
@click.argument("thread_id")
@click.option("--limit", default=10, show_default=True, help="How many recent checkpoints.")
@common_options
@handle_errors
def show_thread(dsn: str | None, schema: str, as_json: bool, thread_id: str, limit: int) -> None:
    """A thread's stats and its most recent checkpoints.

    \b
    Example:
        pgcheckpoint threads show user-42 --limit 5
    """
    with open_saver(dsn, schema) as saver:
        found = saver.thread_stats(thread_id)
        if found is None:
            raise click.ClickException(f"thread {thread_id!r} does not exist")
        versions = saver.list_versions(thread_id, limit=limit)

    def render(out: Console) -> None:
        out.print(_stats_table(found))
        out.print(_history_table("recent checkpoints", versions))

    emit(as_json, {"stats": found, "recent": versions}, render)


@click.command()
@click.argument("thread_id")
@click.option("--limit", type=int, default=None, help="Only the newest N checkpoints.")
@click.option("--ns", default=None, help="Only this checkpoint namespace ('' = root).")
@common_options
@handle_errors
def history(
    dsn: str | None, schema: str, as_json: bool, thread_id: str, limit: int | None, ns: str | None
) -> None:
    """A thread's checkpoints newest first, with times and metadata (no state is decoded).

    \b
    Example:
        pgcheckpoint history user-42 --ns '' --limit 20
    """
    with open_saver(dsn, schema) as saver:
        versions = saver.list_versions(thread_id, checkpoint_ns=ns, limit=limit)
    if not versions:
        raise click.ClickException(f"thread {thread_id!r} has no checkpoints")
    emit(as_json, versions, lambda out: out.print(_history_table(f"thread {thread_id}", versions)))


@click.command()
@click.argument("thread_id")
@click.argument("checkpoint_id", required=False)
@click.option("--ns", default="", help="Checkpoint namespace (default: root).")
@common_options
@handle_errors
def show(
    dsn: str | None, schema: str, as_json: bool, thread_id: str, checkpoint_id: str | None, ns: str
) -> None:
    """The state of a checkpoint (the latest when CHECKPOINT_ID is left out).

    A value naming a type this process may not rebuild (docs/serde.md) is shown as
    <not loaded: module.Class (msgpack, N bytes)>; --allow module:Class loads it.

    \b
    Example:
        pgcheckpoint show user-42
        pgcheckpoint show user-42 1ef6a3c2-0d6e-6b8e-8003-5d9c8f1d2a11 --json
    """
    with open_saver(dsn, schema) as saver, show_unloadable():
        found = _get(saver, thread_id, checkpoint_id, ns)
    data = {
        "config": found.config,
        "parent_config": found.parent_config,
        "metadata": found.metadata,
        "values": found.checkpoint["channel_values"],
        "pending_writes": found.pending_writes,
    }

    def render(out: Console) -> None:
        cid = found.config["configurable"]["checkpoint_id"]
        values = found.checkpoint["channel_values"]
        out.print(Panel(Group(Pretty(dict(found.metadata))), title=f"checkpoint {cid}"))
        for channel in sorted(values):
            out.print(Panel(_value(values[channel]), title=channel, title_align="left"))
        if found.pending_writes:
            out.print(f"{len(found.pending_writes)} pending write(s)")

    emit(as_json, data, render)


def _value(value: Any) -> Any:
    """Lists of messages one line each; anything else pretty-printed."""
    if isinstance(value, list) and value and all(hasattr(m, "content") for m in value):
        return "\n".join(summarize(m, 200) for m in value)
    return Pretty(value, max_string=400)


def _diff_render(diffs: list[ChannelDiff], out: Console) -> None:
    table = Table("channel", "change", "detail")
    for d in diffs:
        if d.status == "unchanged":
            continue
        if d.added or d.removed:
            lines = [f"[green]+ {summarize(x)}" for x in d.added]
            lines += [f"[red]- {summarize(x)}" for x in d.removed]
            detail = "\n".join(lines)
        else:
            detail = f"{summarize(d.before, 38)} → {summarize(d.after, 38)}"
        table.add_row(d.channel, d.status, detail)
    out.print(table if table.row_count else "no differences")


@click.command()
@click.argument("thread_id")
@click.argument("a")
@click.argument("b")
@click.option("--ns", default="", help="Checkpoint namespace (default: root).")
@common_options
@handle_errors
def diff(
    dsn: str | None, schema: str, as_json: bool, thread_id: str, a: str, b: str, ns: str
) -> None:
    """What changed from checkpoint A to checkpoint B, per channel (messages added/removed).

    \b
    Example:
        pgcheckpoint diff user-42 1ef6a3c2-...-0001 1ef6a3c2-...-0007
    """
    with open_saver(dsn, schema) as saver, show_unloadable():
        diffs = diff_checkpoints(
            _get(saver, thread_id, a, ns).checkpoint, _get(saver, thread_id, b, ns).checkpoint
        )
    emit(
        as_json, [d for d in diffs if d.status != "unchanged"], lambda out: _diff_render(diffs, out)
    )


@click.command()
@click.argument("thread_id")
@click.argument("checkpoint_id")
@click.option("--ns", default="", help="Checkpoint namespace (default: root).")
@common_options
@handle_errors
def rollback(
    dsn: str | None, schema: str, as_json: bool, thread_id: str, checkpoint_id: str, ns: str
) -> None:
    """Make an earlier checkpoint's state the head again, as a new checkpoint (history kept).

    \b
    Example:
        pgcheckpoint rollback user-42 1ef6a3c2-0d6e-6b8e-8003-5d9c8f1d2a11
    """
    with open_saver(dsn, schema) as saver:
        config = saver.rollback(thread_id, checkpoint_id, checkpoint_ns=ns)
    new = config["configurable"]["checkpoint_id"]
    emit(
        as_json,
        config,
        lambda out: out.print(
            f"thread {thread_id!r} rolled back to {checkpoint_id}; new head {new}"
        ),
    )


@click.command()
@click.argument("thread_id")
@click.option(
    "--checkpoint",
    "checkpoint_id",
    default=None,
    help="Delete only this checkpoint (it must have no children).",
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
    what = (
        f"checkpoint {checkpoint_id} of thread {thread_id!r}"
        if checkpoint_id
        else (f"thread {thread_id!r}")
    )
    with open_saver(dsn, schema) as saver:
        if not yes:
            click.confirm(f"Delete {what} from {current_target()}?", abort=True)
        if checkpoint_id:
            saver.delete_checkpoint(thread_id, checkpoint_id, checkpoint_ns=ns)
        else:
            if saver.thread_stats(thread_id) is None:
                raise click.ClickException(f"thread {thread_id!r} does not exist")
            saver.delete_thread(thread_id)
    emit(as_json, {"deleted": what}, lambda out: out.print(f"deleted {what}"))


def register(group: click.Group) -> None:
    group.add_command(threads)
    for command in (history, show, diff, rollback, delete):
        group.add_command(command)
