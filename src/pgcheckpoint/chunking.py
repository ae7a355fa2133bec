"""Content-defined chunking of large values (pure, no I/O).

A channel that grows step by step (a ``messages`` list) is rewritten whole by
LangGraph at every step. Cut into content-defined chunks (FastCDC), two
versions of such a value share every chunk but the few around the change (for
a msgpack list: the first, which holds the length, and the last), so storing
each chunk once per thread makes storage grow with what changed instead of
with the square of the conversation. Chunks are addressed by a 16-byte BLAKE2b
digest of their bytes.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

from fastcdc import fastcdc

from .errors import ConfigurationError

HASH_SIZE = 16
# Bytes of a chunked value kept in its blob row instead of the first chunk.
HEAD_SIZE = 8


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
