"""Unit tests of the pure core (codec, SaverCore validation): no database."""

from __future__ import annotations

import json
import uuid
from datetime import datetime, timezone
from typing import Any

import pytest
from langgraph.checkpoint.base import WRITES_IDX_MAP, empty_checkpoint
from langgraph.checkpoint.serde.jsonplus import JsonPlusSerializer

from pgcheckpoint import (
    BlockedTypeError,
    ChunkingPolicy,
    CompressionPolicy,
    DeserializationError,
    IntegrityError,
    InvalidInputError,
    SerializationError,
    _strict,
    _validate,
    compression,
    encoding,
)
from pgcheckpoint import codec as c
from pgcheckpoint._core import SaverCore, default_serde


class NotAllowed(frozenset[int]):
    """Written by name, but not a data class: the default rule refuses it on read."""


@pytest.fixture
def cod() -> c.Codec:
    return c.Codec(default_serde(), CompressionPolicy(), ChunkingPolicy())


def test_text_id_accepts_str_int_uuid() -> None:
    u = uuid.uuid4()
    assert c.text_id("a", "t") == "a"
    assert c.text_id(5, "t") == "5"
    assert c.text_id(u, "t") == str(u)
    assert c.text_id("", "ns", allow_empty=True) == ""


@pytest.mark.parametrize(
    ("value", "match"),
    [(True, "must be a str, int or UUID"), (1.0, "got float"), (b"x", "got bytes"),
     ("a\x00", "contains a NUL byte"), ("", "must not be empty")],
)
def test_text_id_refuses(value: Any, match: str) -> None:
    with pytest.raises(InvalidInputError, match=match):
        c.text_id(value, "thread_id")


def test_target_reads_config() -> None:
    t = c.target({"configurable": {"thread_id": 7, "checkpoint_ns": "ns", "checkpoint_id": "x"}})
    assert t == c.Target("7", "ns", "x")
    assert c.target({"configurable": {"thread_id": "a"}}) == c.Target("a", "", None)
    with pytest.raises(InvalidInputError, match='no "thread_id"'):
        c.target({"configurable": {}})
    with pytest.raises(InvalidInputError, match='no "configurable"'):
        c.target({})  # type: ignore[typeddict-item]


def test_metadata_json() -> None:
    assert c.metadata_json({"a": [1, "é", None, True], "b": {"c": 1.5}}) == (
        '{"a":[1,"é",null,true],"b":{"c":1.5}}'
    )
    for bad, match in [({"a": float("inf")}, "JSON cannot hold"), ({"a": object()}, "not JSON"),
                       ({"a": {2: 1}}, "non-string key"), ({"a": ["x\x00"]}, "NUL")]:
        with pytest.raises(InvalidInputError, match=match):
            c.metadata_json(bad)
    with pytest.raises(InvalidInputError, match="filter must be a dict"):
        c.metadata_json([], "filter")  # type: ignore[arg-type]


def test_is_inline() -> None:
    limit = encoding.INLINE_STR_MAX
    assert all(c.is_inline(v) for v in (None, True, 3, 2.5, "s" * limit))
    assert not any(c.is_inline(v) for v in ("s" * (limit + 1), [1], {"a": 1}, b"x"))


def test_pack_compresses_large_compressible_values(cod: c.Codec) -> None:
    data = b"abc" * 10_000
    type_, packed = cod.pack("msgpack", data)
    assert type_ == "msgpack+zstd" and len(packed) < len(data) // 10
    small_type, small = cod.pack("msgpack", b"abc")
    assert (small_type, small) == ("msgpack", b"abc")


@pytest.mark.parametrize("size", [10, 5_000, 9_000, 300_000])
def test_blob_round_trip(cod: c.Codec, size: int) -> None:
    value = {"text": "".join(chr(65 + (i * 7919) % 26) for i in range(size)), "n": size}
    chunks: dict[bytes, tuple[bool, bytes]] = {}
    type_, data, refs = cod.encode_blob(value, "v", chunks)
    if size >= cod.chunking.threshold:
        # The row keeps at most a short header; the rest is in chunks.
        assert type_.endswith(c.CDC_SUFFIX) and len(data or b"") <= 64 and refs and chunks
        assert len(refs) % 16 in (0, 2)  # a flat list, or a tree (chunking.py)
    else:
        assert refs is None and not chunks
    assert cod.decode_blob(type_, data, refs, chunks, "v") == value


