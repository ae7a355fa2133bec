"""Issue 12, findings 3, 6, 7 and 8: rows tampered in SQL on a real database, and input that
used to escape as builtin exceptions or come back altered.

Each test attacks as someone who can write the saver's tables would: decompression bombs,
chunk lists that repeat a chunk, flipped and swapped chunks, malformed rows, lone surrogates,
deep nesting, and retention policies that stopped every sweep.
"""

from __future__ import annotations

import random
import tracemalloc
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import psycopg
import pytest
import zstandard
from langchain_core.messages import HumanMessage
from langgraph.checkpoint.serde.jsonplus import JsonPlusSerializer

from _helpers import cfg, db_snapshot, make_checkpoint
from pgcheckpoint import (
    ChunkingPolicy,
    CompressionPolicy,
    DeserializationError,
    IntegrityError,
    InvalidInputError,
    PgCheckpointError,
    PostgresSaver,
    RetentionPolicy,
)
from pgcheckpoint import compression as z
from pgcheckpoint._validate import MAX_JSON_DEPTH
from pgcheckpoint.chunking import HASH_SIZE, digest
from pgcheckpoint.codec import Codec
from pgcheckpoint.retention import MAX_DURATION, MAX_KEEP_LAST

MiB = 1024 * 1024
NO_CDC = ChunkingPolicy(enabled=False)


# --- hand-made zstd frames (RFC 8878) -------------------------------------------------

MAGIC = b"\x28\xb5\x2f\xfd"
BLOCK = 128 * 1024


def rle_frame(size: int, *, declare: bool) -> bytes:
    """A frame of ``size`` zero bytes made of RLE blocks: 4 bytes per 128 KiB."""
    if declare:  # single segment, 8-byte content size
        head = MAGIC + b"\xe0" + size.to_bytes(8, "little")
    else:  # no content size; window 128 KiB
        head = MAGIC + b"\x00" + bytes([7 << 3])
    blocks = bytearray()
    left = size
    while left:
        n = min(left, BLOCK)
        left -= n
        blocks += ((n << 3) | (1 << 1) | (0 if left else 1)).to_bytes(3, "little") + b"\x00"
    return head + bytes(blocks)


def declared_frame(declared: int, payload: bytes) -> bytes:
    """A frame that declares ``declared`` bytes but holds one raw block of ``payload``."""
    head = MAGIC + b"\xe0" + declared.to_bytes(8, "little")
    return head + ((len(payload) << 3) | 1).to_bytes(3, "little") + payload


class Peak:
    """Peak Python memory (tracemalloc) inside a with block."""

    def __enter__(self) -> Peak:
        tracemalloc.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.bytes = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()


# --- database helpers ------------------------------------------------------------------


@pytest.fixture
def saver(db_url: str) -> Iterator[PostgresSaver]:
    with PostgresSaver.from_conn_string(db_url) as s:
        s.setup()
        yield s


def sql(url: str, statement: str, *params: Any) -> list[tuple[Any, ...]]:
    with psycopg.connect(url, autocommit=True) as conn:
        cur = conn.execute(statement, params)
        return cur.fetchall() if cur.description else []


def put(s: PostgresSaver, thread: str, values: dict[str, Any]) -> dict[str, Any]:
    cp = make_checkpoint(values)
    return dict(s.put(cfg(thread), cp, {"step": 1}, dict(cp["channel_versions"])))


def text(n: int, seed: int = 1) -> str:
    """Compressible text with real literals in it (not one repeated word)."""
    rnd = random.Random(seed)
    words = ["alpha", "beta", "gamma", "delta", "omega", "kappa", "sigma", "tau", "phi", "psi"]
    out: list[str] = []
    size = 0
    while size < n:
        w = rnd.choice(words) + str(rnd.randrange(1000))
        out.append(w)
        size += len(w) + 1
    return " ".join(out)


# --- finding 3: decompression bombs ----------------------------------------------------


def test_frame_declaring_a_terabyte_is_refused_before_allocation() -> None:
    frame = declared_frame(1 << 40, b"hello")
    with pytest.raises(DeserializationError, match="declares 1099511627776 bytes"):
        z.decompress(frame)


