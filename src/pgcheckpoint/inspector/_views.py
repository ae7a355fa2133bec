"""Pure helpers of the inspector: stored values into view trees, the timeline
layout, the nodes that ran and the ones that come next. No I/O, no web
framework: unit-tested without a database or a server.

Everything here produces plain data (dicts, lists, strings) for the Jinja2
templates, which escape every string they print (autoescape is on for all of
them); nothing here builds HTML.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import re
import shlex
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import ormsgpack

from ..errors import InvalidInputError
from ..threads import CheckpointNode

# A value view is cut beyond these bounds; the cut says how much was left out.
MAX_TEXT = 2_000
MAX_ITEMS = 100
MAX_DEPTH = 8
# Lanes drawn in the timeline's graph column; further branches share the last.
MAX_LANES = 8

MESSAGE_TYPES = frozenset({"human", "ai", "tool", "system", "function", "chat", "remove"})
INTERRUPT = "__interrupt__"
ERROR = "__error__"


# --- values as trees -----------------------------------------------------------


def _cut_text(text: str, limit: int = MAX_TEXT) -> dict[str, Any]:
    if len(text) <= limit:
        return {"kind": "text", "text": text}
    return {"kind": "text", "text": text[:limit], "cut": f"{len(text):,} characters"}


def is_message(value: Any) -> bool:
    """A LangChain message (``BaseMessage``) or a dict shaped like one."""
    if isinstance(value, Mapping):
        return isinstance(value.get("role") or value.get("type"), str) and "content" in value
    kind = getattr(value, "type", None)
    return isinstance(kind, str) and kind in MESSAGE_TYPES and hasattr(value, "content")


def is_conversation(value: Any) -> bool:
    return isinstance(value, list) and bool(value) and all(is_message(m) for m in value)


def tree(value: Any, depth: int = 0) -> dict[str, Any]:
    """A view of any value: ``{"kind": "text"|"scalar"|"map"|"list"|"raw", ...}``,
    cut to :data:`MAX_ITEMS` items, :data:`MAX_TEXT` characters and
    :data:`MAX_DEPTH` levels."""
    if value is None or isinstance(value, bool | int | float):
        return {"kind": "scalar", "text": json.dumps(value)}
    if isinstance(value, str):
        return _cut_text(value)
    if isinstance(value, RawExt):
        return {
            "kind": "raw",
            "label": f"msgpack ext {value.code}",
            "value": tree(value.data, depth + 1),
        }
    if isinstance(value, bytes | bytearray | memoryview):
        data = bytes(value)
        return {
            "kind": "text",
            "text": data[:256].hex(" "),
            "label": f"{len(data):,} bytes",
            "cut": f"{len(data):,} bytes" if len(data) > 256 else None,
        }
    if isinstance(value, dt.datetime | dt.date):
        return {"kind": "scalar", "text": value.isoformat()}
    if depth >= MAX_DEPTH:
        return _cut_text(repr(value), 200)
    if isinstance(value, Mapping):
        items = list(value.items())
        return {
            "kind": "map",
            "label": type(value).__name__,
            "items": [(str(k), tree(v, depth + 1)) for k, v in items[:MAX_ITEMS]],
            "total": len(items),
            "open": depth < 3 and len(items) <= 20,
        }
    if isinstance(value, list | tuple | set | frozenset):
        seq = list(value)
        return {
            "kind": "list",
            "label": f"{type(value).__name__}[{len(seq)}]",
            "items": [tree(v, depth + 1) for v in seq[:MAX_ITEMS]],
            "total": len(seq),
            "open": depth < 3 and len(seq) <= 20,
        }
    fields = _fields(value)
    if fields is not None:
        return {
            "kind": "map",
            "label": type(value).__name__,
            "items": [(k, tree(v, depth + 1)) for k, v in list(fields.items())[:MAX_ITEMS]],
            "total": len(fields),
            "open": depth < 3 and len(fields) <= 20,
        }
    return _cut_text(repr(value))


def _fields(value: Any) -> dict[str, Any] | None:
    """The fields of a dataclass or a pydantic model (messages, Interrupt, Send)."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: getattr(value, f.name) for f in dataclasses.fields(value)}
    dump = getattr(value, "model_dump", None)
    if callable(dump):
        try:
            dumped = dump()
        except Exception:  # a model that cannot dump itself is shown by repr
            return None
        return dumped if isinstance(dumped, dict) else None
    slots = getattr(type(value), "__slots__", None)
    if slots and not isinstance(value, str | bytes):
        names = [slots] if isinstance(slots, str) else list(slots)
        return {n: getattr(value, n) for n in names if hasattr(value, n)}
    return None


