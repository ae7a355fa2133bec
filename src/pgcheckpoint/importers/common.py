"""What every importer shares: the source model, the per-thread write, resume and verification.

An importer is a :class:`Source`: a list of thread ids and a function that
loads one thread's checkpoints (with their pending writes) as
:class:`SourceCheckpoint` objects. :func:`run_import` streams the source one
thread at a time:

1. a thread whose every checkpoint key and write is already in the target is
   skipped (without decoding it when the source can list keys cheaply); that is
   what makes an interrupted import resumable with no progress table: each
   thread is written in **one transaction**, so a thread is either fully
   present or absent, and was verified right after it was written;
2. otherwise its checkpoints are written oldest first through the saver's own
   ``put`` plan (ids, parents, ``ts``/``created_at`` and metadata kept) and its
   writes with their source ``idx``/``task_path``, all in one transaction;
   only the channels whose version changed since the parent are encoded, as
   LangGraph itself does, so shared values are stored once;
3. the thread is read back through the saver's read path and every
   checkpoint compared with the source (state, metadata, parent, pending writes).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol, cast, runtime_checkable

from langchain_core.runnables import RunnableConfig
from langgraph.checkpoint.base import (
    WRITES_IDX_MAP,
    Checkpoint,
    CheckpointMetadata,
    CheckpointTuple,
)

from .. import codec
from .._core import SaverCore
from .._plans import Plan, PlanGen, Query
from ..concurrency import PipelinePlan, QueryMany
from ..errors import PgCheckpointError, TransferError

if TYPE_CHECKING:
    from ..saver import PostgresSaver

__all__ = [
    "ImportReport",
    "Source",
    "SourceCheckpoint",
    "SourceWrite",
    "ThreadResult",
    "compare",
    "run_import",
]


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
    """What :func:`run_import` reads from."""

    name: str

    def thread_ids(self) -> list[str]:
        """Every thread id of the source, in a stable order."""
        ...

    def load_thread(self, thread_id: str) -> list[SourceCheckpoint]:
        """One thread's checkpoints, oldest first, with their writes."""
        ...


@runtime_checkable
class KeyedSource(Source, Protocol):
    """A source that can list a thread's checkpoint keys without decoding anything."""

    def thread_keys(self, thread_id: str) -> tuple[set[tuple[str, str]], int]:
        """(checkpoint_ns, checkpoint_id) of every checkpoint, and the number of writes."""
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


# --- writing ------------------------------------------------------------------


def _new_versions(cp: SourceCheckpoint, parent: SourceCheckpoint | None) -> dict[str, Any]:
    versions = dict(cp.checkpoint.get("channel_versions") or {})
    if parent is None:
        return versions
    before = parent.checkpoint.get("channel_versions") or {}
    return {c: v for c, v in versions.items() if before.get(c) != v}


def _writes_params(core: SaverCore, cp: SourceCheckpoint) -> dict[str, Any] | None:
    if not cp.writes:
        return None
    types: list[str] = []
    values: list[bytes] = []
    for w in cp.writes:
        type_, data = core.codec.pack(
            *codec.dumps(core.serde, w.value, f"write to {w.channel!r} of {cp.checkpoint_id}")
        )
        types.append(type_)
        values.append(data)
    return {
        "thread_id": cp.thread_id,
        "checkpoint_ns": cp.checkpoint_ns,
        "checkpoint_id": cp.checkpoint_id,
        "task_ids": [codec.text_id(w.task_id, "task_id") for w in cp.writes],
        "idx": [w.idx for w in cp.writes],
        "channels": [codec.text_id(w.channel, "channel") for w in cp.writes],
        "types": types,
        "values": values,
        "task_paths": [w.task_path for w in cp.writes],
    }


