"""What every importer shares: the source model, the one guarded write, verification.

An importer is a :class:`Source`: a list of thread ids and a function that
loads one thread, either **decoded** (a list of :class:`SourceCheckpoint`: the
SQLite file and other savers, whose formats need the serde to split a
checkpoint into its channel values) or **as stored** (a
:class:`~pgcheckpoint.importers.rows.StoredThread`: NDJSON exports and the
official tables, moved without loading a value; see ``rows.py``).
:func:`run_import` then goes through two phases:

1. **check** (read only, nothing written yet): each thread the target already
   has checkpoints for is compared with it row by row. A row with the same key
   and a different content (checkpoint, channel value or pending write) stops
   the import with :class:`~pgcheckpoint.errors.ImportConflictError`, naming
   the thread and checkpoint, and the database is unchanged (an NDJSON file is
   checked whole here, every thread, so a malformed one is refused before
   anything is written too). A thread whose every row is already there,
   identical, is skipped and reported as skipped.
2. **write**, one transaction per thread: take the thread's row lock (the lock
   ``put`` and garbage collection take), compare again under it, insert only
   the missing rows with plain INSERTs (an import never replaces a row: one
   that appeared meanwhile fails the statement and rolls the thread back),
   then read back what it inserted inside the same transaction (as SHA-256
   digests) and compare every row with what was sent (verification before
   commit). A decoded source's rows are also decoded again, before the
   transaction, and compared with the source (state, metadata, parent,
   pending writes).

Threads committed before a failure stay (each is whole and verified); running
the import again skips them, so an interrupted import is finished by running
it again.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from functools import partial
from typing import TYPE_CHECKING, Any, Protocol, TypedDict, TypeVar, cast, runtime_checkable

from langchain_core.runnables import RunnableConfig
from langgraph.checkpoint.base import (
    WRITES_IDX_MAP,
    Checkpoint,
    CheckpointMetadata,
    CheckpointTuple,
)

from .. import codec, encryption
from .._core import SaverCore
from .._plans import fetch_all
from ..errors import PgCheckpointError, TransferError
from .jobs import Blocking, Job, arun_job, run_job
from .rows import StoredBlob, StoredCheckpoint, StoredThread, StoredWrite, check_thread
from .write import ThreadDiff, check_plan, write_plan

if TYPE_CHECKING:
    from typing_extensions import Unpack

    from ..aio import AsyncPostgresSaver
    from ..saver import PostgresSaver

__all__ = [
    "ImportOptions",
    "ImportReport",
    "Source",
    "SourceCheckpoint",
    "SourceWrite",
    "ThreadResult",
    "arun_import",
    "compare",
    "import_job",
    "run_import",
    "source_job",
]

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class SourceWrite:
    """One pending write as the source stores it."""

    task_id: str
    channel: str
    value: Any
    idx: int
    task_path: str = ""


@dataclass(slots=True)
class SourceCheckpoint:
    """One checkpoint of a source thread, decoded."""

    thread_id: str
    checkpoint_ns: str
    checkpoint_id: str
    parent_checkpoint_id: str | None
    checkpoint: Checkpoint
    metadata: dict[str, Any]
    writes: list[SourceWrite] = field(default_factory=list)

    @property
    def config(self) -> RunnableConfig:
        return {
            "configurable": {
                "thread_id": self.thread_id,
                "checkpoint_ns": self.checkpoint_ns,
                "checkpoint_id": self.checkpoint_id,
            }
        }


@runtime_checkable
class Source(Protocol):
    """What :func:`run_import` reads from. Its calls are made one at a time, from a
    worker thread when the target saver is async (``jobs.py``). A source that leaves
    some of its content out (a partial NDJSON file) lists it in ``left_out``."""

    name: str

    def thread_ids(self) -> list[str]:
        """Every thread id of the source, in a stable order."""
        ...

    def load_thread(self, thread_id: str) -> list[SourceCheckpoint] | StoredThread:
        """One thread: its checkpoints decoded (oldest first, with their writes), or
        every row of it in storage form."""
        ...


@runtime_checkable
class OpenedSource(Source, Protocol):
    """A source the import opened itself, and closes once it ends (:func:`source_job`)."""

    def close(self) -> None:
        """Release what the source holds open (a file, a connection)."""
        ...


@runtime_checkable
class CheckedSource(Source, Protocol):
    """A source that can check a thread more cheaply than loading it for a write."""

    def check_thread(self, thread_id: str) -> None:
        """Raise TransferError if the thread does not hold together (rows.check_thread)."""
        ...


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


def _decoded_row(thread: StoredThread, cp: StoredCheckpoint) -> tuple[Any, ...]:
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
        got = None if cp is None else codec.decode_row(core.codec, _decoded_row(thread, cp))
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


# --- the loop -----------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ThreadResult:
    """What happened to one thread; passed to ``on_thread`` callbacks.

    ``checkpoints`` / ``writes`` count the rows this import wrote; the ``skipped_*``
    counts are the rows that were already there, identical. ``skipped`` is true when
    nothing at all was written for the thread."""

    thread_id: str
    checkpoints: int
    writes: int
    skipped: bool
    skipped_checkpoints: int = 0
    skipped_writes: int = 0


@dataclass(slots=True)
class ImportReport:
    """The outcome of an import (``threads`` counts every thread of the source read,
    ``skipped`` those of them nothing was written for)."""

    source: str
    threads: int = 0
    skipped: int = 0
    checkpoints: int = 0
    skipped_checkpoints: int = 0
    writes: int = 0
    skipped_writes: int = 0
    seconds: float = 0.0
    verified: bool | None = None
    left_out: list[str] = field(default_factory=list)

    @property
    def checkpoints_per_second(self) -> float:
        return self.checkpoints / self.seconds if self.seconds > 0 else 0.0

    def add(self, result: ThreadResult) -> None:
        self.threads += 1
        self.skipped += int(result.skipped)
        self.checkpoints += result.checkpoints
        self.skipped_checkpoints += result.skipped_checkpoints
        self.writes += result.writes
        self.skipped_writes += result.skipped_writes

    def as_dict(self) -> dict[str, Any]:
        return {
            "source": self.source,
            "threads": self.threads,
            "skipped": self.skipped,
            "checkpoints": self.checkpoints,
            "skipped_checkpoints": self.skipped_checkpoints,
            "writes": self.writes,
            "skipped_writes": self.skipped_writes,
            "seconds": round(self.seconds, 3),
            "checkpoints_per_second": round(self.checkpoints_per_second, 1),
            "verified": self.verified,
            "left_out": list(self.left_out),
        }


def _result(thread_id: str, diff: ThreadDiff) -> ThreadResult:
    return ThreadResult(
        thread_id,
        len(diff.checkpoints),
        len(diff.writes),
        diff.empty,
        diff.skipped_checkpoints,
        diff.skipped_writes,
    )


def _load(core: SaverCore, source: Source, thread_id: str, verify: bool) -> StoredThread:
    """One thread of ``source`` in storage form, its decoded rows verified (blocking)."""

    def load() -> StoredThread:
        loaded = source.load_thread(thread_id)
        if isinstance(loaded, StoredThread):
            return loaded
        thread = stored_from_decoded(core, thread_id, loaded)
        if verify:
            verify_decoded(core, thread, loaded)
        return thread

    return _guard(source, thread_id, load)


def _check(core: SaverCore, source: Source, thread_id: str, verify: bool) -> None:
    """The first phase's check of a thread the target does not hold (blocking)."""
    if isinstance(source, CheckedSource):
        _guard(source, thread_id, partial(source.check_thread, thread_id))
    else:
        check_thread(core.codec, _load(core, source, thread_id, verify))


