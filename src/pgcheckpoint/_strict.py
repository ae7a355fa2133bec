"""Strict (de)serialization of one stored value through the saver's serde (pure).

:func:`loads` refuses a value whose bytes name types the allowlist blocks
(``allowlist.py`` decides; LangGraph's msgpack hook reports each refusal as an
event, collected here while a value decodes); :func:`dumps` refuses text that
the serde would silently alter. :func:`show_unloadable` lets the CLI's ``show``
print a placeholder instead of raising.
"""

from __future__ import annotations

import contextlib
import contextvars
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any

from langgraph.checkpoint.serde.base import SerializerProtocol
from langgraph.checkpoint.serde.event_hooks import SerdeEvent, register_serde_event_listener

from . import _validate
from .errors import (
    BlockedTypeError,
    DeserializationError,
    InvalidInputError,
    PgCheckpointError,
    SerializationError,
    UnreadableTypeError,
)

# LangGraph's msgpack hook logs and returns the raw fields of a type that its
# allowlist refuses (allowlist.py decides). We collect those events while we
# decode, and refuse the value.
_blocked: contextvars.ContextVar[list[str] | None] = contextvars.ContextVar(
    "pgcheckpoint_blocked", default=None
)
# Set by show_unloadable(): a refused value becomes an Unloadable instead of raising.
_show_raw: contextvars.ContextVar[bool] = contextvars.ContextVar(
    "pgcheckpoint_show_raw", default=False
)
_UNSAFE_NAME_CHARS = re.compile(r"[^A-Za-z0-9_.()]")


def _on_serde_event(event: SerdeEvent) -> None:
    sink = _blocked.get()
    if sink is not None and event["kind"] in ("msgpack_blocked", "msgpack_method_blocked"):
        name = f"{event['module']}.{event['name']}"
        if "method" in event:
            name += f".{event['method']}()"
        sink.append(name)


register_serde_event_listener(_on_serde_event)


@dataclass(frozen=True, slots=True)
class Unloadable:
    """A stored value that was not loaded because it names refused types: what
    ``show`` prints in its place. Names keep only ``[A-Za-z0-9_.()]`` (others become
    ``?``), so text from a row cannot carry markup or terminal escapes."""

    not_loaded: tuple[str, ...]
    serde_type: str
    size: int

    @classmethod
    def of(cls, names: Iterable[str], serde_type: str, size: int) -> Unloadable:
        clean = sorted({_UNSAFE_NAME_CHARS.sub("?", n)[:200] for n in names})
        return cls(tuple(clean), _UNSAFE_NAME_CHARS.sub("?", serde_type)[:40], size)

    def __repr__(self) -> str:
        return (
            f"<not loaded: {', '.join(self.not_loaded)} "
            f"({self.serde_type}, {self.size:,} bytes)>"
        )


@contextlib.contextmanager
def show_unloadable() -> Iterator[None]:
    """Within this block (this thread or task), a stored value that names a refused
    type reads as an :class:`Unloadable` instead of raising ``BlockedTypeError``.
    For inspection only (the CLI's ``show``): never hand such a value to a graph."""
    token = _show_raw.set(True)
    try:
        yield
    finally:
        _show_raw.reset(token)


@contextlib.contextmanager
def loading() -> Iterator[None]:
    """One collector of refusals for every :func:`loads` in this block (a page of
    rows): a value's own refusals are the ones added while it decoded. Setting the
    context variable once a page instead of once a value saves a set and a reset
    per value (decoding.decode_rows)."""
    token = _blocked.set([])
    try:
        yield
    finally:
        _blocked.reset(token)


def loads(serde: SerializerProtocol, type_: str, data: bytes | None, where: str) -> Any:
    """Deserialize one stored value, refusing types the allowlist blocks."""
    sink = _blocked.get()
    if sink is None:
        with loading():
            return loads(serde, type_, data, where)
    mark = len(sink)
    try:
        value = serde.loads_typed((type_, data if data is not None else b""))
    except PgCheckpointError:
        raise
    except Exception as exc:
        raise DeserializationError(f"cannot deserialize {where} ({type_}): {exc}") from exc
    finally:
        names = sink[mark:]
        del sink[mark:]
    if names:
        if _show_raw.get():
            return Unloadable.of(names, type_, len(data or b""))
        raise BlockedTypeError(sorted(set(names)), where)
    return value


def dumps(serde: SerializerProtocol, value: Any, where: str) -> tuple[str, bytes]:
    try:
        type_, data = serde.dumps_typed(value)
    except UnreadableTypeError as exc:
        raise UnreadableTypeError(exc.refused, where) from None
    except Exception as exc:
        raise SerializationError(
            f"cannot serialize {where}: {type(exc).__name__}: {exc}"
        ) from exc
    # LangGraph's msgpack writes a lone surrogate as "?": refuse it instead.
    if type_ == "msgpack" and b"?" in data and _validate.find_surrogate(value):
        raise InvalidInputError(
            f"{where} contains text with a lone surrogate code point, which is not valid "
            "UTF-8 and would be stored as '?'"
        )
    return type_, data


