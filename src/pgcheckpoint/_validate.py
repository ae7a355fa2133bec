"""Checks of what callers hand the saver, before anything is sent (pure, no I/O).

Text must be storable as PostgreSQL text: no NUL byte, and valid UTF-8, so no
lone surrogate (``"\\ud800"``), which would otherwise surface as a
``UnicodeEncodeError`` from the driver, or, inside a value, be replaced by
``?`` on the way to the database. JSON (metadata, filters) is walked without
recursion and refused beyond :data:`MAX_JSON_DEPTH` levels, which is far deeper
than any metadata LangGraph writes and far below where Python's recursion or
PostgreSQL's jsonb stack would fail. See docs/security.md.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

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
    if has_surrogate(text):
        raise InvalidInputError(
            f"{what} contains a lone surrogate code point, which is not valid UTF-8"
        )


def check_json(value: Any, path: str = "") -> None:
    """Refuse what JSON (and jsonb) cannot hold, naming where it is in ``value``.

    Messages read ``metadata <path>``: ``path`` is "" for a checkpoint's metadata
    and ``"filter"`` for a filter.
    """
    stack: list[tuple[Any, str, int]] = [(value, path, 0)]
    while stack:
        item, at, depth = stack.pop()
        where = f"metadata {at}"
        if isinstance(item, str):
            check_text(item, where)
        elif isinstance(item, float):
            if not math.isfinite(item):
                raise InvalidInputError(f"{where} is {item}, which JSON cannot hold")
        elif isinstance(item, Mapping | list | tuple):
            if depth >= MAX_JSON_DEPTH:
                raise InvalidInputError(
                    f"{where} is nested more than {MAX_JSON_DEPTH} levels deep "
                    "(the limit for metadata and filters)"
                )
            if isinstance(item, Mapping):
                for k, v in item.items():
                    if not isinstance(k, str):
                        raise InvalidInputError(f"{where} has a non-string key {k!r}")
                    if "\x00" in k:
                        raise InvalidInputError(f"{where} has a key with a NUL byte")
                    if has_surrogate(k):
                        raise InvalidInputError(
                            f"{where} has a key with a lone surrogate, which is not valid UTF-8"
                        )
                    stack.append((v, f"{at}.{k}", depth + 1))
            else:
                for i, v in enumerate(item):
                    stack.append((v, f"{at}[{i}]", depth + 1))
        elif not isinstance(item, bool | int) and item is not None:
            raise InvalidInputError(
                f"{where} is a {type(item).__name__}, which is not JSON; "
                "metadata must be JSON (str, number, bool, None, list, dict)"
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
