"""Commands that read threads: ``threads list|show|stats``, ``history``, ``show``
and ``diff``; each calls one method of the thread API. Those that change a thread
(``rollback``, ``delete``) are in :mod:`.changes`."""

from __future__ import annotations

import itertools
from typing import TYPE_CHECKING, Any

import click

from ..errors import InvalidInputError
from ._app import common_options, emit, handle_errors, open_saver, parse_filter
from ._output import (
    clean,
    describe_message,
    is_internal_channel,
    is_message,
    metadata_rows,
    summarize,
    text,
    when,
)

if TYPE_CHECKING:
    from langgraph.checkpoint.base import CheckpointTuple
    from rich.console import Console, RenderableType
    from rich.table import Table

    from ..saver import PostgresSaver
    from ..threads import ChannelDiff, ThreadStats, VersionInfo

# Rich and the library's thread types are imported inside the functions that use
# them: `pgcheckpoint --help` must not pay for LangGraph and pydantic.

ALL_OPTION = click.option(
    "--all", "show_all", is_flag=True,
    help="Also show LangGraph's internal channels (__pregel_tasks, branch:to:*, ...).",
)


def _table(*columns: str, title: Any = None) -> Table:
    """A table whose cells fold long text onto more lines instead of cutting it."""
    from rich.table import Table

    table = Table(title=title)
    for name in columns:
        table.add_column(name, overflow="fold")
    return table


def _stats_table(s: ThreadStats) -> Table:
    from rich.table import Table

    table = Table(show_header=False, title=text(f"thread {s.thread_id}", newlines=False))
    table.add_column(no_wrap=True)
    table.add_column(overflow="fold")
    for name in ("checkpoints", "namespaces", "writes", "blobs", "chunks", "stored_bytes"):
        table.add_row(name, f"{getattr(s, name):,}")
    table.add_row("first", when(s.first_at))
    table.add_row("last", when(s.last_at))
    table.add_row("head", text(s.head_checkpoint_id or "-"))
    return table


def _history_table(title: str, versions: list[VersionInfo]) -> Table:
    """Newest first. The parent column appears only when the history branches (a
    parent that is not the next row down); otherwise it repeats the next row's id."""
    linear = all(
        v.parent_checkpoint_id == older.checkpoint_id
        for v, older in itertools.pairwise(versions)
        if v.checkpoint_ns == older.checkpoint_ns
    )
    namespaces = any(v.checkpoint_ns for v in versions)
    columns = ["checkpoint", *(() if linear else ("parent",)), "created (UTC)",
               *(("ns",) if namespaces else ()), "step", "source", "next", "writes"]
    table = _table(*columns, title=text(title, newlines=False))
    table.columns[0].min_width = 12
    for v in versions:
        cells: list[Any] = [text(v.checkpoint_id)]
        if not linear:
            cells.append(text(v.parent_checkpoint_id or "-"))
        cells.append(when(v.created_at))
        if namespaces:
            cells.append(text(v.checkpoint_ns))
        cells += [
            text(v.metadata.get("step", "")),
            text(v.metadata.get("source", "")),
            text(", ".join(v.next)),
            str(v.writes),
        ]
        table.add_row(*cells)
    return table


def resolve_checkpoint(saver: PostgresSaver, thread_id: str, given: str, ns: str) -> str:
    """The full id of the checkpoint ``given`` names: itself, or the one id of the
    thread's namespace that starts with it. No match or several: InvalidInputError."""
    if not given:
        raise InvalidInputError("checkpoint id must not be empty")
    ids = [v.checkpoint_id for v in saver.list_versions(thread_id, checkpoint_ns=ns)]
    if given in ids:
        return given
    matches = [i for i in ids if i.startswith(given)]
    if len(matches) == 1:
        return matches[0]
    where = f"thread {thread_id!r}" + (f" (namespace {ns!r})" if ns else "")
    if not ids:
        raise InvalidInputError(f"{where} has no checkpoints")
    if not matches:
        raise InvalidInputError(f"{where} has no checkpoint whose id starts with {given!r}")
    listed = ", ".join(matches[:5]) + (", ..." if len(matches) > 5 else "")
    raise InvalidInputError(
        f"checkpoint id prefix {given!r} is ambiguous in {where}: it matches "
        f"{len(matches)} checkpoints ({listed}); give more characters"
    )


