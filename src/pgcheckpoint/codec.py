"""Rows to and from LangGraph objects (pure, no I/O).

Everything stored goes through the saver's serde (``dumps_typed`` /
``loads_typed``), then optionally through zstd or content-defined chunking; the
stored ``type`` column records what was done (``msgpack``, ``msgpack+zstd``,
``msgpack+cdc``, and ``+enc`` when sealed under a keyring, encryption.py) so
any row reads back whatever settings wrote it. Input checks live in
``_validate.py``, strict serde calls in ``_strict.py``, the parameters of a
put in ``encoding.py`` and the rows read back in ``decoding.py``.

Small primitive channel values (``None``, ``bool``, ``int``, ``float``, short
``str``) stay inline in the checkpoint's own bytes (``encoding.is_inline``):
they cost less there than as rows of their own, and the decision depends only
on the value, so a value that is carried unchanged into later checkpoints is
looked for where it was first written.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, cast

from langgraph.checkpoint.serde.base import SerializerProtocol

from . import chunking, compression, encryption
from ._strict import Unloadable, dumps, loads, show_unloadable
from ._validate import Target, metadata_json, parse_ts, target, text_id
from .chunking import ChunkCache, ChunkingPolicy
from .compression import ZSTD_SUFFIX, CompressionPolicy
from .decoding import (
    CheckpointRow,
    DeltaRows,
    config_of,
    decode_delta,
    decode_row,
    decode_rows,
    split_delta,
)
from .encoding import EncodedPut, encode_put, encode_writes, is_inline
from .encryption import Encryption
from .errors import IntegrityError, InvalidInputError

# Re-exported: callers read ids and configs through the codec (codec.text_id, ...).
__all__ = [
    "CDC_SUFFIX",
    "CheckpointRow",
    "Codec",
    "DeltaRows",
    "EncodedPut",
    "Target",
    "Unloadable",
    "config_of",
    "decode_delta",
    "decode_row",
    "decode_rows",
    "dumps",
    "encode_put",
    "encode_writes",
    "is_inline",
    "loads",
    "metadata_json",
    "parse_ts",
    "show_unloadable",
    "split_delta",
    "target",
    "text_id",
]

# The associated data of a stored value, given its inner (packed) type.
AadOf = Callable[[str], bytes]

CDC_SUFFIX = "+cdc"

@dataclass(frozen=True, slots=True)
class Codec:
    """Serde plus the storage policies: turns values into stored bytes and back.

    With ``encryption``, every value is sealed after compression (``type`` gets
    ``+enc``) and opened before decompression; ``aad_of(inner_type)`` callables
    give each value's associated data (encryption.py)."""

    serde: SerializerProtocol
    compression: CompressionPolicy = field(default_factory=CompressionPolicy)
    chunking: ChunkingPolicy = field(default_factory=ChunkingPolicy)
    encryption: Encryption | None = None
    # Recent chunks by address (chunking.ChunkCache), sized by the policy.
    cache: ChunkCache | None = field(default=None, compare=False, repr=False)

    def __post_init__(self) -> None:
        if self.cache is None:
            object.__setattr__(self, "cache", ChunkCache(self.chunking.cache_bytes))

    # values -----------------------------------------------------------------
    def pack(self, type_: str, data: bytes) -> tuple[str, bytes]:
        """Compress serialized bytes when the policy says so.

        A checkpoint's own bytes (its "skeleton") follow the same policy as any
        value. They used to be compressed from 128 bytes: they are mostly channel
        version strings, which zstd shrinks (389 -> 223 bytes on the bench's tiny
        and 1 KB states). Measured 2026-12-01 (``python -m bench.codec_cpu``, its
        skeleton line, 10th percentile of 51 x 500 calls): compressing took 9 us a
        put and decompressing 3.7 us a row read (``frame_content_size`` plus
        ``decompress``, where msgpack's own decode of it takes 1.3 us), to save 166
        bytes a checkpoint row. On a ``list(limit=10)`` page of tiny states (~77 us
        of client CPU a row, 0.90x the official saver) that is ~5 % of the page;
        shorter version strings are the better way to the bytes. Rows stored
        compressed still read (``unpack``).
        """
        self._check_size(data)
        packed = compression.maybe_compress(data, self.compression)
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

    # encryption -------------------------------------------------------------
    def seal(self, type_: str, data: bytes, aad_of: AadOf) -> tuple[str, bytes]:
        """A packed value sealed under the primary key (unchanged without a keyring)."""
        if self.encryption is None:
            return type_, data
        return self.encryption.seal(type_, data, aad_of(type_))

    def open(
        self, type_: str, data: bytes | None, aad_of: AadOf, where: str
    ) -> tuple[str, bytes | None]:
        """(packed type, packed bytes) of a stored value; fails closed (encryption.py)."""
        if self.encryption is None:
            encryption.refuse_sealed(type_, data, where)
            return type_, data
        return self.encryption.open(type_, data, aad_of, where)

    def open_value(self, type_: str, data: bytes | None, aad_of: AadOf, where: str) -> Any:
        """``open`` then ``unpack``: a stored (non-chunked) value."""
        return self.unpack(*self.open(type_, data, aad_of, where), where)

    def chunk_id(self, thread_id: str, piece: bytes) -> bytes:
        if self.encryption is None:
            return chunking.digest(piece)
        return self.encryption.keyring.chunk_id(thread_id, piece)

    def seal_chunks(self, thread_id: str, chunks: dict[bytes, tuple[bool, bytes]]) -> None:
        """Seal new chunks in place, each bound to its thread, id and compression flag."""
        if self.encryption is None:
            return
        ring = self.encryption.keyring
        for h, (flag, data) in chunks.items():
            if not chunking.is_node_key(h):  # nodes stay in clear (chunking.NODE_SUFFIX)
                chunks[h] = (flag, ring.seal(data, encryption.chunk_aad(thread_id, h, flag)))

    def metadata_json(
        self, metadata: Mapping[str, Any], thread_id: str, ns: str, checkpoint_id: str,
        parent: str | None,
    ) -> str:
        """Metadata as the JSON text stored (sealed, with its blind index, under a keyring)."""
        text = metadata_json(metadata)
        if self.encryption is None:
            return text
        sealed = self.encryption.seal_metadata(
            metadata, thread_id, ns, checkpoint_id, parent, text
        )
        return json.dumps(sealed, separators=(",", ":"))

    def read_metadata(
        self, stored: Any, thread_id: str, ns: str, checkpoint_id: str, parent: str | None
    ) -> dict[str, Any]:
        """Stored metadata as the dict LangGraph wrote (opened under a keyring)."""
        if (
            self.encryption is None
            and type(stored) is dict
            and encryption.META_SEALED not in stored
        ):
            return stored  # the common case, without building the message text
        where = f"checkpoint {checkpoint_id!r} of thread {thread_id!r}"
        if self.encryption is None:
            encryption.refuse_sealed_metadata(stored, where)
            return cast(dict[str, Any], stored)
        return self.encryption.open_metadata(
            stored, thread_id, ns, checkpoint_id, parent, where
        )

    def listed_metadata(
        self, stored: Any, thread_id: str, ns: str, checkpoint_id: str, parent: str | None
    ) -> dict[str, Any]:
        """A thread's latest metadata as listings show it: opened like ``read_metadata``.
        Sealed metadata that cannot be opened here (no keyring, or its key is not in
        the ring) is shown as ``{"pgc:kid": <key id>}`` rather than failing the
        listing; callers show it as "encrypted under key <id>" (docs/encryption.md)."""
        if isinstance(stored, Mapping) and encryption.META_SEALED in stored:
            kid = str(stored.get(encryption.META_KID))[:32]
            if self.encryption is None or kid not in self.encryption.keyring.key_ids:
                return {encryption.META_KID: kid}
        if not stored:
            return {}
        return self.read_metadata(stored, thread_id, ns, checkpoint_id, parent)

    def filter_jsons(self, filter: Mapping[str, Any]) -> list[str]:
        """A metadata filter as JSON containments, one of which a stored row must
        satisfy: the filter itself, or under a keyring its blind-index tokens under
        each key id (a row matches under the key that sealed it)."""
        text = metadata_json(filter, "filter")
        if self.encryption is None:
            return [text]
        return self.encryption.filters(filter)

    # channel values ---------------------------------------------------------
    def encode_blob(
        self, value: Any, where: str, chunks_out: dict[bytes, tuple[bool, bytes]],
        *, thread_id: str = "",
    ) -> tuple[str, bytes | None, bytes | None]:
        """(type, value, chunk_refs) for a channel value; new chunks go to ``chunks_out``."""
        return self.pack_blob(*dumps(self.serde, value, where), chunks_out, thread_id=thread_id)

    def pack_blob(
        self, type_: str, data: bytes, chunks_out: dict[bytes, tuple[bool, bytes]],
        *, thread_id: str = "",
    ) -> tuple[str, bytes | None, bytes | None]:
        """``encode_blob`` for bytes the serde already wrote: compression and
        chunking only, so importers store values without loading them. Under a
        keyring the chunk ids are keyed by it and by ``thread_id``."""
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
        # In clear: chunks of a bounded size and a tree of references (chunking.py);
        # sealed: the flat list its keyed chunk ids are bound to.
        bounded = self.encryption is None
        ids: list[bytes] = []
        for piece in chunking.split(data, policy, bounded=bounded):
            h = self.chunk_id(thread_id, piece)
            ids.append(h)
            if h not in chunks_out:
                cache = self.cache
                stored = cache.stored.get(h) if cache is not None else None
                if stored is None:
                    packed = compression.maybe_compress(piece, self.compression)
                    stored = (True, packed) if packed is not None else (False, piece)
                    if cache is not None:
                        cache.keep_stored(h, stored)
                chunks_out[h] = stored
        if not bounded:
            return type_ + CDC_SUFFIX, head, b"".join(ids)
        nodes: dict[bytes, bytes] = {}
        refs = chunking.build_tree(ids, policy.fanout, nodes)
        for key, node in nodes.items():
            chunks_out[key] = (False, node)
        return type_ + CDC_SUFFIX, head, refs

    def decode_blob(
        self,
        type_: str,
        value: bytes | None,
        refs: bytes | None,
        chunks: Mapping[bytes, tuple[bool, bytes]],
        where: str,
        *,
        thread_id: str = "",
        aad_of: AadOf | None = None,
    ) -> Any:
        type_, value = self.open(type_, value, aad_of or _NO_AAD, where)
        if type_.endswith(CDC_SUFFIX):
            limit = self.compression.max_value_size
            opened: set[bytes] = set()
            # The piece cache holds content by unkeyed address: not for keyed ids.
            cache = self.cache
            refs = refs or b""
            if self.encryption is not None:
                # A tree's nodes are in clear (checked against their addresses);
                # the data chunks it leads to are opened like a flat list's.
                refs = chunking.leaf_refs(refs, chunks, limit, where)
                chunks = self._open_chunks(thread_id, refs, chunks, where, opened)
                cache = None
            data = chunking.join(
                value or b"", refs, chunks, limit, where, verified=opened, cache=cache
            )
            return loads(self.serde, type_[: -len(CDC_SUFFIX)], data, where)
        return self.unpack(type_, value, where)

    def is_empty(self, type_: str, value: bytes | None, aad_of: AadOf, where: str) -> bool:
        """Whether a stored channel value is LangGraph's "empty" marker (checked, and
        refused in clear under a keyring like any value)."""
        if type_ == "empty":
            if self.encryption is not None:
                self.encryption.plaintext(where)
            return True
        if type_ == "empty" + encryption.ENC_SUFFIX:
            self.open(type_, value, aad_of, where)
            return True
        return False

    def _open_chunks(
        self,
        thread_id: str,
        refs: bytes,
        chunks: Mapping[bytes, tuple[bool, bytes]],
        where: str,
        opened: set[bytes],
    ) -> dict[bytes, tuple[bool, bytes]]:
        """The referenced chunks, opened; ``opened`` gets the ids proven by their tag.
        A chunk still in clear passes only with ``allow_plaintext`` (and is then
        checked against its unkeyed id by ``chunking.join``)."""
        assert self.encryption is not None
        ring = self.encryption.keyring
        out: dict[bytes, tuple[bool, bytes]] = {}
        for h in chunking.split_refs(refs) if len(refs) % chunking.HASH_SIZE == 0 else ():
            if h in out or h not in chunks:
                continue
            flag, data = chunks[h]
            what = f"chunk {h.hex()} of {where}"
            try:
                out[h] = (flag, ring.open(data, encryption.chunk_aad(thread_id, h, flag), what))
                opened.add(h)
            except IntegrityError:
                if not self.encryption.allow_plaintext:
                    raise
                out[h] = (flag, data)
        return out


def _no_aad(inner_type: str) -> bytes:
    raise IntegrityError("a sealed value was read without its row context")


_NO_AAD: AadOf = _no_aad
