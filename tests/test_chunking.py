"""Content-defined chunking: pure properties, then storage behaviour on PostgreSQL."""

from __future__ import annotations

import base64
import json
import os
import random
from pathlib import Path
from typing import Annotated, Any

import psycopg
import pytest
from langgraph.checkpoint.serde.jsonplus import JsonPlusSerializer

from _helpers import Api, cfg, make_checkpoint
from pgcheckpoint import (
    ChunkingPolicy,
    ConfigurationError,
    DeserializationError,
    IntegrityError,
    PostgresSaver,
)
from pgcheckpoint import chunking as ck
from pgcheckpoint.codec import CDC_SUFFIX, Codec
from pgcheckpoint.transfer import export_file, import_ndjson


def _data(n: int, seed: int = 1) -> bytes:
    return random.Random(seed).randbytes(n)


@pytest.mark.parametrize("size", [0, 1, 8192, 100_000, 3_000_000])
def test_split_concatenates_back(size: int) -> None:
    data = _data(size)
    pieces = ck.split(data, ChunkingPolicy())
    assert b"".join(pieces) == data
    if size:
        assert len(pieces) <= ChunkingPolicy().target_chunks * 4


def test_average_size_bounds() -> None:
    p = ChunkingPolicy()
    assert ck.average_size(10, p) == p.min_avg
    assert ck.average_size(10**9, p) == p.max_avg
    avg = ck.average_size(1_000_000, p)
    assert avg & (avg - 1) == 0 and p.min_avg <= avg <= p.max_avg


def test_edit_in_the_middle_changes_few_chunks() -> None:
    data = _data(1_000_000)
    edited = data[:500_000] + b"XYZ" + data[500_000:]
    a = {ck.digest(x) for x in ck.split(data, ChunkingPolicy())}
    b = {ck.digest(x) for x in ck.split(edited, ChunkingPolicy())}
    assert len(b - a) <= 3, "a small edit must only change the chunks around it"


def test_digest_and_refs() -> None:
    h = ck.digest(b"abc")
    assert len(h) == ck.HASH_SIZE and h != ck.digest(b"abd")
    assert ck.split_refs(h + ck.digest(b"x")) == [h, ck.digest(b"x")]


@pytest.mark.parametrize("kwargs", [{"min_avg": 100}, {"min_avg": 4096, "max_avg": 2048},
                                    {"target_chunks": 0}, {"avg_size": 100},
                                    {"fanout": 2}, {"fanout": 12}, {"cache_bytes": -1},
                                    {"avg_size": (1 << 24) + 1}])
def test_policy_validation(kwargs: dict[str, Any]) -> None:
    with pytest.raises(ConfigurationError):
        ChunkingPolicy(**kwargs)


def _rows(url: str, sql: str) -> list[tuple[Any, ...]]:
    with psycopg.connect(url, autocommit=True) as conn:
        return [tuple(r) for r in conn.execute(sql)]


async def test_growing_list_shares_chunks(api: Api) -> None:
    """Each step of a growing message list stores about the new part, not the whole list."""
    msgs: list[str] = []
    parent = None
    rnd = random.Random(3)
    for step in range(12):
        msgs = [*msgs, "".join(rnd.choice("abcdefgh ") for _ in range(4000)) + str(step)]
        cp = make_checkpoint({"messages": msgs}, {"messages": f"{step + 1:032}.0"})
        saved = await api.call("put", cfg("g", "", parent), cp, {"step": step},
                               dict(cp["channel_versions"]))
        parent = saved["configurable"]["checkpoint_id"]
    got = await api.call("get_tuple", cfg("g"))
    assert got.checkpoint["channel_values"]["messages"] == msgs
    for t in await api.call("list", cfg("g")):
        assert t.checkpoint["channel_values"]["messages"] == msgs[: t.metadata["step"] + 1]
    total_raw = sum(len(m) for i in range(12) for m in msgs[: i + 1])
    stored = _rows(api.url, "SELECT coalesce(sum(length(data)), 0) FROM chunks")[0][0]
    assert stored < total_raw / 3, (stored, total_raw)
    types = {r[0] for r in _rows(api.url, "SELECT type FROM blobs")}
    assert any(t.endswith("+cdc") for t in types)


async def test_chunks_are_collected_with_their_blobs(api: Api) -> None:
    big = {"v": list(range(200_000))}
    first = await api.put("gc", big)
    await api.put("gc", {"v": [1]}, parent=first["configurable"]["checkpoint_id"])
    assert _rows(api.url, "SELECT count(*) FROM chunks")[0][0] > 0
    await api.call("prune", ["gc"], strategy="keep_latest")
    assert _rows(api.url, "SELECT count(*) FROM chunks")[0][0] == 0
    got = await api.call("get_tuple", cfg("gc"))
    assert got.checkpoint["channel_values"] == {"v": [1]}


