"""Sealed rows of one thread, re-sealed for a copy or opened for an export.

``copy_thread`` copies rows in SQL; under a keyring each copied value is then
opened as the source thread's and sealed as the target's (:func:`reseal_copy`),
since a value's associated data names its thread. An export writes values in
clear only when asked (:func:`open_stored`). docs/encryption.md.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from functools import partial
from typing import TYPE_CHECKING, Any

from . import chunking, compression, encryption
from ._plans import PlanGen, Query
from .codec import CDC_SUFFIX
from .encryption import ENC_SUFFIX, META_SEALED, Encryption
from .errors import IntegrityError, TransferError
from .importers.rows import StoredBlob, StoredCheckpoint, StoredThread, StoredWrite
from .rotation import UPDATE_BLOBS, UPDATE_CHECKPOINTS, UPDATE_CHUNKS, UPDATE_WRITES, sql_for

if TYPE_CHECKING:
    from ._core import SaverCore


# --- copy_thread: the copy's values bound to the new thread --------------------------

_COPIED = {
    "checkpoints": "SELECT checkpoint_ns, checkpoint_id, parent_checkpoint_id, type, checkpoint, "
    "metadata, channels, versions FROM {schema}.checkpoints WHERE thread_id = %(thread_id)s",
    "blobs": "SELECT checkpoint_ns, channel, version, type, value, chunk_refs "
    "FROM {schema}.blobs WHERE thread_id = %(thread_id)s",
    "writes": "SELECT checkpoint_ns, checkpoint_id, task_id, idx, channel, type, value "
    "FROM {schema}.writes WHERE thread_id = %(thread_id)s",
    "chunks": "SELECT hash, compressed, data FROM {schema}.chunks WHERE thread_id = %(thread_id)s",
}


def reseal_copy(core: SaverCore, enc: Encryption, src: str, dst: str) -> PlanGen[None]:
    """After ``copy_thread`` copied ``src``'s rows to ``dst`` in SQL (inside its
    transaction): open each copied value as ``src``'s and seal it as ``dst``'s. Values
    in clear stay in clear (a saver with ``allow_plaintext``); chunk ids are kept."""
    ring = enc.keyring

    def move(type_: str, data: bytes | None, src_aad: Callable[[str], bytes],
             dst_aad: Callable[[str], bytes], where: str) -> tuple[str, bytes | None]:
        if not type_.endswith(ENC_SUFFIX):
            return type_, data
        inner = type_[: -len(ENC_SUFFIX)]
        return enc.seal(inner, ring.open(data or b"", src_aad(inner), where), dst_aad(inner))

    p = {"thread_id": dst}
    cols: dict[str, list[Any]] = {}
    for ns, cid, parent, type_, data, meta, channels, versions in (
        (yield Query(sql_for(core, _COPIED["checkpoints"]), p, fetch="all", prepare=False)) or []
    ):
        new_type, new_value = move(
            type_, data, partial(encryption.checkpoint_aad, src, ns, cid, channels, versions),
            partial(encryption.checkpoint_aad, dst, ns, cid, channels, versions),
            f"checkpoint {cid}")
        if isinstance(meta, dict) and META_SEALED in meta:
            opened = enc.open_metadata(meta, src, ns, cid, parent, f"checkpoint {cid!r}")
            meta = enc.seal_metadata(opened, dst, ns, cid, parent)
        for k, v in dict(k0=dst, k1=ns, k2=cid, old=data, new_type=new_type, new_value=new_value,
                         new_meta=json.dumps(meta, separators=(",", ":"))).items():
            cols.setdefault(k, []).append(v)
    if cols:
        yield Query(sql_for(core, UPDATE_CHECKPOINTS), cols, prepare=False)
    cols = {}
    for ns, channel, version, type_, data, refs in (
        (yield Query(sql_for(core, _COPIED["blobs"]), p, fetch="all", prepare=False)) or []
    ):
        new_type, new_value = move(
            type_, data, partial(encryption.blob_aad, src, ns, channel, version, refs),
            partial(encryption.blob_aad, dst, ns, channel, version, refs),
            f"channel {channel!r} version {version!r}")
        for k, v in dict(k0=dst, k1=ns, k2=channel, k3=version, old=data, new_type=new_type,
                         new_value=new_value).items():
            cols.setdefault(k, []).append(v)
    if cols:
        yield Query(sql_for(core, UPDATE_BLOBS), cols, prepare=False)
    cols = {}
    for ns, cid, task, idx, channel, type_, data in (
        (yield Query(sql_for(core, _COPIED["writes"]), p, fetch="all", prepare=False)) or []
    ):
        new_type, new_value = move(
            type_, data, partial(encryption.write_aad, src, ns, cid, task, channel),
            partial(encryption.write_aad, dst, ns, cid, task, channel),
            f"write to {channel!r} of {cid}")
        for k, v in dict(k0=dst, k1=ns, k2=cid, k3=task, k4=idx, old=data, new_type=new_type,
                         new_value=new_value).items():
            cols.setdefault(k, []).append(v)
    if cols:
        yield Query(sql_for(core, UPDATE_WRITES), cols, prepare=False)
    cols = {}
    for h, flag, data in (
        (yield Query(sql_for(core, _COPIED["chunks"]), p, fetch="all", prepare=False)) or []
    ):
        h, data = bytes(h), bytes(data)
        if chunking.is_node_key(h):
            continue  # reference-tree nodes are in clear (chunking.NODE_SUFFIX)
        try:
            plain = ring.open(data, encryption.chunk_aad(src, h, flag), f"chunk {h.hex()}")
        except IntegrityError:
            if not enc.allow_plaintext:
                raise
            continue  # a chunk in clear stays in clear
        for k, v in dict(k0=dst, k1=h, old=data,
                         new_value=ring.seal(plain, encryption.chunk_aad(dst, h, flag))).items():
            cols.setdefault(k, []).append(v)
    if cols:
        yield Query(sql_for(core, UPDATE_CHUNKS), cols, prepare=False)


# --- export: a thread's rows in clear, only when asked -------------------------------


def open_stored(enc: Encryption | None, thread: StoredThread, *, decrypt: bool) -> StoredThread:
    """``thread`` (rows as stored) with every sealed value opened, for an export that
    asked for it (``decrypt``); a chunked sealed value comes back joined (its keyed
    chunk ids mean nothing outside this database). Refuses sealed rows otherwise."""
    tid = thread.thread_id
    sealed = any(cp.type.endswith(ENC_SUFFIX) or META_SEALED in cp.metadata
                 for cp in thread.checkpoints)
    if not sealed:
        return thread
    if not decrypt:
        raise TransferError(
            f"thread {tid!r} holds encrypted values; an export writes them in clear only "
            "when asked: decrypt=True (pgcheckpoint export --decrypt)"
        )
    if enc is None:
        raise TransferError(f"thread {tid!r} holds encrypted values and no keyring was given "
                            "($PGCHECKPOINT_KEYS)")
    out = StoredThread(tid)
    for cp in thread.checkpoints:
        ns, cid = cp.checkpoint_ns, cp.checkpoint_id
        type_, data = _open_value(enc,
            cp.type, cp.data,
            partial(encryption.checkpoint_aad, tid, ns, cid, cp.channels, cp.versions),
            f"checkpoint {cid}",
        )
        meta = enc.open_metadata(cp.metadata, tid, ns, cid, cp.parent_checkpoint_id,
                                 f"checkpoint {cid!r} of thread {tid!r}")
        out.checkpoints.append(StoredCheckpoint(
            ns, cid, cp.parent_checkpoint_id, type_, data or b"", meta, cp.created_at,
            cp.channels, cp.versions,
        ))
    for (ns, channel, version), blob in thread.blobs.items():
        aad_of = partial(encryption.blob_aad, tid, ns, channel, version, blob.refs)
        where = f"channel {channel!r} version {version!r} of thread {tid!r}"
        type_, data = _open_value(enc, blob.type, blob.value, aad_of, where)
        if type_.endswith(CDC_SUFFIX) and blob.type.endswith(ENC_SUFFIX):
            pieces = {h: (flag, enc.keyring.open(d, encryption.chunk_aad(tid, h, flag), where))
                      for h, (flag, d) in thread.chunks.items() if not chunking.is_node_key(h)}
            opened = set(pieces)
            pieces.update((h, c) for h, c in thread.chunks.items() if chunking.is_node_key(h))
            data = chunking.join(data or b"", blob.refs or b"", pieces,
                                 compression.DEFAULT_MAX_VALUE_SIZE, where,
                                 verified=opened)
            out.blobs[(ns, channel, version)] = StoredBlob(type_[: -len(CDC_SUFFIX)], data, None)
        else:
            out.blobs[(ns, channel, version)] = StoredBlob(type_, data, blob.refs)
    out.chunks = dict(thread.chunks)  # what values still in clear reference
    for (ns, cid, task, idx), w in thread.writes.items():
        type_, data = _open_value(enc,
            w.type, w.value, partial(encryption.write_aad, tid, ns, cid, task, w.channel),
            f"write to {w.channel!r} of {cid}",
        )
        out.writes[(ns, cid, task, idx)] = StoredWrite(w.channel, type_, data, w.task_path)
    return out


def _open_value(
    enc: Encryption, type_: str, data: bytes | None, aad_of: Callable[[str], bytes], where: str
) -> tuple[str, bytes | None]:
    if not type_.endswith(ENC_SUFFIX):
        return type_, data
    inner = type_[: -len(ENC_SUFFIX)]
    return inner, enc.keyring.open(data or b"", aad_of(inner), where)
