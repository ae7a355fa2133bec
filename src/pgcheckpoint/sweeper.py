"""The retention sweeper: the plan that applies retention policies, and its runners.

The policies themselves live in the database (migration ``0004_sweep.sql``):
``pgcheckpoint_sweep_batch`` applies them to one batch of threads, and the
procedure ``pgcheckpoint_sweep`` runs a whole sweep with no Python, for
pg_cron. This module runs the same batches from the library, so there is one
implementation whoever sweeps:

* the sweep first takes the schema's *session* advisory lock
  (``pg_try_advisory_lock`` on ``pgcheckpoint_sweep_lock_key()``, the key the
  procedure uses too); if another sweeper holds it, the sweep returns at once
  with ``skipped=True`` (one process does the work, the others skip);
* it then pages through ``threads`` ``batch_size`` threads at a time, each page
  one ``pgcheckpoint_sweep_batch`` call in its own short transaction (which
  locks the page's threads ``FOR UPDATE SKIP LOCKED``, expires idle threads,
  applies keep_last/max_age, removes orphan writes, collects unreferenced
  blobs and chunks and empty thread rows, and returns what it removed);
* a dry run runs exactly the same batches and ends each with ROLLBACK instead
  of COMMIT, so it reports what the real run would remove.

Like migrations, the plan sends its own BEGIN/COMMIT (``own_transactions``),
because the advisory lock must outlive the batch transactions. The savers'
``cleanup_old_checkpoints`` runs it, and :class:`ThreadSweeper` /
:class:`TaskSweeper` run it in the background. pg_cron jobs are in
:mod:`pgcheckpoint.cron`, per-thread policies and pins in
:mod:`pgcheckpoint.thread_policy`.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from contextlib import suppress
from dataclasses import dataclass, field, replace
from datetime import timedelta
from typing import TYPE_CHECKING

from ._plans import Plan, PlanGen, Query, Rows
from .errors import InvalidInputError
from .retention import (
    DEFAULT_BATCH_SIZE,
    RetentionPolicy,
    SweepReport,
    check_batch_size,
    check_orphan_grace,
)

if TYPE_CHECKING:
    from ._core import SaverCore
    from .aio import AsyncPostgresSaver
    from .saver import PostgresSaver

log = logging.getLogger("pgcheckpoint.sweeper")

_TABLES = ("threads", "checkpoints", "blobs", "chunks", "writes")
# Stray writes (of threads with no row at all) removed per statement.
_STRAY_LIMIT = 10_000


@dataclass(slots=True)
class SweepTally:
    """Running totals of one sweep."""

    counts: dict[str, int] = field(default_factory=lambda: dict.fromkeys(_TABLES, 0))
    bytes_freed: int = 0
    threads_scanned: int = 0
    batches: int = 0

    def add(self, rows: Rows | None) -> None:
        """Add one ``sweep_batch`` result: (table, rows, bytes) per table, and 'scanned'."""
        for table, n, freed in rows or []:
            if table == "scanned":
                self.threads_scanned += int(n)
                self.batches += 1
            else:
                self.counts[str(table)] += int(n)
                self.bytes_freed += int(freed)

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


def sweep_plan(
    core: SaverCore,
    default: RetentionPolicy,
    *,
    dry_run: bool = False,
    batch_size: int = DEFAULT_BATCH_SIZE,
    orphan_grace: timedelta | None = None,
) -> Plan[SweepReport]:
    """Apply every thread's policy, ``batch_size`` threads per transaction."""
    size = check_batch_size(batch_size)
    grace = check_orphan_grace(orphan_grace)
    if not isinstance(dry_run, bool):
        raise InvalidInputError(f"dry_run must be a bool, got {dry_run!r}")
    q = core.queries
    end = "ROLLBACK" if dry_run else "COMMIT"
    policy = default.to_json()

    def make() -> PlanGen[SweepReport]:
        got = yield Query(q["sweep_lock"], None, fetch="all")
        if not got or not got[0][0]:
            return SweepReport(dry_run=dry_run, skipped=True)
        tally = SweepTally()
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
            batch = {"thread_ids": ids, "policy": policy, "orphan_grace": grace}
            tally.add((yield Query(q["sweep_batch"], batch, fetch="all")))
            yield Query(end, None, prepare=False)
        # Writes of threads that never got a row at all, in bounded deletes.
        yield Query("BEGIN", None, prepare=False)
        while True:
            rows = yield Query(
                q["sweep_strays"],
                {"orphan_grace": grace, "limit": _STRAY_LIMIT},
                fetch="all",
            )
            count, freed = (int(rows[0][0]), int(rows[0][1])) if rows else (0, 0)
            tally.counts["writes"] += count
            tally.bytes_freed += freed
            if count < _STRAY_LIMIT:
                break
        yield Query(end, None, prepare=False)
        return tally.report(dry_run)

    return Plan(
        "cleanup_old_checkpoints",
        make,
        own_transactions=True,
        cleanup=Query("SELECT pg_advisory_unlock_all()", None),
    )


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

    def __init__(self, saver: PostgresSaver, interval: float) -> None:
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

    def __init__(self, saver: AsyncPostgresSaver, interval: float) -> None:
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