def _get(
    saver: PostgresSaver, thread_id: str, checkpoint_id: str | None, ns: str
) -> CheckpointTuple:
    conf: dict[str, Any] = {"thread_id": thread_id, "checkpoint_ns": ns}
    if checkpoint_id:
        conf["checkpoint_id"] = resolve_checkpoint(saver, thread_id, checkpoint_id, ns)
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
        from ..threads import encrypted_under

        # Thread ids are never cut: up to 36 characters (a UUID) they keep one line,
        # longer ones fold. When the full table does not fit (80 columns), it drops its
        # borders and the `first` column (in --json and `threads show`) and prints
        # times on two lines, so that no column is squeezed to nothing.
        widest = max((len(clean(t.thread_id, newlines=False)) for t in found), default=6)
        narrow = out.width < min(widest, 36) + 90
        columns = ["thread", "checkpoints", *(() if narrow else ("first (UTC)",)),
                   "last (UTC)", "step", "source"]
        table = _table(*columns)
        if narrow:
            table.box, table.pad_edge, table.padding = None, False, (0, 1, 0, 1)

        def at(value: Any) -> str:
            return when(value).replace(" ", "\n") if narrow else when(value)

        for t in found:
            kid = encrypted_under(t.metadata)  # no key for it: say which key it needs
            table.add_row(
                text(t.thread_id, newlines=False),
                str(t.checkpoints),
                *(() if narrow else (at(t.first_at),)),
                at(t.last_at),
                text(t.metadata.get("step", "")),
                text(f"encrypted under key {kid}" if kid else t.metadata.get("source", "")),
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
    """A thread's checkpoints newest first: id, time (ms), step, source, the nodes that
    ran next from each (`next`) and its pending writes. No state is decoded.

    Checkpoint ids are printed whole (folded onto two lines in a narrow terminal);
    any unique prefix of one can be given to `show`, `diff`, `rollback` and `delete`.

    \b
    Example:
        pgcheckpoint history user-42 --ns '' --limit 20
    """
    with open_saver(dsn, schema) as saver:
        versions = saver.list_versions(thread_id, checkpoint_ns=ns, limit=limit)
    if not versions:
        raise click.ClickException(f"thread {thread_id!r} has no checkpoints")
    emit(as_json, versions, lambda out: out.print(_history_table(f"thread {thread_id}", versions)))


def _interrupts(pending: list[tuple[str, str, Any]]) -> list[Any]:
    """The values of the interrupts among a checkpoint's pending writes (what the
    paused graph asks)."""
    found: list[Any] = []
    for _task, channel, value in pending:
        if channel == "__interrupt__":
            items = value if isinstance(value, list | tuple) else [value]
            found.extend(getattr(item, "value", item) for item in items)
    return found


def _channel_view(value: Any) -> RenderableType:
    """Messages one per line (tool calls under their AIMessage), anything else pretty."""
    from rich.console import Group
    from rich.pretty import Pretty

    if is_message(value):
        return text(describe_message(value))
    if isinstance(value, list) and value and all(is_message(m) for m in value):
        return Group(*(text(describe_message(m)) for m in value))
    return Pretty(value, max_string=2000)


@click.command()
@click.argument("thread_id")
@click.argument("checkpoint_id", required=False)
@click.option("--ns", default="", help="Checkpoint namespace (default: root).")
@ALL_OPTION
@common_options
@handle_errors
def show(
    dsn: str | None,
    schema: str,
    as_json: bool,
    thread_id: str,
    checkpoint_id: str | None,
    ns: str,
    show_all: bool,
) -> None:
    """The state of a checkpoint (the latest when CHECKPOINT_ID is left out; a unique
    prefix of the id is enough): metadata, each channel's value (messages with their
    tool calls), and, for a paused thread, the interrupt's value.

    LangGraph's internal channels are left out unless --all (also with --json).

    A value naming a type this process may not rebuild (docs/serde.md) is shown as
    <not loaded: module.Class (msgpack, N bytes)>; --allow module:Class loads it.

    \b
    Example:
        pgcheckpoint show user-42
        pgcheckpoint show user-42 1ef6a3c2-0d6e --json
    """
    from ..codec import show_unloadable

    with open_saver(dsn, schema) as saver, show_unloadable():
        found = _get(saver, thread_id, checkpoint_id, ns)
    channels = found.checkpoint["channel_values"]
    values = {k: v for k, v in channels.items() if show_all or not is_internal_channel(k)}
    hidden = len(channels) - len(values)
    pending = list(found.pending_writes or [])
    interrupts = _interrupts(pending)
    data = {
        "config": found.config,
        "parent_config": found.parent_config,
        "metadata": found.metadata,
        "values": values,
        "interrupts": interrupts,
        "pending_writes": pending,
    }

    def render(out: Console) -> None:
        from rich.panel import Panel
        from rich.table import Table

        cid = found.config["configurable"]["checkpoint_id"]
        meta = Table(show_header=False, box=None, padding=(0, 1))
        meta.add_column(style="bold", no_wrap=True)
        meta.add_column(overflow="fold")
        for key, value in metadata_rows(found.metadata):
            meta.add_row(text(key, newlines=False), text(value))
        out.print(Panel(meta, title=text(f"checkpoint {cid}", newlines=False), title_align="left"))
        for channel in sorted(values):
            out.print(
                Panel(_channel_view(values[channel]), title=text(channel, newlines=False),
                      title_align="left")
            )
        if hidden:
            out.print(f"({hidden} internal channel(s) hidden; --all shows them)")
        for value in interrupts:
            out.print(
                Panel(_channel_view(value), title="paused: the interrupt asks",
                      title_align="left", border_style="yellow")
            )
        others = [w for w in pending if w[1] != "__interrupt__"]
        if others:
            lines = text(f"{len(others)} pending write(s) of finished tasks:")
            for _task, channel, value in others:
                if show_all or not is_internal_channel(channel):
                    lines.append(f"\n  {clean(channel, newlines=False)}: ")
                    lines.append(text(summarize(value, 200)))
            out.print(lines)

    emit(as_json, data, render)


def _diff_render(diffs: list[ChannelDiff], out: Console, show_all: bool) -> None:
    from rich.text import Text

    table = _table("channel", "change", "detail")
    for d in diffs:
        if d.status == "unchanged" or (not show_all and is_internal_channel(d.channel)):
            continue
        added, removed = list(d.added), list(d.removed)
        if d.status == "added":  # a channel new in B: each item of a list is an addition
            added = list(d.after) if isinstance(d.after, list) else [d.after]
        elif d.status == "removed":
            removed = list(d.before) if isinstance(d.before, list) else [d.before]
        if added or removed:
            detail = Text()
            for style, sign, items in (("green", "+", added), ("red", "-", removed)):
                for x in items:
                    if detail:
                        detail.append("\n")
                    detail.append_text(text(f"{sign} {summarize(x, 200)}", style))
        else:
            detail = text(f"{summarize(d.before, 60)} → {summarize(d.after, 60)}")
        table.add_row(text(d.channel, newlines=False), d.status, detail)
    out.print(table if table.row_count else "no differences")


@click.command()
@click.argument("thread_id")
@click.argument("a")
@click.argument("b")
@click.option("--ns", default="", help="Checkpoint namespace (default: root).")
@ALL_OPTION
@common_options
@handle_errors
def diff(
    dsn: str | None,
    schema: str,
    as_json: bool,
    thread_id: str,
    a: str,
    b: str,
    ns: str,
    show_all: bool,
) -> None:
    """What changed from checkpoint A to checkpoint B, per channel (messages added or
    removed, tool calls included). A and B may be unique prefixes of checkpoint ids.

    \b
    Example:
        pgcheckpoint diff user-42 1ef6a3c2-0d6e-6b8e-8001 1ef6a3c2-0d6e-6b8e-8007
    """
    from ..codec import show_unloadable
    from ..threads import diff_checkpoints

    with open_saver(dsn, schema) as saver, show_unloadable():
        diffs = diff_checkpoints(
            _get(saver, thread_id, a, ns).checkpoint, _get(saver, thread_id, b, ns).checkpoint
        )
    shown = [
        d for d in diffs
        if d.status != "unchanged" and (show_all or not is_internal_channel(d.channel))
    ]
    emit(as_json, shown, lambda out: _diff_render(diffs, out, show_all))


def register(group: click.Group) -> None:
    group.add_command(threads)
    for command in (history, show, diff):
        group.add_command(command)