async def test_same_content_in_two_threads_is_stored_per_thread(api: Api) -> None:
    value = {"blob": os.urandom(50_000)}
    await api.put("one", value)
    await api.put("two", value)
    per_thread = dict(_rows(api.url, "SELECT thread_id, count(*) FROM chunks GROUP BY 1"))
    assert per_thread["one"] == per_thread["two"] > 0
    await api.call("delete_thread", "one")
    got = await api.call("get_tuple", cfg("two"))
    assert got.checkpoint["channel_values"] == value


def test_chunking_disabled_stores_whole_values(db_url: str) -> None:
    with PostgresSaver.from_conn_string(db_url, chunking=ChunkingPolicy(enabled=False)) as s:
        cp = make_checkpoint({"v": list(range(100_000))})
        s.put(cfg("plain"), cp, {}, dict(cp["channel_versions"]))
        got = s.get_tuple(cfg("plain"))
    assert got is not None and got.checkpoint["channel_values"]["v"] == list(range(100_000))
    assert _rows(db_url, "SELECT count(*) FROM chunks")[0][0] == 0
    assert _rows(db_url, "SELECT type FROM blobs") == [("msgpack+zstd",)]


# --- bounded chunks and the reference tree (issue 16) -------------------------


def _ids(n: int, seed: int = 5) -> list[bytes]:
    rnd = random.Random(seed)
    return [ck.digest(rnd.randbytes(8)) for _ in range(n)]


def _as_chunks(nodes: dict[bytes, bytes]) -> dict[bytes, tuple[bool, bytes]]:
    return {h: (False, d) for h, d in nodes.items()}


@pytest.mark.parametrize("size", [100_000, 3_000_000])
def test_bounded_chunks_keep_their_size_whatever_the_length(size: int) -> None:
    p = ChunkingPolicy()
    data = _data(size)
    pieces = ck.split(data, p, bounded=True)
    assert b"".join(pieces) == data
    assert p.avg_size / 2 <= size / len(pieces) <= p.avg_size * 2
    assert max(len(x) for x in pieces) <= p.avg_size * 4


@pytest.mark.parametrize("n", [1, 8, 9, 500, 20_000])
def test_tree_expands_back_to_the_chunk_list(n: int) -> None:
    ids = _ids(n)
    nodes: dict[bytes, bytes] = {}
    refs = ck.build_tree(ids, 8, nodes)
    if n <= 8:
        assert refs == b"".join(ids) and not nodes and not ck.is_tree(refs)
    else:
        assert ck.is_tree(refs) and len(ck.split_refs(refs)) <= 8
        assert all(len(d) <= 4 * 8 * ck.HASH_SIZE for d in nodes.values())
    assert ck.leaf_refs(refs, _as_chunks(nodes), 1 << 30, "v") == b"".join(ids)
    assert ck.reachable(refs, _as_chunks(nodes)) == set(ids) | set(nodes)


def test_an_append_writes_only_the_nodes_along_the_tail() -> None:
    ids = _ids(20_000)
    before: dict[bytes, bytes] = {}
    ck.build_tree(ids, 8, before)
    after: dict[bytes, bytes] = {}
    refs = ck.build_tree([*ids[:-1], *_ids(3, seed=9)], 8, after)
    depth = refs[1]
    assert depth >= 3
    # one new node per level, two where a new cut falls in the appended ids
    assert len(set(after) - set(before)) <= 2 * depth


def _tree(n: int = 200) -> tuple[bytes, dict[bytes, bytes]]:
    nodes: dict[bytes, bytes] = {}
    return ck.build_tree(_ids(n), 8, nodes), nodes


def test_a_damaged_tree_is_refused_before_it_is_followed() -> None:
    refs, nodes = _tree()
    chunks = _as_chunks(nodes)
    top = ck.node_key(ck.split_refs(refs)[0])
    assert ck.is_node_key(top) and top in nodes
    with pytest.raises(IntegrityError, match="does not match its content"):
        ck.leaf_refs(refs, {**chunks, top: (False, nodes[top][16:] + nodes[top][:16])},
                     1 << 30, "v")
    with pytest.raises(DeserializationError, match="not a list of"):
        ck.leaf_refs(refs, {**chunks, top: (True, nodes[top])}, 1 << 30, "v")
    with pytest.raises(DeserializationError, match="not a list of"):
        ck.leaf_refs(refs, {**chunks, top: (False, nodes[top][:-1])}, 1 << 30, "v")
    with pytest.raises(DeserializationError, match="is missing"):
        ck.leaf_refs(refs, {h: c for h, c in chunks.items() if h != top}, 1 << 30, "v")
    with pytest.raises(DeserializationError, match="names no node"):
        ck.leaf_refs(refs[:2], chunks, 1 << 30, "v")
    for depth in (0, ck.MAX_DEPTH + 1):
        with pytest.raises(DeserializationError, match="depth"):
            ck.leaf_refs(bytes((ck.TREE_TAG, depth)) + refs[2:], chunks, 1 << 30, "v")


