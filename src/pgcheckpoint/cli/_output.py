"""Turning library results into JSON and terminal text (pure helpers, no rich at import).

Everything that comes from the database (ids, metadata, message text) is shown
through :func:`clean` or :func:`text`: control characters and ANSI escapes are
printed as visible ``\\x1b`` escapes, and rich markup such as ``[bold red]`` is
printed literally, never interpreted.
"""

from __future__ import annotations

import base64
import dataclasses
import datetime as dt
import json
import unicodedata
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from rich.text import Text

# Bidirectional overrides can make text display in another order than it is stored.
_BIDI = frozenset(chr(c) for c in (*range(0x202A, 0x202F), *range(0x2066, 0x206A)))


def jsonable(value: Any) -> Any:
    """A JSON-ready copy of ``value``: dataclasses, pydantic models (messages),
    datetimes, bytes, sets and tuples included; anything else as its repr."""
    if value is None or isinstance(value, bool | int | float | str):
        return value
    if isinstance(value, dt.datetime | dt.date):
        return value.isoformat()
    if isinstance(value, bytes | bytearray):
        return base64.b64encode(bytes(value)).decode("ascii")
    if isinstance(value, Mapping):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [jsonable(v) for v in value]
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: jsonable(getattr(value, f.name)) for f in dataclasses.fields(value)}
    dump = getattr(value, "model_dump", None)
    if callable(dump):
        try:
            return jsonable(dump())
        except Exception:  # a model that cannot dump itself is shown by repr
            return repr(value)
    return repr(value)


def clean(value: Any, *, newlines: bool = True) -> str:
    """``value`` as text safe for a terminal: control characters (ESC, CR, BEL...), C1
    controls and bidi overrides become visible escapes; newlines and tabs stay unless
    ``newlines`` is false."""
    out = []
    for ch in str(value):
        if ch in "\n\t" and newlines:
            out.append(ch)
        elif unicodedata.category(ch) == "Cc" or ch in _BIDI:
            code = ord(ch)
            out.append(f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}")
        else:
            out.append(ch)
    return "".join(out)


def text(value: Any, style: str = "", *, newlines: bool = True) -> Text:
    """A rich ``Text`` of database content: never parsed as markup, control characters
    escaped (see :func:`clean`)."""
    from rich.text import Text

    return Text(clean(value, newlines=newlines), style=style)


def when(value: dt.datetime | None) -> str:
    """A timestamp in UTC, to the millisecond (a run's checkpoints are milliseconds apart)."""
    if value is None:
        return "-"
    return value.astimezone(dt.timezone.utc).strftime("%Y-%m-%d %H:%M:%S.%f")[:-3] + "Z"


def human_bytes(n: int) -> str:
    """1536 -> '1.5 KiB'; exact below 1 KiB."""
    size = float(n)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(size) < 1024 or unit == "TiB":
            return f"{int(size)} B" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    raise AssertionError("unreachable")


def is_internal_channel(name: str) -> bool:
    """LangGraph's own channels: ``__pregel_tasks``, ``__start__``, ``branch:to:node``,
    ``join:a+b:c``... (reserved names start with ``__`` or contain ``:``)."""
    return name.startswith("__") or ":" in name


def _compact(value: Any) -> str:
    try:
        return json.dumps(jsonable(value), ensure_ascii=False, sort_keys=True)
    except (TypeError, ValueError):
        return repr(value)


def describe_message(message: Any) -> str:
    """One message as text: its type, its text content, the tool calls of an AIMessage
    (name and arguments) and the tool a ToolMessage answers."""
    kind = type(message).__name__
    head = kind
    tool_name = getattr(message, "name", None)
    if kind == "ToolMessage":
        head = f"{kind} ({tool_name or getattr(message, 'tool_call_id', '?')})"
    content = getattr(message, "content", "")
    body = content if isinstance(content, str) else _compact(content)
    lines = [f"{head}: {body}" if body else f"{head}:"]
    for call in getattr(message, "tool_calls", None) or []:
        name = call.get("name", "?") if isinstance(call, Mapping) else "?"
        args = call.get("args", {}) if isinstance(call, Mapping) else call
        lines.append(f"  → tool call {name}({_compact(args)})")
    return "\n".join(lines)


def is_message(value: Any) -> bool:
    return hasattr(value, "content") and hasattr(value, "type")


def summarize(value: Any, width: int = 80) -> str:
    """One line describing a channel value or a message (message text may be shortened
    with '…'; ids are never passed through here)."""
    line = describe_message(value) if is_message(value) else repr(value)
    line = " ".join(line.split())
    return line if len(line) <= width else line[: width - 1] + "…"


def metadata_rows(metadata: Mapping[str, Any]) -> list[tuple[str, str]]:
    """Metadata as (key, value) rows: strings as they are, anything else as JSON."""
    return [
        (str(k), v if isinstance(v, str) else _compact(v)) for k, v in sorted(metadata.items())
    ]


def escape(value: Any) -> str:
    """``value`` for an f-string handed to rich: markup escaped, control characters
    made visible (see :func:`clean`)."""
    from rich.markup import escape as escape_markup

    return escape_markup(clean(value))