def _guard(source: Source, thread_id: str, step: Callable[[], T]) -> T:
    try:
        return step()
    except PgCheckpointError:
        raise
    except Exception as exc:
        raise TransferError(
            f"cannot import thread {thread_id!r} from {source.name}: {type(exc).__name__}: {exc}"
        ) from exc


def _thread_ids(source: Source) -> list[str]:
    try:
        return source.thread_ids()
    except PgCheckpointError:
        raise
    except Exception as exc:
        raise TransferError(f"cannot list the threads of {source.name}: {exc}") from exc


class ImportOptions(TypedDict, total=False):
    """What every importer takes besides its source (all optional).

    ``thread_ids``: import only these threads (default: every thread of the source).
    ``verify``: decode what is about to be written and read it back before each
    thread commits (default True). ``on_start(total_threads)`` and
    ``on_thread(result)`` report progress (the CLI draws a progress bar with
    them); an exception raised by ``on_thread`` stops the import after that
    thread, and running it again finishes it.
    """

    thread_ids: Iterable[str] | None
    verify: bool
    on_start: Callable[[int], None] | None
    on_thread: Callable[[ThreadResult], None] | None


def import_job(
    core: SaverCore,
    source: Source,
    *,
    thread_ids: Iterable[str] | None = None,
    verify: bool = True,
    check_all: bool = False,
    on_thread: Callable[[ThreadResult], None] | None = None,
    on_start: Callable[[int], None] | None = None,
) -> Job[ImportReport]:
    """The import of ``source`` into the saver ``core`` as a job (``jobs.py``): check,
    then write thread by thread (module doc); see :func:`run_import`."""
    started = time.monotonic()
    report = ImportReport(source.name)
    ids = (
        list(thread_ids)
        if thread_ids is not None
        else (yield Blocking(partial(_thread_ids, source)))
    )
    if on_start is not None:
        on_start(len(ids))
    # Phase 1: compare with what the target holds, before anything is written.
    counts = yield fetch_all("import_present", core.queries["export_counts"], {"thread_ids": ids})
    present = {str(r[0]) for r in counts}
    done: set[str] = set()
    for thread_id in ids:
        if thread_id not in present:
            if check_all:
                yield Blocking(partial(_check, core, source, thread_id, verify))
            continue
        thread = yield Blocking(partial(_load, core, source, thread_id, verify))
        diff = yield check_plan(core, thread)
        if diff.empty:
            done.add(thread_id)
            report.add(_result(thread_id, diff))
            if on_thread is not None:
                on_thread(_result(thread_id, diff))
    # Phase 2: write, one verified transaction per thread.
    for thread_id in ids:
        if thread_id in done:
            continue
        thread = yield Blocking(partial(_load, core, source, thread_id, verify))
        diff = yield write_plan(core, thread, verify=verify)
        result = _result(thread_id, diff)
        report.add(result)
        report.seconds = time.monotonic() - started
        if on_thread is not None:
            on_thread(result)
    report.seconds = time.monotonic() - started
    report.verified = True if verify else None
    report.left_out = list(getattr(source, "left_out", ()))
    return report