def test_a_tree_naming_too_many_chunks_fails_before_it_grows() -> None:
    """A node naming another many times, that one naming a chunk many times: the
    address count is checked against what the size limit allows, level by level."""
    leaf = ck.digest(b"x")
    inner = leaf * 1000
    h_inner = ck.digest(inner)
    outer = h_inner * 1000
    h_outer = ck.digest(outer)
    chunks = {ck.node_key(h_inner): (False, inner), ck.node_key(h_outer): (False, outer),
              leaf: (False, b"x")}
    refs = bytes((ck.TREE_TAG, 2)) + h_outer
    with pytest.raises(DeserializationError, match="more chunks than a value of at most"):
        ck.join(b"", refs, chunks, 64 * 10_000, "v")


def test_blob_rows_carry_a_small_top_level_whatever_the_value_size() -> None:
    cod = Codec(JsonPlusSerializer())
    for n in (5_000, 500_000):
        chunks: dict[bytes, tuple[bool, bytes]] = {}
        type_, head, refs = cod.encode_blob(list(range(n)), "v", chunks)
        assert type_.endswith(CDC_SUFFIX) and refs is not None
        assert len(refs) <= 2 + 8 * ck.HASH_SIZE
        got = cod.decode_blob(type_, head, refs, chunks, "v")
        assert got == list(range(n))


def _old_row() -> dict[str, Any]:
    """A chunked value as pgcheckpoint 57b04ce wrote it: flat chunk_refs naming
    chunks of about the value's size / 32 (tests/data)."""
    raw = json.loads((Path(__file__).parent / "data" / "chunks_flat_57b04ce.json").read_text())
    b64 = base64.b64decode
    return {
        "type": raw["type"], "head": b64(raw["head"]), "refs": b64(raw["chunk_refs"]),
        "chunks": [(b64(h), z, b64(d)) for h, z, d in raw["chunks"]],
        "value": [("row %d " % (i % 40)) * 3 + str(i) for i in range(1000)],  # noqa: UP031
    }


async def test_a_value_in_the_old_flat_format_still_reads(api: Api) -> None:
    old = _old_row()
    assert not ck.is_tree(old["refs"]) and len(old["refs"]) % ck.HASH_SIZE == 0
    first = await api.put("old", {"w": 1})
    saved = await api.put("old", {"v": old["value"]}, parent=first["configurable"]["checkpoint_id"])
    with psycopg.connect(api.url, autocommit=True) as conn, conn.transaction():
        conn.execute("DELETE FROM chunks WHERE thread_id = 'old'")
        cur = conn.execute(
            "UPDATE blobs SET type = %s, value = %s, chunk_refs = %s "
            "WHERE thread_id = 'old' AND channel = 'v'",
            (old["type"], old["head"], old["refs"]),
        )
        assert cur.rowcount == 1
        for h, z, d in old["chunks"]:
            conn.execute("INSERT INTO chunks VALUES ('old', %s, %s, %s)", (h, z, d))
    got = await api.call("get_tuple", cfg("old", "", saved["configurable"]["checkpoint_id"]))
    assert got.checkpoint["channel_values"]["v"] == old["value"]
    # The collector follows flat lists as before: nothing referenced is dropped.
    await api.call("prune", ["old"], strategy="keep_latest")
    assert _rows(api.url, "SELECT count(*) FROM checkpoints")[0][0] == 1
    assert _rows(api.url, "SELECT count(*) FROM chunks")[0][0] == len(old["chunks"])
    got = await api.call("get_tuple", cfg("old"))
    assert got.checkpoint["channel_values"]["v"] == old["value"]


