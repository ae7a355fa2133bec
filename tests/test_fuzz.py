"""Fuzzing (issue 12, build item 4): the row decoder, the NDJSON reader and the SQLite
importer fed tampered and random input raise only pgcheckpoint exceptions, within a
deadline per example and bounded memory.

The CI run is short (a few hundred examples in all). For a long run, set
``PGCHECKPOINT_FUZZ_EXAMPLES`` (examples per fuzz target; CONTRIBUTING.md)::

    PGCHECKPOINT_FUZZ_EXAMPLES=20000 python -m pytest tests/test_fuzz.py -p no:cacheprovider
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import random
import shutil
import sqlite3
import tracemalloc
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from langgraph.checkpoint.serde.jsonplus import JsonPlusSerializer
from langgraph.checkpoint.sqlite import SqliteSaver

from _helpers import cfg, make_checkpoint
from pgcheckpoint import CompressionPolicy, PgCheckpointError, PostgresSaver
from pgcheckpoint.codec import Codec, Target, decode_row, encode_put, encode_writes
from pgcheckpoint.importers.ndjson import NdjsonSource
from pgcheckpoint.importers.sqlite import SqliteSource, import_sqlite
from pgcheckpoint.transfer import export_file, import_ndjson
from test_hardening import declared_frame, rle_frame

EXAMPLES = int(os.environ.get("PGCHECKPOINT_FUZZ_EXAMPLES", "0") or 0)
MiB = 1024 * 1024
LIMIT = 8 * MiB  # max_value_size under fuzzing: a bomb must stop here
PEAK = 48 * MiB  # and no example may take more than this much Python memory


def fuzz_settings(ci_examples: int) -> Callable[[Any], Any]:
    return settings(
        max_examples=EXAMPLES or ci_examples,
        # Generous: two cores are shared by the whole test run; a hang still fails.
        deadline=timedelta(seconds=10),
        derandomize=not EXAMPLES,  # CI runs are reproducible; long runs explore
        database=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    )


def guarded(run: Callable[[], object]) -> None:
    """``run`` may succeed or raise a PgCheckpointError, within PEAK bytes of memory."""
    tracemalloc.start()
    try:
        run()
    except PgCheckpointError:
        pass
    finally:
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
    assert peak < PEAK, f"took {peak} bytes"


# --- mutations ---------------------------------------------------------------------------

TYPES = ["msgpack", "msgpack+zstd", "msgpack+cdc", "bytes", "null", "json", "pickle",
         "empty", "bytearray", "msgpack+zstd+cdc", ""]
BOMBS = [
    declared_frame(1 << 40, b"x"),
    rle_frame(64 * MiB, declare=True),
    rle_frame(64 * MiB, declare=False),
]


def scalar(data: st.DataObject) -> Any:
    return data.draw(
        st.one_of(
            st.binary(max_size=64),
            st.text(max_size=16),
            st.sampled_from(TYPES),
            st.sampled_from(BOMBS),
            st.none(),
            st.integers(),
            st.booleans(),
            st.floats(),
        )
    )


def mutate_bytes(data: st.DataObject, value: bytes) -> Any:
    how = data.draw(st.sampled_from(["flip", "cut", "grow", "replace", "repeat", "other"]))
    if how == "flip" and value:
        i = data.draw(st.integers(0, len(value) - 1))
        return value[:i] + bytes([value[i] ^ data.draw(st.integers(1, 255))]) + value[i + 1 :]
    if how == "cut":
        return value[: data.draw(st.integers(0, max(0, len(value) - 1)))]
    if how == "grow":
        return value + data.draw(st.binary(min_size=1, max_size=64))
    if how == "repeat" and value:
        return value[:16] * data.draw(st.integers(2, 5000))
    if how == "replace":
        return data.draw(st.binary(max_size=256))
    return scalar(data)


def mutate(data: st.DataObject, value: Any) -> Any:
    if isinstance(value, bytes):
        return mutate_bytes(data, value)
    if isinstance(value, list) and value and data.draw(st.booleans()):
        out = list(value)
        i = data.draw(st.integers(0, len(out) - 1))
        how = data.draw(st.sampled_from(["item", "drop", "dup", "swap"]))
        if how == "item":
            out[i] = mutate(data, out[i])
        elif how == "drop":
            del out[i]
        elif how == "dup":
            out.insert(i, out[i])
        else:
            j = data.draw(st.integers(0, len(out) - 1))
            out[i], out[j] = out[j], out[i]
        return out
    if isinstance(value, str) and data.draw(st.booleans()):
        return data.draw(st.sampled_from(TYPES))
    return scalar(data)


# --- the row decoder ----------------------------------------------------------------------

SERDE = JsonPlusSerializer()
CODEC = Codec(SERDE, compression=CompressionPolicy(max_value_size=LIMIT))


def _base_row() -> tuple[Any, ...]:
    """A ``read_checkpoints`` row as the database returns it: inline values, a compressed
    blob, a chunked blob (compressed and raw chunks) and pending writes."""
    rnd = random.Random(7)
    values = {
        "n": 3,
        "text": "hello " * 2000,
        "doc": [rnd.randbytes(3000) for _ in range(8)] + ["words " * 3000],
    }
    cp = make_checkpoint(values)
    put = encode_put(CODEC, Target("t", "", None), cp, {"step": 1}, cp["channel_versions"])
    p = put.params
    _, w = encode_writes(CODEC, Target("t", "", p["checkpoint_id"]),
                         [("text", "w" * 3000), ("n", 4)], "task", "")
    return (
        p["thread_id"], p["checkpoint_ns"], p["checkpoint_id"], None, p["type"],
        p["checkpoint"], json.loads(p["metadata"]), list(p["channels"]), list(p["versions"]),
        list(p["blob_channels"]), list(p["blob_versions"]), list(p["blob_types"]),
        list(p["blob_values"]), list(p["blob_refs"]), list(p["chunk_hashes"]),
        list(p["chunk_compressed"]), list(p["chunk_data"]),
        ["task"] * len(w["channels"]), list(w["channels"]), list(w["types"]), list(w["values"]),
    )


BASE_ROW = _base_row()


def test_base_row_decodes() -> None:
    got = decode_row(CODEC, BASE_ROW)
    assert got.checkpoint["channel_values"]["text"] == "hello " * 2000
    assert len(got.pending_writes or []) == 2
    assert any(t.endswith("+cdc") for t in BASE_ROW[11])
    assert True in BASE_ROW[15] and False in BASE_ROW[15]  # compressed and raw chunks


@fuzz_settings(200)
@given(st.data())
def test_fuzz_row_decoder(data: st.DataObject) -> None:
    row = list(BASE_ROW)
    for _ in range(data.draw(st.integers(1, 3))):
        i = data.draw(st.integers(0, len(row) - 1))
        row[i] = mutate(data, row[i])
    guarded(lambda: decode_row(CODEC, tuple(row)))


# --- the NDJSON reader --------------------------------------------------------------------


def _retrailer(lines: list[bytes]) -> list[bytes]:
    """Recompute the trailer, as someone who edits a file can (a digest is not a MAC)."""
    body = [ln for ln in lines if b'"kind":"trailer"' not in ln]
    threads: dict[str, dict[str, int]] = {}
    names = {"checkpoint": "checkpoints", "value": "values", "write": "writes"}
    for ln in body[1:]:
        try:
            d = json.loads(ln)
            counts = threads.setdefault(d["thread_id"], dict.fromkeys(names.values(), 0))
            counts[names[d["kind"]]] += 1
        except (ValueError, KeyError, TypeError, AttributeError, RecursionError):
            continue
    trailer = {"kind": "trailer", "format": "pgcheckpoint.ndjson", "version": 2,
               "threads": threads, "lines": len(body),
               "sha256": hashlib.sha256(b"".join(body)).hexdigest()}
    return [*body, json.dumps(trailer, separators=(",", ":")).encode() + b"\n"]


JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=8),
    lambda c: st.lists(c, max_size=3) | st.dictionaries(st.text(max_size=4), c, max_size=3),
    max_leaves=6,
)


def _mutate_lines(data: st.DataObject, lines: list[bytes]) -> list[bytes]:
    lines = list(lines)
    for _ in range(data.draw(st.integers(1, 3))):
        i = data.draw(st.integers(0, len(lines) - 1))
        how = data.draw(st.sampled_from(["field", "field", "bytes", "drop", "dup", "nest"]))
        if how == "field":
            try:
                d = json.loads(lines[i])
            except (ValueError, RecursionError):
                continue
            if isinstance(d, dict) and d:
                key = data.draw(st.sampled_from(sorted(d)))
                old = d[key]
                if key == "data" and isinstance(old, str) and data.draw(st.booleans()):
                    # Valid base64 of altered bytes: past the reader's own checks.
                    raw = mutate_bytes(data, base64.b64decode(old))
                    d[key] = base64.b64encode(raw).decode() if isinstance(raw, bytes) else raw
                elif isinstance(old, str) and old and data.draw(st.booleans()):
                    raw = mutate_bytes(data, old.encode())
                    d[key] = raw.decode("utf-8", "replace") if isinstance(raw, bytes) else raw
                else:
                    d[key] = data.draw(JSON_VALUES)
                lines[i] = json.dumps(d).encode() + b"\n"
        elif how == "bytes":
            lines[i] = mutate_bytes(data, lines[i]) if lines[i] else lines[i]
            if not isinstance(lines[i], bytes):
                lines[i] = b"\n"
        elif how == "drop" and len(lines) > 1:
            del lines[i]
        elif how == "dup":
            lines.insert(i, lines[i])
        else:
            lines[i] = b"[" * 50_000 + b"]" * 50_000 + b"\n"
    return _retrailer(lines) if data.draw(st.booleans()) else lines


def _read_all(path: Path, saver: PostgresSaver) -> None:
    source = NdjsonSource(path, saver, partial=True)
    try:
        for tid in source.thread_ids():
            source.check_thread(tid)
            source.load_thread(tid)
    finally:
        source.close()


def _seed(s: PostgresSaver) -> None:
    rnd = random.Random(11)
    for thread in ("a", "b"):
        parent = None
        for step in range(2):
            cp = make_checkpoint({"n": step, "doc": ["x" * 300, rnd.randbytes(20_000)]})
            parent = s.put(cfg(thread, "", parent), cp, {"step": step},
                           dict(cp["channel_versions"]))["configurable"]["checkpoint_id"]
        s.put_writes(cfg(thread, "", parent), [("doc", ["w"]), ("n", 9)], "task")


def test_fuzz_ndjson(db_url: str, tmp_path: Path) -> None:
    with PostgresSaver.from_conn_string(db_url) as s:
        s.setup()
        _seed(s)
        export = tmp_path / "export.ndjson"
        export_file(s, export)
        lines = export.read_bytes().splitlines(keepends=True)
        _read_all(export, s)  # the clean file reads
        target = tmp_path / "fuzzed.ndjson"

        @fuzz_settings(100)
        @given(st.data())
        def reader(data: st.DataObject) -> None:
            target.write_bytes(b"".join(_mutate_lines(data, lines)))
            guarded(lambda: _read_all(target, s))

        reader()

        # A few through the whole import into the real database.
        @fuzz_settings(15)
        @given(st.data())
        def importer(data: st.DataObject) -> None:
            target.write_bytes(b"".join(_mutate_lines(data, lines)))
            guarded(lambda: import_ndjson(s, target))

        importer()


# --- the SQLite importer ------------------------------------------------------------------

SQLITE_COLUMNS = {
    "checkpoints": ["thread_id", "checkpoint_ns", "checkpoint_id", "parent_checkpoint_id",
                    "type", "checkpoint", "metadata"],
    "writes": ["thread_id", "checkpoint_ns", "checkpoint_id", "task_id", "idx", "channel",
               "type", "value"],
}


def _sqlite_file(path: Path) -> None:
    with SqliteSaver.from_conn_string(str(path)) as lite:
        rnd = random.Random(5)
        for thread in ("a", "b"):
            parent = None
            for step in range(2):
                cp = make_checkpoint({"n": step, "doc": ["y" * 400, rnd.randbytes(5000)]})
                parent = lite.put(cfg(thread, "", parent), cp, {"step": step},
                                  dict(cp["channel_versions"]))["configurable"]["checkpoint_id"]
            lite.put_writes(cfg(thread, "", parent), [("doc", ["w"]), ("n", 9)], "task")


def _tamper_sqlite(data: st.DataObject, path: Path) -> None:
    conn = sqlite3.connect(path)
    try:
        for _ in range(data.draw(st.integers(1, 3))):
            table = data.draw(st.sampled_from(sorted(SQLITE_COLUMNS)))
            column = data.draw(st.sampled_from(SQLITE_COLUMNS[table]))
            rows = [r[0] for r in conn.execute(f"SELECT rowid FROM {table}")]
            if not rows:
                continue
            rowid = data.draw(st.sampled_from(rows))
            old = conn.execute(
                f"SELECT {column} FROM {table} WHERE rowid = ?", (rowid,)
            ).fetchone()[0]
            new = mutate(data, old if not isinstance(old, str) else old.encode())
            if isinstance(new, int) and not -(2**63) <= new < 2**63:
                new = str(new)
            try:
                conn.execute(f"UPDATE {table} SET {column} = ? WHERE rowid = ?", (new, rowid))
            except sqlite3.IntegrityError:
                continue  # the file's own constraints refuse it (NOT NULL, primary key)
        conn.commit()
    finally:
        conn.close()


def _read_sqlite(path: Path) -> None:
    source = SqliteSource(path, SERDE)
    try:
        for tid in source.thread_ids():
            source.load_thread(tid)
    finally:
        source.close()


def test_fuzz_sqlite(db_url: str, tmp_path: Path) -> None:
    clean = tmp_path / "clean.sqlite"
    _sqlite_file(clean)
    target = tmp_path / "fuzzed.sqlite"
    with PostgresSaver.from_conn_string(db_url) as s:
        s.setup()
        assert import_sqlite(s, clean).verified

        @fuzz_settings(40)
        @given(st.data())
        def importer(data: st.DataObject) -> None:
            shutil.copyfile(clean, target)
            _tamper_sqlite(data, target)
            guarded(lambda: import_sqlite(s, target))
            guarded(lambda: _read_sqlite(target))

        importer()


@pytest.mark.parametrize(
    "garbage", [b"", b"not sqlite at all" * 100, b"SQLite format 3\x00" + b"\xff" * 4000]
)
def test_sqlite_importer_on_a_file_that_is_not_a_database(
    db_url: str, tmp_path: Path, garbage: bytes
) -> None:
    path = tmp_path / "x.sqlite"
    path.write_bytes(garbage)
    with PostgresSaver.from_conn_string(db_url) as s:
        s.setup()
        with pytest.raises(PgCheckpointError):
            import_sqlite(s, path)
