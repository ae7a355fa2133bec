"""Rows of ``read_checkpoints`` and ``delta_history`` back into LangGraph objects (pure).

Each row type is named (:class:`CheckpointRow`, :class:`DeltaRow`) so no code
reads ``row[13]``. Values are opened, decompressed, joined and deserialized
through the :class:`~pgcheckpoint.codec.Codec` given, which fails closed under a
keyring (encryption.py).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from functools import partial
from typing import TYPE_CHECKING, Any, NamedTuple, cast

from langchain_core.runnables import RunnableConfig
from langgraph.checkpoint.base import (
    Checkpoint,
    CheckpointMetadata,
    CheckpointTuple,
    DeltaChannelHistory,
    PendingWrite,
    writes_sort_key,
)

from . import encryption
from ._strict import loading
from .errors import DeserializationError, IntegrityError, PgCheckpointError

if TYPE_CHECKING:
    from .codec import Codec


def config_of(thread_id: str, ns: str, checkpoint_id: str) -> RunnableConfig:
    return {
        "configurable": {
            "thread_id": thread_id,
            "checkpoint_ns": ns,
            "checkpoint_id": checkpoint_id,
        }
    }


class CheckpointRow(NamedTuple):
    """One row of ``read_checkpoints``: a checkpoint with its blobs, their chunks
    and its writes aggregated into arrays (queries.sql)."""

    thread_id: str
    checkpoint_ns: str
    checkpoint_id: str
    parent_checkpoint_id: str | None
    type: str
    checkpoint: bytes
    metadata: Any
    channels: list[str]
    versions: list[str | None]
    blob_channels: list[str] | None
    blob_versions: list[str] | None
    blob_types: list[str] | None
    blob_values: list[bytes | None] | None
    blob_refs: list[bytes | None] | None
    chunk_hashes: list[bytes] | None
    chunk_flags: list[bool] | None
    chunk_data: list[bytes] | None
    write_tasks: list[str] | None
    write_channels: list[str] | None
    write_types: list[str] | None
    write_values: list[bytes | None] | None


# What a malformed (tampered) row makes plain Python raise while it is taken apart;
# decode_row and decode_delta turn them into DeserializationError.
MALFORMED = (
    ValueError, TypeError, KeyError, IndexError, AttributeError, OverflowError,
    RecursionError, MemoryError,
)


def decode_row(codec: Codec, row: Sequence[Any]) -> CheckpointTuple:
    """A CheckpointTuple from one row of ``read_checkpoints``."""
    try:
        return _decode_row(codec, CheckpointRow._make(row))
    except PgCheckpointError:
        raise
    except MALFORMED as exc:
        cid = row[2] if isinstance(row, tuple) and len(row) > 2 else "?"
        raise DeserializationError(
            f"stored checkpoint {cid!r} is malformed: {type(exc).__name__}: {exc}"
        ) from exc


def _decode_row(codec: Codec, row: CheckpointRow) -> CheckpointTuple:
    thread_id, ns, cid = row.thread_id, row.checkpoint_ns, row.checkpoint_id
    # Associated data binds sealed values to their row (encryption.py); without a
    # keyring nothing is opened, so the per-value partials are not built.
    sealed = codec.encryption is not None
    blobs: dict[tuple[str, str], tuple[str, bytes | None, bytes | None]] = {}
    if row.blob_channels:
        for b_channel, b_version, btype, value, refs in zip(
            row.blob_channels, row.blob_versions or (), row.blob_types or (),
            row.blob_values or (), row.blob_refs or (), strict=True,
        ):
            blobs[(b_channel, b_version)] = (btype, value, refs)
    chunks: Mapping[bytes, tuple[bool, bytes]] = _NO_CHUNKS
    if row.chunk_hashes or row.chunk_flags or row.chunk_data:
        chunks = {
            bytes(h): (flag, bytes(d))
            for h, flag, d in zip(
                row.chunk_hashes or (), row.chunk_flags or (), row.chunk_data or (), strict=True
            )
        }
    metadata = codec.read_metadata(row.metadata, thread_id, ns, cid, row.parent_checkpoint_id)
    skeleton = codec.open_value(
        row.type, row.checkpoint,
        partial(encryption.checkpoint_aad, thread_id, ns, cid, row.channels, row.versions)
        if sealed else _unsealed,
        f"checkpoint {cid}",
    )
    if not isinstance(skeleton, dict):
        raise DeserializationError(f"checkpoint {cid} did not decode to a dict")
    values = dict(skeleton.get("channel_values") or {})
    for channel, version in zip(row.channels, row.versions, strict=True):
        if version is None:
            continue
        blob = blobs.get((channel, version))
        if blob is None:
            raise DeserializationError(
                f"checkpoint {cid} of thread {thread_id!r} references channel {channel!r} "
                f"version {version!r}, which is missing from the database"
            )
        btype, bvalue, brefs = blob
        where = f"channel {channel!r} of checkpoint {cid}"
        aad_of = (
            partial(encryption.blob_aad, thread_id, ns, channel, version, brefs)
            if sealed else _unsealed
        )
        if not codec.is_empty(btype, bvalue, aad_of, where):
            values[channel] = codec.decode_blob(
                btype, bvalue, brefs, chunks, where, thread_id=thread_id, aad_of=aad_of
            )
    skeleton["channel_values"] = values
    pending: list[PendingWrite] = [
        (task, channel, codec.open_value(
            wtype, wvalue,
            partial(encryption.write_aad, thread_id, ns, cid, task, channel)
            if sealed else _unsealed,
            f"write to {channel!r} of {cid}",
        ))
        for task, channel, wtype, wvalue in zip(
            row.write_tasks or (), row.write_channels or (), row.write_types or (),
            row.write_values or (), strict=True,
        )
    ] if row.write_tasks or row.write_channels or row.write_types or row.write_values else []
    return CheckpointTuple(
        config=config_of(thread_id, ns, cid),
        checkpoint=cast(Checkpoint, skeleton),
        metadata=cast(CheckpointMetadata, metadata),
        parent_config=(
            config_of(thread_id, ns, row.parent_checkpoint_id) if row.parent_checkpoint_id else None
        ),
        pending_writes=pending,
    )


_NO_CHUNKS: Mapping[bytes, tuple[bool, bytes]] = {}


def _unsealed(inner_type: str) -> bytes:
    """The associated data asked for without a keyring: never, as nothing is opened."""
    raise IntegrityError("a sealed value was read without its row context")


def decode_rows(codec: Codec, rows: Iterable[Sequence[Any]]) -> list[CheckpointTuple]:
    """CheckpointTuples from the rows of ``read_checkpoints``, in their order, under
    one collector of the allowlist's refusals for the whole page (_strict.loading)."""
    with loading():
        return [decode_row(codec, row) for row in rows]


