"""Rows to and from LangGraph objects (pure, no I/O).

Everything stored goes through the saver's serde (``dumps_typed`` /
``loads_typed``), then optionally through zstd or content-defined chunking; the
stored ``type`` column records what was done (``msgpack``, ``msgpack+zstd``,
``msgpack+cdc``) so any row reads back whatever settings wrote it.

Small primitive channel values (``None``, ``bool``, ``int``, ``float``, short
``str``) stay inline in the checkpoint's own bytes: they cost less there than
as rows of their own, and the decision depends only on the value, so a value
that is carried unchanged into later checkpoints is looked for where it was
first written.
"""

from __future__ import annotations

import contextlib
import contextvars
import json
import re
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any, cast

from langchain_core.runnables import RunnableConfig
from langgraph.checkpoint.base import (
    WRITES_IDX_MAP,
    Checkpoint,
    CheckpointMetadata,
    CheckpointTuple,
    DeltaChannelHistory,
    PendingWrite,
    writes_sort_key,
)
from langgraph.checkpoint.serde.base import SerializerProtocol
from langgraph.checkpoint.serde.event_hooks import SerdeEvent, register_serde_event_listener

from . import _validate, chunking, compression
from ._arrays import BoolArray, ByteaArray, Int4Array, TextArray
from .chunking import ChunkingPolicy
from .compression import ZSTD_SUFFIX, CompressionPolicy
from .errors import (
    BlockedTypeError,
    DeserializationError,
    InvalidInputError,
    PgCheckpointError,
    SerializationError,
    UnreadableTypeError,
)

CDC_SUFFIX = "+cdc"
SKELETON_THRESHOLD = 128
INLINE_STR_MAX = 256
_INLINE_TYPES = (type(None), bool, int, float)

# --- strict deserialization -------------------------------------------------
# LangGraph's msgpack hook logs and returns the raw fields of a type that its
# allowlist refuses (allowlist.py decides). We collect those events while we
# decode, and refuse the value.
_blocked: contextvars.ContextVar[list[str] | None] = contextvars.ContextVar(
    "pgcheckpoint_blocked", default=None
)
# Set by show_unloadable(): a refused value becomes an Unloadable instead of raising.
_show_raw: contextvars.ContextVar[bool] = contextvars.ContextVar(
    "pgcheckpoint_show_raw", default=False
)
_UNSAFE_NAME_CHARS = re.compile(r"[^A-Za-z0-9_.()]")


def _on_serde_event(event: SerdeEvent) -> None:
    sink = _blocked.get()
    if sink is not None and event["kind"] in ("msgpack_blocked", "msgpack_method_blocked"):
        name = f"{event['module']}.{event['name']}"
        if "method" in event:
            name += f".{event['method']}()"
        sink.append(name)


register_serde_event_listener(_on_serde_event)


@dataclass(frozen=True, slots=True)
class Unloadable:
    """A stored value that was not loaded because it names refused types: what
    ``show`` prints in its place. Names keep only ``[A-Za-z0-9_.()]`` (others become
    ``?``), so text from a row cannot carry markup or terminal escapes."""

    not_loaded: tuple[str, ...]
    serde_type: str
    size: int

    @classmethod
    def of(cls, names: Iterable[str], serde_type: str, size: int) -> Unloadable:
        clean = sorted({_UNSAFE_NAME_CHARS.sub("?", n)[:200] for n in names})
        return cls(tuple(clean), _UNSAFE_NAME_CHARS.sub("?", serde_type)[:40], size)

    def __repr__(self) -> str:
        return (
            f"<not loaded: {', '.join(self.not_loaded)} "
            f"({self.serde_type}, {self.size:,} bytes)>"
        )


@contextlib.contextmanager
def show_unloadable() -> Iterator[None]:
    """Within this block (this thread or task), a stored value that names a refused
    type reads as an :class:`Unloadable` instead of raising ``BlockedTypeError``.
    For inspection only (the CLI's ``show``): never hand such a value to a graph."""
    token = _show_raw.set(True)
    try:
        yield
    finally:
        _show_raw.reset(token)


def loads(serde: SerializerProtocol, type_: str, data: bytes | None, where: str) -> Any:
    """Deserialize one stored value, refusing types the allowlist blocks."""
    sink: list[str] = []
    token = _blocked.set(sink)
    try:
        value = serde.loads_typed((type_, data if data is not None else b""))
    except PgCheckpointError:
        raise
    except Exception as exc:
        raise DeserializationError(f"cannot deserialize {where} ({type_}): {exc}") from exc
    finally:
        _blocked.reset(token)
    if sink:
        if _show_raw.get():
            return Unloadable.of(sink, type_, len(data or b""))
        raise BlockedTypeError(sorted(set(sink)), where)
    return value


