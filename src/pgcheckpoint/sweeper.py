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
commits. The mixins :class:`RetentionSync` / :class:`RetentionAsync` expose it
on the savers, and :class:`ThreadSweeper` / :class:`TaskSweeper` run it in the
background.
"""

from __future__ import annotations

import asyncio
import logging
import re
import threading
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager, suppress
from dataclasses import dataclass, field, replace
from datetime import timedelta
from typing import TYPE_CHECKING, Any, cast

from langchain_core.runnables import RunnableConfig

from . import codec
from ._plans import Plan, PlanGen, Query
from .errors import ConfigurationError, InvalidInputError
from .maintenance import OptimizeReport, StorageReport, optimize_plan, storage_plan
from .retention import (
    DEFAULT_BATCH_SIZE,
    DEFAULT_CLEANUP_INTERVAL,
    DEFAULT_CRON_JOB,
    RetentionPolicy,
    SweepReport,
    check_batch_size,
    check_interval,
    check_orphan_grace,
)

if TYPE_CHECKING:
    from ._connections import AsyncRunner, SyncRunner
    from ._core import SaverCore

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


# --- pg_cron ------------------------------------------------------------------

# The shapes pg_cron accepts: five cron fields, a macro such as @hourly, or (pg_cron
# 1.5+) "N seconds". pg_cron parses the fields themselves and refuses bad ones.
_CRON_SHAPE = re.compile(r"^(@[a-z]+|[1-9][0-9]? seconds?|\S+(\s+\S+){4})$")


@dataclass(frozen=True, slots=True)
class CronJob:
    """A pg_cron job made by ``schedule_cleanup``: its id, name, schedule and SQL."""

    job_id: int
    name: str
    schedule: str
    command: str


def _cron_name(name: Any) -> str:
    if not isinstance(name, str) or not name.strip():
        raise InvalidInputError(f"the pg_cron job name must be a non-empty string, got {name!r}")
    return name


def _require_cron(core: SaverCore) -> PlanGen[None]:
    rows = yield Query(core.queries["cron_installed"], None, fetch="all")
    if not rows or not rows[0][0]:
        raise ConfigurationError(
            "pg_cron is not installed in this database: add 'pg_cron' to "
            "shared_preload_libraries, restart PostgreSQL and run CREATE EXTENSION pg_cron "
            "in the database named by cron.database_name (docs/retention.md)"
        )


def schedule_plan(
    core: SaverCore,
    policy: RetentionPolicy,
    schedule: Any,
    *,
    name: Any = DEFAULT_CRON_JOB,
    batch_size: int = DEFAULT_BATCH_SIZE,
    orphan_grace: timedelta | None = None,
) -> Plan[CronJob]:
    """A pg_cron job that runs ``CALL pgcheckpoint_sweep(policy, ...)`` on ``schedule``."""
    if not isinstance(schedule, str) or not _CRON_SHAPE.match(schedule.strip()):
        raise InvalidInputError(
            f"schedule must be a cron expression such as '*/15 * * * *' or '@hourly', "
            f"got {schedule!r}"
        )
    grace = check_orphan_grace(orphan_grace)
    job, when = _cron_name(name), schedule.strip()
    params = {
        "name": job,
        "schedule": when,
        "schema": core.schema,
        "policy": policy.to_json(),
        "batch_size": check_batch_size(batch_size),
        "orphan_grace": grace,
    }

    def make() -> PlanGen[CronJob]:
        yield from _require_cron(core)
        rows = yield Query(core.queries["cron_schedule"], params, fetch="all", prepare=False)
        job_id, command = (rows or [(0, "")])[0]
        return CronJob(int(job_id), job, when, str(command))

    return Plan("schedule_cleanup", make)


def unschedule_plan(core: SaverCore, name: Any = DEFAULT_CRON_JOB) -> Plan[None]:
    job = _cron_name(name)

    def make() -> PlanGen[None]:
        yield from _require_cron(core)
        rows = yield Query(core.queries["cron_unschedule"], {"name": job}, fetch="all",
                           prepare=False)
        if not rows:
            raise InvalidInputError(f"no pg_cron job named {job!r} belongs to this user")

    return Plan("unschedule_cleanup", make)


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

    _sweeper: ThreadSweeper | TaskSweeper | None = None
    _last_sweeper_stats: SweeperStats | None = None

    @property
    def sweeper_stats(self) -> SweeperStats | None:
        """What the background sweeper did: runs, errors, the last report and error,
        totals. The running sweeper's, else the last stopped one's; ``None`` if no
        sweeper ever ran on this saver."""
        if self._sweeper is not None:
            return self._sweeper.stats
        return self._last_sweeper_stats

    def _sweep(
        self, dry_run: bool, batch_size: int, orphan_grace: timedelta | None
    ) -> Plan[SweepReport]:
        return sweep_plan(
            self._core(), self.retention, dry_run=dry_run, batch_size=batch_size,
            orphan_grace=orphan_grace,
        )

    def _schedule(
        self, schedule: str, name: str, batch_size: int, orphan_grace: timedelta | None
    ) -> Plan[CronJob]:
        return schedule_plan(
            self._core(), self.retention, schedule, name=name, batch_size=batch_size,
            orphan_grace=orphan_grace,
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

    def schedule_cleanup(
        self,
        schedule: str,
        *,
        name: str = DEFAULT_CRON_JOB,
        batch_size: int = DEFAULT_BATCH_SIZE,
        orphan_grace: timedelta | None = None,
    ) -> CronJob:
        """Have pg_cron run the sweep with this saver's policy on ``schedule`` (a cron
        expression); a job of the same name is replaced. Needs the pg_cron extension."""
        return self._runner.run(self._schedule(schedule, name, batch_size, orphan_grace))

    def unschedule_cleanup(self, *, name: str = DEFAULT_CRON_JOB) -> None:
        """Remove the pg_cron job made by :meth:`schedule_cleanup`."""
        self._runner.run(unschedule_plan(self._core(), name))

    def storage_report(self, *, top: int = 10) -> StorageReport:
        """Bytes per table (heap, TOAST, indexes) and the ``top`` fattest threads."""
        return self._runner.run(storage_plan(self._core(), top))

    def optimize(self, *, full: bool = False) -> OptimizeReport:
        """VACUUM (ANALYZE) our tables (``full=True``: VACUUM FULL, returns space to
        the OS but locks each table while it is rewritten). The report names the tables
        vacuumed and those skipped because this role may not vacuum them."""
        return self._runner.run(optimize_plan(self._core(), full))

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
            self._last_sweeper_stats = self._sweeper.stats
            self._sweeper = None

    @contextmanager
    def auto_sweeper(self) -> Iterator[None]:
        """Run the background sweeper for the block (every ``cleanup_interval``
        seconds), whether or not ``auto_cleanup`` is set: entering the block asks for
        it. A sweeper already running (``auto_cleanup=True`` in ``from_conn_string``)
        is left running when the block ends. Its counters: :attr:`sweeper_stats`."""
        started = self._sweeper is None or not self._sweeper.running
        self.start_sweeper()
        try:
            yield
        finally:
            if started:
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

    async def aschedule_cleanup(
        self,
        schedule: str,
        *,
        name: str = DEFAULT_CRON_JOB,
        batch_size: int = DEFAULT_BATCH_SIZE,
        orphan_grace: timedelta | None = None,
    ) -> CronJob:
        """See :meth:`PostgresSaver.schedule_cleanup`."""
        return await self._runner.run(self._schedule(schedule, name, batch_size, orphan_grace))

    async def aunschedule_cleanup(self, *, name: str = DEFAULT_CRON_JOB) -> None:
        await self._runner.run(unschedule_plan(self._core(), name))

    async def astorage_report(self, *, top: int = 10) -> StorageReport:
        return await self._runner.run(storage_plan(self._core(), top))

    async def aoptimize(self, *, full: bool = False) -> OptimizeReport:
        """See :meth:`PostgresSaver.optimize`."""
        return await self._runner.run(optimize_plan(self._core(), full))

    async def astart_sweeper(self) -> TaskSweeper:
        """Start the background sweeper task on the running event loop."""
        if self._sweeper is None or not self._sweeper.running:
            self._sweeper = TaskSweeper(self, self.cleanup_interval)
            self._sweeper.start()
        return self._sweeper

    async def astop_sweeper(self) -> None:
        if self._sweeper is not None:
            await self._sweeper.stop()
            self._last_sweeper_stats = self._sweeper.stats
            self._sweeper = None

    @asynccontextmanager
    async def auto_sweeper(self) -> AsyncIterator[None]:
        """See :meth:`PostgresSaver.auto_sweeper` (a task on the running loop)."""
        started = self._sweeper is None or not self._sweeper.running
        await self.astart_sweeper()
        try:
            yield
        finally:
            if started:
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
