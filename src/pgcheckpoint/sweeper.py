"""The retention sweeper: plans that apply retention policies, and their runners.

A sweep is one :class:`~pgcheckpoint._plans.Plan` run on one connection:

* it first takes a *session* advisory lock keyed on the schema with
  ``pg_try_advisory_lock``; if another process holds it, the sweep returns at
  once with ``skipped=True`` (one process does the work, the others skip);
* it then pages through ``threads`` ``batch_size`` threads at a time, each page
  in its own short transaction: lock the page's threads (``FOR UPDATE SKIP
  LOCKED``, the lock writers and ``lock_threads`` take), expire idle threads
  (``delete_threads``), apply keep_last/max_age (``retention_apply``), remove
  orphan writes, collect unreferenced blobs and chunks (the core's
  ``gc_blobs``/``gc_chunks``) and empty thread rows; the batch is measured
  before and after, and the difference is the report;
* a dry run runs exactly the same statements and ends each batch with
  ROLLBACK instead of COMMIT, so it reports what the real run would remove.

Like migrations, the plan sends its own BEGIN/COMMIT (``own_transactions``),
because the advisory lock must outlive the batch transactions. The mixins
:class:`RetentionSync` / :class:`RetentionAsync` expose it on the savers, and
:class:`ThreadSweeper` / :class:`TaskSweeper` run it in the background.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import zlib
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager, suppress
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, cast

from langchain_core.runnables import RunnableConfig

from . import codec
from ._plans import Plan, PlanGen, Query, Rows
from .errors import InvalidInputError, PgCheckpointError
from .maintenance import StorageReport, optimize_plan, storage_plan
from .retention import (
    DEFAULT_BATCH_SIZE,
    DEFAULT_CLEANUP_INTERVAL,
    DEFAULT_ORPHAN_GRACE,
    RetentionPolicy,
    SweepReport,
    ThreadLimits,
    check_batch_size,
    check_interval,
    effective_policy,
    thread_limits,
)

if TYPE_CHECKING:
    from ._connections import AsyncRunner, SyncRunner
    from ._core import SaverCore

log = logging.getLogger("pgcheckpoint.sweeper")

_TABLES = ("threads", "checkpoints", "blobs", "chunks", "writes")


def sweep_lock_key(schema: str) -> int:
    """The advisory lock key of the sweeper of ``schema`` (a signed 64-bit int)."""
    digest = zlib.crc32(f"pgcheckpoint.sweep:{schema}".encode())
    return 0x5047_4353_0000_0000 | digest  # "PGCS" in the high bytes


def _measure(rows: Rows | None) -> dict[str, tuple[int, int]]:
    return {str(r[0]): (int(r[1]), int(r[2])) for r in rows or []}


@dataclass(slots=True)
class _Tally:
    """Running totals of one sweep."""

    counts: dict[str, int] = field(default_factory=lambda: dict.fromkeys(_TABLES, 0))
    bytes_freed: int = 0
    threads_scanned: int = 0
    batches: int = 0

    def add(self, before: dict[str, tuple[int, int]], after: dict[str, tuple[int, int]]) -> None:
        for table in _TABLES:
            rows0, bytes0 = before.get(table, (0, 0))
            rows1, bytes1 = after.get(table, (0, 0))
            self.counts[table] += max(rows0 - rows1, 0)
            self.bytes_freed += max(bytes0 - bytes1, 0)

    def report(self, dry_run: bool) -> SweepReport:
        c = self.counts
        return SweepReport(
            checkpoints_deleted=c["checkpoints"],
            threads_deleted=c["threads"],
            blobs_deleted=c["blobs"],
            chunks_deleted=c["chunks"],
            writes_deleted=c["writes"],
            bytes_freed=self.bytes_freed,
            dry_run=dry_run,
            threads_scanned=self.threads_scanned,
            batches=self.batches,
        )


def _limits(default: RetentionPolicy, rows: Rows) -> dict[str, ThreadLimits]:
    out: dict[str, ThreadLimits] = {}
    for thread_id, stored, now in rows:
        try:
            policy = effective_policy(default, stored)
        except PgCheckpointError as exc:
            log.warning("thread %r has an unreadable retention policy, skipped: %s", thread_id, exc)
            continue
        out[str(thread_id)] = thread_limits(policy, cast(datetime, now))
    return out


def sweep_plan(
    core: SaverCore,
    default: RetentionPolicy,
    *,
    dry_run: bool = False,
    batch_size: int = DEFAULT_BATCH_SIZE,
    orphan_grace: timedelta = DEFAULT_ORPHAN_GRACE,
) -> Plan[SweepReport]:
    """Apply every thread's policy, ``batch_size`` threads per transaction."""
    size = check_batch_size(batch_size)
    if not isinstance(orphan_grace, timedelta) or orphan_grace < timedelta(0):
        raise InvalidInputError(f"orphan_grace must be a timedelta >= 0, got {orphan_grace!r}")
    if not isinstance(dry_run, bool):
        raise InvalidInputError(f"dry_run must be a bool, got {dry_run!r}")
    q = core.queries
    key = sweep_lock_key(core.schema)
    end = "ROLLBACK" if dry_run else "COMMIT"

    def batch(ids: list[str], tally: _Tally) -> PlanGen[None]:
        locked = yield Query(q["retention_lock"], {"thread_ids": ids}, fetch="all")
        if not locked:
            return
        now = cast(datetime, locked[0][2])
        limits = _limits(default, locked)
        mine = sorted(limits)
        tally.threads_scanned += len(mine)
        tally.batches += 1
        before = yield Query(q["retention_measure"], {"thread_ids": mine}, fetch="all")
        ttl = {t: lim for t, lim in limits.items() if lim.ttl_cutoff is not None}
        expired: set[str] = set()
        if ttl:
            rows = yield Query(
                q["retention_expired"],
                {
                    "thread_ids": list(ttl),
                    "ttl_cutoff": [lim.ttl_cutoff for lim in ttl.values()],
                    "keep_interrupted": [lim.keep_interrupted for lim in ttl.values()],
                },
                fetch="all",
                prepare=False,
            )
            expired = {str(r[0]) for r in rows or []}
            if expired:
                yield Query(q["delete_threads"], {"thread_ids": sorted(expired)})
        alive = [t for t in mine if t not in expired]
        limited = [
            t for t in alive if limits[t].keep_last is not None or limits[t].min_created is not None
        ]
        if limited:
            yield Query(
                q["retention_apply"],
                {
                    "thread_ids": limited,
                    "keep_last": [limits[t].keep_last for t in limited],
                    "min_created": [limits[t].min_created for t in limited],
                },
                fetch="all",
                prepare=False,
            )
        if alive:
            cutoff = now - orphan_grace
            params = {"thread_ids": alive, "cutoff": cutoff}
            yield Query(q["retention_orphan_writes"], params, prepare=False)
            # Every locked thread, not only those that just lost checkpoints:
            # blobs or chunks left unreferenced by any earlier operation go too.
            yield from core._gc(alive)
            yield Query(q["retention_empty_threads"], params, prepare=False)
        after = yield Query(q["retention_measure"], {"thread_ids": mine}, fetch="all")
        tally.add(_measure(before), _measure(after))

    def make() -> PlanGen[SweepReport]:
        got = yield Query("SELECT pg_try_advisory_lock(%(key)s)", {"key": key}, fetch="all")
        if not got or not got[0][0]:
            return SweepReport(dry_run=dry_run, skipped=True)
        tally = _Tally()
        after = ""
        while True:
            page = yield Query(
                q["retention_page"], {"after": after, "limit": size}, fetch="all"
            )
            if not page:
                break
            ids = [str(r[0]) for r in page]
            after = ids[-1]
            yield Query("BEGIN", None, prepare=False)
            yield from batch(ids, tally)
            yield Query(end, None, prepare=False)
        # Writes of threads that never got a row at all, in bounded deletes.
        yield Query("BEGIN", None, prepare=False)
        now_rows = yield Query("SELECT now()", None, fetch="all", prepare=False)
        cutoff = cast(datetime, (now_rows or [(datetime.now(),)])[0][0]) - orphan_grace
        while True:
            rows = yield Query(
                q["retention_stray_writes"], {"cutoff": cutoff, "limit": 10_000}, fetch="all"
            )
            count, freed = (int(rows[0][0]), int(rows[0][1])) if rows else (0, 0)
            tally.counts["writes"] += count
            tally.bytes_freed += freed
            if count < 10_000:
                break
        yield Query(end, None, prepare=False)
        return tally.report(dry_run)

    return Plan(
        "cleanup_old_checkpoints",
        make,
        own_transactions=True,
        cleanup=Query("SELECT pg_advisory_unlock_all()", None),
    )


