"""Decoded sources (the SQLite file, other savers): their checkpoints encoded
as ``put`` would store them, and decoded again to verify an import."""

from __future__ import annotations

import json
from collections.abc import Iterable
from functools import partial
from typing import Any, cast

from langchain_core.runnables import RunnableConfig
from langgraph.checkpoint.base import (
    WRITES_IDX_MAP,
    CheckpointMetadata,
    CheckpointTuple,
)

from .. import codec, encryption
from .._core import SaverCore
from ..errors import TransferError
from .rows import StoredBlob, StoredCheckpoint, StoredThread, StoredWrite
from .source import SourceCheckpoint, SourceWrite


def writes_from_pending(
    pending: Iterable[tuple[str, str, Any]] | None,
) -> list[SourceWrite]:
    """SourceWrites from ``CheckpointTuple.pending_writes`` (which carry no idx or task_path):
    each task's writes are numbered in order, special channels get their fixed idx."""
    out: list[SourceWrite] = []
    seen: dict[str, int] = {}
    for task_id, channel, value in pending or []:
        i = seen.get(task_id, 0)
        seen[task_id] = i + 1
        out.append(SourceWrite(task_id, channel, value, WRITES_IDX_MAP.get(channel, i)))
    return out


# --- decoded sources to storage form ---------------------------------------------


def _new_versions(cp: SourceCheckpoint, parent: SourceCheckpoint | None) -> dict[str, Any]:
    versions = dict(cp.checkpoint.get("channel_versions") or {})
    if parent is None:
        return versions
    before = parent.checkpoint.get("channel_versions") or {}
    return {c: v for c, v in versions.items() if before.get(c) != v}


def stored_from_decoded(
    core: SaverCore, thread_id: str, items: list[SourceCheckpoint]
) -> StoredThread:
    """A decoded thread in storage form, encoded exactly as ``put`` encodes it (only the
    channels whose version changed since the parent get a value row, as LangGraph does)."""
    thread = StoredThread(thread_id)
    by_key = {(c.checkpoint_ns, c.checkpoint_id): c for c in items}
    for cp in sorted(items, key=lambda c: (c.checkpoint_id, c.checkpoint_ns)):
        parent = by_key.get((cp.checkpoint_ns, cp.parent_checkpoint_id or ""))
        conf: RunnableConfig = {
            "configurable": {
                "thread_id": thread_id,
                "checkpoint_ns": cp.checkpoint_ns,
                "checkpoint_id": cp.parent_checkpoint_id,
            }
        }
        params, _, _ = core.encode_put(
            conf, cp.checkpoint, cast(CheckpointMetadata, cp.metadata), _new_versions(cp, parent)
        )
        where = f"thread {thread_id!r} checkpoint {cp.checkpoint_id!r}"
        if params["checkpoint_id"] != cp.checkpoint_id:
            raise TransferError(
                f"{where}: its checkpoint_id differs from the id inside the checkpoint "
                f"({params['checkpoint_id']!r}); refusing to store it under another id"
            )
        thread.checkpoints.append(
            StoredCheckpoint(
                cp.checkpoint_ns,
                cp.checkpoint_id,
                cp.parent_checkpoint_id,
                params["type"],
                params["checkpoint"],
                json.loads(params["metadata"]),
                params["created_at"],
                list(params["channels"]),
                list(params["versions"]),
            )
        )
        for h, compressed, data in zip(
            params["chunk_hashes"], params["chunk_compressed"], params["chunk_data"], strict=True
        ):
            thread.chunks[h] = (compressed, data)
        for channel, version, type_, value, refs in zip(
            params["blob_channels"],
            params["blob_versions"],
            params["blob_types"],
            params["blob_values"],
            params["blob_refs"],
            strict=True,
        ):
            thread.add_blob(
                (cp.checkpoint_ns, channel, version), StoredBlob(type_, value, refs), where
            )
        for w in cp.writes:
            wwhere = f"{where} write to {w.channel!r}"
            type_, data = core.codec.pack(*codec.dumps(core.serde, w.value, wwhere))
            task = codec.text_id(w.task_id, "task_id")
            # Sealed as put_writes seals it, under a keyring (encode_writes).
            type_, data = core.codec.seal(type_, data, partial(
                encryption.write_aad, thread_id, cp.checkpoint_ns, cp.checkpoint_id, task,
                w.channel))
            key = (cp.checkpoint_ns, cp.checkpoint_id, task, w.idx)
            if key in thread.writes:
                raise TransferError(f"{wwhere}: task {w.task_id!r} has two writes with idx {w.idx}")
            thread.writes[key] = StoredWrite(
                codec.text_id(w.channel, "channel"), type_, data, w.task_path
            )
    return thread


