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

Values in clear are cut into chunks of a bounded average size
(``ChunkingPolicy.avg_size``), so an append writes one small new tail chunk
whatever the value's length. Their list of chunk addresses then grows with the
value, so it is itself stored as chunks: a tree (:func:`build_tree`) whose
nodes each hold the addresses of a content-defined run of the level below, and
the blob row keeps only the top level. A new version writes the nodes along its
changed tail, a few hundred bytes, instead of 16 bytes per chunk of the value.
Sealed values (encryption) keep the older flat list and size-relative chunks.

``chunk_refs`` formats (docs/schema.md): a multiple of 16 bytes is a flat list
of chunk addresses (every row written before the tree, and short values now);
``TREE_TAG``, a depth byte d >= 1, then 16-byte addresses of depth-d nodes is a
tree. A node is an uncompressed chunk whose bytes are the addresses of the
level below (depth-1 nodes name data chunks).
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
# First byte of a tree's chunk_refs; a tree's refs are 2 bytes longer than a
# multiple of 16, which no flat list is.
TREE_TAG = 1
# A node is stored under its address plus this byte (`chunks.hash` 17 bytes long),
# so SQL and key management tell nodes from data chunks by the key alone: nodes
# hold only addresses (already in clear in `chunk_refs`) and are never sealed.
NODE_SUFFIX = b"n"
# Deepest tree a read follows (fanout >= 4: 4**12 chunks is beyond any value
# size limit's chunk count at MIN_CHUNK).
MAX_DEPTH = 12


@dataclass(frozen=True, slots=True)
class ChunkingPolicy:
    """When values are chunked and how big the chunks are.

    Attributes:
        enabled: chunk at all.
        threshold: values shorter than this many bytes are stored whole.
        avg_size: the average chunk size of values in clear, whatever their
            length (bounded, so an append rewrites only a small tail chunk).
        fanout: the average number of addresses in a node of the reference
            tree (a power of two); a top level of at most ``fanout``
            addresses stays in the blob row.
        cache_bytes: memory for the chunks a saver recently wrote or read
            (:class:`ChunkCache`); 0 turns the cache off.
        min_avg / max_avg / target_chunks: sealed values only (encryption):
            the average chunk size is the value's size / ``target_chunks``
            rounded up to a power of two, within ``min_avg`` .. ``max_avg``,
            and the chunk list is kept flat in the blob row.
    """

    enabled: bool = True
    threshold: int = 8192
    min_avg: int = 1024
    max_avg: int = 256 * 1024
    target_chunks: int = 32
    # Measured with `python -m bench --only conv` (docs/benchmarks.md, issue 16):
    # the tail chunk an append rewrites is about avg_size before compression,
    # and each chunk is a row sent (ON CONFLICT) at every put: 2 KB kept the
    # chunks table near 1 KB a superstep at 10, 100 and 1,000 turns.
    avg_size: int = 2048
    fanout: int = 8
    cache_bytes: int = 32 << 20

    def __post_init__(self) -> None:
        if self.min_avg < 256 or self.max_avg < self.min_avg:
            raise ConfigurationError(
                f"chunk sizes must satisfy 256 <= min_avg <= max_avg, "
                f"got {self.min_avg}, {self.max_avg}"
            )
        if self.target_chunks < 1:
            raise ConfigurationError(f"target_chunks must be >= 1, got {self.target_chunks}")
        if not 256 <= self.avg_size <= 1 << 24:
            raise ConfigurationError(f"avg_size must be within 256 .. 2**24, got {self.avg_size}")
        if self.cache_bytes < 0:
            raise ConfigurationError(f"cache_bytes must be >= 0, got {self.cache_bytes}")
        if self.fanout not in (4, 8, 16, 32, 64, 128):
            raise ConfigurationError(
                f"fanout must be a power of two from 4 to 128, got {self.fanout}"
            )