def test_bomb_of_one_gib_in_32_kb_is_refused_without_the_memory(db_url: str) -> None:
    """The tampered value is ~32 KB; it used to decompress to 1 GiB of zeros."""
    with PostgresSaver.from_conn_string(db_url, chunking=NO_CDC) as s:
        s.setup()
        put(s, "bomb", {"doc": text(20_000)})
        bomb = rle_frame(1 << 30, declare=True)
        assert len(bomb) < 33_000
        sql(db_url, "UPDATE blobs SET value = %s WHERE type LIKE '%%+zstd'", bomb)
        with Peak() as peak, pytest.raises(DeserializationError, match="over the limit"):
            s.get_tuple(cfg("bomb"))
        assert peak.bytes < 64 * MiB


def test_frame_without_a_size_is_read_in_pieces_up_to_the_limit(db_url: str) -> None:
    policy = CompressionPolicy(max_value_size=4 * MiB)
    with PostgresSaver.from_conn_string(db_url, chunking=NO_CDC, compression=policy) as s:
        s.setup()
        put(s, "bomb", {"doc": text(20_000)})
        bomb = rle_frame(64 * MiB, declare=False)
        sql(db_url, "UPDATE blobs SET value = %s WHERE type LIKE '%%+zstd'", bomb)
        with Peak() as peak, pytest.raises(DeserializationError, match="more than 4194304"):
            s.get_tuple(cfg("bomb"))
        assert peak.bytes < 16 * MiB
    # Under the limit, a frame without a size reads (streamed): old writers' frames stay valid.
    small = zstandard.ZstdCompressor(write_content_size=False).compress(b"x" * 5000)
    assert zstandard.frame_content_size(small) == -1
    assert z.decompress(small) == b"x" * 5000


def test_chunk_list_naming_one_chunk_many_times_stops_at_the_limit(
    saver: PostgresSaver, db_url: str
) -> None:
    """2,000 references (32 KB) to one 256 KiB chunk used to be joined into 500 MiB."""
    put(saver, "rep", {"doc": random.Random(3).randbytes(300_000)})
    (h,) = sql(db_url, "SELECT hash FROM chunks WHERE NOT compressed LIMIT 1")[0]
    piece = random.Random(4).randbytes(256 * 1024)
    sql(db_url, "UPDATE chunks SET data = %s, hash = %s WHERE hash = %s", piece, digest(piece), h)
    sql(db_url, "UPDATE blobs SET chunk_refs = %s WHERE chunk_refs IS NOT NULL",
        digest(piece) * 2000)
    with Peak() as peak, pytest.raises(DeserializationError, match="grows beyond 268435456"):
        saver.get_tuple(cfg("rep"))
    assert peak.bytes < 64 * MiB


def test_chunk_count_is_checked_before_reading_chunks() -> None:
    codec = Codec(serde=JsonPlusSerializer(), compression=CompressionPolicy(max_value_size=6400))
    refs = b"\x01" * HASH_SIZE * 500
    with pytest.raises(DeserializationError, match="names 500 chunks"):
        codec.decode_blob("msgpack+cdc", b"", refs, {}, "channel 'x'")
    with pytest.raises(DeserializationError, match="not whole 16-byte addresses"):
        codec.decode_blob("msgpack+cdc", b"", b"\x01" * 17, {}, "channel 'x'")


def test_a_value_over_the_limit_is_refused_on_write(db_url: str) -> None:
    """Nothing written may fail to be read back: the write refuses what a read would."""
    policy = CompressionPolicy(max_value_size=64 * 1024)
    with PostgresSaver.from_conn_string(db_url, compression=policy) as s:
        s.setup()
        before = db_snapshot(db_url)
        with pytest.raises(InvalidInputError, match="max_value_size"):
            put(s, "big", {"doc": "y" * 100_000})
        assert db_snapshot(db_url) == before


def test_max_value_size_is_validated() -> None:
    for bad in (0, -1, 1.5, True):
        with pytest.raises(PgCheckpointError, match="max_value_size"):
            CompressionPolicy(max_value_size=bad)  # type: ignore[arg-type]


# --- finding 7: integrity --------------------------------------------------------------