# --- settings and pins --------------------------------------------------------


def set_retention_plan(
    core: SaverCore, thread_id: Any, policy: RetentionPolicy | None
) -> Plan[None]:
    tid = codec.text_id(thread_id, "thread_id")
    if policy is not None and not isinstance(policy, RetentionPolicy):
        raise InvalidInputError(
            f"policy must be a RetentionPolicy or None, got {type(policy).__name__}"
        )
    params = {"thread_id": tid, "retention": None if policy is None else policy.to_json()}
    sql = core.queries["retention_set_thread"]

    def make() -> PlanGen[None]:
        yield Query(sql, params)

    return Plan("set_thread_retention", make)


def get_retention_plan(core: SaverCore, thread_id: Any) -> Plan[RetentionPolicy | None]:
    tid = codec.text_id(thread_id, "thread_id")
    sql = core.queries["retention_get_thread"]

    def make() -> PlanGen[RetentionPolicy | None]:
        rows = yield Query(sql, {"thread_id": tid}, fetch="all")
        if not rows or rows[0][0] is None:
            return None
        return RetentionPolicy.from_json(rows[0][0])

    return Plan("get_thread_retention", make)


def pin_thread_plan(core: SaverCore, thread_id: Any, pinned: bool) -> Plan[None]:
    params = {"thread_id": codec.text_id(thread_id, "thread_id"), "pinned": pinned}
    sql = core.queries["retention_pin_thread"]

    def make() -> PlanGen[None]:
        yield Query(sql, params)

    return Plan("pin_thread" if pinned else "unpin_thread", make)