def dumps(serde: SerializerProtocol, value: Any, where: str) -> tuple[str, bytes]:
    try:
        type_, data = serde.dumps_typed(value)
    except UnreadableTypeError as exc:
        raise UnreadableTypeError(exc.refused, where) from None
    except Exception as exc:
        raise SerializationError(
            f"cannot serialize {where}: {type(exc).__name__}: {exc}"
        ) from exc
    # LangGraph's msgpack writes a lone surrogate as "?": refuse it instead.
    if type_ == "msgpack" and b"?" in data and _validate.find_surrogate(value):
        raise InvalidInputError(
            f"{where} contains text with a lone surrogate code point, which is not valid "
            "UTF-8 and would be stored as '?'"
        )
    return type_, data


# --- input validation -------------------------------------------------------


def text_id(value: Any, what: str, *, allow_empty: bool = False) -> str:
    """A thread id, namespace or checkpoint id as stored: ``str``, ``int`` or ``UUID``."""
    if isinstance(value, str):
        text = value
    elif (isinstance(value, int) and not isinstance(value, bool)) or type(
        value
    ).__name__ == "UUID":
        text = str(value)
    else:
        raise InvalidInputError(
            f"{what} must be a str, int or UUID, got {type(value).__name__}: {value!r}"
        )
    _validate.check_text(text, what)
    if not text and not allow_empty:
        raise InvalidInputError(f"{what} must not be empty")
    return text


@dataclass(frozen=True, slots=True)
class Target:
    """Where a config points: thread, namespace and (optionally) checkpoint."""

    thread_id: str
    checkpoint_ns: str
    checkpoint_id: str | None


def target(config: RunnableConfig | None) -> Target:
    """Validate a RunnableConfig and read its thread_id / checkpoint_ns / checkpoint_id."""
    if not isinstance(config, Mapping):
        raise InvalidInputError(f"config must be a dict, got {type(config).__name__}")
    conf = config.get("configurable")
    if not isinstance(conf, Mapping):
        raise InvalidInputError(
            'config has no "configurable" dict; expected {"configurable": {"thread_id": ...}}'
        )
    if conf.get("thread_id") is None:
        raise InvalidInputError('config["configurable"] has no "thread_id"')
    ns = conf.get("checkpoint_ns")
    cid = conf.get("checkpoint_id")
    return Target(
        thread_id=text_id(conf["thread_id"], "thread_id"),
        checkpoint_ns=text_id(ns if ns is not None else "", "checkpoint_ns", allow_empty=True),
        checkpoint_id=text_id(cid, "checkpoint_id") if cid else None,
    )


def metadata_json(metadata: Mapping[str, Any], what: str = "metadata") -> str:
    """Metadata as JSON text for a jsonb parameter, with a clear error for what JSON can't hold."""
    if not isinstance(metadata, Mapping):
        raise InvalidInputError(f"{what} must be a dict, got {type(metadata).__name__}")
    _validate.check_json(metadata, "" if what == "metadata" else what)
    return json.dumps(metadata, ensure_ascii=False, allow_nan=False, separators=(",", ":"))