def _content_parts(content: Any) -> list[dict[str, Any]]:
    if isinstance(content, str):
        return [_cut_text(content)] if content else []
    if isinstance(content, list):
        parts = []
        for block in content[:MAX_ITEMS]:
            if isinstance(block, str):
                parts.append(_cut_text(block))
            elif isinstance(block, Mapping) and isinstance(block.get("text"), str):
                parts.append(_cut_text(block["text"]))
            else:
                parts.append(tree(block, 1))
        return parts
    return [tree(content, 1)]


def message_view(message: Any) -> dict[str, Any]:
    """One message of a conversation: role, name, text parts, tool calls."""

    def get(key: str) -> Any:
        if isinstance(message, Mapping):
            return message.get(key)
        return getattr(message, key, None)

    role = str(get("type") or get("role") or "message")
    calls = []
    for call in get("tool_calls") or []:
        c = call if isinstance(call, Mapping) else _fields(call) or {}
        args = c.get("args")
        try:
            args_text = json.dumps(args, indent=2, ensure_ascii=False, default=repr)
        except (TypeError, ValueError):
            args_text = repr(args)
        calls.append(
            {"name": str(c.get("name") or "?"), "id": c.get("id"), "args": _cut_text(args_text)}
        )
    return {
        "role": role,
        "name": get("name"),
        "id": get("id"),
        "tool_call_id": get("tool_call_id"),
        "status": get("status"),
        "parts": _content_parts(get("content")),
        "tool_calls": calls,
    }


def channel_view(value: Any) -> dict[str, Any]:
    """A channel's value: a conversation when it is a list of messages, else a tree."""
    if is_conversation(value):
        items = list(value)
        return {
            "kind": "conversation",
            "messages": [message_view(m) for m in items[-MAX_ITEMS * 2 :]],
            "total": len(items),
            "shown": min(len(items), MAX_ITEMS * 2),
        }
    return tree(value)


def summarize(value: Any, width: int = 100) -> str:
    """One line describing a value (a message shows its role and text)."""
    if is_message(value):
        view = message_view(value)
        text = " ".join(p.get("text", "") for p in view["parts"] if p["kind"] == "text")
        if view["tool_calls"]:
            text += " → " + ", ".join(c["name"] for c in view["tool_calls"])
        text = f"{view['role']}: {text}"
    elif isinstance(value, str):
        text = value
    elif isinstance(value, list | tuple) and value and not is_conversation(value):
        text = "; ".join(summarize(x, width) for x in value[:5])
    else:
        fields = _fields(value)
        if fields is not None and "value" in fields:  # Interrupt(value=..., id=...)
            return summarize(fields["value"], width)
        try:
            text = json.dumps(value, ensure_ascii=False, default=repr)
        except (TypeError, ValueError):
            text = repr(value)
    text = " ".join(text.split())
    return text if len(text) <= width else text[: width - 1] + "…"


# --- raw view of values the allowlist refuses ------------------------------------


@dataclass(frozen=True, slots=True)
class RawExt:
    """A msgpack extension (a LangGraph-encoded object), shown, never constructed."""

    code: int
    data: Any


def _ext(code: int, data: bytes) -> RawExt:
    try:
        inner: Any = ormsgpack.unpackb(data, ext_hook=_ext)
    except (ormsgpack.MsgpackDecodeError, ValueError):
        inner = data
    return RawExt(code, inner)


