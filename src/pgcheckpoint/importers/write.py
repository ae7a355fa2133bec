"""The one guarded write every import goes through (plans only; no I/O).

:func:`check_plan` compares a thread's rows (in storage form) with what the
target holds and raises :class:`~pgcheckpoint.errors.ImportConflictError` on a
row with the same key and a different content; :func:`write_plan` does the
same under the thread's row lock, inserts only the missing rows with plain
INSERTs, and reads them back as digests before its transaction commits. Under
a keyring both compare rows in clear and the write seals what it adds
(:mod:`pgcheckpoint.importers.sealing`). See
:mod:`pgcheckpoint.importers.common` for how imports use them.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from .. import codec
from .._arrays import BoolArray, ByteaArray, Int4Array, TextArray
from .._core import SaverCore
from .._plans import PipelinePlan, Plan, PlanGen, Query, QueryMany
from ..errors import ImportConflictError, TransferError
from .rows import (
    BlobKey,
    StoredBlob,
    StoredCheckpoint,
    StoredThread,
    StoredWrite,
    WriteKey,
    check_thread,
    chunk_refs_of,
    refs_of,
    same_blob,
    same_checkpoint,
    same_write,
    thread_from_rows,
)
from .sealing import opened, sealed

__all__ = ["ThreadDiff", "check_plan", "write_plan"]


@dataclass(slots=True)
class ThreadDiff:
    """What a thread's rows add to the target."""

    checkpoints: list[StoredCheckpoint] = field(default_factory=list)
    blobs: dict[BlobKey, StoredBlob] = field(default_factory=dict)
    writes: dict[WriteKey, StoredWrite] = field(default_factory=dict)
    skipped_checkpoints: int = 0
    skipped_writes: int = 0
    have_blobs: set[BlobKey] = field(default_factory=set)

    @property
    def empty(self) -> bool:
        return not (self.checkpoints or self.blobs or self.writes)


def _differs(a: StoredCheckpoint, b: StoredCheckpoint) -> str:
    if a.parent_checkpoint_id != b.parent_checkpoint_id:
        return f"parent {a.parent_checkpoint_id!r} != {b.parent_checkpoint_id!r}"
    if a.metadata != b.metadata:
        return "metadata differs"
    return "state differs"


def _conflict(thread: StoredThread, checkpoint_id: str, ns: str, what: str) -> ImportConflictError:
    return ImportConflictError(
        f"thread {thread.thread_id!r} checkpoint {checkpoint_id!r} (namespace {ns!r}) "
        f"already exists in the target with different content ({what}); an import never "
        "replaces stored rows: nothing was imported for this thread"
    )


def _referencing(thread: StoredThread, key: BlobKey) -> str:
    for cp in thread.checkpoints:
        if cp.checkpoint_ns == key[0] and key[1:] in zip(cp.channels, cp.versions, strict=True):
            return cp.checkpoint_id
    return "?"


def _diff(core: SaverCore, thread: StoredThread) -> PlanGen[ThreadDiff]:
    """Compare a thread's rows with the target's; raise on a conflict (see module doc)."""
    q = core.queries
    p = {"thread_id": thread.thread_id}
    c_rows = yield Query(q["rows_checkpoints"], p, fetch="all")
    diff = ThreadDiff()
    b_rows = yield Query(q["rows_blobs"], p, fetch="all")
    w_rows = yield Query(q["rows_writes"], p, fetch="all")
    have = thread_from_rows(thread.thread_id, c_rows or [], b_rows or [], w_rows or [])
    diff.have_blobs = set(have.blobs)
    enc = core.encryption
    if enc is not None:
        # Compared in clear (sealing.py): only the values the import also holds.
        have.blobs = {k: b for k, b in have.blobs.items() if k in thread.blobs}
        refs = refs_of(have.blobs.values())
        if refs:
            k_rows = yield Query(q["fetch_value_chunks"], {**p, "refs": refs}, fetch="all")
            for h, compressed, data in k_rows or []:
                have.chunks[bytes(h)] = (bool(compressed), bytes(data))
        have = opened(enc, have, is_source=False)
    stored = {(c.checkpoint_ns, c.checkpoint_id): c for c in have.checkpoints}
    for cp in thread.checkpoints:
        old = stored.get((cp.checkpoint_ns, cp.checkpoint_id))
        if old is None:
            diff.checkpoints.append(cp)
        elif same_checkpoint(cp, old):
            diff.skipped_checkpoints += 1
        else:
            raise _conflict(thread, cp.checkpoint_id, cp.checkpoint_ns, _differs(cp, old))
    unequal = [k for k, b in thread.blobs.items() if k in have.blobs and have.blobs[k] != b]
    if any(have.blobs[k].refs for k in unequal):
        refs = sorted({have.blobs[k].refs or b"" for k in unequal} - {b""})
        k_rows = yield Query(q["fetch_value_chunks"], {**p, "refs": refs}, fetch="all")
        for h, compressed, data in k_rows or []:
            have.chunks[bytes(h)] = (bool(compressed), bytes(data))
    for key, blob in thread.blobs.items():
        old_blob = have.blobs.get(key)
        if old_blob is None:
            diff.blobs[key] = blob
        elif not same_blob(blob, thread.chunks, old_blob, have.chunks):
            raise _conflict(
                thread,
                _referencing(thread, key),
                key[0],
                f"value of channel {key[1]!r} version {key[2]!r} differs",
            )
    for wkey, write in thread.writes.items():
        old_write = have.writes.get(wkey)
        if old_write is None:
            diff.writes[wkey] = write
        elif same_write(write, old_write):
            diff.skipped_writes += 1
        else:
            raise _conflict(
                thread, wkey[1], wkey[0], f"pending write {wkey[3]} of task {wkey[2]!r} differs"
            )
    return diff