class DeltaRow(NamedTuple):
    """One row of ``delta_history`` (queries.sql): ``kind`` "a" is a checkpoint of
    the walk, "w" one of its writes, "b" one of its channel values."""

    kind: str
    depth: int
    checkpoint_id: str
    channel: str | None
    type: str | None
    value: bytes | None
    refs: bytes | None
    channels: list[str] | None
    versions: list[str | None] | None
    remaining: list[str] | None
    task_id: str | None
    task_path: str | None
    idx: int | None
    skeleton_type: str | None
    skeleton: bytes | None


@dataclass(slots=True)
class DeltaRows:
    """The rows of ``delta_history`` sorted out by kind."""

    walk: list[DeltaRow]
    writes: list[DeltaRow]
    blobs: dict[tuple[int, str], tuple[str, bytes | None, bytes | None]]

    def chunk_refs(self) -> list[bytes]:
        """The distinct chunk_refs of these blobs (fetch_value_chunks follows
        their reference trees)."""
        return sorted({refs for _, _, refs in self.blobs.values() if refs})


def split_delta(rows: Iterable[Sequence[Any]]) -> DeltaRows:
    walk: list[DeltaRow] = []
    writes: list[DeltaRow] = []
    blobs: dict[tuple[int, str], tuple[str, bytes | None, bytes | None]] = {}
    for raw in rows:
        row = DeltaRow._make(raw)
        if row.kind == "a":
            walk.append(row)
        elif row.kind == "w":
            writes.append(row)
        else:
            blobs[(row.depth, cast(str, row.channel))] = (
                cast(str, row.type), row.value, row.refs
            )
    walk.sort(key=lambda r: r.depth)
    return DeltaRows(walk, writes, blobs)


