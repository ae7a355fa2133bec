"""The typed array parameters (pgcheckpoint._arrays) read back as psycopg's own would."""

from __future__ import annotations

from typing import Any

import psycopg
import pytest

from pgcheckpoint._arrays import BoolArray, ByteaArray, Int4Array, TextArray

CASES: list[tuple[Any, str]] = [
    (TextArray(["a", "é€", "", None, "x" * 5000]), "text[]"),
    (TextArray([]), "text[]"),
    (TextArray([None]), "text[]"),
    (ByteaArray([b"\x00\xff", b"", None, bytes(range(256)) * 40]), "bytea[]"),
    (ByteaArray([]), "bytea[]"),
    (BoolArray([True, False, True]), "boolean[]"),
    (BoolArray([]), "boolean[]"),
    (Int4Array([0, -1, -4, 2**31 - 1, -(2**31)]), "integer[]"),
    (Int4Array([]), "integer[]"),
]


@pytest.mark.parametrize(("value", "sql_type"), CASES)
def test_array_round_trip(pg_server_url: str, value: Any, sql_type: str) -> None:
    with psycopg.connect(pg_server_url, autocommit=True) as conn:
        for placeholder in ("%b", "%s"):
            row = conn.execute(
                f"SELECT {placeholder}::{sql_type}, cardinality({placeholder}::{sql_type})",
                (value, value),
            ).fetchone()
            assert row is not None
            assert row[0] == list(value)
            assert row[1] == len(value)


def test_arrays_are_lists() -> None:
    assert TextArray(["a", None]) == ["a", None]
    assert ByteaArray(x for x in [b"a"]) == [b"a"]


def test_text_array_uses_the_client_encoding(pg_server_url: str) -> None:
    with psycopg.connect(pg_server_url, autocommit=True) as conn:
        conn.execute("SET client_encoding TO 'LATIN1'")
        row = conn.execute("SELECT %b::text[]", (TextArray(["café", None]),)).fetchone()
        assert row is not None and row[0] == ["café", None]
