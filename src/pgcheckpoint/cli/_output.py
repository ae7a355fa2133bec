"""Turning library results into JSON and rich renderables (pure helpers)."""

from __future__ import annotations

import base64
import dataclasses
import datetime as dt
from collections.abc import Mapping
from typing import Any


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


def short(text: str | None, width: int = 8) -> str:
    """The tail of a checkpoint id (the part that differs between neighbours)."""
    if not text:
        return "-"
    return text if len(text) <= width else "…" + text[-width:]


def when(value: dt.datetime | None) -> str:
    """A timestamp in UTC, to the second."""
    if value is None:
        return "-"
    return value.astimezone(dt.timezone.utc).strftime("%Y-%m-%d %H:%M:%SZ")


def summarize(value: Any, width: int = 80) -> str:
    """One line describing a channel value or a message."""
    content = getattr(value, "content", None)
    text = f"{type(value).__name__}: {content}" if content is not None else repr(value)
    text = " ".join(text.split())
    return text if len(text) <= width else text[: width - 1] + "…"