def decode_delta(
    codec: Codec,
    rows: DeltaRows,
    channels: Sequence[str],
    chunks: Mapping[bytes, tuple[bool, bytes]],
    *,
    thread_id: str = "",
    ns: str = "",
) -> dict[str, DeltaChannelHistory]:
    """``get_delta_channel_history``'s answer from the rows of ``delta_history``
    (``thread_id``/``ns``: where they were read, for sealed values)."""
    try:
        return _decode_delta(codec, rows, channels, chunks, thread_id, ns)
    except PgCheckpointError:
        raise
    except MALFORMED as exc:
        raise DeserializationError(
            f"stored delta channel history is malformed: {type(exc).__name__}: {exc}"
        ) from exc


def _decode_delta(
    codec: Codec,
    rows: DeltaRows,
    channels: Sequence[str],
    chunks: Mapping[bytes, tuple[bool, bytes]],
    thread_id: str,
    ns: str,
) -> dict[str, DeltaChannelHistory]:
    seeds: dict[str, Any] = {}
    for row in rows.walk:
        cid = row.checkpoint_id
        names, versions = row.channels or [], row.versions or []
        remaining = row.remaining or []
        skeleton_values: dict[str, Any] | None = None
        for channel, version in zip(names, versions, strict=True):
            if channel not in remaining or channel in seeds:
                continue
            if version is None:
                if skeleton_values is None:
                    skeleton = codec.open_value(
                        cast(str, row.skeleton_type), row.skeleton,
                        partial(encryption.checkpoint_aad, thread_id, ns, cid, names, versions),
                        f"checkpoint {cid}",
                    )
                    skeleton_values = dict(skeleton.get("channel_values") or {})
                seeds[channel] = skeleton_values.get(channel)
            else:
                blob = rows.blobs.get((row.depth, channel))
                if blob is None:
                    raise DeserializationError(
                        f"checkpoint {cid}: value of channel {channel!r} is missing"
                    )
                where = f"channel {channel!r} of {cid}"
                aad_of = partial(encryption.blob_aad, thread_id, ns, channel, version, blob[2])
                if not codec.is_empty(blob[0], blob[1], aad_of, where):
                    seeds[channel] = codec.decode_blob(
                        blob[0], blob[1], blob[2], chunks, where, thread_id=thread_id,
                        aad_of=aad_of,
                    )
    # Oldest checkpoint first; inside one, the order live execution applied them.
    ordered = sorted(
        rows.writes,
        key=lambda r: (
            -r.depth, writes_sort_key(r.task_path or "", cast(str, r.task_id), cast(int, r.idx))
        ),
    )
    history: dict[str, DeltaChannelHistory] = {c: {"writes": []} for c in channels}
    for r in ordered:
        channel = cast(str, r.channel)
        if channel in history:
            value = codec.open_value(
                cast(str, r.type), r.value,
                partial(
                    encryption.write_aad, thread_id, ns, r.checkpoint_id, cast(str, r.task_id),
                    channel,
                ),
                f"write to {channel!r} of {r.checkpoint_id}",
            )
            history[channel]["writes"].append((cast(str, r.task_id), channel, value))
    for channel, value in seeds.items():
        if channel in history:
            history[channel]["seed"] = value
    return history
