"""Content-defined chunking of large values (pure, no I/O).

A channel that grows step by step (a ``messages`` list) is rewritten whole by
LangGraph at every step. Cut into content-defined chunks (FastCDC), two
versions of such a value share every chunk but the few around the change (for
a msgpack list: the first, which holds the length, and the last), so storing
each chunk once per thread makes storage grow with what changed instead of
with the square of the conversation. Chunks are addressed by a 16-byte BLAKE2b
digest of their bytes, and a read checks every chunk against its digest
(:func:`join`), so a chunk edited, swapped or damaged in the database raises
:class:`~pgcheckpoint.errors.IntegrityError` instead of coming back as state.
"""

from __future__ import annotations

import hashlib
from collections.abc import Collection, Mapping
from dataclasses import dataclass

from fastcdc import fastcdc

from . import compression
from .errors import ConfigurationError, DeserializationError, IntegrityError

HASH_SIZE = 16
# Bytes of a chunked value kept in its blob row instead of the first chunk.
HEAD_SIZE = 8
# The smallest chunk split() cuts, but for a value's last one: FastCDC's minimum
# is avg // 4 and ChunkingPolicy keeps avg >= 256. It bounds how many chunk
# references a value of a given size can have, checked before any is read.
MIN_CHUNK = 64


@dataclass(frozen=True, slots=True)
class ChunkingPolicy:
    """When values are chunked and how big the chunks are.

    Attributes:
        enabled: chunk at all.
        threshold: values shorter than this many bytes are stored whole.
        min_avg / max_avg: bounds of the average chunk size. The average is
            the value's size / ``target_chunks`` rounded up to a power of two,
            so a value is cut into at most about ``target_chunks`` pieces and
            the cut points only move when the size crosses a power of two.
    """

    enabled: bool = True
    threshold: int = 8192
    min_avg: int = 1024
    max_avg: int = 256 * 1024
    target_chunks: int = 32

    def __post_init__(self) -> None:
        if self.min_avg < 256 or self.max_avg < self.min_avg:
            raise ConfigurationError(
                f"chunk sizes must satisfy 256 <= min_avg <= max_avg, "
                f"got {self.min_avg}, {self.max_avg}"
            )
        if self.target_chunks < 1:
            raise ConfigurationError(f"target_chunks must be >= 1, got {self.target_chunks}")


def average_size(length: int, policy: ChunkingPolicy) -> int:
    """The average chunk size used for a value of ``length`` bytes."""
    want = max(1, length // policy.target_chunks)
    avg = 1 << (want - 1).bit_length()
    return min(max(avg, policy.min_avg), policy.max_avg)


def split(data: bytes, policy: ChunkingPolicy) -> list[bytes]:
    """Cut ``data`` into content-defined chunks; concatenated they give ``data``."""
    avg = average_size(len(data), policy)
    view = memoryview(data)
    return [
        bytes(view[c.offset : c.offset + c.length])
        for c in fastcdc(data, min_size=avg // 4, avg_size=avg, max_size=avg * 4, fat=False)
    ]


def digest(chunk: bytes) -> bytes:
    """The 16-byte address of a chunk."""
    return hashlib.blake2b(chunk, digest_size=HASH_SIZE).digest()


def split_refs(refs: bytes) -> list[bytes]:
    """The chunk addresses packed in a blob's ``chunk_refs``."""
    return [refs[i : i + HASH_SIZE] for i in range(0, len(refs), HASH_SIZE)]


def join(
    head: bytes,
    refs: bytes,
    chunks: Mapping[bytes, tuple[bool, bytes]],
    limit: int,
    where: str,
    *,
    verified: Collection[bytes] = (),
) -> bytes:
    """Rebuild a chunked value: ``head`` then each referenced chunk, in order.

    Each distinct chunk is decompressed once (within what is left of ``limit``)
    and checked against its address; the running size is checked before every
    piece is added, so a reference list naming one chunk a million times fails
    at ``limit`` bytes rather than growing without end. Chunks in ``verified``
    (sealed ones, whose tag already proved them; their ids are keyed) skip the check.
    """
    if len(refs) % HASH_SIZE:
        raise DeserializationError(
            f"{where}: its chunk references ({len(refs)} bytes) are not whole "
            f"{HASH_SIZE}-byte addresses"
        )
    count = len(refs) // HASH_SIZE
    if count > limit // MIN_CHUNK + 1:
        raise DeserializationError(
            f"{where} names {count} chunks, more than a value of at most {limit} bytes "
            "(CompressionPolicy.max_value_size) can be cut into"
        )
    out = compression.BoundedJoin(
        limit,
        f"{where} grows beyond {limit} bytes (CompressionPolicy.max_value_size) "
        "as its chunks are joined; refusing to read it",
    )
    out.add(head)
    seen: dict[bytes, bytes] = {}
    for h in split_refs(refs):
        piece = seen.get(h)
        if piece is None:
            found = chunks.get(h)
            if found is None:
                raise DeserializationError(
                    f"cannot read {where}: chunk {h.hex()} is missing from the database"
                )
            compressed, data = found
            piece = (
                compression.decompress(data, out.room, f"chunk {h.hex()} of {where}")
                if compressed
                else data
            )
            if h not in verified and digest(piece) != h:
                raise IntegrityError(
                    f"cannot read {where}: chunk {h.hex()} does not match its content "
                    "(the stored chunk was altered or damaged)"
                )
            seen[h] = piece
        out.add(piece)
    return out.join()