# --- encoding ---------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Codec:
    """Serde plus the storage policies: turns values into stored bytes and back."""

    serde: SerializerProtocol
    compression: CompressionPolicy = field(default_factory=CompressionPolicy)
    chunking: ChunkingPolicy = field(default_factory=ChunkingPolicy)

    # values -----------------------------------------------------------------
    def pack(self, type_: str, data: bytes, *, skeleton: bool = False) -> tuple[str, bytes]:
        """Compress serialized bytes when the policy says so.

        A checkpoint's own bytes are compressed from a lower size: they are
        mostly channel version strings (32 zero-padded digits each), which zstd
        halves (measured: 510 -> 255 bytes on a chat agent's checkpoint).
        """
        policy = self.compression
        self._check_size(data)
        if skeleton and policy.enabled:
            policy = replace(policy, threshold=min(policy.threshold, SKELETON_THRESHOLD))
        packed = compression.maybe_compress(data, policy)
        if packed is None:
            return type_, data
        return type_ + ZSTD_SUFFIX, packed

    def _check_size(self, data: bytes) -> None:
        """Refuse to write what a read would refuse (CompressionPolicy.max_value_size)."""
        limit = self.compression.max_value_size
        if len(data) > limit:
            raise InvalidInputError(
                f"a value serializes to {len(data)} bytes, over the limit of {limit} "
                "(CompressionPolicy.max_value_size)"
            )

    def unpack(self, type_: str, data: bytes | None, where: str) -> Any:
        if type_.endswith(ZSTD_SUFFIX):
            raw = compression.decompress(data or b"", self.compression.max_value_size, where)
            return loads(self.serde, type_[: -len(ZSTD_SUFFIX)], raw, where)
        return loads(self.serde, type_, data, where)

    def encode_blob(
        self, value: Any, where: str, chunks_out: dict[bytes, tuple[bool, bytes]]
    ) -> tuple[str, bytes | None, bytes | None]:
        """(type, value, chunk_refs) for a channel value; new chunks go to ``chunks_out``."""
        return self.pack_blob(*dumps(self.serde, value, where), chunks_out)

    def pack_blob(
        self, type_: str, data: bytes, chunks_out: dict[bytes, tuple[bool, bytes]]
    ) -> tuple[str, bytes | None, bytes | None]:
        """``encode_blob`` for bytes the serde already wrote: compression and
        chunking only, so importers store values without loading them."""
        policy = self.chunking
        self._check_size(data)
        if not policy.enabled or len(data) < policy.threshold:
            type_, data = self.pack(type_, data)
            return type_, data, None
        # The first bytes hold the container's header (a msgpack list's length),
        # which changes at every append; kept in the row, they leave the first
        # chunk shared between versions (measured on a 100-turn chat: -0.6 KB
        # per superstep).
        head, data = data[: chunking.HEAD_SIZE], data[chunking.HEAD_SIZE :]
        refs = bytearray()
        for piece in chunking.split(data, policy):
            h = chunking.digest(piece)
            refs += h
            if h not in chunks_out:
                packed = compression.maybe_compress(piece, self.compression)
                chunks_out[h] = (True, packed) if packed is not None else (False, piece)
        return type_ + CDC_SUFFIX, head, bytes(refs)

    def decode_blob(
        self,
        type_: str,
        value: bytes | None,
        refs: bytes | None,
        chunks: Mapping[bytes, tuple[bool, bytes]],
        where: str,
    ) -> Any:
        if type_.endswith(CDC_SUFFIX):
            limit = self.compression.max_value_size
            data = chunking.join(value or b"", refs or b"", chunks, limit, where)
            return loads(self.serde, type_[: -len(CDC_SUFFIX)], data, where)
        return self.unpack(type_, value, where)


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


def parse_ts(ts: Any) -> datetime | None:
    if not isinstance(ts, str):
        return None
    try:
        parsed = datetime.fromisoformat(ts)
    except ValueError:
        return None
    return parsed if parsed.tzinfo is not None else None