class RawSerde:
    """A serde that reads stored values without constructing any object: msgpack
    extensions stay :class:`RawExt` (module, class and arguments as plain
    data), JSON is parsed, other types come back as bytes. The inspector reads a
    checkpoint with it when the saver's own serde refuses a type."""

    def dumps_typed(self, obj: Any) -> tuple[str, bytes]:
        raise InvalidInputError("the inspector's raw view cannot write values")

    def loads_typed(self, data: tuple[str, bytes]) -> Any:
        type_, payload = data
        if type_ == "null":
            return None
        if type_ == "msgpack":
            try:
                return ormsgpack.unpackb(payload, ext_hook=_ext)
            except (ormsgpack.MsgpackDecodeError, ValueError):
                return bytes(payload)
        if type_ == "json":
            try:
                return json.loads(payload)
            except ValueError:
                return bytes(payload)
        if type_ == "bytes":
            return bytes(payload)
        return RawExt(-1, {"type": type_, "bytes": bytes(payload)})

    # LangGraph's serde protocol names these too; the raw view never dumps.
    def dumps(self, obj: Any) -> bytes:
        raise InvalidInputError("the inspector's raw view cannot write values")

    def loads(self, data: bytes) -> Any:
        return self.loads_typed(("msgpack", data))


# --- timeline --------------------------------------------------------------------


@dataclass(slots=True)
class Row:
    """One checkpoint of the timeline with its place in the branch graph."""

    info: CheckpointNode
    lane: int
    head: bool
    children: int
    fork_of: str | None = None  # first checkpoint of a branch: the one it forked from
    lanes: list[str] = field(default_factory=list)  # graph column: "", "line", "dot", "head"


@dataclass(slots=True)
class Timeline:
    """One namespace's history laid out in lanes; rows are built only for the
    slice shown (a 10,000-checkpoint thread shows 50)."""

    ordered: list[CheckpointNode]
    lane_of: dict[str, int]
    spans: list[tuple[int, int]]  # per lane: (top row, bottom row incl. fork point)
    children: dict[str, int]
    fork_of: dict[str, str]

    def __len__(self) -> int:
        return len(self.ordered)

    def position(self, checkpoint_id: str) -> int | None:
        for i, node in enumerate(self.ordered):
            if node.checkpoint_id == checkpoint_id:
                return i
        return None

    def rows(self, start: int = 0, stop: int | None = None) -> list[Row]:
        width = min(len(self.spans), MAX_LANES)
        shown = self.spans[:MAX_LANES]
        out = []
        end = len(self.ordered) if stop is None else min(stop, len(self.ordered))
        for i in range(start, end):
            node = self.ordered[i]
            lane = self.lane_of.get(node.checkpoint_id, 0)
            cells = ["line" if top <= i <= bottom else "" for top, bottom in shown] or [""]
            cells[lane] = "head" if i == 0 else "dot"
            out.append(
                Row(
                    node,
                    lane,
                    i == 0,
                    self.children.get(node.checkpoint_id, 0),
                    self.fork_of.get(node.checkpoint_id),
                    cells[: max(width, 1)],
                )
            )
        return out


def layout(versions: Sequence[CheckpointNode]) -> Timeline:
    """One namespace's history, newest first, in lanes: the head's line of
    ancestors is lane 0, every other leaf starts a branch that runs down to the
    checkpoint it forked from."""
    ordered = sorted(versions, key=lambda v: v.checkpoint_id, reverse=True)
    index = {v.checkpoint_id: i for i, v in enumerate(ordered)}
    children: dict[str, int] = {}
    for v in ordered:
        if v.parent_checkpoint_id is not None:
            children[v.parent_checkpoint_id] = children.get(v.parent_checkpoint_id, 0) + 1
    lane_of: dict[str, int] = {}
    spans: list[tuple[int, int]] = []
    fork_of: dict[str, str] = {}
    for v in ordered:
        if v.checkpoint_id in children or v.checkpoint_id in lane_of:
            continue  # not a leaf, or already on a lane
        lane = min(len(spans), MAX_LANES - 1)
        top = bottom = index[v.checkpoint_id]
        cid: str | None = v.checkpoint_id
        while cid is not None and cid in index and cid not in lane_of:
            lane_of[cid] = lane
            bottom = index[cid]
            parent = ordered[bottom].parent_checkpoint_id
            if parent is not None and parent in lane_of:
                fork_of[cid] = parent
                bottom = index[parent]
            cid = parent
        spans.append((top, bottom))
    return Timeline(ordered, lane_of, spans, children, fork_of)


# --- what ran, what comes next ----------------------------------------------------


def _newer(version: Any, seen: Any) -> bool:
    if seen is None:
        return version is not None
    if isinstance(version, int | float) and isinstance(seen, int | float):
        return version > seen
    return str(version) > str(seen)


def _internal(name: str) -> bool:
    return name.startswith("__") and name.endswith("__")