def source_job(
    core: SaverCore,
    open_source: Callable[[], OpenedSource],
    options: ImportOptions,
    *,
    check_all: bool = False,
) -> Job[ImportReport]:
    """:func:`import_job` on the source ``open_source()`` opens (a blocking step too),
    closed when the import ends however it ends."""
    source = yield Blocking(open_source)
    try:
        return (yield from import_job(core, source, check_all=check_all, **options))
    finally:
        source.close()


def run_import(
    saver: PostgresSaver,
    source: Source,
    *,
    check_all: bool = False,
    **options: Unpack[ImportOptions],
) -> ImportReport:
    """Import ``source`` into ``saver``: check, then write thread by thread (module doc).

    ``options`` are :class:`ImportOptions`. ``check_all`` checks every thread in the
    first phase, not only those the target already has, so a thread that does not
    hold together stops the import before anything is written (NDJSON files, whose
    threads a :class:`CheckedSource` checks cheaply; other sources would be read
    twice). Raises :class:`~pgcheckpoint.errors.ImportConflictError` when a row to
    import differs from the stored one, :class:`~pgcheckpoint.errors.TransferError`
    if the source cannot be read or a thread does not hold together.
    """
    return run_job(saver, import_job(saver, source, check_all=check_all, **options))


async def arun_import(
    saver: AsyncPostgresSaver,
    source: Source,
    *,
    check_all: bool = False,
    **options: Unpack[ImportOptions],
) -> ImportReport:
    """:func:`run_import` into an ``AsyncPostgresSaver`` (the source is read in a worker
    thread, so the event loop is never blocked by it)."""
    return await arun_job(saver, import_job(saver, source, check_all=check_all, **options))


def chunked(items: Iterable[Any], size: int) -> Iterator[list[Any]]:
    """Lists of at most ``size`` items."""
    batch: list[Any] = []
    for item in items:
        batch.append(item)
        if len(batch) >= size:
            yield batch
            batch = []
    if batch:
        yield batch


def meta_dict(value: Any) -> dict[str, Any]:
    """Metadata as a plain dict, whatever mapping the source returned."""
    return dict(cast(Mapping[str, Any], value or {}))