def encode_put(
    codec: Codec,
    where: Target,
    checkpoint: Checkpoint,
    metadata: CheckpointMetadata,
    new_versions: Mapping[str, Any],
) -> EncodedPut:
    """Everything ``put`` sends, computed before any I/O so a bad value writes nothing."""
    if not isinstance(checkpoint, Mapping) or "id" not in checkpoint:
        raise InvalidInputError('checkpoint must be a dict with an "id"')
    checkpoint_id = text_id(checkpoint["id"], "checkpoint id")
    values = checkpoint.get("channel_values") or {}
    versions = checkpoint.get("channel_versions") or {}
    if not isinstance(values, Mapping) or not isinstance(versions, Mapping):
        raise InvalidInputError("checkpoint channel_values and channel_versions must be dicts")

    inline: dict[str, Any] = {}
    channels: list[str] = []
    channel_versions: list[str | None] = []
    blob_channels: list[str] = []
    blob_versions: list[str] = []
    blob_types: list[str] = []
    blob_values: list[bytes | None] = []
    blob_refs: list[bytes | None] = []
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
            type_, data, refs = codec.encode_blob(value, f"channel {channel!r}", chunks)
            blob_channels.append(channel)
            blob_versions.append(version)
            blob_types.append(type_)
            blob_values.append(data)
            blob_refs.append(refs)

    skeleton = {k: v for k, v in checkpoint.items() if k != "channel_values"}
    skeleton["channel_values"] = inline
    type_, data = codec.pack(*dumps(codec.serde, skeleton, "checkpoint"), skeleton=True)
    params: dict[str, Any] = {
        "thread_id": where.thread_id,
        "checkpoint_ns": where.checkpoint_ns,
        "checkpoint_id": checkpoint_id,
        "parent_checkpoint_id": where.checkpoint_id,
        "type": type_,
        "checkpoint": data,
        "metadata": metadata_json(metadata),
        "created_at": parse_ts(checkpoint.get("ts")),
        # Typed arrays: dumped straight to the binary wire format (_arrays.py).
        "channels": TextArray(channels),
        "versions": TextArray(channel_versions),
        "blob_channels": TextArray(blob_channels),
        "blob_versions": TextArray(blob_versions),
        "blob_types": TextArray(blob_types),
        "blob_values": ByteaArray(blob_values),
        "blob_refs": ByteaArray(blob_refs),
        "chunk_hashes": ByteaArray(chunks),
        "chunk_compressed": BoolArray(c for c, _ in chunks.values()),
        "chunk_data": ByteaArray(d for _, d in chunks.values()),
        # The one-writer-per-thread check the saver asks for (concurrency.py).
        "guard": None,
    }
    config: RunnableConfig = {
        "configurable": {
            "thread_id": where.thread_id,
            "checkpoint_ns": where.checkpoint_ns,
            "checkpoint_id": checkpoint_id,
        }
    }
    return EncodedPut(params, config)


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
        type_, data = codec.pack(*dumps(codec.serde, item[1], f"write #{i} to {channel!r}"))
        idx.append(WRITES_IDX_MAP.get(channel, i))
        channels.append(channel)
        types.append(type_)
        values.append(data)
    upsert = bool(channels) and all(c in WRITES_IDX_MAP for c in channels)
    return upsert, {
        "thread_id": where.thread_id,
        "checkpoint_ns": where.checkpoint_ns,
        "checkpoint_id": where.checkpoint_id,
        "task_id": task,
        "task_path": path,
        "idx": Int4Array(idx),
        "channels": TextArray(channels),
        "types": TextArray(types),
        "values": ByteaArray(values),
    }


# --- decoding ---------------------------------------------------------------

def _config(thread_id: str, ns: str, checkpoint_id: str) -> RunnableConfig:
    return {
        "configurable": {
            "thread_id": thread_id,
            "checkpoint_ns": ns,
            "checkpoint_id": checkpoint_id,
        }
    }


# What a malformed (tampered) row makes plain Python raise while it is taken apart;
# decode_row and decode_delta turn them into DeserializationError.
_MALFORMED = (
    ValueError, TypeError, KeyError, IndexError, AttributeError, OverflowError,
    RecursionError, MemoryError,
)


def decode_row(codec: Codec, row: tuple[Any, ...]) -> CheckpointTuple:
    """A CheckpointTuple from one row of ``read_checkpoints`` (the checkpoint with
    its blobs, their chunks and its writes aggregated into arrays)."""
    try:
        return _decode_row(codec, row)
    except PgCheckpointError:
        raise
    except _MALFORMED as exc:
        cid = row[2] if isinstance(row, tuple) and len(row) > 2 else "?"
        raise DeserializationError(
            f"stored checkpoint {cid!r} is malformed: {type(exc).__name__}: {exc}"
        ) from exc


def _decode_row(codec: Codec, row: tuple[Any, ...]) -> CheckpointTuple:
    (thread_id, ns, cid, parent, type_, data, metadata, channels, versions, b_channels,
     b_versions, b_types, b_values, b_refs, k_hashes, k_flags, k_data, w_tasks, w_channels,
     w_types, w_values) = row
    blobs: dict[tuple[str, str], tuple[str, bytes | None, bytes | None]] = {}
    if b_channels:
        for channel, version, btype, value, refs in zip(
            b_channels, b_versions, b_types, b_values, b_refs, strict=True
        ):
            blobs[(channel, version)] = (btype, value, refs)
    chunks = {
        bytes(h): (flag, bytes(d))
        for h, flag, d in zip(k_hashes or (), k_flags or (), k_data or (), strict=True)
    }
    skeleton = codec.unpack(type_, data, f"checkpoint {cid}")
    if not isinstance(skeleton, dict):
        raise DeserializationError(f"checkpoint {cid} did not decode to a dict")
    values = dict(skeleton.get("channel_values") or {})
    for channel, version in zip(channels, versions, strict=True):
        if version is None:
            continue
        blob = blobs.get((channel, version))
        if blob is None:
            raise DeserializationError(
                f"checkpoint {cid} of thread {thread_id!r} references channel {channel!r} "
                f"version {version!r}, which is missing from the database"
            )
        btype, bvalue, brefs = blob
        if btype != "empty":
            values[channel] = codec.decode_blob(
                btype, bvalue, brefs, chunks, f"channel {channel!r} of checkpoint {cid}"
            )
    skeleton["channel_values"] = values
    pending: list[PendingWrite] = [
        (task, channel, codec.unpack(wtype, wvalue, f"write to {channel!r} of {cid}"))
        for task, channel, wtype, wvalue in zip(
            w_tasks or (), w_channels or (), w_types or (), w_values or (), strict=True
        )
    ]
    return CheckpointTuple(
        config=_config(thread_id, ns, cid),
        checkpoint=cast(Checkpoint, skeleton),
        metadata=cast(CheckpointMetadata, metadata),
        parent_config=_config(thread_id, ns, parent) if parent else None,
        pending_writes=pending,
    )