def test_missing_chunk_is_reported(cod: c.Codec) -> None:
    chunks: dict[bytes, tuple[bool, bytes]] = {}
    type_, data, refs = cod.encode_blob(list(range(50_000)), "v", chunks)
    chunks.pop(next(iter(chunks)))
    with pytest.raises(DeserializationError, match="is missing from the database"):
        cod.decode_blob(type_, data, refs, chunks, "channel 'm'")


def test_blocked_type_raises() -> None:
    permissive = JsonPlusSerializer()
    type_, data = permissive.dumps_typed(NotAllowed({1}))
    with pytest.raises(BlockedTypeError, match="NotAllowed") as info:
        c.loads(default_serde(), type_, data, "channel 'x'")
    assert info.value.blocked == [f"{__name__}.NotAllowed"]
    # An allowlist that names the type lets it through.
    allowed = JsonPlusSerializer(allowed_msgpack_modules=[(__name__, "NotAllowed")])
    assert c.loads(allowed, type_, data, "x") == NotAllowed({1})


def test_undecodable_bytes_raise_deserialization_error() -> None:
    with pytest.raises(DeserializationError, match="cannot deserialize"):
        c.loads(default_serde(), "msgpack", b"\xc1\xc1", "x")
    with pytest.raises(DeserializationError, match="not valid zstd"):
        c.Codec(default_serde()).unpack("msgpack+zstd", b"nope", "x")


def test_dumps_refuses_unserializable() -> None:
    with pytest.raises(SerializationError, match="cannot serialize thing"):
        c.dumps(default_serde(), lambda: 1, "thing")


def _checkpoint() -> Any:
    cp = empty_checkpoint()
    cp["channel_values"] = {"small": 3, "flag": True, "big": list(range(3000)), "s": "hi",
                            "msgs": ["m" * 300]}
    cp["channel_versions"] = {"small": "1", "flag": "1", "big": "2", "s": "1", "msgs": "3"}
    return cp


def _read_row(enc: c.EncodedPut, writes: list[tuple[str, str, str, bytes]]) -> tuple[Any, ...]:
    """The row read_checkpoints would return for one stored checkpoint."""
    p = enc.params
    return (
        p["thread_id"], p["checkpoint_ns"], p["checkpoint_id"], p["parent_checkpoint_id"],
        p["type"], p["checkpoint"], {"m": 1}, p["channels"], p["versions"],
        p["blob_channels"] or None, p["blob_versions"] or None, p["blob_types"] or None,
        p["blob_values"] or None, p["blob_refs"] or None,
        p["chunk_hashes"] or None, p["chunk_compressed"] or None, p["chunk_data"] or None,
        [w[0] for w in writes] or None, [w[1] for w in writes] or None,
        [w[2] for w in writes] or None, [w[3] for w in writes] or None,
    )


def test_put_encoding_round_trip(cod: c.Codec) -> None:
    cp = _checkpoint()
    where = c.Target("t", "ns", "parent-id")
    enc = c.encode_put(cod, where, cp, {"m": 1}, cp["channel_versions"])
    p = enc.params
    assert sorted(p["blob_channels"]) == ["big", "msgs"]
    assert dict(zip(p["channels"], p["versions"], strict=True)) == {
        "small": None, "flag": None, "big": "2", "s": None, "msgs": "3"}
    assert p["created_at"] == datetime.fromisoformat(cp["ts"])
    assert enc.config["configurable"] == {"thread_id": "t", "checkpoint_ns": "ns",
                                          "checkpoint_id": cp["id"]}
    wtype, wdata = cod.pack(*c.dumps(cod.serde, {"w": 1}, "w"))
    out = c.decode_rows(cod, [_read_row(enc, [("task", "ch", wtype, wdata)])])
    assert len(out) == 1
    assert out[0].checkpoint == cp
    assert out[0].parent_config is not None
    assert out[0].parent_config["configurable"]["checkpoint_id"] == "parent-id"
    assert out[0].pending_writes == [("task", "ch", {"w": 1})]


def test_put_without_new_versions_stores_no_blob(cod: c.Codec) -> None:
    cp = _checkpoint()
    enc = c.encode_put(cod, c.Target("t", "", None), cp, {}, {})
    assert enc.params["blob_channels"] == [] and enc.params["chunk_hashes"] == []
    with pytest.raises(DeserializationError, match="missing from the database"):
        c.decode_rows(cod, [_read_row(enc, [])])


def test_put_refuses_value_without_version(cod: c.Codec) -> None:
    cp = _checkpoint()
    del cp["channel_versions"]["big"]
    with pytest.raises(InvalidInputError, match="'big' has a value but no entry"):
        c.encode_put(cod, c.Target("t", "", None), cp, {}, {})