def pin_checkpoint_plan(core: SaverCore, config: RunnableConfig, pinned: bool) -> Plan[None]:
    where = codec.target(config)
    if where.checkpoint_id is None:
        raise InvalidInputError('pinning needs config["configurable"]["checkpoint_id"]')
    params = {
        "thread_id": where.thread_id,
        "checkpoint_ns": where.checkpoint_ns,
        "checkpoint_id": where.checkpoint_id,
        "pinned": pinned,
    }
    sql = core.queries["retention_pin_checkpoint"]

    def make() -> PlanGen[None]:
        rows = yield Query(sql, params, fetch="all")
        if not rows:
            raise InvalidInputError(
                f"checkpoint {where.checkpoint_id!r} of thread {where.thread_id!r} "
                f"(namespace {where.checkpoint_ns!r}) does not exist"
            )

    return Plan("pin_checkpoint" if pinned else "unpin_checkpoint", make)


# --- the savers' methods ------------------------------------------------------


class _RetentionBase:
    """Settings both mixins share (set by ``_init_retention`` from the constructor)."""

    retention: RetentionPolicy
    auto_cleanup: bool
    cleanup_interval: float

    def _init_retention(
        self,
        *,
        retention: RetentionPolicy | None = None,
        max_versions: int | None = None,
        max_age: timedelta | None = None,
        retention_days: float | None = None,
        auto_cleanup: bool = False,
        cleanup_interval: float | timedelta = DEFAULT_CLEANUP_INTERVAL,
    ) -> None:
        self.retention = RetentionPolicy.from_settings(
            retention=retention,
            max_versions=max_versions,
            max_age=max_age,
            retention_days=retention_days,
        )
        self.auto_cleanup = bool(auto_cleanup)
        self.cleanup_interval = check_interval(cleanup_interval)

    def _core(self) -> SaverCore:
        return cast("SaverCore", self)

    def _sweep(
        self, dry_run: bool, batch_size: int, orphan_grace: timedelta | None
    ) -> Plan[SweepReport]:
        grace = DEFAULT_ORPHAN_GRACE if orphan_grace is None else orphan_grace
        return sweep_plan(
            self._core(), self.retention, dry_run=dry_run, batch_size=batch_size,
            orphan_grace=grace,
        )


