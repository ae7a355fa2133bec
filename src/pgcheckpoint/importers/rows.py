"""A thread as pgcheckpoint stores it, and the byte-level rules of every import (pure, no I/O).

NDJSON export and import and the official-tables import move **stored values**,
never decoded ones: each value is the serde's ``(type, bytes)`` (:class:`Value`),
and only pgcheckpoint's own storage layer around it (zstd compression,
content-defined chunks) is undone on the way out and redone, with the target's
settings, on the way in. Both are lossless and need no serde, so a thread
holding types the allowlist refuses still exports, imports and copies; the
allowlist applies when the application reads the thread. (The SQLite and
any-saver importers must decode: see their modules.)

:class:`StoredThread` is one thread in the target's storage form (what every
import writes). Its checks here are structural and need no serde either: each
checkpoint's id equals the id inside its serialized checkpoint, every channel
version it references has a stored value, every chunk reference is present
(and, on export, every stored chunk's content matches its address). Only the
checkpoint's own bytes (a dict of primitives: ids, versions, small inline
values) are deserialized, to read that id.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from .. import chunking, codec, compression
from ..errors import DeserializationError, IntegrityError, PgCheckpointError, TransferError

__all__ = [
    "BlobKey",
    "StoredBlob",
    "StoredCheckpoint",
    "StoredThread",
    "StoredWrite",
    "Value",
    "WriteKey",
]

# (checkpoint_ns, channel, version) of a blob; (checkpoint_ns, checkpoint_id, task_id, idx)
# of a pending write: the primary keys of those tables without thread_id.
BlobKey = tuple[str, str, str]
WriteKey = tuple[str, str, str, int]
Chunks = dict[bytes, tuple[bool, bytes]]


@dataclass(frozen=True, slots=True)
class Value:
    """A value as the serde wrote it: its type tag and its bytes (None: SQL NULL)."""

    type: str
    data: bytes | None


@dataclass(slots=True)
class StoredCheckpoint:
    """One ``checkpoints`` row: ``type``/``data`` are the stored (maybe compressed) form of
    the checkpoint without its large channel values; ``versions[i]`` names the blob
    holding ``channels[i]``, None when that value is inline in ``data``."""

    checkpoint_ns: str
    checkpoint_id: str
    parent_checkpoint_id: str | None
    type: str
    data: bytes
    metadata: dict[str, Any]
    created_at: dt.datetime | None
    channels: list[str]
    versions: list[str | None]


@dataclass(frozen=True, slots=True)
class StoredBlob:
    """One ``blobs`` row (``refs``: packed chunk addresses when ``type`` ends in ``+cdc``)."""

    type: str
    value: bytes | None
    refs: bytes | None


@dataclass(frozen=True, slots=True)
class StoredWrite:
    """One ``writes`` row, without its key."""

    channel: str
    type: str
    value: bytes | None
    task_path: str


@dataclass(slots=True)
class StoredThread:
    """Every row of one thread, in storage form, ready to be written."""

    thread_id: str
    checkpoints: list[StoredCheckpoint] = field(default_factory=list)
    blobs: dict[BlobKey, StoredBlob] = field(default_factory=dict)
    chunks: Chunks = field(default_factory=dict)
    writes: dict[WriteKey, StoredWrite] = field(default_factory=dict)

    def add_blob(self, key: BlobKey, blob: StoredBlob, where: str) -> None:
        """Add a blob; the same key twice must hold the same value."""
        old = self.blobs.get(key)
        if old is not None and not same_blob(old, self.chunks, blob, self.chunks):
            raise TransferError(
                f"{where}: two different values for channel {key[1]!r} "
                f"version {key[2]!r} of thread {self.thread_id!r}"
            )
        self.blobs[key] = blob


# --- storage form <-> serde bytes ------------------------------------------------


def unpack_value(type_: str, data: bytes | None, where: str) -> Value:
    """The serde's bytes of a stored value (``+zstd`` undone)."""
    if type_.endswith(compression.ZSTD_SUFFIX):
        return Value(type_[: -len(compression.ZSTD_SUFFIX)], compression.decompress(data or b""))
    if type_.endswith(codec.CDC_SUFFIX):
        raise TransferError(f"{where}: a chunked type {type_!r} where none is allowed")
    return Value(type_, data)


