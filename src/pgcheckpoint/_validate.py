"""Checks of what callers hand the saver, before anything is sent (pure, no I/O).

Text must be storable as PostgreSQL text: no NUL byte, and valid UTF-8, so no
lone surrogate (``"\\ud800"``), which would otherwise surface as a
``UnicodeEncodeError`` from the driver, or, inside a value, be replaced by
``?`` on the way to the database. JSON (metadata, filters) is walked without
recursion and refused beyond :data:`MAX_JSON_DEPTH` levels, which is far deeper
than any metadata LangGraph writes and far below where Python's recursion or
PostgreSQL's jsonb stack would fail. See docs/security.md.

It also reads what a call names: thread, namespace and checkpoint ids
(:func:`text_id`, :func:`target`), metadata as JSON (:func:`metadata_json`).
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from langchain_core.runnables import RunnableConfig

from .errors import InvalidInputError

# Levels of nesting allowed in metadata and filters (a scalar at the top is level 0).
MAX_JSON_DEPTH = 100


def has_surrogate(text: str) -> bool:
    """Whether ``text`` holds a lone surrogate, which UTF-8 cannot encode."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return True
    return False


def check_text(text: str, what: str) -> None:
    """Refuse text PostgreSQL cannot store as it is."""
    if "\x00" in text:
        raise InvalidInputError(
            f"{what} contains a NUL byte (\\x00), which PostgreSQL cannot store"
        )
    # ASCII text (every id LangGraph makes) cannot hold a surrogate: skip the encode.
    if not text.isascii() and has_surrogate(text):
        raise InvalidInputError(
            f"{what} contains a lone surrogate code point, which is not valid UTF-8"
        )


def _path(node: tuple[Any, ...] | None, base: str) -> str:
    """The path of an item of :func:`check_json`'s walk, from its (parent, key) chain:
    built only for an error message."""
    parts: list[str] = []
    while node is not None:
        node, key = node
        parts.append(f"[{key}]" if type(key) is int else f".{key}")
    return base + "".join(reversed(parts))


def check_json(value: Any, path: str = "") -> None:
    """Refuse what JSON (and jsonb) cannot hold, naming where it is in ``value``.

    Messages read ``metadata <path>``: ``path`` is "" for a checkpoint's metadata
    and ``"filter"`` for a filter. Each item carries its (parent, key) link, and the
    path text is made only for the message: building it for every item was most of
    the walk's cost (2026-12-01, the bench's put metadata).
    """
    stack: list[tuple[Any, tuple[Any, ...] | None, int]] = [(value, None, 0)]
    while stack:
        item, node, depth = stack.pop()
        kind = type(item)
        if kind is str:
            if "\x00" in item or (not item.isascii() and has_surrogate(item)):
                check_text(item, f"metadata {_path(node, path)}")
        elif kind is int or kind is bool or item is None:
            continue
        elif kind is float:
            if not math.isfinite(item):
                raise InvalidInputError(
                    f"metadata {_path(node, path)} is {item}, which JSON cannot hold"
                )
        elif isinstance(item, str):
            check_text(item, f"metadata {_path(node, path)}")
        elif isinstance(item, float):
            if not math.isfinite(item):
                raise InvalidInputError(
                    f"metadata {_path(node, path)} is {item}, which JSON cannot hold"
                )
        elif (
            kind is dict or kind is list or kind is tuple
            or isinstance(item, Mapping | list | tuple)
        ):
            if depth >= MAX_JSON_DEPTH:
                raise InvalidInputError(
                    f"metadata {_path(node, path)} is nested more than {MAX_JSON_DEPTH} "
                    "levels deep (the limit for metadata and filters)"
                )
            if kind is dict or (kind is not list and kind is not tuple and isinstance(
                item, Mapping
            )):
                for k, v in item.items():
                    if type(k) is not str or "\x00" in k or not k.isascii():
                        _check_key(k, f"metadata {_path(node, path)}")
                    stack.append((v, (node, k), depth + 1))
            else:
                for i, v in enumerate(item):
                    stack.append((v, (node, i), depth + 1))
        elif not isinstance(item, bool | int):
            raise InvalidInputError(
                f"metadata {_path(node, path)} is a {type(item).__name__}, which is not JSON; "
                "metadata must be JSON (str, number, bool, None, list, dict)"
            )


def _check_key(k: Any, where: str) -> None:
    if not isinstance(k, str):
        raise InvalidInputError(f"{where} has a non-string key {k!r}")
    if "\x00" in k:
        raise InvalidInputError(f"{where} has a key with a NUL byte")
    if has_surrogate(k):
        raise InvalidInputError(
            f"{where} has a key with a lone surrogate, which is not valid UTF-8"
        )


