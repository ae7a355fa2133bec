"""What ``put`` and ``put_writes`` send, computed from LangGraph objects (pure, no I/O).

The values go through the saver's :class:`~pgcheckpoint.codec.Codec` (serde,
compression, chunking, sealing); everything is computed before any statement
runs, so a bad value writes nothing. Reading back is ``decoding.py``.

Small primitive channel values (``None``, ``bool``, ``int``, ``float``, short
``str``) stay inline in the checkpoint's own bytes (:func:`is_inline`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import partial
from typing import TYPE_CHECKING, Any, cast

from langchain_core.runnables import RunnableConfig
from langgraph.checkpoint.base import WRITES_IDX_MAP, Checkpoint, CheckpointMetadata

from . import encryption
from ._arrays import BoolArray, ByteaArray, Int4Array, TextArray
from ._strict import dumps
from ._validate import Target, parse_ts, text_id
from .decoding import config_of
from .errors import InvalidInputError

if TYPE_CHECKING:
    from .codec import Codec

INLINE_STR_MAX = 256
_INLINE_TYPES = (type(None), bool, int, float)


def is_inline(value: Any) -> bool:
    """Whether a channel value is kept inside the checkpoint's own bytes."""
    if type(value) in _INLINE_TYPES:
        return True
    return type(value) is str and len(value) <= INLINE_STR_MAX


@dataclass(slots=True)
class EncodedPut:
    """The parameters of ``put_checkpoint``."""

    params: dict[str, Any]
    config: RunnableConfig


def encode_put(
    codec: Codec,
    where: Target,
    checkpoint: Checkpoint,
    metadata: CheckpointMetadata,
    new_versions: Mapping[str, Any],
) -> EncodedPut:
    """Everything ``put`` sends, computed before any I/O so a bad value writes nothing."""
    if (type(checkpoint) is not dict and not isinstance(checkpoint, Mapping)) or (
        "id" not in checkpoint
    ):
        raise InvalidInputError('checkpoint must be a dict with an "id"')
    checkpoint_id = text_id(checkpoint["id"], "checkpoint id")
    values = checkpoint.get("channel_values") or {}
    versions = checkpoint.get("channel_versions") or {}
    if (type(values) is not dict and not isinstance(values, Mapping)) or (
        type(versions) is not dict and not isinstance(versions, Mapping)
    ):
        raise InvalidInputError("checkpoint channel_values and channel_versions must be dicts")
    thread, ns = where.thread_id, where.checkpoint_ns
    sealing = codec.encryption is not None

    inline: dict[str, Any] = {}
    channels = TextArray()
    channel_versions = TextArray()
    blob_channels = TextArray()
    blob_versions = TextArray()
    blob_types = TextArray()
    blob_values = ByteaArray()
    blob_refs = ByteaArray()
    chunks: dict[bytes, tuple[bool, bytes]] = {}
    for name, value in values.items():
        channel = text_id(name, "channel name")
        channels.append(channel)
        if is_inline(value):
            inline[channel] = value
            channel_versions.append(None)
            continue
        if channel not in versions:
            raise InvalidInputError(
                f"channel {channel!r} has a value but no entry in channel_versions"
            )
        version = str(versions[channel])
        channel_versions.append(version)
        if channel in new_versions:
            type_, data, refs = codec.encode_blob(
                value, f"channel {channel!r}", chunks, thread_id=thread
            )
            if sealing:
                type_, data = codec.seal(
                    type_, data or b"",
                    partial(encryption.blob_aad, thread, ns, channel, version, refs),
                )
            blob_channels.append(channel)
            blob_versions.append(version)
            blob_types.append(type_)
            blob_values.append(data)
            blob_refs.append(refs)
    if sealing:
        codec.seal_chunks(thread, chunks)

    skeleton = {k: v for k, v in checkpoint.items() if k != "channel_values"}
    skeleton["channel_values"] = inline
    type_, data = codec.pack(*dumps(codec.serde, skeleton, "checkpoint"))
    if sealing:
        type_, data = codec.seal(
            type_, data,
            partial(
                encryption.checkpoint_aad, thread, ns, checkpoint_id,
                cast(list[str], channels), channel_versions,
            ),
        )
    params: dict[str, Any] = {
        "thread_id": thread,
        "checkpoint_ns": ns,
        "checkpoint_id": checkpoint_id,
        "parent_checkpoint_id": where.checkpoint_id,
        "type": type_,
        "checkpoint": data,
        "metadata": codec.metadata_json(metadata, thread, ns, checkpoint_id, where.checkpoint_id),
        "created_at": parse_ts(checkpoint.get("ts")),
        # Typed arrays: dumped straight to the binary wire format (_arrays.py).
        "channels": channels,
        "versions": channel_versions,
        "blob_channels": blob_channels,
        "blob_versions": blob_versions,
        "blob_types": blob_types,
        "blob_values": blob_values,
        "blob_refs": blob_refs,
        "chunk_hashes": ByteaArray(chunks),
        "chunk_compressed": BoolArray([c for c, _ in chunks.values()]) if chunks else BoolArray(),
        "chunk_data": ByteaArray([d for _, d in chunks.values()]) if chunks else ByteaArray(),
        # The one-writer-per-thread check the saver asks for (concurrency.py).
        "guard": None,
    }
    return EncodedPut(params, config_of(thread, ns, checkpoint_id))


def encode_writes(
    codec: Codec,
    where: Target,
    writes: Sequence[tuple[str, Any]],
    task_id: Any,
    task_path: Any,
) -> tuple[bool, dict[str, Any]]:
    """(upsert?, parameters) of ``put_writes``."""
    if where.checkpoint_id is None:
        raise InvalidInputError('put_writes needs config["configurable"]["checkpoint_id"]')
    cid = where.checkpoint_id
    task = text_id(task_id, "task_id")
    path = text_id(task_path if task_path is not None else "", "task_path", allow_empty=True)
    idx: list[int] = []
    channels: list[str] = []
    types: list[str] = []
    values: list[bytes] = []
    for i, item in enumerate(writes):
        if not isinstance(item, tuple | list) or len(item) != 2:
            raise InvalidInputError(f"write #{i} must be a (channel, value) pair, got {item!r}")
        channel = text_id(item[0], f"channel of write #{i}")
        n = WRITES_IDX_MAP.get(channel, i)
        type_, data = codec.pack(*dumps(codec.serde, item[1], f"write #{i} to {channel!r}"))
        type_, data = codec.seal(
            type_, data,
            partial(encryption.write_aad, where.thread_id, where.checkpoint_ns, cid, task, channel),
        )
        idx.append(n)
        channels.append(channel)
        types.append(type_)
        values.append(data)
    upsert = bool(channels) and all(c in WRITES_IDX_MAP for c in channels)
    return upsert, {
        "thread_id": where.thread_id,
        "checkpoint_ns": where.checkpoint_ns,
        "checkpoint_id": cid,
        "task_id": task,
        "task_path": path,
        "idx": Int4Array(idx),
        "channels": TextArray(channels),
        "types": TextArray(types),
        "values": ByteaArray(values),
    }