async def test_tree_values_read_back_and_are_collected(api: Api) -> None:
    """A growing list big enough for a two-level tree: every version reads back,
    the blob rows hold trees, and a prune leaves exactly what the kept version
    reaches (nodes and chunks)."""
    rnd = random.Random(4)
    items = ["".join(rnd.choice("abcdefgh ") for _ in range(3000)) for _ in range(60)]
    parent = None
    for step in range(4):
        items = [*items, f"step {step}"]
        cp = make_checkpoint({"items": items}, {"items": f"{step + 1:032}.0"})
        saved = await api.call("put", cfg("t", "", parent), cp, {"step": step},
                               dict(cp["channel_versions"]))
        parent = saved["configurable"]["checkpoint_id"]
    for t in await api.call("list", cfg("t")):
        assert t.checkpoint["channel_values"]["items"] == items[: 61 + t.metadata["step"]]
    refs = [bytes(r[0]) for r in _rows(api.url, "SELECT chunk_refs FROM blobs")]
    assert all(ck.is_tree(r) and r[1] == 2 for r in refs), [r[:2] for r in refs]
    await api.call("prune", ["t"], strategy="keep_latest")
    (latest,) = [bytes(r[0]) for r in _rows(api.url, "SELECT chunk_refs FROM blobs")]
    stored = {bytes(h): (z, bytes(d)) for h, z, d in
              _rows(api.url, "SELECT hash, compressed, data FROM chunks")}
    assert set(stored) == ck.reachable(latest, stored)
    got = await api.call("get_tuple", cfg("t"))
    assert got.checkpoint["channel_values"]["items"] == items


async def test_a_tampered_reference_node_fails_the_read(api: Api) -> None:
    rnd = random.Random(6)
    value = ["".join(rnd.choice("xyz ") for _ in range(2000)) for _ in range(40)]
    await api.put("tamper", {"v": value})
    (refs,) = [bytes(r[0]) for r in _rows(api.url, "SELECT chunk_refs FROM blobs")]
    assert ck.is_tree(refs)
    top = ck.node_key(ck.split_refs(refs)[0])
    with psycopg.connect(api.url, autocommit=True) as conn:
        conn.execute(
            "UPDATE chunks SET data = substring(data FROM 17) || substring(data FOR 16) "
            "WHERE thread_id = 'tamper' AND hash = %s", (top,))
    with pytest.raises(IntegrityError):
        await api.call("get_tuple", cfg("tamper"))


def _grow(s: PostgresSaver, thread: str, steps: int, seed: int) -> list[str]:
    rnd = random.Random(seed)
    items: list[str] = []
    parent = None
    for step in range(steps):
        items = [*items, "".join(rnd.choice("klmnop ") for _ in range(4000))]
        cp = make_checkpoint({"items": items}, {"items": f"{step + 1:032}.0"})
        saved = s.put(cfg(thread, "", parent), cp, {"step": step},
                      dict(cp["channel_versions"]))
        parent = saved["configurable"]["checkpoint_id"]
    return items


def test_tree_values_export_and_import(
    saver: PostgresSaver, db_url: str, make_db_url: Any, tmp_path: Path
) -> None:
    """Export fetches a tree's nodes and chunks (fetch_value_chunks); the import
    checks and writes them all, and the copy reads back the same values."""
    items = _grow(saver, "x", 12, seed=8)
    refs = [bytes(r[0]) for r in _rows(db_url, "SELECT chunk_refs FROM blobs")
            if r[0] is not None]
    assert any(ck.is_tree(r) for r in refs)
    out = tmp_path / "x.ndjson"
    export_file(saver, out)
    url = make_db_url(True)
    with PostgresSaver.from_conn_string(url) as target:
        report = import_ndjson(target, out)
        assert report.threads == 1 and report.verified is True
        got = target.get_tuple(cfg("x"))
        assert got is not None and got.checkpoint["channel_values"]["items"] == items
        for t in target.list(cfg("x")):
            assert t.checkpoint["channel_values"]["items"] == items[: t.metadata["step"] + 1]
    q = "SELECT hash FROM chunks ORDER BY hash"
    assert _rows(url, q) == _rows(db_url, q)



DeltaChannel: Any
try:
    from langgraph.channels.delta import DeltaChannel
except ImportError:  # pragma: no cover - older LangGraph
    DeltaChannel = None


def _extend(state: Any, writes: Any) -> list[Any]:
    out = list(state or [])
    for w in writes:
        out.extend(w)
    return out