class RetentionSync(_RetentionBase):
    """Retention, pins, cleanup and maintenance methods of ``PostgresSaver``."""

    _runner: SyncRunner
    _sweeper: ThreadSweeper | None = None

    def cleanup_old_checkpoints(
        self,
        *,
        dry_run: bool = False,
        batch_size: int = DEFAULT_BATCH_SIZE,
        orphan_grace: timedelta | None = None,
    ) -> SweepReport:
        """Apply the retention policies now; see :mod:`pgcheckpoint.sweeper`."""
        return self._runner.run(self._sweep(dry_run, batch_size, orphan_grace))

    def set_thread_retention(self, thread_id: str, policy: RetentionPolicy | None) -> None:
        """Give a thread its own policy (``None``: back to the saver's)."""
        self._runner.run(set_retention_plan(self._core(), thread_id, policy))

    def get_thread_retention(self, thread_id: str) -> RetentionPolicy | None:
        """The thread's own policy, or ``None`` when it follows the saver's."""
        return self._runner.run(get_retention_plan(self._core(), thread_id))

    def pin_thread(self, thread_id: str) -> None:
        """Never let the sweeper touch this thread."""
        self._runner.run(pin_thread_plan(self._core(), thread_id, True))

    def unpin_thread(self, thread_id: str) -> None:
        self._runner.run(pin_thread_plan(self._core(), thread_id, False))

    def pin_checkpoint(self, config: RunnableConfig) -> None:
        """Never let a policy remove this checkpoint (nor what it needs to be read)."""
        self._runner.run(pin_checkpoint_plan(self._core(), config, True))

    def unpin_checkpoint(self, config: RunnableConfig) -> None:
        self._runner.run(pin_checkpoint_plan(self._core(), config, False))

    def storage_report(self, *, top: int = 10) -> StorageReport:
        """Bytes per table (heap, TOAST, indexes) and the ``top`` fattest threads."""
        return self._runner.run(storage_plan(self._core(), top))

    def optimize(self, *, full: bool = False) -> None:
        """VACUUM (ANALYZE) our tables (``full=True``: VACUUM FULL, returns space to
        the OS but locks each table while it is rewritten)."""
        self._runner.run(optimize_plan(self._core(), full))

    def start_sweeper(self) -> ThreadSweeper:
        """Start the background sweeper thread (every ``cleanup_interval`` seconds)."""
        if self._sweeper is None or not self._sweeper.running:
            self._sweeper = ThreadSweeper(self, self.cleanup_interval)
            self._sweeper.start()
        return self._sweeper

    def stop_sweeper(self) -> None:
        """Stop the background sweeper, waiting for a sweep in progress to end."""
        if self._sweeper is not None:
            self._sweeper.stop()
            self._sweeper = None

    @contextmanager
    def auto_sweeper(self) -> Iterator[None]:
        """Run the background sweeper for the block if ``auto_cleanup`` is set."""
        if not self.auto_cleanup:
            yield
            return
        self.start_sweeper()
        try:
            yield
        finally:
            self.stop_sweeper()