def unpack_blob(blob: StoredBlob, chunks: Mapping[bytes, tuple[bool, bytes]], where: str) -> Value:
    """The serde's bytes of a stored channel value (chunks joined, compression undone)."""
    if not blob.type.endswith(codec.CDC_SUFFIX):
        return unpack_value(blob.type, blob.value, where)
    # chunking.join checks each chunk against its address and stops at the size limit
    # (a chunk list naming one chunk many times used to grow the export without end).
    try:
        data = chunking.join(
            blob.value or b"", blob.refs or b"", chunks, compression.DEFAULT_MAX_VALUE_SIZE, where
        )
    except IntegrityError:
        raise
    except DeserializationError as exc:
        raise TransferError(str(exc)) from exc
    return Value(blob.type[: -len(codec.CDC_SUFFIX)], data)


def pack_blob(
    target: codec.Codec, value: Value, chunks_out: Chunks, *, thread_id: str = ""
) -> StoredBlob:
    """A channel value in the target's storage form (compressed, chunked as its policy says;
    ``thread_id`` keys the chunk ids under a keyring)."""
    if value.data is None:
        return StoredBlob(value.type, None, None)
    type_, data, refs = target.pack_blob(value.type, value.data, chunks_out, thread_id=thread_id)
    return StoredBlob(type_, data, refs)


def pack_value(target: codec.Codec, value: Value) -> tuple[str, bytes | None]:
    """A checkpoint's or a write's bytes in the target's storage form."""
    if value.data is None:
        return value.type, None
    return target.pack(value.type, value.data)


# --- comparison ----------------------------------------------------------------


def same_checkpoint(a: StoredCheckpoint, b: StoredCheckpoint) -> bool:
    """Whether two rows hold the same checkpoint, whatever compression each used.
    ``created_at`` is not compared: it is derived from the checkpoint's ``ts``, which is."""
    if (a.parent_checkpoint_id, a.metadata) != (b.parent_checkpoint_id, b.metadata):
        return False
    if dict(zip(a.channels, a.versions, strict=True)) != dict(
        zip(b.channels, b.versions, strict=True)
    ):
        return False
    if (a.type, a.data) == (b.type, b.data):
        return True
    where = f"checkpoint {a.checkpoint_id}"
    return unpack_value(a.type, a.data, where) == unpack_value(b.type, b.data, where)


def same_blob(a: StoredBlob, chunks_a: Chunks, b: StoredBlob, chunks_b: Chunks) -> bool:
    if a == b:
        return True
    return unpack_blob(a, chunks_a, "stored value") == unpack_blob(b, chunks_b, "stored value")


def same_write(a: StoredWrite, b: StoredWrite) -> bool:
    if (a.channel, a.task_path) != (b.channel, b.task_path):
        return False
    return a == b or unpack_value(a.type, a.value, "write") == unpack_value(
        b.type, b.value, "write"
    )


# --- structural checks -----------------------------------------------------------


def checkpoint_id_inside(target: codec.Codec, cp: StoredCheckpoint, where: str) -> Any:
    """The ``id`` field inside a stored checkpoint (its bytes hold primitives only)."""
    try:
        skeleton = target.unpack(cp.type, cp.data, where)
    except PgCheckpointError as exc:
        raise TransferError(f"{where}: its serialized checkpoint cannot be read: {exc}") from exc
    if not isinstance(skeleton, Mapping):
        raise TransferError(f"{where}: its serialized checkpoint is not a dict")
    return skeleton.get("id")