def decode_rows(codec: Codec, rows: Iterable[tuple[Any, ...]]) -> list[CheckpointTuple]:
    """CheckpointTuples from the rows of ``read_checkpoints``, in their order."""
    return [decode_row(codec, row) for row in rows]


@dataclass(slots=True)
class DeltaRows:
    """The rows of ``delta_history`` sorted out by kind."""

    walk: list[tuple[Any, ...]]
    writes: list[tuple[Any, ...]]
    blobs: dict[tuple[int, str], tuple[str, bytes | None, bytes | None]]

    def chunk_hashes(self) -> list[bytes]:
        hashes: set[bytes] = set()
        for _, _, refs in self.blobs.values():
            if refs:
                hashes.update(chunking.split_refs(refs))
        return sorted(hashes)


def split_delta(rows: Iterable[tuple[Any, ...]]) -> DeltaRows:
    walk, writes = [], []
    blobs: dict[tuple[int, str], tuple[str, bytes | None, bytes | None]] = {}
    for row in rows:
        kind = row[0]
        if kind == "a":
            walk.append(row)
        elif kind == "w":
            writes.append(row)
        else:
            blobs[(row[1], row[3])] = (row[4], row[5], row[6])
    walk.sort(key=lambda r: cast(int, r[1]))
    return DeltaRows(walk, writes, blobs)


def decode_delta(
    codec: Codec,
    rows: DeltaRows,
    channels: Sequence[str],
    chunks: Mapping[bytes, tuple[bool, bytes]],
) -> dict[str, DeltaChannelHistory]:
    """``get_delta_channel_history``'s answer from the rows of ``delta_history``."""
    try:
        return _decode_delta(codec, rows, channels, chunks)
    except PgCheckpointError:
        raise
    except _MALFORMED as exc:
        raise DeserializationError(
            f"stored delta channel history is malformed: {type(exc).__name__}: {exc}"
        ) from exc


def _decode_delta(
    codec: Codec,
    rows: DeltaRows,
    channels: Sequence[str],
    chunks: Mapping[bytes, tuple[bool, bytes]],
) -> dict[str, DeltaChannelHistory]:
    seeds: dict[str, Any] = {}
    for row in rows.walk:
        depth, cid, ch_names, ch_versions, remaining = row[1], row[2], row[7], row[8], row[9]
        skeleton_values: dict[str, Any] | None = None
        for channel, version in zip(ch_names, ch_versions, strict=True):
            if channel not in remaining or channel in seeds:
                continue
            if version is None:
                if skeleton_values is None:
                    skeleton = codec.unpack(row[13], row[14], f"checkpoint {cid}")
                    skeleton_values = dict(skeleton.get("channel_values") or {})
                seeds[channel] = skeleton_values.get(channel)
            else:
                blob = rows.blobs.get((depth, channel))
                if blob is None:
                    raise DeserializationError(
                        f"checkpoint {cid}: value of channel {channel!r} is missing"
                    )
                if blob[0] != "empty":
                    seeds[channel] = codec.decode_blob(
                        blob[0], blob[1], blob[2], chunks, f"channel {channel!r} of {cid}"
                    )
    # Oldest checkpoint first; inside one, the order live execution applied them.
    ordered = sorted(
        rows.writes,
        key=lambda r: (-cast(int, r[1]), writes_sort_key(r[11] or "", r[10], r[12])),
    )
    history: dict[str, DeltaChannelHistory] = {c: {"writes": []} for c in channels}
    for r in ordered:
        channel = r[3]
        if channel in history:
            history[channel]["writes"].append(
                (r[10], channel, codec.unpack(r[4], r[5], f"write to {channel!r} of {r[2]}"))
            )
    for channel, value in seeds.items():
        if channel in history:
            history[channel]["seed"] = value
    return history