def write_thread_plan(core: SaverCore, items: list[SourceCheckpoint]) -> Plan[None]:
    """One thread, every checkpoint and write, in one transaction (encoded before any I/O).

    Checkpoints are encoded exactly as ``put`` encodes them but written with the
    plain ``put_checkpoint`` upsert, without ``put``'s one-writer-per-thread
    fork check: an import replays history on purpose, forks included, and a
    re-run upserts checkpoints that are no longer the thread's latest.
    """
    by_key = {(c.checkpoint_ns, c.checkpoint_id): c for c in items}
    puts: list[dict[str, Any]] = []
    writes: list[dict[str, Any]] = []
    for cp in sorted(items, key=lambda c: (c.checkpoint_id, c.checkpoint_ns)):
        parent = by_key.get((cp.checkpoint_ns, cp.parent_checkpoint_id or ""))
        conf: RunnableConfig = {
            "configurable": {
                "thread_id": cp.thread_id,
                "checkpoint_ns": cp.checkpoint_ns,
                "checkpoint_id": cp.parent_checkpoint_id,
            }
        }
        params, _, _ = core._encode_put(
            conf, cp.checkpoint, cast(CheckpointMetadata, cp.metadata), _new_versions(cp, parent)
        )
        puts.append(params)
        write_params = _writes_params(core, cp)
        if write_params is not None:
            writes.append(write_params)
    put_sql = core.queries["put_checkpoint"]
    writes_sql = core.queries["import_writes"]

    # Pipelined executemany: the thread's statements leave without waiting for each
    # other; measured 256 -> 340 checkpoints/s on a 3-thread sample of the benchmark.
    def make() -> PlanGen[None]:
        yield QueryMany(put_sql, None, params_seq=puts)
        if writes:
            yield QueryMany(writes_sql, None, params_seq=writes)

    return PipelinePlan("import_thread", make, transaction=True)


def present_plan(core: SaverCore, thread_id: str) -> Plan[tuple[set[tuple[str, str]], int]]:
    """The checkpoint keys and number of writes a thread already has in the target."""
    sql = core.queries["thread_keys"]

    def make() -> PlanGen[tuple[set[tuple[str, str]], int]]:
        rows = yield Query(sql, {"thread_id": thread_id}, fetch="all")
        keys = {(r[0], r[1]) for r in rows or [] if r[1] is not None}
        writes = sum(int(r[2]) for r in rows or [] if r[2] is not None)
        return keys, writes

    return Plan("import_present", make)


# --- verification -------------------------------------------------------------


def _writes_key(writes: Iterable[tuple[str, str, Any]]) -> list[tuple[str, str, Any]]:
    # Stable sort by task: stores may order different tasks differently, but
    # the order of one task's writes is kept everywhere.
    return sorted(((t, c, v) for t, c, v in writes), key=lambda w: w[0])


def compare(source: SourceCheckpoint, got: CheckpointTuple | None) -> str | None:
    """None when ``got`` (read back from pgcheckpoint) equals the source, else what differs."""
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


def verify_thread(saver: PostgresSaver, items: list[SourceCheckpoint]) -> list[str]:
    """Compare every checkpoint of a thread as pgcheckpoint reads it back with the source.

    The thread is read with ``list`` (pages of 200 checkpoints, each shared value
    fetched and decoded once), the decode path ``get_tuple`` uses too: on the
    10,400-checkpoint benchmark a ``get_tuple`` per checkpoint made verification
    3.5x slower than the import itself.
    """
    if not items:
        return []
    stored = {
        (t.config["configurable"]["checkpoint_ns"], t.config["configurable"]["checkpoint_id"]): t
        for t in saver.list({"configurable": {"thread_id": items[0].thread_id}})
    }
    problems = []
    for cp in items:
        problem = compare(cp, stored.get((cp.checkpoint_ns, cp.checkpoint_id)))
        if problem:
            problems.append(problem)
    return problems


# --- the loop -----------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ThreadResult:
    """What happened to one thread; passed to ``on_thread`` callbacks."""

    thread_id: str
    checkpoints: int
    writes: int
    skipped: bool
    problems: tuple[str, ...] = ()


