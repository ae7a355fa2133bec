"""One-dimensional arrays sent in PostgreSQL's binary array format, cheaply.

``put_checkpoint`` and ``put_writes`` send their rows as parallel arrays (one
``unnest`` per statement instead of one statement per row). psycopg's generic
list dumper works out the element type of every list on every call (it scans
the list, then looks up and "upgrades" a dumper per element type), and a fresh
cursor, which the runner opens for each operation, starts with an empty dumper
cache. For the ten arrays of a 1 KB put that cost about 25 us of dumping plus
about 20 us of dumper lookups per call, out of a 0.45 ms put (bench profile,
psycopg 3.3). The element type of each of our arrays is known in advance, so
the codec wraps them in the list subclasses below, whose dumpers write the
wire format directly: 4 to 6 us for the same ten arrays.

The wrappers are plain lists to everything else (equality, iteration). They
are registered on psycopg's global adapters map, which only ever matches these
private classes; a connection made before this module was imported does not
see the registration and falls back to psycopg's list dumper, which sends the
same values.
"""

from __future__ import annotations

import struct
from collections.abc import Iterable, Sequence
from typing import Any

import psycopg
from psycopg import pq
from psycopg.abc import AdaptContext
from psycopg.adapt import Dumper

# Header of a one-dimensional array: ndim, has-null flag, element type oid,
# then the dimension's length and lower bound (1).
_HEAD = struct.Struct("!iiiii")
_EMPTY = struct.Struct("!iii")
_LEN = struct.Struct("!i")
_NULL = b"\xff\xff\xff\xff"
_INT4 = struct.Struct("!ii")  # length 4, value

_TEXT_OID, _BYTEA_OID, _BOOL_OID, _INT4_OID = 25, 17, 16, 23
_TEXT_ARRAY_OID, _BYTEA_ARRAY_OID, _BOOL_ARRAY_OID, _INT4_ARRAY_OID = 1009, 1001, 1000, 1007


class TextArray(list[str | None]):
    """A ``text[]`` parameter (elements ``str`` or ``None``)."""


class ByteaArray(list[bytes | None]):
    """A ``bytea[]`` parameter (elements ``bytes`` or ``None``)."""


class BoolArray(list[bool]):
    """A ``boolean[]`` parameter (no NULL elements)."""


class Int4Array(list[int]):
    """An ``integer[]`` parameter (no NULL elements; values fit in 32 bits)."""


def _array(elements: Sequence[bytes | None], elem_oid: int) -> bytes:
    if not elements:
        return _EMPTY.pack(0, 0, elem_oid)
    parts: list[bytes] = [b""]
    has_null = 0
    for item in elements:
        if item is None:
            parts.append(_NULL)
            has_null = 1
        else:
            parts.append(_LEN.pack(len(item)))
            parts.append(item)
    parts[0] = _HEAD.pack(1, has_null, elem_oid, len(elements), 1)
    return b"".join(parts)


class _ArrayDumper(Dumper):
    format = pq.Format.BINARY


class TextArrayDumper(_ArrayDumper):
    oid = _TEXT_ARRAY_OID

    def __init__(self, cls: type, context: AdaptContext | None = None) -> None:
        super().__init__(cls, context)
        conn = self.connection
        encoding = conn.info.encoding if conn is not None else "utf-8"
        # SQL_ASCII reports "ascii"; psycopg's own text dumpers send UTF-8 then.
        self._encoding = "utf-8" if encoding == "ascii" else encoding

    def dump(self, obj: Iterable[str | None]) -> bytes:
        enc = self._encoding
        return _array([None if s is None else s.encode(enc) for s in obj], _TEXT_OID)


class ByteaArrayDumper(_ArrayDumper):
    oid = _BYTEA_ARRAY_OID

    def dump(self, obj: Sequence[bytes | None]) -> bytes:
        return _array(obj, _BYTEA_OID)


class BoolArrayDumper(_ArrayDumper):
    oid = _BOOL_ARRAY_OID

    def dump(self, obj: Sequence[bool]) -> bytes:
        if not obj:
            return _EMPTY.pack(0, 0, _BOOL_OID)
        body = b"".join(b"\x00\x00\x00\x01\x01" if v else b"\x00\x00\x00\x01\x00" for v in obj)
        return _HEAD.pack(1, 0, _BOOL_OID, len(obj), 1) + body


class Int4ArrayDumper(_ArrayDumper):
    oid = _INT4_ARRAY_OID

    def dump(self, obj: Sequence[int]) -> bytes:
        if not obj:
            return _EMPTY.pack(0, 0, _INT4_OID)
        body = b"".join(_INT4.pack(4, v) for v in obj)
        return _HEAD.pack(1, 0, _INT4_OID, len(obj), 1) + body


def _register(adapters: Any) -> None:
    adapters.register_dumper(TextArray, TextArrayDumper)
    adapters.register_dumper(ByteaArray, ByteaArrayDumper)
    adapters.register_dumper(BoolArray, BoolArrayDumper)
    adapters.register_dumper(Int4Array, Int4ArrayDumper)


_register(psycopg.adapters)
