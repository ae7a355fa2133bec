"""The retention sweeper: the plan that applies retention policies, and its runners.

The sweep itself runs in the database: the procedure ``pgcheckpoint_sweep``
(``sql/functions/pgcheckpoint_sweep.sql``) is the one driver, whoever sweeps
(this module, the CLI, pg_cron). :func:`sweep_plan` CALLs it once:

* it takes the schema's *session* advisory lock (``pg_try_advisory_lock`` on
  ``pgcheckpoint_sweep_lock_key()``); if another sweeper holds it, the report
  says ``skipped=True`` (one process does the work, the others skip);
* it pages through ``threads`` ``batch_size`` threads at a time, each page in
  its own short transaction; each thread is locked on its own
  (``pgcheckpoint_sweep_thread``: ``FOR UPDATE SKIP LOCKED``), expired, trimmed
  (``pgcheckpoint_trim``, the walk prune runs), its orphan writes, unreferenced
  blobs and chunks and empty row removed; a thread whose stored policy is bad
  is skipped and reported (``bad_policy``, ``bad_policy_threads``);
* then the writes of threads with no row, ``STRAY_LIMIT`` per transaction;
* a dry run runs exactly the same work and rolls each transaction back.

The plan runs in autocommit mode (``own_transactions``): the procedure
commits. The savers' ``cleanup_old_checkpoints`` runs it, and
:class:`ThreadSweeper` / :class:`TaskSweeper` run it in the background. pg_cron
jobs are in :mod:`pgcheckpoint.cron`, per-thread policies and pins in
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

from ._plans import Plan, PlanGen, Query
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

def sweep_plan(
    core: SaverCore,
    default: RetentionPolicy,
    *,
    dry_run: bool = False,
    batch_size: int = DEFAULT_BATCH_SIZE,
    orphan_grace: timedelta | None = None,
) -> Plan[SweepReport]:
    """Apply every thread's policy, ``batch_size`` threads per transaction: one CALL of
    the procedure ``pgcheckpoint_sweep`` (sql/functions/), the driver pg_cron runs too."""
    size = check_batch_size(batch_size)
    grace = check_orphan_grace(orphan_grace)
    if not isinstance(dry_run, bool):
        raise InvalidInputError(f"dry_run must be a bool, got {dry_run!r}")
    params = {
        "policy": default.to_json(),
        "batch_size": size,
        "orphan_grace": grace,
        "dry_run": dry_run,
    }
    sql = core.queries["sweep"]

    def make() -> PlanGen[SweepReport]:
        rows = yield Query(sql, params, fetch="all", prepare=False)
        return SweepReport.from_report(rows[0][0] if rows else None)

    # The procedure commits per page, so it runs in autocommit mode; if the
    # connection fails mid-CALL the session's advisory lock goes with it, and
    # the cleanup releases it otherwise.
    return Plan(
        "cleanup_old_checkpoints",
        make,
        own_transactions=True,
        cleanup=Query(core.queries["unlock_all"], None),
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