def test_parse_ts() -> None:
    assert c.parse_ts("2024-01-02T03:04:05+00:00") == datetime(2024, 1, 2, 3, 4, 5,
                                                               tzinfo=timezone.utc)
    assert c.parse_ts("2024-01-02T03:04:05") is None  # naive: let the database use now()
    assert c.parse_ts("yesterday") is None and c.parse_ts(None) is None


def test_encode_writes(cod: c.Codec) -> None:
    where = c.Target("t", "", "cid")
    upsert, p = c.encode_writes(cod, where, [("a", 1), ("b", 2)], "task", "path")
    assert not upsert and p["idx"] == [0, 1] and p["task_path"] == "path"
    upsert, p = c.encode_writes(cod, where, [("__interrupt__", 1), ("__error__", "e")], "t", None)
    assert upsert and p["idx"] == [WRITES_IDX_MAP["__interrupt__"], WRITES_IDX_MAP["__error__"]]
    with pytest.raises(InvalidInputError, match="needs config"):
        c.encode_writes(cod, c.Target("t", "", None), [("a", 1)], "t", "")


def test_decode_delta_orders_writes_oldest_first(cod: c.Codec) -> None:
    def w(depth: int, cid: str, task: str, path: str, idx: int, value: Any) -> tuple[Any, ...]:
        t, d = cod.pack(*c.dumps(cod.serde, value, "w"))
        return ("w", depth, cid, "ch", t, d, None, None, None, None, task, path, idx, None, None)

    skel_t, skel_d = cod.pack(*c.dumps(cod.serde, {"channel_values": {"ch": "seed"}}, "s"))
    walk = [("a", 1, "c2", None, None, None, None, ["x"], [None], ["ch"], None, None, None,
             None, None),
            ("a", 2, "c1", None, None, None, None, ["ch"], [None], ["ch"], None, None, None,
             skel_t, skel_d)]
    rows = c.split_delta([*walk, w(1, "c2", "b", "~1", 0, "late"), w(2, "c1", "z", "", 1, "2nd"),
                          w(2, "c1", "z", "", 0, "1st"), w(1, "c2", "a", "~0", 0, "mid")])
    hist = c.decode_delta(cod, rows, ["ch", "other"], {})
    assert [x[2] for x in hist["ch"]["writes"]] == ["1st", "2nd", "mid", "late"]
    assert hist["ch"]["seed"] == "seed"
    assert hist["other"] == {"writes": []}


def test_next_version_is_ordered_and_unique() -> None:
    core = SaverCore()
    v1 = core.get_next_version(None)
    v2 = core.get_next_version(v1)
    assert v1 < v2 and v1.startswith("0" * 31 + "1.") and v2.startswith("0" * 31 + "2.")
    assert core.get_next_version(v1) != v2  # forks of one checkpoint never collide
    assert core.get_next_version(41).startswith(f"{42:032}.")  # type: ignore[arg-type]
    with pytest.raises(InvalidInputError, match="cannot read channel version"):
        core.get_next_version("abc")


def test_core_validates_without_io() -> None:
    core = SaverCore()
    with pytest.raises(InvalidInputError, match="unknown prune strategy"):
        core._prune_plan(["t"], "oldest")
    with pytest.raises(InvalidInputError, match="limit must be"):
        core._lister(None, None, None, -5)
    with pytest.raises(InvalidInputError, match="channels must be a list"):
        core._delta_plan({"configurable": {"thread_id": "t"}}, "messages")


def test_small_skeletons_are_stored_raw_large_ones_compressed(cod: c.Codec) -> None:
    """A checkpoint's own bytes follow the value policy: raw below its threshold (they
    used to be compressed from 128 bytes), compressed above it when that pays."""
    cp = _checkpoint()
    enc = c.encode_put(cod, c.Target("t", "", None), cp, {}, cp["channel_versions"])
    assert enc.params["type"] == "msgpack"
    wide = _checkpoint()
    wide["channel_values"].update({f"flag{i}": i for i in range(200)})
    wide["channel_versions"].update({f"flag{i}": f"{i:032}.0.5" for i in range(200)})
    enc = c.encode_put(cod, c.Target("t", "", None), wide, {}, wide["channel_versions"])
    assert enc.params["type"] == "msgpack+zstd"
    assert c.decode_rows(cod, [_read_row(enc, [])])[0].checkpoint == wide