def average_size(length: int, policy: ChunkingPolicy) -> int:
    """The average chunk size used for a value of ``length`` bytes."""
    want = max(1, length // policy.target_chunks)
    avg = 1 << (want - 1).bit_length()
    return min(max(avg, policy.min_avg), policy.max_avg)


def split(data: bytes, policy: ChunkingPolicy, *, bounded: bool = False) -> list[bytes]:
    """Cut ``data`` into content-defined chunks; concatenated they give ``data``.
    ``bounded``: of ``policy.avg_size`` on average, else relative to the size."""
    avg = policy.avg_size if bounded else average_size(len(data), policy)
    view = memoryview(data)
    return [
        bytes(view[c.offset : c.offset + c.length])
        for c in fastcdc(data, min_size=avg // 4, avg_size=avg, max_size=avg * 4, fat=False)
    ]


class ChunkCache:
    """Recently written and read chunks by address, to spare work, never to
    change a result: a growing value is re-chunked at every put and joined at
    every read, and all but its tail chunks were compressed (or decompressed
    and checked) by an earlier one. ``stored`` maps an address to the form a
    write stores (compressed flag, bytes), as ``maybe_compress`` gives it;
    ``pieces`` an unkeyed address to (stored form, content already checked
    against it): a read uses the content only when the row it fetched holds
    the same stored form, so a chunk damaged in the database since is still
    checked, and refused, like any other. Both
    together hold at most ``budget`` bytes and are emptied when full (one dict
    operation each, safe across threads under the GIL).

    Measured on a 1,000-turn conversation (4,000 messages, 2.2 MB, ~2,200
    chunks of 2 KB; `python -m bench --only conv` history): ``pack_blob``
    alone took 43 ms with every chunk compressed and 16 ms with this cache
    (17 ms before the bounded chunks: 20 chunks of 128 KB); a whole put's
    client CPU went from 67 ms before to 42 ms, a get_tuple's from 113 to
    79 ms (docs/benchmarks.md).
    """

    __slots__ = ("budget", "pieces", "size", "stored")

    def __init__(self, budget: int) -> None:
        self.budget = budget
        self.stored: dict[bytes, tuple[bool, bytes]] = {}
        self.pieces: dict[bytes, tuple[tuple[bool, bytes], bytes]] = {}
        self.size = 0

    def _room(self, n: int) -> bool:
        if n > self.budget:
            return False
        if self.size + n > self.budget:
            self.stored, self.pieces, self.size = {}, {}, 0
        self.size += n
        return True

    def keep_stored(self, h: bytes, form: tuple[bool, bytes]) -> None:
        if self._room(len(form[1])):
            self.stored[h] = form

    def keep_piece(self, h: bytes, stored: tuple[bool, bytes], piece: bytes) -> None:
        if self._room(len(stored[1]) + len(piece)):
            self.pieces[h] = (stored, piece)


def digest(chunk: bytes) -> bytes:
    """The 16-byte address of a chunk."""
    return hashlib.blake2b(chunk, digest_size=HASH_SIZE).digest()


def split_refs(refs: bytes) -> list[bytes]:
    """The addresses a blob's ``chunk_refs`` names itself: its chunks (a flat
    list) or the top nodes of its tree."""
    start = len(refs) % HASH_SIZE if is_tree(refs) else 0
    return [refs[i : i + HASH_SIZE] for i in range(start, len(refs), HASH_SIZE)]


def is_tree(refs: bytes | None) -> bool:
    """Whether ``chunk_refs`` is a tree (else a flat list, or damaged)."""
    return bool(refs) and len(refs or b"") % HASH_SIZE == 2 and (refs or b"")[0] == TREE_TAG


def node_key(h: bytes) -> bytes:
    """The ``chunks.hash`` a reference node with address ``h`` is stored under."""
    return h + NODE_SUFFIX


def is_node_key(key: bytes) -> bool:
    return len(key) == HASH_SIZE + 1 and key.endswith(NODE_SUFFIX)


def _cut_groups(ids: list[bytes], fanout: int) -> list[list[bytes]]:
    """Content-defined runs of addresses: a run ends after an address whose last
    byte is a multiple of ``fanout`` (once it holds two), or at 4 x ``fanout``.
    Where a run ends depends only on the addresses up to it, so an append
    changes only the last run."""
    groups: list[list[bytes]] = []
    run: list[bytes] = []
    for h in ids:
        run.append(h)
        if (len(run) >= 2 and h[-1] % fanout == 0) or len(run) >= 4 * fanout:
            groups.append(run)
            run = []
    if run:
        groups.append(run)
    return groups


def build_tree(
    ids: list[bytes], fanout: int, nodes_out: dict[bytes, bytes]
) -> bytes:
    """``chunk_refs`` for a value made of the chunks ``ids``: flat when there
    are at most ``fanout`` of them, else a tree whose nodes (stored key, see
    :func:`node_key` -> bytes) go to ``nodes_out``."""
    level, depth = ids, 0
    while len(level) > fanout:
        upper: list[bytes] = []
        for group in _cut_groups(level, fanout):
            node = b"".join(group)
            h = digest(node)
            nodes_out[node_key(h)] = node
            upper.append(h)
        level, depth = upper, depth + 1
    if depth == 0:
        return b"".join(level)
    return bytes((TREE_TAG, depth)) + b"".join(level)


def reachable(refs: bytes | None, chunks: Mapping[bytes, tuple[bool, bytes]]) -> set[bytes]:
    """Every ``chunks`` key ``refs`` leads to (data chunks, and nodes under
    :func:`node_key`) through the nodes present in ``chunks`` (unchecked: for
    presence checks and fetch lists; reads use :func:`join`)."""
    if not refs:
        return set()
    if not is_tree(refs):
        return set(split_refs(refs))
    found: set[bytes] = set()
    level = split_refs(refs)
    depth = min(refs[1], MAX_DEPTH)
    while level and depth > 0:
        below: list[bytes] = []
        for h in level:
            found.add(node_key(h))
            node = chunks.get(node_key(h))
            if node is not None and not node[0] and len(node[1]) % HASH_SIZE == 0:
                below.extend(split_refs(node[1]))
        depth -= 1
        level = below
    found.update(level)
    return found


def leaf_refs(
    refs: bytes, chunks: Mapping[bytes, tuple[bool, bytes]], limit: int, where: str
) -> bytes:
    """The flat list of data-chunk addresses ``refs`` stands for: itself when
    flat, else its tree expanded level by level. Each node is checked against
    its address, and the number of addresses against what a value of at most
    ``limit`` bytes can have before any node is added."""
    if not is_tree(refs):
        if len(refs) % HASH_SIZE:
            raise DeserializationError(
                f"{where}: its chunk references ({len(refs)} bytes) are not whole "
                f"{HASH_SIZE}-byte addresses"
            )
        return refs
    depth = refs[1]
    if len(refs) < 2 + HASH_SIZE:
        raise DeserializationError(f"{where}: its chunk reference tree names no node")
    if not 1 <= depth <= MAX_DEPTH:
        raise DeserializationError(
            f"{where}: its chunk reference tree claims a depth of {depth} "
            f"(at most {MAX_DEPTH} is read)"
        )
    most = (limit // MIN_CHUNK + 1) * HASH_SIZE
    level = refs[2:]
    seen: dict[bytes, bytes] = {}
    for _ in range(depth):
        below = bytearray()
        for h in split_refs(level):
            node = seen.get(h)
            if node is None:
                found = chunks.get(node_key(h))
                if found is None:
                    raise DeserializationError(
                        f"cannot read {where}: chunk reference node {h.hex()} is missing "
                        "from the database"
                    )
                compressed, node = found
                if compressed or len(node) % HASH_SIZE or not node:
                    raise DeserializationError(
                        f"{where}: chunk reference node {h.hex()} is not a list of "
                        f"{HASH_SIZE}-byte addresses"
                    )
                if digest(node) != h:
                    raise IntegrityError(
                        f"cannot read {where}: chunk reference node {h.hex()} does not "
                        "match its content (the stored chunk was altered or damaged)"
                    )
                seen[h] = node
            if len(below) + len(node) > most:
                raise DeserializationError(
                    f"{where} names more chunks than a value of at most {limit} bytes "
                    "(CompressionPolicy.max_value_size) can be cut into"
                )
            below += node
        level = bytes(below)
    return level


def join(
    head: bytes,
    refs: bytes,
    chunks: Mapping[bytes, tuple[bool, bytes]],
    limit: int,
    where: str,
    *,
    verified: Collection[bytes] = (),
    cache: ChunkCache | None = None,
) -> bytes:
    """Rebuild a chunked value: ``head`` then each referenced chunk, in order.

    Each distinct chunk is decompressed once (within what is left of ``limit``)
    and checked against its address; the running size is checked before every
    piece is added, so a reference list naming one chunk a million times fails
    at ``limit`` bytes rather than growing without end. Chunks in ``verified``
    (sealed ones, whose tag already proved them; their ids are keyed) skip the check.
    A tree of references is expanded first (:func:`leaf_refs`). With ``cache``
    (unkeyed addresses only), a chunk whose stored form is the one already
    checked is taken from it, and the ones checked here are kept in it.
    """
    refs = leaf_refs(refs, chunks, limit, where)
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
        found = None
        if piece is None and cache is not None:
            found = chunks.get(h)
            hit = cache.pieces.get(h)
            if hit is not None and found is not None and hit[0] == found:
                piece = seen[h] = hit[1]
        if piece is None:
            found = found or chunks.get(h)
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
            if cache is not None and h not in verified:
                cache.keep_piece(h, found, piece)
            seen[h] = piece
        out.add(piece)
    return out.join()