def test_flipped_byte_in_a_chunk_raises_integrity_error(
    saver: PostgresSaver, db_url: str
) -> None:
    value = random.Random(5).randbytes(200_000)
    put(saver, "flip", {"doc": value})
    assert saver.get_tuple(cfg("flip")).checkpoint["channel_values"]["doc"] == value
    sql(db_url, "UPDATE chunks SET data = set_byte(data, 100, get_byte(data, 100) # 1) "
                "WHERE hash = (SELECT hash FROM chunks ORDER BY hash LIMIT 1)")
    with pytest.raises(IntegrityError, match="does not match its content"):
        saver.get_tuple(cfg("flip"))


def test_swapped_chunks_raise_integrity_error(saver: PostgresSaver, db_url: str) -> None:
    put(saver, "swap", {"doc": random.Random(6).randbytes(200_000)})
    (a, da), (b, db) = sql(db_url, "SELECT hash, data FROM chunks ORDER BY hash LIMIT 2")
    sql(db_url, "UPDATE chunks SET data = %s WHERE hash = %s", db, a)
    sql(db_url, "UPDATE chunks SET data = %s WHERE hash = %s", da, b)
    with pytest.raises(IntegrityError):
        saver.get_tuple(cfg("swap"))


def test_no_flipped_byte_of_a_compressed_value_comes_back_as_state(db_url: str) -> None:
    with PostgresSaver.from_conn_string(db_url, chunking=NO_CDC) as s:
        s.setup()
        put(s, "z", {"doc": text(30_000)})
        (stored,) = sql(db_url, "SELECT value FROM blobs WHERE type LIKE '%%+zstd'")[0]
        assert zstandard.get_frame_parameters(stored).has_checksum
        kinds = set()
        for pos in range(20, len(stored) - 4, max(1, len(stored) // 12)):
            sql(db_url, "UPDATE blobs SET value = set_byte(value, %s, get_byte(value, %s) # 4)",
                pos, pos)
            with pytest.raises(DeserializationError) as info:
                s.get_tuple(cfg("z"))
            kinds.add(type(info.value))
            sql(db_url, "UPDATE blobs SET value = %s", stored)
        assert IntegrityError in kinds


def test_frames_written_without_a_checksum_stay_readable(db_url: str) -> None:
    with PostgresSaver.from_conn_string(db_url, chunking=NO_CDC) as s:
        s.setup()
        doc = text(30_000, seed=9)
        put(s, "old", {"doc": doc})
        (stored,) = sql(db_url, "SELECT value FROM blobs WHERE type LIKE '%%+zstd'")[0]
        raw = zstandard.ZstdDecompressor().decompress(stored)
        old = zstandard.ZstdCompressor(level=3, write_checksum=False).compress(raw)
        assert not zstandard.get_frame_parameters(old).has_checksum
        sql(db_url, "UPDATE blobs SET value = %s", old)
        assert s.get_tuple(cfg("old")).checkpoint["channel_values"]["doc"] == doc


# --- finding 8: malformed rows -----------------------------------------------------------


@pytest.mark.parametrize(
    "tamper",
    [
        "UPDATE checkpoints SET versions = '{}'",
        "UPDATE checkpoints SET versions = versions || '{x}'::text[]",
        "UPDATE checkpoints SET checkpoint = '\\x00', type = 'msgpack+zstd'",
        "UPDATE checkpoints SET checkpoint = '\\x92c3', type = 'msgpack'",
        "UPDATE checkpoints SET checkpoint = '\\xc1', type = 'msgpack'",
        "UPDATE checkpoints SET type = 'no-such-type'",
        "UPDATE blobs SET type = 'msgpack+cdc', chunk_refs = '\\x0102'",
        "UPDATE blobs SET value = '\\xdd7fffffff'",
        "UPDATE writes SET value = '\\xc1'",
    ],
)
def test_malformed_rows_raise_deserialization_error(
    saver: PostgresSaver, db_url: str, tamper: str
) -> None:
    put(saver, "bad", {"doc": ["a list", 1, 2], "n": 1})
    saver.put_writes(saver.get_tuple(cfg("bad")).config, [("doc", [3])], "task")
    sql(db_url, tamper)
    with pytest.raises(DeserializationError):
        saver.get_tuple(cfg("bad"))
    with pytest.raises(DeserializationError):
        list(saver.list(cfg("bad")))


# --- finding 8: lone surrogates and deep nesting -----------------------------------------

SURROGATE = "caf\udce9"


@pytest.mark.parametrize(
    "where",
    ["thread_id", "checkpoint_ns", "metadata value", "metadata key", "channel", "value",
     "message", "write channel", "write value", "task_id"],
)
def test_lone_surrogates_are_refused(saver: PostgresSaver, db_url: str, where: str) -> None:
    first = put(saver, "seed", {"doc": ["x"] * 10})
    before = db_snapshot(db_url)
    values: dict[str, Any] = {"doc": ["x"] * 10}
    thread, ns, meta = "t", "", {"ok": 1}
    if where == "thread_id":
        thread = SURROGATE
    elif where == "checkpoint_ns":
        ns = SURROGATE
    elif where == "metadata value":
        meta = {"note": [SURROGATE]}
    elif where == "metadata key":
        meta = {SURROGATE: 1}
    elif where == "channel":
        values = {SURROGATE: ["x"]}
    elif where == "value":
        values = {"doc": ["ok", {"deep": SURROGATE}]}
    elif where == "message":
        values = {"messages": [HumanMessage(content=SURROGATE)]}
    with pytest.raises(InvalidInputError, match="surrogate"):
        if where.startswith("write") or where == "task_id":
            writes = [(SURROGATE, 1)] if where == "write channel" else [("doc", [SURROGATE])]
            saver.put_writes(first, writes, SURROGATE if where == "task_id" else "task")
        else:
            cp = make_checkpoint(values)
            saver.put(cfg(thread, ns), cp, meta, dict(cp["channel_versions"]))
    assert db_snapshot(db_url) == before
    with pytest.raises(InvalidInputError, match="surrogate"):
        list(saver.list(None, filter={"k": SURROGATE}))


def test_text_that_merely_holds_question_marks_is_stored(saver: PostgresSaver) -> None:
    values = {"doc": ["why?", "¿qué?", "日本語?"], "messages": [HumanMessage(content="ok?")]}
    put(saver, "q", values)
    got = saver.get_tuple(cfg("q")).checkpoint["channel_values"]
    assert got["doc"] == values["doc"] and got["messages"][0].content == "ok?"


def _nested(depth: int) -> Any:
    value: Any = "leaf"
    for _ in range(depth):
        value = {"k": value}
    return value


def test_nesting_beyond_the_limit_is_refused_not_a_recursion_error(
    saver: PostgresSaver, db_url: str
) -> None:
    before = db_snapshot(db_url)
    for depth in (MAX_JSON_DEPTH + 1, 50_000):
        cp = make_checkpoint({"n": 1})
        with pytest.raises(InvalidInputError, match="nested more than 100 levels"):
            saver.put(cfg("deep"), cp, {"m": _nested(depth)}, {})
        with pytest.raises(InvalidInputError, match="nested more than 100 levels"):
            list(saver.list(None, filter={"m": _nested(depth)}))
    assert db_snapshot(db_url) == before
    # At the limit, metadata is stored and read back (PostgreSQL's jsonb takes it).
    cp = make_checkpoint({"n": 1})
    saver.put(cfg("deep"), cp, {"m": _nested(MAX_JSON_DEPTH - 1)}, {})
    assert saver.get_tuple(cfg("deep")).metadata["m"] == _nested(MAX_JSON_DEPTH - 1)
    assert len(list(saver.list(None, filter={"m": _nested(MAX_JSON_DEPTH - 1)}))) == 1


def test_deeply_nested_value_is_a_serialization_error(saver: PostgresSaver) -> None:
    value: Any = []
    for _ in range(100_000):
        value = [value]
    cp = make_checkpoint({"doc": value})
    with pytest.raises(PgCheckpointError):
        saver.put(cfg("deepv"), cp, {}, dict(cp["channel_versions"]))


# --- finding 6: retention policies bounded where they are made ---------------------------


@pytest.mark.parametrize(
    "kwargs",
    [
        {"keep_last": 2**31},
        {"max_age": timedelta.max},
        {"thread_ttl": timedelta(days=10**6)},
        {"max_age": MAX_DURATION + timedelta(seconds=1)},
    ],
)
def test_policies_beyond_bounds_are_refused(kwargs: dict[str, Any]) -> None:
    with pytest.raises(InvalidInputError, match="at most"):
        RetentionPolicy(**kwargs)


def test_retention_days_overflow_is_refused() -> None:
    for days in (1e300, float("nan"), float("inf")):
        with pytest.raises(InvalidInputError, match="retention_days"):
            RetentionPolicy.from_settings(retention_days=days)


def test_a_policy_at_the_bounds_does_not_stop_the_sweep(
    saver: PostgresSaver, db_url: str
) -> None:
    """The maxima fit PostgreSQL: a thread at every bound and a thread the saver's policy
    trims are swept together."""
    edge = RetentionPolicy(keep_last=MAX_KEEP_LAST, max_age=MAX_DURATION, thread_ttl=MAX_DURATION)
    parent = None
    for i in range(3):
        for thread in ("edge", "trim"):
            cp = make_checkpoint({"doc": [i]})
            saver.put(cfg(thread, "", parent if thread == "trim" else None), cp, {},
                      dict(cp["channel_versions"]))
    saver.set_thread_retention("edge", edge)
    saver.set_thread_retention("trim", RetentionPolicy(keep_last=1))
    assert saver.get_thread_retention("edge") == edge
    report = saver.cleanup_old_checkpoints()
    assert report.checkpoints_deleted == 2
    assert len(list(saver.list(cfg("edge")))) == 3
    assert len(list(saver.list(cfg("trim")))) == 1


@pytest.mark.parametrize(
    "stored", ['{"max_age": 1e300}', '{"thread_ttl": -5}', '{"keep_last": 4294967296}']
)
def test_a_tampered_stored_policy_reads_as_invalid_input(
    saver: PostgresSaver, db_url: str, stored: str
) -> None:
    put(saver, "pol", {"doc": [1]})
    sql(db_url, "UPDATE threads SET retention = %s::jsonb WHERE thread_id = 'pol'", stored)
    with pytest.raises(InvalidInputError):
        saver.get_thread_retention("pol")


# --- found by tests/test_fuzz.py ---------------------------------------------------------


def _export(s: PostgresSaver, path: Any) -> list[bytes]:
    from pgcheckpoint.transfer import export_file

    put(s, "exp", {"doc": ["x"] * 10})
    export_file(s, path)
    lines: list[bytes] = path.read_bytes().splitlines(keepends=True)
    return lines


def test_ndjson_line_nested_past_the_stack_is_a_transfer_error(
    saver: PostgresSaver, tmp_path: Any
) -> None:
    from pgcheckpoint import TransferError
    from pgcheckpoint.importers.ndjson import NdjsonSource

    path = tmp_path / "e.ndjson"
    lines = _export(saver, path)
    lines.insert(1, b"[" * 100_000 + b"]" * 100_000 + b"\n")
    path.write_bytes(b"".join(lines))
    with pytest.raises(TransferError, match="line 2 is not JSON"):
        NdjsonSource(path, saver)


def test_ndjson_line_longer_than_any_valid_one_is_refused_unread(
    db_url: str, tmp_path: Any
) -> None:
    from pgcheckpoint import TransferError
    from pgcheckpoint.importers.ndjson import NdjsonSource

    with PostgresSaver.from_conn_string(
        db_url, compression=CompressionPolicy(max_value_size=1024)
    ) as s:
        s.setup()
        path = tmp_path / "e.ndjson"
        lines = _export(s, path)
        lines.insert(1, b'{"pad": "' + b"a" * (20 * MiB) + b'"}\n')
        path.write_bytes(b"".join(lines))
        with pytest.raises(TransferError, match="line 2 is longer than"):
            NdjsonSource(path, s)


@pytest.mark.parametrize(
    "tamper",
    [
        "UPDATE checkpoints SET metadata = 42",
        "UPDATE checkpoints SET metadata = X'80ff'",
        "UPDATE writes SET idx = X''",
        "UPDATE writes SET idx = 2147483648",
        "UPDATE writes SET idx = 1.5",
    ],
)
def test_sqlite_rows_that_are_not_what_they_claim_are_a_transfer_error(
    tmp_path: Any, tamper: str
) -> None:
    import sqlite3

    from langgraph.checkpoint.sqlite import SqliteSaver

    from pgcheckpoint import TransferError
    from pgcheckpoint.importers.sqlite import SqliteSource

    path = tmp_path / "s.sqlite"
    with SqliteSaver.from_conn_string(str(path)) as lite:
        cp = make_checkpoint({"doc": ["x"]})
        conf = lite.put(cfg("a"), cp, {"step": 1}, dict(cp["channel_versions"]))
        lite.put_writes(conf, [("doc", ["w"])], "task")
    conn = sqlite3.connect(path)
    conn.execute(tamper)
    conn.commit()
    conn.close()
    source = SqliteSource(path, JsonPlusSerializer())
    try:
        with pytest.raises(TransferError, match=r"malformed row|not a 32-bit integer"):
            source.load_thread("a")
    finally:
        source.close()


def test_sqlite_import_of_an_idx_beyond_int4_writes_nothing(
    saver: PostgresSaver, db_url: str, tmp_path: Any
) -> None:
    """It used to reach the binary array dumper and fail there with a raw struct.error."""
    import sqlite3

    from langgraph.checkpoint.sqlite import SqliteSaver

    from pgcheckpoint import TransferError
    from pgcheckpoint.importers.sqlite import import_sqlite

    path = tmp_path / "s.sqlite"
    with SqliteSaver.from_conn_string(str(path)) as lite:
        cp = make_checkpoint({"doc": ["x"]})
        conf = lite.put(cfg("a"), cp, {"step": 1}, dict(cp["channel_versions"]))
        lite.put_writes(conf, [("doc", ["w"])], "task")
    conn = sqlite3.connect(path)
    conn.execute("UPDATE writes SET idx = 2147483648")
    conn.commit()
    conn.close()
    before = db_snapshot(db_url)
    with pytest.raises(TransferError, match="32-bit integer"):
        import_sqlite(saver, path)
    assert db_snapshot(db_url) == before


def test_ndjson_line_whose_channels_and_versions_differ_is_refused(
    saver: PostgresSaver, db_url: str, tmp_path: Any
) -> None:
    """For a thread the target already holds, the comparison used to fail in zip()."""
    import json

    from pgcheckpoint import TransferError
    from pgcheckpoint.transfer import import_ndjson

    path = tmp_path / "e.ndjson"
    lines = _export(saver, path)
    for i, line in enumerate(lines):
        d = json.loads(line)
        if d.get("kind") == "checkpoint":
            d["channels"] = []
            lines[i] = json.dumps(d).encode() + b"\n"
    import hashlib

    body = lines[:-1]
    trailer = json.loads(lines[-1])
    trailer["sha256"] = hashlib.sha256(b"".join(body)).hexdigest()
    path.write_bytes(b"".join(body) + json.dumps(trailer).encode() + b"\n")
    before = db_snapshot(db_url)
    with pytest.raises(TransferError, match="channels and versions differ"):
        import_ndjson(saver, path)
    assert db_snapshot(db_url) == before


def test_export_of_a_chunk_list_naming_one_chunk_many_times_stops_at_the_limit(
    saver: PostgresSaver, db_url: str, tmp_path: Any
) -> None:
    from pgcheckpoint import TransferError
    from pgcheckpoint.transfer import export_file

    put(saver, "rep", {"doc": random.Random(3).randbytes(300_000)})
    (h,) = sql(db_url, "SELECT hash FROM chunks WHERE NOT compressed LIMIT 1")[0]
    piece = random.Random(4).randbytes(256 * 1024)
    sql(db_url, "UPDATE chunks SET data = %s, hash = %s WHERE hash = %s", piece, digest(piece), h)
    sql(db_url, "UPDATE blobs SET chunk_refs = %s WHERE chunk_refs IS NOT NULL",
        digest(piece) * 2000)
    with Peak() as peak, pytest.raises(TransferError, match="grows beyond"):
        export_file(saver, tmp_path / "out.ndjson")
    assert peak.bytes < 64 * MiB
    assert not (tmp_path / "out.ndjson").exists()


def test_export_of_an_altered_chunk_raises_integrity_error(
    saver: PostgresSaver, db_url: str, tmp_path: Any
) -> None:
    from pgcheckpoint.transfer import export_file

    put(saver, "alt", {"doc": random.Random(8).randbytes(100_000)})
    sql(db_url, "UPDATE chunks SET data = set_byte(data, 7, get_byte(data, 7) # 1) "
                "WHERE hash = (SELECT hash FROM chunks ORDER BY hash LIMIT 1)")
    with pytest.raises(IntegrityError):
        export_file(saver, tmp_path / "out.ndjson")
