"""An import into a saver with a keyring: rows compared in clear, written sealed.

Every source hands the write path a thread in storage form (``rows.py``): in
clear for NDJSON files and the official tables, already sealed for decoded
sources (``stored_from_decoded`` encodes as ``put`` does, under the target's
keyring). :func:`opened` brings both, and the target's stored rows, to one
form: every value opened and every chunked value joined. The import compares
those (so a re-run skips rows that hold the same content whatever their
nonces), then :func:`sealed` seals what it adds exactly as the saver's own
writes do: the same associated data (``encryption.*_aad``), chunk ids keyed
by the keyring and the thread (``Codec.pack_blob``), metadata sealed with its
blind index (``Encryption.seal_metadata``). docs/encryption.md.
"""

from __future__ import annotations

from functools import partial

from .. import chunking, compression, encryption
from .._core import SaverCore
from ..codec import CDC_SUFFIX
from ..encryption import ENC_SUFFIX, Encryption
from .rows import (
    BlobKey,
    Chunks,
    StoredBlob,
    StoredCheckpoint,
    StoredThread,
    StoredWrite,
    pack_blob,
    unpack_value,
)

__all__ = ["opened", "sealed"]


def _open(enc: Encryption, type_: str, data: bytes | None, aad: partial[bytes],
          where: str) -> tuple[str, bytes]:
    """(inner type, bytes) of a value; one in clear passes as it is (an import's
    source rows are in clear; the target's pass only with ``allow_plaintext``)."""
    if not type_.endswith(ENC_SUFFIX):
        return type_, data or b""
    inner = type_[: -len(ENC_SUFFIX)]
    return inner, enc.keyring.open(data or b"", aad(inner), where)


def _join(enc: Encryption, tid: str, type_: str, head: bytes, refs: bytes | None,
          chunks: Chunks, sealed_value: bool, where: str) -> tuple[str, bytes]:
    """A chunked value joined; its chunks opened when the value was sealed (their ids
    are keyed, their tags prove them), else checked against their unkeyed ids
    unless the import itself cut them (``trusted``)."""
    pieces: Chunks = {}
    for h in chunking.reachable(refs, chunks):
        if h in pieces or h not in chunks:
            continue
        flag, data = chunks[h]
        if sealed_value and not chunking.is_node_key(h):  # nodes are in clear
            data = enc.keyring.open(data, encryption.chunk_aad(tid, h, flag), where)
        pieces[h] = (flag, data)
    # (reference-tree nodes are checked against their addresses whatever `verified` says)
    data = chunking.join(head, refs or b"", pieces, compression.DEFAULT_MAX_VALUE_SIZE, where,
                         verified=set(pieces))
    return type_[: -len(CDC_SUFFIX)], data


def opened(enc: Encryption, thread: StoredThread, *, is_source: bool) -> StoredThread:
    """``thread`` with every value opened and joined (no chunks left). A source's
    rows in clear pass; the target's in clear only with ``allow_plaintext``."""
    tid = thread.thread_id
    out = StoredThread(tid)

    def clear(where: str) -> None:
        if not is_source:
            enc.plaintext(where)

    for cp in thread.checkpoints:
        ns, cid = cp.checkpoint_ns, cp.checkpoint_id
        where = f"checkpoint {cid!r} of thread {tid!r}"
        if not cp.type.endswith(ENC_SUFFIX):
            clear(where)
        type_, data = _open(enc, cp.type, cp.data, partial(
            encryption.checkpoint_aad, tid, ns, cid, cp.channels, cp.versions), where)
        if encryption.META_SEALED in cp.metadata or not is_source:
            meta = enc.open_metadata(cp.metadata, tid, ns, cid, cp.parent_checkpoint_id, where)
        else:
            meta = dict(cp.metadata)
        out.checkpoints.append(StoredCheckpoint(
            ns, cid, cp.parent_checkpoint_id, type_, data, meta, cp.created_at,
            list(cp.channels), list(cp.versions)))
    for (ns, channel, version), blob in thread.blobs.items():
        where = f"channel {channel!r} version {version!r} of thread {tid!r}"
        is_sealed = blob.type.endswith(ENC_SUFFIX)
        if not is_sealed:
            clear(where)
        type_, data = _open(enc, blob.type, blob.value, partial(
            encryption.blob_aad, tid, ns, channel, version, blob.refs), where)
        if type_.endswith(CDC_SUFFIX):
            type_, data = _join(enc, tid, type_, data, blob.refs, thread.chunks, is_sealed, where)
        out.blobs[(ns, channel, version)] = StoredBlob(type_, data, None)
    for (ns, cid, task, idx), w in thread.writes.items():
        where = f"write {idx} of task {task!r} on checkpoint {cid!r} of thread {tid!r}"
        if not w.type.endswith(ENC_SUFFIX):
            clear(where)
        type_, data = _open(enc, w.type, w.value, partial(
            encryption.write_aad, tid, ns, cid, task, w.channel), where)
        out.writes[(ns, cid, task, idx)] = StoredWrite(w.channel, type_, data, w.task_path)
    return out


def sealed(
    core: SaverCore,
    enc: Encryption,
    tid: str,
    checkpoints: list[StoredCheckpoint],
    blobs: dict[BlobKey, StoredBlob],
    writes: dict[tuple[str, str, str, int], StoredWrite],
) -> StoredThread:
    """Rows in clear (from :func:`opened`) sealed as the saver's own writes seal
    them (``codec.encode_put`` / ``encode_writes``): the thread the import writes."""
    out = StoredThread(tid)
    for cp in checkpoints:
        ns, cid = cp.checkpoint_ns, cp.checkpoint_id
        type_, data = enc.seal(cp.type, cp.data, encryption.checkpoint_aad(
            tid, ns, cid, cp.channels, cp.versions, cp.type))
        meta = enc.seal_metadata(cp.metadata, tid, ns, cid, cp.parent_checkpoint_id)
        out.checkpoints.append(StoredCheckpoint(
            ns, cid, cp.parent_checkpoint_id, type_, data, meta, cp.created_at,
            list(cp.channels), list(cp.versions)))
    chunks: Chunks = {}
    for (ns, channel, version), blob in blobs.items():
        where = f"channel {channel!r} version {version!r} of thread {tid!r}"
        value = unpack_value(blob.type, blob.value or b"", where)
        packed = pack_blob(core.codec, value, chunks, thread_id=tid)
        type_, data = enc.seal(packed.type, packed.value or b"", encryption.blob_aad(
            tid, ns, channel, version, packed.refs, packed.type))
        out.blobs[(ns, channel, version)] = StoredBlob(type_, data, packed.refs)
    core.codec.seal_chunks(tid, chunks)
    out.chunks = chunks
    for (ns, cid, task, idx), w in writes.items():
        type_, data = enc.seal(w.type, w.value or b"", encryption.write_aad(
            tid, ns, cid, task, w.channel, w.type))
        out.writes[(ns, cid, task, idx)] = StoredWrite(w.channel, type_, data, w.task_path)
    return out