def _in_clear(core: SaverCore, thread: StoredThread) -> StoredThread:
    """The rows the import compares: under a keyring, every value opened (sealing.py)."""
    if core.encryption is None:
        return thread
    return opened(core.encryption, thread, is_source=True)


def check_plan(core: SaverCore, thread: StoredThread) -> Plan[ThreadDiff]:
    """Read only: what the thread would add, raising ImportConflictError on a conflict."""
    thread = _in_clear(core, thread)

    def make() -> PlanGen[ThreadDiff]:
        diff = yield from _diff(core, thread)
        check_thread(core.codec, thread, have_blobs=diff.have_blobs)
        return diff

    return Plan("import_check", make)


def _columns(
    tid: str,
    rows: Mapping[tuple[Any, ...], Any],
    *,
    keys: Sequence[tuple[str, Callable[[Iterable[Any]], Any]]],
    fields: Sequence[tuple[str, str, Callable[[Iterable[Any]], Any]]],
) -> dict[str, Any]:
    """The parameters of one multi-row insert (one array per column, unnested by the
    statement): part ``i`` of every row's key as ``keys[i]``'s array, and each
    ``(param, attribute, array)`` of ``fields`` from the rows' values."""
    params: dict[str, Any] = {"thread_id": tid}
    for i, (name, array) in enumerate(keys):
        params[name] = array(k[i] for k in rows)
    for name, attribute, array in fields:
        params[name] = array(getattr(v, attribute) for v in rows.values())
    return params


def _insert_params(
    thread: StoredThread, diff: ThreadDiff
) -> tuple[list[dict[str, Any]], dict[str, Any], dict[str, Any], dict[str, Any]]:
    tid = thread.thread_id
    puts = [
        {
            "thread_id": tid,
            "checkpoint_ns": cp.checkpoint_ns,
            "checkpoint_id": cp.checkpoint_id,
            "parent_checkpoint_id": cp.parent_checkpoint_id,
            "type": cp.type,
            "checkpoint": cp.data,
            "metadata": codec.metadata_json(cp.metadata),
            "created_at": cp.created_at,
            "channels": TextArray(cp.channels),
            "versions": TextArray(cp.versions),
        }
        for cp in diff.checkpoints
    ]
    blobs = _columns(
        tid,
        diff.blobs,
        keys=(("namespaces", TextArray), ("channels", TextArray), ("versions", TextArray)),
        fields=(("types", "type", TextArray), ("values", "value", ByteaArray),
                ("refs", "refs", ByteaArray)),
    )
    wanted = set(chunk_refs_of(diff.blobs.values(), thread.chunks))
    chunks = {h: c for h, c in thread.chunks.items() if h in wanted}
    chunk_params = {
        "thread_id": tid,
        "hashes": ByteaArray(chunks),
        "compressed": BoolArray(c for c, _ in chunks.values()),
        "datas": ByteaArray(d for _, d in chunks.values()),
    }
    writes = _columns(
        tid,
        diff.writes,
        keys=(("namespaces", TextArray), ("checkpoint_ids", TextArray), ("task_ids", TextArray),
              ("idx", Int4Array)),
        fields=(("channels", "channel", TextArray), ("types", "type", TextArray),
                ("values", "value", ByteaArray), ("task_paths", "task_path", TextArray)),
    )
    return puts, blobs, chunk_params, writes