@dataclass(slots=True)
class ImportReport:
    """The outcome of an import."""

    source: str
    threads: int = 0
    skipped: int = 0
    checkpoints: int = 0
    writes: int = 0
    seconds: float = 0.0
    verified: bool | None = None
    problems: list[str] = field(default_factory=list)

    @property
    def checkpoints_per_second(self) -> float:
        return self.checkpoints / self.seconds if self.seconds > 0 else 0.0

    def as_dict(self) -> dict[str, Any]:
        return {
            "source": self.source,
            "threads": self.threads,
            "skipped": self.skipped,
            "checkpoints": self.checkpoints,
            "writes": self.writes,
            "seconds": round(self.seconds, 3),
            "checkpoints_per_second": round(self.checkpoints_per_second, 1),
            "verified": self.verified,
            "problems": list(self.problems),
        }


def _present(
    have: tuple[set[tuple[str, str]], int], want: tuple[set[tuple[str, str]], int]
) -> bool:
    return bool(want[0]) and want[0] <= have[0] and have[1] >= want[1]


def _import_one(saver: PostgresSaver, source: Source, thread_id: str, verify: bool) -> ThreadResult:
    have = saver._runner.run(present_plan(saver, thread_id))
    if isinstance(source, KeyedSource):
        # Resuming: a thread already imported is skipped without decoding it. It was
        # verified by the run that wrote it (each thread is checked right after its write).
        want = source.thread_keys(thread_id)
        if _present(have, want):
            return ThreadResult(thread_id, len(want[0]), want[1], skipped=True)
    items = source.load_thread(thread_id)
    n_writes = sum(len(c.writes) for c in items)
    keys = {(c.checkpoint_ns, c.checkpoint_id) for c in items}
    if _present(have, (keys, n_writes)):
        return ThreadResult(thread_id, len(items), n_writes, skipped=True)
    if items:
        saver._runner.run(write_thread_plan(saver, items))
    problems = tuple(verify_thread(saver, items)) if verify else ()
    return ThreadResult(thread_id, len(items), n_writes, False, problems)


def run_import(
    saver: PostgresSaver,
    source: Source,
    *,
    thread_ids: Iterable[str] | None = None,
    verify: bool = True,
    on_thread: Callable[[ThreadResult], None] | None = None,
    on_start: Callable[[int], None] | None = None,
) -> ImportReport:
    """Import ``source`` into ``saver`` thread by thread (see the module docstring).

    ``on_start(total_threads)`` and ``on_thread(result)`` report progress (the
    CLI draws a progress bar with them); an exception raised by ``on_thread``
    stops the import after that thread, and running it again finishes it.
    Raises :class:`~pgcheckpoint.errors.TransferError` if the source cannot be read.
    """
    started = time.monotonic()
    report = ImportReport(source.name)
    try:
        ids = list(thread_ids) if thread_ids is not None else source.thread_ids()
    except PgCheckpointError:
        raise
    except Exception as exc:
        raise TransferError(f"cannot list the threads of {source.name}: {exc}") from exc
    if on_start is not None:
        on_start(len(ids))
    for thread_id in ids:
        try:
            result = _import_one(saver, source, thread_id, verify)
        except PgCheckpointError:
            raise
        except Exception as exc:
            raise TransferError(
                f"cannot import thread {thread_id!r} from {source.name}: "
                f"{type(exc).__name__}: {exc}"
            ) from exc
        report.threads += 1
        report.skipped += int(result.skipped)
        report.checkpoints += result.checkpoints
        report.writes += result.writes
        report.problems.extend(result.problems)
        report.seconds = time.monotonic() - started
        if on_thread is not None:
            on_thread(result)
    report.seconds = time.monotonic() - started
    report.verified = (not report.problems) if verify else None
    return report


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
