"""Client-side zstd compression of stored values (pure, no I/O).

Values at least ``CompressionPolicy.threshold`` bytes long are compressed with
zstd before they are sent, and the stored type gets a ``+zstd`` suffix, so a
reader never needs to know the setting that wrote a row. PostgreSQL's own pglz
is switched off for these columns (STORAGE EXTERNAL): on 5 MB states it was
2-5x slower than zstd level 3 for a worse ratio (issue 2's measurements).

Reading is bounded (docs/security.md): a stored value is never rebuilt larger
than ``CompressionPolicy.max_value_size``. The size a zstd frame declares is
checked before anything is allocated, frames that declare none are
decompressed in pieces with a running total, and new frames carry zstd's
content checksum, so a flipped byte raises instead of coming back as state.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass

import zstandard

from .errors import ConfigurationError, DeserializationError, IntegrityError

ZSTD_SUFFIX = "+zstd"
# The largest value a read rebuilds (and a write accepts): far above real state
# (LangGraph states measured here stay under 10 MB), far below what would take a
# process down. PostgreSQL's bytea itself stops at 1 GiB.
DEFAULT_MAX_VALUE_SIZE = 256 * 1024 * 1024
# Frames that do not declare their size are decompressed this much at a time.
_STREAM_PIECE = 1024 * 1024


@dataclass(frozen=True, slots=True)
class CompressionPolicy:
    """When and how values are compressed on the client.

    Attributes:
        enabled: compress at all; ``False`` stores every value as the serde wrote it.
        threshold: values shorter than this many bytes are stored as they are.
        level: zstd level (1 fastest ... 19 smallest); 3 is zstd's default.
        min_saving: keep the compressed form only if it saves at least this
            fraction of the size (incompressible data, e.g. encrypted, stays raw).
        max_value_size: the largest serialized value, in bytes, that a write
            accepts and a read rebuilds (decompressed, chunks joined); a stored
            value that would grow beyond it raises ``DeserializationError``
            before the memory is taken. Default 256 MiB.
    """

    enabled: bool = True
    threshold: int = 1024
    level: int = 3
    min_saving: float = 0.1
    max_value_size: int = DEFAULT_MAX_VALUE_SIZE

    def __post_init__(self) -> None:
        if self.threshold < 0:
            raise ConfigurationError(f"compression threshold must be >= 0, got {self.threshold}")
        if not 1 <= self.level <= 22:
            raise ConfigurationError(f"zstd level must be between 1 and 22, got {self.level}")
        if not 0.0 <= self.min_saving < 1.0:
            raise ConfigurationError(f"min_saving must be in [0, 1), got {self.min_saving}")
        size = self.max_value_size
        if isinstance(size, bool) or not isinstance(size, int) or size < 1:
            raise ConfigurationError(f"max_value_size must be an int >= 1, got {size!r}")


# zstandard's (de)compressor objects must not be shared between threads.
_local = threading.local()


def _compressor(level: int) -> zstandard.ZstdCompressor:
    cache: dict[int, zstandard.ZstdCompressor] | None = getattr(_local, "compressors", None)
    if cache is None:
        cache = _local.compressors = {}
    comp = cache.get(level)
    if comp is None:
        # The content checksum (xxhash64, 4 bytes a frame) makes a damaged
        # frame fail to decompress instead of decoding to other bytes.
        comp = cache[level] = zstandard.ZstdCompressor(level=level, write_checksum=True)
    return comp


def _decompressor() -> zstandard.ZstdDecompressor:
    dec: zstandard.ZstdDecompressor | None = getattr(_local, "decompressor", None)
    if dec is None:
        dec = _local.decompressor = zstandard.ZstdDecompressor()
    return dec


def maybe_compress(data: bytes, policy: CompressionPolicy) -> bytes | None:
    """The zstd form of ``data`` if the policy says to and it pays, else ``None``."""
    if not policy.enabled or len(data) < policy.threshold:
        return None
    packed = _compressor(policy.level).compress(data)
    if len(packed) > len(data) * (1.0 - policy.min_saving):
        return None
    return packed


def decompress(
    data: bytes, limit: int = DEFAULT_MAX_VALUE_SIZE, where: str = "stored value"
) -> bytes:
    """Undo :func:`maybe_compress`, refusing output beyond ``limit`` bytes.

    A frame that declares its size (every frame pgcheckpoint writes) is checked
    before its buffer is allocated; one that does not is read in pieces.
    """
    try:
        declared = zstandard.frame_content_size(data)
    except zstandard.ZstdError as exc:
        raise DeserializationError(f"{where} is not valid zstd data: {exc}") from exc
    if declared > limit:
        raise DeserializationError(
            f"{where} declares {declared} bytes once decompressed, over the limit of "
            f"{limit} (CompressionPolicy.max_value_size); refusing to read it"
        )
    try:
        # A declared size was checked above: decompress() allocates exactly it.
        out = _decompressor().decompress(data) if declared >= 0 else _stream(data, limit, where)
    except zstandard.ZstdError as exc:
        if "checksum" in str(exc).lower():
            raise IntegrityError(
                f"{where} fails its zstd content checksum: the stored bytes were altered"
            ) from exc
        raise DeserializationError(f"{where} is not valid zstd data: {exc}") from exc
    if len(out) > limit:  # cannot happen for a declared size, kept as a guard
        raise DeserializationError(f"{where} decompresses beyond {limit} bytes")
    return out


class BoundedJoin:
    """The pieces of one value, joined under a size limit that is checked before
    each piece is kept, so an oversized value fails at ``limit`` bytes instead of
    being held whole first (used by :func:`_stream` and by chunk reassembly)."""

    __slots__ = ("limit", "message", "parts", "total")

    def __init__(self, limit: int, message: str) -> None:
        self.limit, self.message = limit, message
        self.parts: list[bytes] = []
        self.total = 0

    @property
    def room(self) -> int:
        """Bytes still allowed."""
        return max(self.limit - self.total, 0)

    def add(self, piece: bytes) -> None:
        self.total += len(piece)
        if self.total > self.limit:
            raise DeserializationError(self.message)
        self.parts.append(piece)

    def join(self) -> bytes:
        return b"".join(self.parts)


def _stream(data: bytes, limit: int, where: str) -> bytes:
    """Decompress a frame of unknown size, stopping as soon as it passes ``limit``."""
    out = BoundedJoin(
        limit,
        f"{where} decompresses to more than {limit} bytes "
        "(CompressionPolicy.max_value_size); refusing to read it",
    )
    reader = _decompressor().stream_reader(data, read_across_frames=False)
    with reader:
        while piece := reader.read(_STREAM_PIECE):
            out.add(piece)
    return out.join()
