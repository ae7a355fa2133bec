"""The tampering matrix (docs/encryption.md): for every stored column, what an
attacker with write access to the tables can do to a sealed value, and that each
one makes the read raise IntegrityError instead of returning state.

Columns: checkpoints.checkpoint, checkpoints.metadata, blobs.value, chunks.data,
writes.value. Attacks: a flipped byte of the ciphertext, of the nonce, of the key
id; a field of the associated data edited (type, versions, chunk refs, compressed
flag, channel, parent); the value swapped in from another row of the thread, or
from another thread; a plaintext value; a value sealed under an unknown key; a
truncated value.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from functools import partial
from typing import Any

import psycopg
import pytest
from langchain_core.messages import HumanMessage

from _helpers import cfg
from pgcheckpoint import IntegrityError, Keyring, PostgresSaver
from pgcheckpoint import encryption as e
from test_encryption import chat_graph, ring

K9 = Keyring({"k9": bytes(range(50, 82))}, primary="k9")
COLUMNS = ["checkpoints.checkpoint", "checkpoints.metadata", "blobs.value", "chunks.data",
           "writes.value"]
ATTACKS = ["flip_ciphertext", "flip_nonce", "flip_key_id", "edit_aad", "swap_same_thread",
           "swap_other_thread", "plaintext", "unknown_key", "truncate"]


@dataclass
class World:
    url: str
    head: dict[str, str]  # thread -> head checkpoint id
    saver: PostgresSaver


@pytest.fixture
def world(db_url: str) -> Iterator[World]:
    """Threads A and B sealed under k1 (a keyring that also holds k2), P in clear."""
    with PostgresSaver.from_conn_string(db_url, encryption=ring("k1", "k2")) as enc, \
            PostgresSaver.from_conn_string(db_url) as plain:
        enc.setup()
        head = {}
        for thread, saver in (("A", enc), ("B", enc), ("P", plain)):
            graph = chat_graph(saver)
            for i in range(4):  # enough messages to be chunked
                graph.invoke({"messages": [HumanMessage(f"q{i}")]},
                             {"configurable": {"thread_id": thread}})
            tup = saver.get_tuple(cfg(thread))
            assert tup is not None
            saver.put_writes(tup.config, [("x", "secret x"), ("y", "secret y")], "task1")
            head[thread] = tup.config["configurable"]["checkpoint_id"]
        yield World(db_url, head, enc)


def _one(conn: psycopg.Connection[Any], query: str, *params: Any) -> Any:
    row = conn.execute(query, params).fetchone()
    assert row is not None, query
    return row


def _target(conn: psycopg.Connection[Any], w: World, column: str, thread: str,
            other: bool = False) -> dict[str, Any]:
    """The row of ``column`` that the head of ``thread`` reads (``other``: another row of
    the same kind in that thread): its key, value, type and associated-data fields."""
    cid = w.head[thread]
    if column.startswith("checkpoints."):
        q = ("SELECT checkpoint_id, parent_checkpoint_id, type, checkpoint, metadata, channels, "
             "versions FROM checkpoints WHERE thread_id = %s AND checkpoint_id "
             + ("<" if other else "=") + " %s ORDER BY checkpoint_id DESC LIMIT 1")
        c, parent, type_, data, meta, channels, versions = _one(conn, q, thread, cid)
        key = {"thread_id": thread, "checkpoint_id": c}
        if column.endswith("metadata"):
            return {"key": key, "meta": meta, "parent": parent, "cid": c}
        return {"key": key, "type": type_, "value": bytes(data),
                "aad": partial(e.checkpoint_aad, thread, "", c, channels, versions)}
    if column == "blobs.value":
        channels, versions = _one(
            conn, "SELECT channels, versions FROM checkpoints WHERE thread_id=%s AND "
            "checkpoint_id=%s", thread, cid)
        version = dict(zip(channels, versions, strict=True))["notes"]
        cmp = "<>" if other else "="
        v, type_, data, refs = _one(
            conn, f"SELECT version, type, value, chunk_refs FROM blobs WHERE thread_id=%s AND "
            f"channel='notes' AND version {cmp} %s ORDER BY version DESC LIMIT 1",
            thread, version)
        return {"key": {"thread_id": thread, "channel": "notes", "version": v}, "type": type_,
                "value": bytes(data),
                "aad": partial(e.blob_aad, thread, "", "notes", v, refs and bytes(refs))}
    if column == "chunks.data":
        channels, versions = _one(
            conn, "SELECT channels, versions FROM checkpoints WHERE thread_id=%s AND "
            "checkpoint_id=%s", thread, cid)
        version = dict(zip(channels, versions, strict=True))["messages"]
        (refs,) = _one(conn, "SELECT chunk_refs FROM blobs WHERE thread_id=%s AND "
                       "channel='messages' AND version=%s", thread, version)
        mine = bytes(refs)[:16]
        if other:
            h, flag, data = _one(conn, "SELECT hash, compressed, data FROM chunks WHERE "
                                 "thread_id=%s AND hash <> %s LIMIT 1", thread, mine)
        else:
            h, flag, data = _one(conn, "SELECT hash, compressed, data FROM chunks WHERE "
                                 "thread_id=%s AND hash = %s", thread, mine)
        return {"key": {"thread_id": thread, "hash": bytes(h)}, "value": bytes(data),
                "flag": flag, "aad": lambda _t: e.chunk_aad(thread, bytes(h), flag)}
    channel = "y" if other else "x"
    type_, data = _one(conn, "SELECT type, value FROM writes WHERE thread_id=%s AND "
                       "checkpoint_id=%s AND channel=%s", thread, cid, channel)
    return {"key": {"thread_id": thread, "checkpoint_id": cid, "channel": channel},
            "type": type_, "value": bytes(data),
            "aad": partial(e.write_aad, thread, "", cid, "task1", channel)}


def _set(conn: psycopg.Connection[Any], column: str, key: dict[str, Any],
         **values: Any) -> None:
    table = column.split(".")[0]
    sets = ", ".join(f"{k} = %({k})s" for k in values)
    where = " AND ".join(f"{k} = %(key_{k})s" for k in key)
    params = dict(values, **{f"key_{k}": v for k, v in key.items()})
    n = conn.execute(f"UPDATE {table} SET {sets} WHERE {where}", params).rowcount
    assert n == 1, (column, key)


def _flip(data: bytes, at: int) -> bytes:
    return data[:at] + bytes([data[at] ^ 0x01]) + data[at + 1:]


def _meta_attack(conn: psycopg.Connection[Any], w: World, attack: str) -> None:
    t = _target(conn, w, "checkpoints.metadata", "A")
    meta, key = dict(t["meta"]), t["key"]
    sealed = base64.b64decode(meta[e.META_SEALED])
    new: Any
    if attack in ("flip_ciphertext", "flip_nonce", "flip_key_id", "truncate"):
        changed = {
            "flip_ciphertext": _flip(sealed, len(sealed) - 1),
            "flip_nonce": _flip(sealed, 6),
            "flip_key_id": sealed[:3] + b"2" + sealed[4:],  # k1 -> k2, held by the ring
            "truncate": sealed[:20],
        }[attack]
        meta[e.META_SEALED] = base64.b64encode(changed).decode()
        new = meta
    elif attack == "edit_aad":  # the parent link, bound by the metadata
        _set(conn, "checkpoints.checkpoint", key, parent_checkpoint_id=w.head["B"])
        return
    elif attack == "swap_same_thread":
        new = _target(conn, w, "checkpoints.metadata", "A", other=True)["meta"]
    elif attack == "swap_other_thread":
        new = _target(conn, w, "checkpoints.metadata", "B")["meta"]
    elif attack == "plaintext":
        new = {"source": "loop", "step": 1, "parents": {}}
    else:  # unknown_key: sealed properly, with the right associated data, under k9
        plain = w.saver.encryption.open_metadata(  # type: ignore[union-attr]
            t["meta"], "A", "", t["cid"], t["parent"], "test")
        new = e.Encryption(K9).seal_metadata(plain, "A", "", t["cid"], t["parent"])
    _set(conn, "checkpoints.checkpoint", key, metadata=json.dumps(new))


def _value_attack(conn: psycopg.Connection[Any], w: World, column: str, attack: str) -> None:
    t = _target(conn, w, column, "A")
    data: bytes = t["value"]
    kid_len = data[1]
    typed = column != "chunks.data"
    col = "data" if column == "chunks.data" else (
        "checkpoint" if column == "checkpoints.checkpoint" else "value")
    changes: dict[str, Any] = {}
    if attack == "flip_ciphertext":
        changes[col] = _flip(data, len(data) - 20)
    elif attack == "flip_nonce":
        changes[col] = _flip(data, 2 + kid_len + 3)
    elif attack == "flip_key_id":  # k1 -> k2: a key the ring holds, so authentication fails
        changes[col] = data[:3] + b"2" + data[4:]
    elif attack == "truncate":
        changes[col] = data[:20]
    elif attack == "edit_aad":
        if column == "checkpoints.checkpoint":  # point a channel at another version
            conn.execute("UPDATE checkpoints SET versions[array_position(channels, 'notes')] "
                         "= versions[array_position(channels, 'notes')] || 'x' "
                         "WHERE thread_id='A' AND checkpoint_id=%s", (w.head["A"],))
            conn.execute("INSERT INTO blobs SELECT thread_id, checkpoint_ns, channel, "
                         "version || 'x', type, value, chunk_refs FROM blobs WHERE "
                         "thread_id='A' AND channel='notes'")
            return
        if column == "chunks.data":
            changes["compressed"] = not t["flag"]
        elif column == "blobs.value":  # the inner type: "+zstd" dropped or added
            changes["type"] = t["type"].replace("msgpack", "msgpack+zstd", 1)
        else:  # a write moved to another channel
            changes["channel"] = "z"
    elif attack in ("swap_same_thread", "swap_other_thread"):
        other = _target(conn, w, column, "A", other=True) if attack == "swap_same_thread" \
            else _target(conn, w, column, "B")
        changes[col] = other["value"]
        if typed:
            changes["type"] = other["type"]
    elif attack == "plaintext":
        p = _target(conn, w, column, "P")
        changes[col] = p["value"]
        if typed:
            changes["type"] = p["type"]
    else:  # unknown_key: sealed properly, with the right associated data, under k9
        aad_of: Callable[[str], bytes] = t["aad"]
        inner = t["type"][: -len(e.ENC_SUFFIX)] if typed else ""
        plain = w.saver.encryption.keyring.open(data, aad_of(inner), "test")  # type: ignore[union-attr]
        changes[col] = K9.seal(plain, aad_of(inner))
    _set(conn, column, t["key"], **changes)


@pytest.mark.parametrize("attack", ATTACKS)
@pytest.mark.parametrize("column", COLUMNS)
def test_tampering_raises_integrity_error(world: World, column: str, attack: str) -> None:
    assert world.saver.get_tuple(cfg("A")) is not None  # readable before
    with psycopg.connect(world.url, autocommit=True) as conn:
        if column == "checkpoints.metadata":
            _meta_attack(conn, world, attack)
        else:
            _value_attack(conn, world, column, attack)
    with pytest.raises(IntegrityError) as info:
        world.saver.get_tuple(cfg("A"))
    message = str(info.value)
    if attack == "unknown_key":
        assert "'k9'" in message and "not in the keyring" in message
    # The other thread is untouched and still reads.
    assert world.saver.get_tuple(cfg("B")) is not None