def ran_nodes(checkpoint: Mapping[str, Any], parent: Mapping[str, Any] | None) -> list[str]:
    """The nodes whose run produced ``checkpoint``: those whose ``versions_seen``
    changed since ``parent`` (LangGraph records what each node consumed when it
    finishes)."""
    seen = checkpoint.get("versions_seen") or {}
    before = (parent or {}).get("versions_seen") or {}
    return sorted(n for n, v in seen.items() if v != before.get(n) and not _internal(n))


def next_nodes(checkpoint: Mapping[str, Any]) -> list[str]:
    """The nodes a StateGraph runs next from ``checkpoint``: those whose trigger
    channel (``branch:to:<node>``, or ``__start__``) was updated by the step
    that wrote it (``updated_channels``) to a version the node has not seen.
    LangGraph's own ``get_state().next`` needs the compiled graph; this reads the
    same triggers from the checkpoint alone (tests compare the two)."""
    versions = checkpoint.get("channel_versions") or {}
    seen = checkpoint.get("versions_seen") or {}
    values = checkpoint.get("channel_values") or {}
    updated = checkpoint.get("updated_channels")
    out = []
    for channel, version in versions.items():
        if channel.startswith("branch:to:"):
            node = channel[len("branch:to:") :]
        elif channel == "__start__":
            node = "__start__"
        else:
            continue
        if channel not in values or (updated is not None and channel not in updated):
            continue  # consumed already (a trigger keeps its version, not its value)
        if _newer(version, (seen.get(node) or {}).get(channel)):
            out.append(node)
    return sorted(out)


def pending_view(writes: Iterable[tuple[str, str, Any]]) -> dict[str, Any]:
    """A checkpoint's pending writes split into interrupts, errors and the rest."""
    interrupts: list[Any] = []
    errors: list[Any] = []
    other: list[dict[str, Any]] = []
    for task, channel, value in writes:
        if channel == INTERRUPT:
            interrupts.extend(value if isinstance(value, list | tuple) else [value])
        elif channel == ERROR:
            errors.append(value)
        else:
            other.append({"task": task, "channel": channel, "value": value})
    return {"interrupts": interrupts, "errors": errors, "writes": other}


# --- request parsing -----------------------------------------------------------------

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhdw])\s*$")
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


def parse_duration(text: str | None, what: str) -> dt.timedelta | None:
    """``"90s"``, ``"15m"``, ``"12h"``, ``"7d"``, ``"2w"``; empty means none."""
    if text is None or not text.strip():
        return None
    m = _DURATION.match(text)
    if m is None:
        raise InvalidInputError(f"{what} must look like 90s, 15m, 12h, 7d or 2w, got {text!r}")
    return dt.timedelta(seconds=float(m.group(1)) * _UNITS[m.group(2)])


def short_duration(seconds: float) -> str:
    """``2592000`` -> ``"30d"``: the largest unit that divides it, as parse_duration reads."""
    for unit in ("w", "d", "h", "m"):
        size = _UNITS[unit]
        if seconds >= size and seconds % size == 0:
            return f"{int(seconds // size)}{unit}"
    return f"{seconds:g}s"


def parse_meta(text: str | None) -> dict[str, Any] | None:
    """A metadata search: ``key=value`` pairs separated by spaces (quote values
    with spaces); a value that parses as JSON (``3``, ``true``) is matched as
    such, else as a string."""
    if text is None or not text.strip():
        return None
    try:
        tokens = shlex.split(text)
    except ValueError as exc:
        raise InvalidInputError(f"metadata search: {exc}") from exc
    out: dict[str, Any] = {}
    for token in tokens:
        key, sep, raw = token.partition("=")
        if not sep or not key:
            raise InvalidInputError(f"metadata search wants key=value pairs, got {token!r}")
        try:
            out[key] = json.loads(raw)
        except ValueError:
            out[key] = raw
    return out


def human_bytes(n: int | None) -> str:
    if n is None:
        return "-"
    size = float(n)
    for unit in ("B", "KB", "MB", "GB"):
        if size < 1024 or unit == "GB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{n} B"


def when(value: dt.datetime | None) -> str:
    if value is None:
        return "-"
    return value.astimezone(dt.timezone.utc).strftime("%Y-%m-%d %H:%M:%S") + "Z"