def _sha(data: bytes | None) -> bytes | None:
    return None if data is None else hashlib.sha256(data).digest()


def _verify(core: SaverCore, thread: StoredThread, diff: ThreadDiff) -> PlanGen[None]:
    """Read back what was inserted (as digests) and compare it with what was sent."""
    q = core.queries
    tid = thread.thread_id
    p = {"thread_id": tid}
    bad: list[str] = []
    if diff.checkpoints:
        ids = TextArray(sorted({c.checkpoint_id for c in diff.checkpoints}))
        rows = yield Query(q["verify_checkpoints"], {**p, "checkpoint_ids": ids}, fetch="all")
        got = {(r[0], r[1]): tuple(r[2:]) for r in rows or []}
        for cp in diff.checkpoints:
            want = (
                cp.parent_checkpoint_id,
                cp.type,
                _sha(cp.data),
                cp.metadata,
                cp.channels,
                cp.versions,
            )
            found = got.get((cp.checkpoint_ns, cp.checkpoint_id))
            if found is None or (*found[:2], bytes(found[2]), *found[3:]) != want:
                bad.append(f"checkpoint {cp.checkpoint_id!r}")
    if diff.blobs:
        versions = TextArray(sorted({k[2] for k in diff.blobs}))
        rows = yield Query(q["verify_blobs"], {**p, "versions": versions}, fetch="all")
        blobs = {(r[0], r[1], r[2]): tuple(r[3:]) for r in rows or []}
        for key, blob in diff.blobs.items():
            found = blobs.get(key)
            want_b = (blob.type, _sha(blob.value), _sha(blob.refs))
            if found is None or tuple(_bytes(x) for x in found) != want_b:
                bad.append(f"value of channel {key[1]!r} version {key[2]!r}")
    if diff.writes:
        ids = TextArray(sorted({k[1] for k in diff.writes}))
        rows = yield Query(q["verify_writes"], {**p, "checkpoint_ids": ids}, fetch="all")
        writes = {(r[0], r[1], r[2], int(r[3])): tuple(r[4:]) for r in rows or []}
        for wkey, write in diff.writes.items():
            found = writes.get(wkey)
            want_w = (write.channel, write.type, _sha(write.value), write.task_path)
            if found is None or tuple(_bytes(x) for x in found) != want_w:
                bad.append(f"write {wkey[3]} of task {wkey[2]!r} on checkpoint {wkey[1]!r}")
    refs = chunk_refs_of(diff.blobs.values(), thread.chunks)
    if refs:
        rows = yield Query(q["rows_chunk_hashes"], {**p, "hashes": ByteaArray(refs)}, fetch="all")
        if len(rows or []) != len(refs):
            bad.append(f"{len(refs) - len(rows or [])} chunk(s)")
    if bad:
        raise TransferError(
            f"verification failed for thread {tid!r}: {', '.join(bad[:5])} did not read back "
            "as written; nothing was imported for this thread"
        )


def _bytes(x: Any) -> Any:
    return bytes(x) if isinstance(x, memoryview | bytearray) else x


def write_plan(core: SaverCore, thread: StoredThread, *, verify: bool = True) -> Plan[ThreadDiff]:
    """Write what the thread adds, in one transaction, verified before commit (module doc).
    Under a keyring, what it adds is sealed as the saver's own writes are (sealing.py)."""
    thread = _in_clear(core, thread)
    enc = core.encryption
    q = core.queries
    p = {"thread_id": thread.thread_id}

    def make() -> PlanGen[ThreadDiff]:
        yield Query(q["import_lock_thread"], p, fetch="all")
        diff = yield from _diff(core, thread)
        check_thread(core.codec, thread, have_blobs=diff.have_blobs)
        if diff.empty:
            return diff
        rows, added = thread, diff
        if enc is not None:
            rows = sealed(core, enc, thread.thread_id, diff.checkpoints, diff.blobs, diff.writes)
            added = ThreadDiff(list(rows.checkpoints), dict(rows.blobs), dict(rows.writes))
        puts, blobs, chunks, writes = _insert_params(rows, added)
        if chunks["hashes"]:
            yield Query(q["import_chunks"], chunks)
        if blobs["channels"]:
            yield Query(q["import_blobs"], blobs)
        if puts:
            yield QueryMany(q["import_checkpoint"], None, params_seq=puts)
        if writes["channels"]:
            yield Query(q["import_writes"], writes)
        if verify:
            yield from _verify(core, rows, added)
        return diff

    return PipelinePlan("import_thread", make, transaction=True)