def check_thread(
    target: codec.Codec,
    thread: StoredThread,
    *,
    have_blobs: Iterable[BlobKey] = (),
    have_chunks: Iterable[bytes] = (),
) -> None:
    """Refuse a thread whose rows do not hold together (see the module doc).

    ``have_blobs`` / ``have_chunks`` are what the target already holds for the thread.
    """
    tid = thread.thread_id
    blobs = set(thread.blobs) | set(have_blobs)
    seen: set[tuple[str, str]] = set()
    for cp in thread.checkpoints:
        where = f"thread {tid!r} checkpoint {cp.checkpoint_id!r}"
        key = (cp.checkpoint_ns, cp.checkpoint_id)
        if key in seen:
            raise TransferError(f"{where} appears twice in namespace {cp.checkpoint_ns!r}")
        seen.add(key)
        codec.text_id(cp.checkpoint_id, "checkpoint_id")
        if len(cp.channels) != len(cp.versions):
            raise TransferError(f"{where}: channels and versions differ in length")
        inside = checkpoint_id_inside(target, cp, where)
        if inside != cp.checkpoint_id:
            raise TransferError(
                f"{where}: its checkpoint_id differs from the id inside its serialized "
                f"checkpoint ({inside!r}); refusing to store it under another id"
            )
        codec.metadata_json(cp.metadata)
        for channel, version in zip(cp.channels, cp.versions, strict=True):
            if version is not None and (cp.checkpoint_ns, channel, version) not in blobs:
                raise TransferError(
                    f"{where}: the value of channel {channel!r} version {version!r} is missing"
                )
    # The thread's chunks were cut by pack_blob from the values themselves (no
    # source carries chunks), so only their presence is checked here; export
    # checks each stored chunk against its address when it joins them.
    chunks = set(thread.chunks) | set(have_chunks)
    for (_ns, channel, version), blob in thread.blobs.items():
        if blob.type.endswith(codec.CDC_SUFFIX):
            for h in sorted(chunking.reachable(blob.refs, thread.chunks)):
                if h not in chunks:
                    raise TransferError(
                        f"thread {tid!r} channel {channel!r} version {version!r}: "
                        f"chunk {h.hex()} is missing"
                    )


def chunk_refs_of(
    blobs: Iterable[StoredBlob], chunks: Mapping[bytes, tuple[bool, bytes]] | None = None
) -> list[bytes]:
    """Every chunk address these blobs reference (through the reference-tree
    nodes present in ``chunks``)."""
    out: set[bytes] = set()
    for blob in blobs:
        if blob.refs:
            out.update(chunking.reachable(blob.refs, chunks or {}))
    return sorted(out)


def refs_of(blobs: Iterable[StoredBlob]) -> list[bytes]:
    """The distinct chunk_refs of these blobs (for fetch_value_chunks)."""
    return sorted({blob.refs for blob in blobs if blob.refs})


# --- rows from the database --------------------------------------------------------


def checkpoint_from_row(row: tuple[Any, ...]) -> StoredCheckpoint:
    """A ``rows_checkpoints`` row."""
    ns, cid, parent, type_, data, meta, created, channels, versions = row
    return StoredCheckpoint(
        ns,
        cid,
        parent,
        type_,
        bytes(data),
        dict(meta or {}),
        created,
        list(channels or []),
        list(versions or []),
    )


def thread_from_rows(
    thread_id: str,
    checkpoints: Iterable[tuple[Any, ...]],
    blobs: Iterable[tuple[Any, ...]],
    writes: Iterable[tuple[Any, ...]],
    chunks: Iterable[tuple[Any, ...]] = (),
) -> StoredThread:
    """A StoredThread from ``rows_*`` rows (and ``fetch_chunks`` rows)."""
    thread = StoredThread(thread_id)
    thread.checkpoints = [checkpoint_from_row(r) for r in checkpoints]
    for ns, channel, version, type_, value, refs in blobs:
        thread.blobs[(ns, channel, version)] = StoredBlob(
            type_, None if value is None else bytes(value), None if refs is None else bytes(refs)
        )
    for ns, cid, task, idx, channel, type_, value, path in writes:
        thread.writes[(ns, cid, task, int(idx))] = StoredWrite(
            channel, type_, None if value is None else bytes(value), path or ""
        )
    for h, compressed, data in chunks:
        thread.chunks[bytes(h)] = (bool(compressed), bytes(data))
    return thread