@pytest.mark.skipif(DeltaChannel is None, reason="LangGraph has no DeltaChannel")
def test_delta_history_reads_tree_seeds(saver: PostgresSaver, db_url: str) -> None:
    """get_delta_channel_history fetches its seeds' nodes and chunks
    (fetch_value_chunks) and agrees with the contract's get_tuple walk."""
    from langgraph.checkpoint.base import BaseCheckpointSaver
    from langgraph.graph import START, StateGraph
    from typing_extensions import TypedDict

    items = Annotated[list[str], DeltaChannel(_extend, snapshot_frequency=3)]
    S = TypedDict("S", {"items": items, "n": int, "stop": int}, total=False)  # type: ignore[misc]  # noqa: UP013
    rnd = random.Random(2)

    def step(s: Any) -> Any:
        text = "".join(rnd.choice("qrstuv ") for _ in range(3000))
        return {"items": [text], "n": s.get("n", 0) + 1}

    b = StateGraph(S)
    b.add_node("step", step)
    b.add_edge(START, "step")
    b.add_conditional_edges("step", lambda s: "step" if s["n"] < s["stop"] else "__end__")
    graph = b.compile(checkpointer=saver)
    config: Any = {"configurable": {"thread_id": "d"}, "recursion_limit": 1000}
    out = graph.invoke({"n": 0, "stop": 14}, config)
    assert len(out["items"]) == 14
    refs = [bytes(r[0]) for r in _rows(db_url, "SELECT chunk_refs FROM blobs "
                                               "WHERE chunk_refs IS NOT NULL")]
    assert any(ck.is_tree(r) for r in refs)
    head = saver.get_tuple(cfg("d"))
    assert head is not None
    hist = saver.get_delta_channel_history(config=head.config, channels=["items"])
    reference = BaseCheckpointSaver.get_delta_channel_history(
        saver, config=head.config, channels=["items"])
    assert hist == reference
    assert "seed" in hist["items"]


def test_a_tree_value_encrypted_later_reads_and_survives_collection(
    saver: PostgresSaver, db_url: str
) -> None:
    """`pgcheckpoint encrypt` seals a tree's data chunks and leaves its nodes
    (hashes 17 bytes long) in clear, so the collector can still follow them."""
    from pgcheckpoint.rotation import key_status, reencrypt
    from test_encryption import ring

    items = _grow(saver, "e", 10, seed=11)
    with PostgresSaver.from_conn_string(db_url, encryption=ring("k1")) as enc:
        assert reencrypt(enc, include_plaintext=True).total > 0
        assert set(key_status(enc)["chunks.data"]) == {"k1"}
        nodes = _rows(db_url, "SELECT count(*) FROM chunks WHERE octet_length(hash) = 17")
        assert nodes[0][0] > 0
        enc.prune(["e"], strategy="keep_latest")
        got = enc.get_tuple(cfg("e"))
        assert got is not None and got.checkpoint["channel_values"]["items"] == items


def _walk_loops(url: str, statement: str, params: dict[str, Any]) -> int:
    """How many times the read's chunk-reference walk (its recursive UNION) ran, by
    EXPLAIN ANALYZE of ``statement`` (0: gated off; absent node: also 0)."""
    with psycopg.connect(url, autocommit=True) as conn:
        cur = psycopg.ClientCursor(conn)
        cur.execute("EXPLAIN (ANALYZE, FORMAT JSON) " + statement, params)
        (plan,) = cur.fetchone()  # type: ignore[misc]
    loops = 0
    todo = [plan[0]["Plan"]]
    while todo:
        node = todo.pop()
        if node["Node Type"] == "Recursive Union":
            loops += node["Actual Loops"]
        todo.extend(node.get("Plans", []))
    return loops


def test_read_walks_chunk_references_only_for_chunked_values(
    saver: PostgresSaver, db_url: str
) -> None:
    """read_checkpoints gates its chunk-reference walk on the row having chunk_refs:
    a checkpoint of small values never runs it (its hash tables, sized by row
    estimates, were built for every row: issue 16), a chunked one does and reads back."""
    small = make_checkpoint({"v": "small"})
    saver.put(cfg("small"), small, {}, dict(small["channel_versions"]))
    big_value = base64.b64encode(_data(200_000)).decode()
    big = make_checkpoint({"v": big_value})
    saver.put(cfg("big"), big, {}, dict(big["channel_versions"]))
    assert _rows(db_url, "SELECT count(*) FROM blobs WHERE chunk_refs IS NOT NULL")[0][0] == 1
    single = saver.queries.read_checkpoints(["where_thread", "where_ns"], single=True)
    page = saver.queries.read_checkpoints(["where_thread", "where_ns"])
    for statement, extra in ((single, {}), (page, {"limit": 10})):
        small_args = {"thread_id": "small", "checkpoint_ns": ""} | extra
        big_args = {"thread_id": "big", "checkpoint_ns": ""} | extra
        assert _walk_loops(db_url, statement, small_args) == 0
        assert _walk_loops(db_url, statement, big_args) > 0
    got = saver.get_tuple(cfg("big"))
    assert got is not None and got.checkpoint["channel_values"]["v"] == big_value