class RetentionAsync(_RetentionBase):
    """Retention, pins, cleanup and maintenance methods of ``AsyncPostgresSaver``."""

    _runner: AsyncRunner
    _sweeper: TaskSweeper | None = None

    async def acleanup_old_checkpoints(
        self,
        *,
        dry_run: bool = False,
        batch_size: int = DEFAULT_BATCH_SIZE,
        orphan_grace: timedelta | None = None,
    ) -> SweepReport:
        """See :meth:`PostgresSaver.cleanup_old_checkpoints`."""
        return await self._runner.run(self._sweep(dry_run, batch_size, orphan_grace))

    async def aset_thread_retention(self, thread_id: str, policy: RetentionPolicy | None) -> None:
        await self._runner.run(set_retention_plan(self._core(), thread_id, policy))

    async def aget_thread_retention(self, thread_id: str) -> RetentionPolicy | None:
        return await self._runner.run(get_retention_plan(self._core(), thread_id))

    async def apin_thread(self, thread_id: str) -> None:
        await self._runner.run(pin_thread_plan(self._core(), thread_id, True))

    async def aunpin_thread(self, thread_id: str) -> None:
        await self._runner.run(pin_thread_plan(self._core(), thread_id, False))

    async def apin_checkpoint(self, config: RunnableConfig) -> None:
        await self._runner.run(pin_checkpoint_plan(self._core(), config, True))

    async def aunpin_checkpoint(self, config: RunnableConfig) -> None:
        await self._runner.run(pin_checkpoint_plan(self._core(), config, False))

    async def astorage_report(self, *, top: int = 10) -> StorageReport:
        return await self._runner.run(storage_plan(self._core(), top))

    async def aoptimize(self, *, full: bool = False) -> None:
        await self._runner.run(optimize_plan(self._core(), full))

    async def astart_sweeper(self) -> TaskSweeper:
        """Start the background sweeper task on the running event loop."""
        if self._sweeper is None or not self._sweeper.running:
            self._sweeper = TaskSweeper(self, self.cleanup_interval)
            self._sweeper.start()
        return self._sweeper

    async def astop_sweeper(self) -> None:
        if self._sweeper is not None:
            await self._sweeper.stop()
            self._sweeper = None

    @asynccontextmanager
    async def auto_sweeper(self) -> AsyncIterator[None]:
        """Run the background sweeper for the block if ``auto_cleanup`` is set."""
        if not self.auto_cleanup:
            yield
            return
        await self.astart_sweeper()
        try:
            yield
        finally:
            await self.astop_sweeper()


# --- background runners -------------------------------------------------------


@dataclass(slots=True)
class SweeperStats:
    """What a background sweeper did so far."""

    runs: int = 0
    errors: int = 0
    last_report: SweepReport | None = None
    last_error: str | None = None
    totals: SweepReport = field(default_factory=SweepReport)

    def record(self, report: SweepReport) -> None:
        self.runs += 1
        self.last_report = report
        t = self.totals
        self.totals = replace(
            t,
            checkpoints_deleted=t.checkpoints_deleted + report.checkpoints_deleted,
            threads_deleted=t.threads_deleted + report.threads_deleted,
            blobs_deleted=t.blobs_deleted + report.blobs_deleted,
            chunks_deleted=t.chunks_deleted + report.chunks_deleted,
            writes_deleted=t.writes_deleted + report.writes_deleted,
            bytes_freed=t.bytes_freed + report.bytes_freed,
        )

    def failed(self, exc: BaseException) -> None:
        self.errors += 1
        self.last_error = f"{type(exc).__name__}: {exc}"
        log.warning("background cleanup failed (will retry next interval): %s", self.last_error)


class ThreadSweeper:
    """Runs ``cleanup_old_checkpoints`` every ``interval`` seconds on a daemon thread.

    The first sweep runs one interval after the start (``setup()`` usually
    runs right after the saver is made). A failed sweep is logged and counted
    in :attr:`stats`; the next interval tries again.
    """

    def __init__(self, saver: RetentionSync, interval: float) -> None:
        self.saver = saver
        self.interval = interval
        self.stats = SweeperStats()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="pgcheckpoint-sweeper", daemon=True)

    @property
    def running(self) -> bool:
        return self._thread.is_alive()

    def start(self) -> None:
        self._thread.start()

    def stop(self, timeout: float | None = None) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout)

    def _loop(self) -> None:
        while not self._stop.wait(self.interval):
            try:
                self.stats.record(self.saver.cleanup_old_checkpoints())
            except Exception as exc:
                self.stats.failed(exc)


class TaskSweeper:
    """The asyncio twin of :class:`ThreadSweeper`: a task on the saver's loop."""

    def __init__(self, saver: RetentionAsync, interval: float) -> None:
        self.saver = saver
        self.interval = interval
        self.stats = SweeperStats()
        self._task: asyncio.Task[None] | None = None

    @property
    def running(self) -> bool:
        return self._task is not None and not self._task.done()

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._loop())

    async def stop(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with suppress(asyncio.CancelledError):
                await task

    async def _loop(self) -> None:
        while True:
            await asyncio.sleep(self.interval)
            try:
                self.stats.record(await self.saver.acleanup_old_checkpoints())
            except Exception as exc:
                self.stats.failed(exc)