def test_a_skeleton_compressed_the_old_way_reads_back(cod: c.Codec) -> None:
    """Rows written before skeletons followed the value policy (zstd from 128 bytes,
    type ``msgpack+zstd``) read as before, on get and list alike."""
    cp = _checkpoint()
    cp["channel_values"].update({f"flag{i}": True for i in range(4)})
    cp["channel_versions"].update({f"flag{i}": f"{i:032}.0.{i}23456789" for i in range(4)})
    enc = c.encode_put(cod, c.Target("t", "", "parent-id"), cp, {}, cp["channel_versions"])
    raw = enc.params["checkpoint"]
    assert enc.params["type"] == "msgpack"
    old = compression.maybe_compress(raw, CompressionPolicy(threshold=128))
    assert old is not None and len(old) < len(raw)
    enc.params.update(type="msgpack+zstd", checkpoint=old)
    out = c.decode_rows(cod, [_read_row(enc, []), _read_row(enc, [])])
    assert [t.checkpoint for t in out] == [cp, cp]
    enc.params.update(checkpoint=old[:-1] + bytes([old[-1] ^ 1]))  # its checksum fails
    with pytest.raises(IntegrityError, match="checksum"):
        c.decode_rows(cod, [_read_row(enc, [])])


def test_one_collector_per_page_keeps_each_values_refusals_apart() -> None:
    """decode_rows collects the allowlist's refusals once a page: a refused value raises
    (or shows as Unloadable) alone, and the values after it decode as they are."""
    permissive = JsonPlusSerializer()
    bad_t, bad = permissive.dumps_typed(NotAllowed({1}))
    good_t, good = permissive.dumps_typed({"ok": [1, 2]})
    serde = default_serde()
    with _strict.loading():
        with pytest.raises(BlockedTypeError, match="NotAllowed"):
            c.loads(serde, bad_t, bad, "first")
        assert c.loads(serde, good_t, good, "second") == {"ok": [1, 2]}
        with c.show_unloadable():
            shown = c.loads(serde, bad_t, bad, "third")
            assert isinstance(shown, c.Unloadable)
            assert shown.not_loaded == (f"{__name__}.NotAllowed",)
            assert c.loads(serde, good_t, good, "fourth") == {"ok": [1, 2]}
        with pytest.raises(DeserializationError, match="cannot deserialize fifth"):
            c.loads(serde, "msgpack", b"\xc1", "fifth")
        assert c.loads(serde, good_t, good, "sixth") == {"ok": [1, 2]}
    assert _strict._blocked.get() is None


def test_a_blocked_value_in_a_page_names_its_row(cod: c.Codec) -> None:
    cp = _checkpoint()
    enc = c.encode_put(cod, c.Target("t", "", None), cp, {}, cp["channel_versions"])
    ok = _read_row(enc, [])
    bad_t, bad = JsonPlusSerializer().dumps_typed(NotAllowed({1}))
    tampered = _read_row(enc, [("task", "ch", bad_t, bad)])
    with pytest.raises(BlockedTypeError, match="write to 'ch'") as info:
        c.decode_rows(cod, [ok, tampered, ok])
    assert info.value.blocked == [f"{__name__}.NotAllowed"]
    assert len(c.decode_rows(cod, [ok, ok])) == 2


@pytest.mark.parametrize(
    ("metadata", "match"),
    [
        ({"a": [1, {"b": float("nan")}]}, r"^metadata \.a\[1\]\.b is nan, which JSON"),
        ({"a": {"x\x00": 1}}, r"^metadata \.a has a key with a NUL byte"),
        ({"a": [{"k": {2: 1}}]}, r"^metadata \.a\[0\]\.k has a non-string key 2"),
        ({"a": ["ok", "bad\ud800"]}, r"^metadata \.a\[1\] contains a lone surrogate"),
        ({"a": ("t", "z\x00")}, r"^metadata \.a\[1\] contains a NUL byte"),
        ({"é": {"k\ud800": 1}}, r"^metadata \.é has a key with a lone surrogate"),
        ({"a": {"b": object()}}, r"^metadata \.a\.b is a object, which is not JSON"),
    ],
)
def test_metadata_errors_name_the_path(metadata: dict[str, Any], match: str) -> None:
    with pytest.raises(InvalidInputError, match=match):
        c.metadata_json(metadata)


def test_metadata_depth_is_bounded() -> None:
    deep: dict[str, Any] = {}
    node = deep
    for _ in range(_validate.MAX_JSON_DEPTH):
        node["x"] = {}
        node = node["x"]
    with pytest.raises(InvalidInputError, match="nested more than 100 levels"):
        c.metadata_json(deep)
    c.metadata_json(deep["x"])  # one level less is accepted
    assert json.loads(c.metadata_json({"é": ["ü", 1.5, None, True]})) == {
        "é": ["ü", 1.5, None, True]
    }
