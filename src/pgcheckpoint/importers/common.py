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

import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from functools import partial
from typing import TYPE_CHECKING, Any, TypedDict, TypeVar, cast

from .._core import SaverCore
from .._plans import fetch_all
from ..errors import PgCheckpointError, TransferError
from .decoded import compare, stored_from_decoded, verify_decoded
from .jobs import Blocking, Job, arun_job, run_job
from .rows import StoredThread, check_thread
from .source import CheckedSource, OpenedSource, Source, SourceCheckpoint, SourceWrite
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