def decoded_row(thread: StoredThread, cp: StoredCheckpoint) -> tuple[Any, ...]:
    """A ``read_checkpoints`` row made from storage-form rows (for codec.decode_row)."""
    blobs = [
        (ch, v, thread.blobs[(cp.checkpoint_ns, ch, v)])
        for ch, v in zip(cp.channels, cp.versions, strict=True)
        if v is not None and (cp.checkpoint_ns, ch, v) in thread.blobs
    ]
    writes = sorted(
        (
            (w.task_path, task, idx, w)
            for (ns, cid, task, idx), w in thread.writes.items()
            if (ns, cid) == (cp.checkpoint_ns, cp.checkpoint_id)
        ),
        key=lambda x: (x[0], x[1], x[2]),
    )
    return (
        thread.thread_id,
        cp.checkpoint_ns,
        cp.checkpoint_id,
        cp.parent_checkpoint_id,
        cp.type,
        cp.data,
        cp.metadata,
        cp.channels,
        cp.versions,
        [b[0] for b in blobs],
        [b[1] for b in blobs],
        [b[2].type for b in blobs],
        [b[2].value for b in blobs],
        [b[2].refs for b in blobs],
        list(thread.chunks),
        [c[0] for c in thread.chunks.values()],
        [c[1] for c in thread.chunks.values()],
        [x[1] for x in writes],
        [x[3].channel for x in writes],
        [x[3].type for x in writes],
        [x[3].value for x in writes],
    )


def verify_decoded(core: SaverCore, thread: StoredThread, items: list[SourceCheckpoint]) -> None:
    """Decode the rows about to be written and compare them with the source (pure)."""
    wanted = {(c.checkpoint_ns, c.checkpoint_id): c for c in thread.checkpoints}
    for item in items:
        cp = wanted.get((item.checkpoint_ns, item.checkpoint_id))
        got = None if cp is None else codec.decode_row(core.codec, decoded_row(thread, cp))
        problem = compare(item, got)
        if problem:
            raise TransferError(f"verification failed, nothing written for the thread: {problem}")


def _writes_key(writes: Iterable[tuple[str, str, Any]]) -> list[tuple[str, str, Any]]:
    # Stable sort by task: stores may order different tasks differently, but
    # the order of one task's writes is kept everywhere.
    return sorted(((t, c, v) for t, c, v in writes), key=lambda w: w[0])


def compare(source: SourceCheckpoint, got: CheckpointTuple | None) -> str | None:
    """None when ``got`` (as pgcheckpoint decodes it) equals the source, else what differs."""
    where = f"thread {source.thread_id!r} checkpoint {source.checkpoint_id}"
    if got is None:
        return f"{where}: missing after import"
    if dict(got.checkpoint) != dict(source.checkpoint):
        return f"{where}: checkpoint state differs"
    if dict(got.metadata) != source.metadata:
        return f"{where}: metadata differs ({dict(got.metadata)} != {source.metadata})"
    parent = (got.parent_config or {}).get("configurable", {}).get("checkpoint_id")
    if parent != source.parent_checkpoint_id:
        return f"{where}: parent {parent} != {source.parent_checkpoint_id}"
    want = _writes_key((w.task_id, w.channel, w.value) for w in source.writes)
    if _writes_key(got.pending_writes or []) != want:
        return f"{where}: pending writes differ"
    return None