_LEAVES = frozenset({bytes, bytearray, memoryview, int, float, bool, type(None)})


def _children(item: Any) -> list[Any] | tuple[Any, ...] | Any:
    """What a value holds that a serde would write: container items, object fields.

    Exact builtin types are tested first: an ``isinstance`` against an ABC costs
    ~1 us, which over a 5 MB list of messages added up to half a second.
    """
    kind = type(item)
    if kind is list or kind is tuple:
        return item
    if kind is dict:
        return (*item.keys(), *item.values())
    if kind in _LEAVES or isinstance(item, type):
        return ()
    fields = getattr(item, "__dict__", None)
    if fields is not None:  # objects: pydantic models, dataclasses, plain classes
        out = list(fields.values()) if type(fields) is dict else []
        extra = getattr(item, "__pydantic_extra__", None)
        if type(extra) is dict:
            out.extend(extra.values())
        return out
    if isinstance(item, Mapping):
        return (*item.keys(), *item.values())
    if isinstance(item, set | frozenset | list | tuple):
        return item
    slots = getattr(kind, "__slots__", ())
    return [getattr(item, n) for n in slots if isinstance(n, str) and hasattr(item, n)]


def find_surrogate(value: Any) -> bool:
    """Whether any text inside ``value`` holds a lone surrogate.

    LangGraph's msgpack serde replaces such code points with ``?`` (ormsgpack's
    OPT_REPLACE_SURROGATES), so a value would not read back as it was written.
    The codec only looks when the serialized bytes contain a ``?`` at all.
    """
    stack = [value]
    seen: set[int] = set()
    while stack:
        item = stack.pop()
        if type(item) is str:
            if not item.isascii() and has_surrogate(item):
                return True
            continue
        if isinstance(item, str):
            if has_surrogate(item):
                return True
            continue
        if id(item) in seen:
            continue
        seen.add(id(item))
        stack.extend(_children(item))
    return False


# --- ids, configs and metadata (moved from codec.py) -----------------------

# --- input validation -------------------------------------------------------


def text_id(value: Any, what: str, *, allow_empty: bool = False) -> str:
    """A thread id, namespace or checkpoint id as stored: ``str``, ``int`` or ``UUID``."""
    if type(value) is str or isinstance(value, str):
        text = value
    elif (isinstance(value, int) and not isinstance(value, bool)) or type(
        value
    ).__name__ == "UUID":
        text = str(value)
    else:
        raise InvalidInputError(
            f"{what} must be a str, int or UUID, got {type(value).__name__}: {value!r}"
        )
    check_text(text, what)
    if not text and not allow_empty:
        raise InvalidInputError(f"{what} must not be empty")
    return text


@dataclass(frozen=True, slots=True)
class Target:
    """Where a config points: thread, namespace and (optionally) checkpoint."""

    thread_id: str
    checkpoint_ns: str
    checkpoint_id: str | None


def target(config: RunnableConfig | None) -> Target:
    """Validate a RunnableConfig and read its thread_id / checkpoint_ns / checkpoint_id."""
    # type() first: an isinstance against the Mapping ABC costs more than the rest.
    if type(config) is not dict and not isinstance(config, Mapping):
        raise InvalidInputError(f"config must be a dict, got {type(config).__name__}")
    conf = config.get("configurable")
    if type(conf) is not dict and not isinstance(conf, Mapping):
        raise InvalidInputError(
            'config has no "configurable" dict; expected {"configurable": {"thread_id": ...}}'
        )
    if conf.get("thread_id") is None:
        raise InvalidInputError('config["configurable"] has no "thread_id"')
    ns = conf.get("checkpoint_ns")
    cid = conf.get("checkpoint_id")
    return Target(
        thread_id=text_id(conf["thread_id"], "thread_id"),
        checkpoint_ns=text_id(ns if ns is not None else "", "checkpoint_ns", allow_empty=True),
        checkpoint_id=text_id(cid, "checkpoint_id") if cid else None,
    )


def metadata_json(metadata: Mapping[str, Any], what: str = "metadata") -> str:
    """Metadata as JSON text for a jsonb parameter, with a clear error for what JSON can't hold."""
    if not isinstance(metadata, Mapping):
        raise InvalidInputError(f"{what} must be a dict, got {type(metadata).__name__}")
    check_json(metadata, "" if what == "metadata" else what)
    return json.dumps(metadata, ensure_ascii=False, allow_nan=False, separators=(",", ":"))




def parse_ts(ts: Any) -> datetime | None:
    if not isinstance(ts, str):
        return None
    try:
        parsed = datetime.fromisoformat(ts)
    except ValueError:
        return None
    return parsed if parsed.tzinfo is not None else None
