"""``AsyncPostgresSaver``: the asyncio checkpointer.

This is the source of ``PostgresSaver``: tools/async_to_sync.py generates
:mod:`pgcheckpoint.saver` from it. Edit this file, then run
``python tools/async_to_sync.py``; never edit ``saver.py``.

Every public method is here, each a line or two: build a plan (the logic,
I/O-free: :mod:`pgcheckpoint._core`, :mod:`pgcheckpoint.threads`,
:mod:`pgcheckpoint.sweeper`...) and run it on the saver's runner. The contract
methods of the other colour are in :mod:`pgcheckpoint._bridges`.
"""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import AsyncIterator, Mapping, Sequence
from contextlib import asynccontextmanager
from datetime import timedelta
from typing import Any

from langchain_core.runnables import RunnableConfig
from langgraph.checkpoint.base import (
    ChannelVersions,
    Checkpoint,
    CheckpointMetadata,
    CheckpointTuple,
    DeltaChannelHistory,
)
from psycopg_pool import AsyncConnectionPool
from typing_extensions import Unpack

from ._acompat import arun_blocking
from ._bridges import LoopBridges
from ._connections import AsyncSource
from ._runner_async import AsyncRunner
from .batch import BatchItem, batch_plan
from .cron import CronJob, schedule_plan, unschedule_plan
from .distribution import Distributed, check_option
from .health import HEALTH_TIMEOUT, HealthLog, HealthReport, health_plan, one_attempt, pool_stats
from .maintenance import OptimizeReport, StorageReport, optimize_plan, storage_plan
from .migrations import MigrationState, report_plan, setup_plan, status_plan
from .options import SaverOptions
from .pooling import PoolSettings
from .retention import (
    DEFAULT_BATCH_SIZE,
    DEFAULT_CRON_JOB,
    RetentionPolicy,
    SweepReport,
    sweeper_settings_from_env,
)
from .routines import RoutineState, function_report_plan
from .sweeper import SweeperStats, TaskSweeper, sweep_plan
from .thread_policy import (
    get_retention_plan,
    pin_checkpoint_plan,
    pin_thread_plan,
    set_retention_plan,
)
from .threads import (
    CheckpointNode,
    ThreadInfo,
    ThreadStats,
    ThreadSummary,
    VersionInfo,
    delete_checkpoint_plan,
    get_at_time_plan,
    list_threads_plan,
    list_versions_plan,
    rollback_plan,
    thread_graph_plan,
    thread_stats_plan,
    thread_summaries_plan,
)

# The generated PostgresSaver has a method named list, which hides the builtin
# in its class body; annotations there use this name.
List = list


class AsyncPostgresSaver(LoopBridges):
    """A LangGraph checkpointer on PostgreSQL, for async graphs (``ainvoke``/``astream``).

    Give it a psycopg ``AsyncConnection`` (``autocommit=True`` recommended) or a
    psycopg_pool ``AsyncConnectionPool``, or build one with :meth:`from_conn_string`;
    await :meth:`setup` once before use. Its methods of the other colour: see
    :class:`~pgcheckpoint._bridges.LoopBridges`.

    Keyword options (``schema``, ``serde``, ``retry``, ``retention``, ...) are those
    of :class:`~pgcheckpoint.options.SaverOptions`; an unknown one raises
    ``ConfigurationError``.

    Example::

        async with AsyncPostgresSaver.from_conn_string(url) as saver:
            await saver.setup()
            graph = builder.compile(checkpointer=saver)
    """

    def __init__(self, conn: AsyncSource, **options: Unpack[SaverOptions]) -> None:
        super().__init__(**options)
        self.conn = conn
        self.runner = AsyncRunner(
            conn, retry=self.retry_policy, transaction_pooler=self.transaction_pooler
        )
        self.health_log = HealthLog()
        self._sweeper: TaskSweeper | None = None
        self._last_sweeper_stats: SweeperStats | None = None

    @classmethod
    @asynccontextmanager
    async def from_conn_string(
        cls,
        conn_string: str | None = None,
        *,
        pool: PoolSettings | None = None,
        pipeline: bool = False,
        **options: Unpack[SaverOptions],
    ) -> AsyncIterator[AsyncPostgresSaver]:
        """A saver on a new async connection pool, closed when the block ends.

        ``conn_string`` defaults to ``DATABASE_URL``, then to the embedded
        PostgreSQL (``pip install 'pgcheckpoint[embedded]'``). ``pool`` sizes and
        times the pool. ``pipeline`` is accepted for compatibility with
        langgraph-checkpoint-postgres and changes nothing: pgcheckpoint already
        sends a checkpoint's statements in one pipeline where that saves round
        trips, and a connection-wide pipeline (what the official saver's
        ``pipeline=True`` builds) cannot be shared through a pool. Other keyword
        arguments are the constructor's (:class:`~pgcheckpoint.options.SaverOptions`);
        an unknown one raises ``ConfigurationError``. An invalid connection
        string raises ``ConfigurationError`` before anything connects.
        """
        from ._conninfo import check
        from .embedded import resolve_dsn

        del pipeline  # see the docstring
        settings = pool or PoolSettings()
        if "prepared_statements" not in options:
            options.setdefault("transaction_pooler", not settings.prepared_statements)
        dsn = await arun_blocking(resolve_dsn, conn_string)
        check(dsn)
        async with AsyncConnectionPool(dsn, open=False, **settings.async_pool_kwargs()) as p:
            saver = cls(p, **options)
            if not saver.auto_cleanup:
                yield saver
                return
            async with saver.auto_sweeper():
                yield saver

    @classmethod
    @asynccontextmanager
    async def from_env(cls, **options: Unpack[SaverOptions]) -> AsyncIterator[AsyncPostgresSaver]:
        """:meth:`from_conn_string` on ``DATABASE_URL`` with the retention settings of
        ``CHECKPOINT_RETENTION_DAYS``, ``CHECKPOINT_MAX_VERSIONS``,
        ``CHECKPOINT_AUTO_CLEANUP`` and ``CHECKPOINT_CLEANUP_INTERVAL``;
        keyword arguments override them."""
        settings = sweeper_settings_from_env()
        if any(k in options for k in ("max_versions", "max_age", "retention_days")):
            settings.pop("retention")
        settings.update(options)
        async with cls.from_conn_string(None, **settings) as saver:
            yield saver

    # --- schema -------------------------------------------------------------
    async def setup(self, *, distributed: Distributed = "auto") -> None:
        """Create or upgrade the schema. Idempotent and safe to call from many processes.

        ``distributed``: on a Citus coordinator, distribute the tables by thread id
        (docs/scaling.md). ``"auto"`` (the default) does when the ``citus`` extension
        is installed in the database, ``True`` requires it, ``False`` never does."""
        await self.runner.run(setup_plan(self.schema, check_option(distributed)))
        self.has_citus = None  # list() asks again: the schema may be distributed now

    async def migration_status(self) -> dict[int, str]:
        """Applied migration versions with their checksums."""
        return await self.runner.run(status_plan(self.schema))

    async def migration_report(self) -> List[MigrationState]:
        """Every migration this release ships or the database has (newer ones
        included), applied or not; see docs/migrations.md."""
        return await self.runner.run(report_plan(self.schema))

    async def function_report(self) -> List[RoutineState]:
        """Every SQL function this release ships, as the database has it: its
        recorded revision, and whether ``setup()`` would apply this release's
        definition (``stale``); see docs/migrations.md."""
        return await self.runner.run(function_report_plan(self.schema))

    # --- the checkpoint contract -------------------------------------------
    async def aget_tuple(self, config: RunnableConfig) -> CheckpointTuple | None:
        """The checkpoint ``config`` names (its ``checkpoint_id``, or the latest)."""
        return await self.runner.run(self._get_plan(config))

    async def alist(
        self,
        config: RunnableConfig | None,
        *,
        filter: dict[str, Any] | None = None,
        before: RunnableConfig | None = None,
        limit: int | None = None,
    ) -> AsyncIterator[CheckpointTuple]:
        """Checkpoints newest first: of a thread (and namespace), or of all threads if
        ``config`` is None; ``filter`` matches metadata, ``before`` and ``limit`` page."""
        lister = self._lister(config, filter, before, limit)
        while (plan := lister.next_plan()) is not None:
            for item in await self.runner.run(plan):
                yield item

    async def aput(
        self,
        config: RunnableConfig,
        checkpoint: Checkpoint,
        metadata: CheckpointMetadata,
        new_versions: ChannelVersions,
    ) -> RunnableConfig:
        """Store a checkpoint (and the channel values in ``new_versions``) atomically."""
        return await self.runner.run(self.put_plan(config, checkpoint, metadata, new_versions))

    async def aput_writes(
        self,
        config: RunnableConfig,
        writes: Sequence[tuple[str, Any]],
        task_id: str,
        task_path: str = "",
    ) -> None:
        """Store a task's pending writes against the checkpoint in ``config``."""
        plan = self._put_writes_plan(config, writes, task_id, task_path)
        if plan is not None:
            await self.runner.run(plan)

    async def adelete_thread(self, thread_id: str) -> None:
        """Delete a thread: every checkpoint, value and write, atomically."""
        await self.runner.run(self._delete_thread_plan(thread_id))

    async def adelete_for_runs(self, run_ids: Sequence[str]) -> None:
        """Delete the checkpoints (and their writes) written by the given runs."""
        await self.runner.run(self._delete_for_runs_plan(run_ids))

    async def acopy_thread(self, source_thread_id: str, target_thread_id: str) -> None:
        """Copy a whole thread, history included, to a new thread id."""
        await self.runner.run(self._copy_thread_plan(source_thread_id, target_thread_id))

    async def aprune(self, thread_ids: Sequence[str], *, strategy: str = "keep_latest") -> None:
        """Prune threads, in one transaction under their row locks.

        ``delete`` deletes the threads. ``keep_latest`` keeps each namespace's
        newest checkpoint with its pending writes, and the ancestors its
        DeltaChannels need; drops the namespaces of finished subgraph calls (a
        call's namespace stays while it belongs to the root's newest checkpoint;
        a ``checkpointer=True`` subgraph's always does); and leaves no kept
        checkpoint naming a deleted parent (its parent becomes None). See
        docs/retention.md, "prune".
        """
        await self.runner.run(self._prune_plan(thread_ids, strategy))

    async def aget_delta_channel_history(
        self, *, config: RunnableConfig, channels: Sequence[str]
    ) -> Mapping[str, DeltaChannelHistory]:
        """Writes and seed (LangGraph's word: the nearest stored value) of each channel
        along the parent chain, in one walk."""
        return await self.runner.run(self._delta_plan(config, channels))

    async def abatch_save_checkpoints(self, items: Sequence[BatchItem]) -> List[RunnableConfig]:
        """Save the next checkpoint of many threads in one transaction and one round trip
        (plus BEGIN/COMMIT, pipelined). ``items`` are ``put``'s arguments:
        ``(config, checkpoint, metadata, new_versions)``; returns their configs in order."""
        return await self.runner.run(batch_plan(self, items))

    # --- threads (docs/threads.md) ------------------------------------------
    async def alist_threads(
        self,
        *,
        limit: int = 50,
        offset: int = 0,
        after: ThreadInfo | None = None,
        filter: Mapping[str, Any] | None = None,
    ) -> List[ThreadInfo]:
        """Threads, newest (last checkpoint) first. ``filter`` matches the metadata of
        each thread's latest checkpoint (``@>``); page with ``offset`` or ``after=last``."""
        plan = list_threads_plan(self, limit=limit, offset=offset, after=after, filter=filter)
        return await self.runner.run(plan)

    async def athread_stats(self, thread_id: str) -> ThreadStats | None:
        """Counts and sizes of one thread, or None if it does not exist."""
        return await self.runner.run(thread_stats_plan(self, thread_id))

    async def aget_at_time(
        self, thread_id: str, when: dt.datetime, *, checkpoint_ns: str = ""
    ) -> CheckpointTuple | None:
        """The checkpoint current at ``when``: the newest created at or before it."""
        return await self.runner.run(get_at_time_plan(self, thread_id, when, checkpoint_ns))

    async def alist_versions(
        self, thread_id: str, *, checkpoint_ns: str | None = None, limit: int | None = None
    ) -> List[VersionInfo]:
        """The thread's history newest first, with times and metadata but no state."""
        plan = list_versions_plan(self, thread_id, checkpoint_ns=checkpoint_ns, limit=limit)
        return await self.runner.run(plan)

    async def arollback(
        self, thread_id: str, checkpoint_id: str, *, checkpoint_ns: str = ""
    ) -> RunnableConfig:
        """Make an earlier checkpoint's state the head, as a new checkpoint; returns its config."""
        return await self.runner.run(rollback_plan(self, thread_id, checkpoint_id, checkpoint_ns))

    async def adelete_checkpoint(
        self, thread_id: str, checkpoint_id: str, *, checkpoint_ns: str = ""
    ) -> None:
        """Delete one checkpoint that has no children (see :mod:`pgcheckpoint.threads`)."""
        plan = delete_checkpoint_plan(self, thread_id, checkpoint_id, checkpoint_ns)
        await self.runner.run(plan)

    async def athread_summaries(
        self,
        *,
        limit: int = 50,
        after: tuple[dt.datetime, str] | None = None,
        prefix: str | None = None,
        filter: Mapping[str, Any] | None = None,
    ) -> List[ThreadSummary]:
        """A page of threads for a thread list (the inspector's), most recently
        written first, with status, counts, size, pins and retention of each;
        page with ``after=(last.updated_at, last.thread_id)``."""
        plan = thread_summaries_plan(self, limit=limit, after=after, prefix=prefix, filter=filter)
        return await self.runner.run(plan)

    async def athread_summary(self, thread_id: str) -> ThreadSummary | None:
        """One thread's :class:`~pgcheckpoint.threads.ThreadSummary`, or None if it
        does not exist."""
        found = await self.runner.run(thread_summaries_plan(self, thread_id=thread_id))
        return found[0] if found else None

    async def athread_graph(self, thread_id: str) -> List[CheckpointNode]:
        """Every checkpoint of the thread (all namespaces) with its parent and time,
        by namespace then newest first: the shape of its history, cheap on long threads."""
        return await self.runner.run(thread_graph_plan(self, thread_id))

    # --- retention (docs/retention.md) --------------------------------------
    async def acleanup_old_checkpoints(
        self,
        *,
        dry_run: bool = False,
        batch_size: int = DEFAULT_BATCH_SIZE,
        orphan_grace: timedelta | None = None,
    ) -> SweepReport:
        """Apply the retention policies now; see :mod:`pgcheckpoint.sweeper`."""
        plan = sweep_plan(
            self, self.retention, dry_run=dry_run, batch_size=batch_size, orphan_grace=orphan_grace
        )
        return await self.runner.run(plan)

    async def aset_thread_retention(self, thread_id: str, policy: RetentionPolicy | None) -> None:
        """Give a thread its own policy (``None``: back to the saver's)."""
        await self.runner.run(set_retention_plan(self, thread_id, policy))

    async def aget_thread_retention(self, thread_id: str) -> RetentionPolicy | None:
        """The thread's own policy, or ``None`` when it follows the saver's."""
        return await self.runner.run(get_retention_plan(self, thread_id))

    async def apin_thread(self, thread_id: str) -> None:
        """Never let the sweeper touch this thread."""
        await self.runner.run(pin_thread_plan(self, thread_id, True))

    async def aunpin_thread(self, thread_id: str) -> None:
        """Let the sweeper apply the thread's policy again."""
        await self.runner.run(pin_thread_plan(self, thread_id, False))

    async def apin_checkpoint(self, config: RunnableConfig) -> None:
        """Never let a policy remove this checkpoint (nor what it needs to be read)."""
        await self.runner.run(pin_checkpoint_plan(self, config, True))

    async def aunpin_checkpoint(self, config: RunnableConfig) -> None:
        """Let the policies remove this checkpoint again."""
        await self.runner.run(pin_checkpoint_plan(self, config, False))

    async def aschedule_cleanup(
        self,
        schedule: str,
        *,
        name: str = DEFAULT_CRON_JOB,
        batch_size: int = DEFAULT_BATCH_SIZE,
        orphan_grace: timedelta | None = None,
    ) -> CronJob:
        """Have pg_cron run the sweep with this saver's policy on ``schedule`` (a cron
        expression); a job of the same name is replaced. Needs the pg_cron extension."""
        plan = schedule_plan(
            self, self.retention, schedule, name=name, batch_size=batch_size,
            orphan_grace=orphan_grace,
        )
        return await self.runner.run(plan)

    async def aunschedule_cleanup(self, *, name: str = DEFAULT_CRON_JOB) -> None:
        """Remove the pg_cron job made by :meth:`aschedule_cleanup`."""
        await self.runner.run(unschedule_plan(self, name))

    async def astorage_report(self, *, top: int = 10) -> StorageReport:
        """Bytes per table (heap, TOAST, indexes) and the ``top`` fattest threads."""
        return await self.runner.run(storage_plan(self, top))

    async def aoptimize(self, *, full: bool = False) -> OptimizeReport:
        """VACUUM (ANALYZE) our tables (``full=True``: VACUUM FULL, returns space to
        the OS but locks each table while it is rewritten). The report names the tables
        vacuumed and those skipped because this role may not vacuum them."""
        return await self.runner.run(optimize_plan(self, full))

    # --- the background sweeper ---------------------------------------------
    @property
    def sweeper_stats(self) -> SweeperStats | None:
        """What the background sweeper did: runs, errors, the last report and error,
        totals. The running sweeper's, else the last stopped one's; ``None`` if no
        sweeper ever ran on this saver."""
        if self._sweeper is not None:
            return self._sweeper.stats
        return self._last_sweeper_stats

    async def astart_sweeper(self) -> TaskSweeper:
        """Start the background sweeper task on the running event loop (every
        ``cleanup_interval`` seconds)."""
        if self._sweeper is None or not self._sweeper.running:
            self._sweeper = TaskSweeper(self, self.cleanup_interval)
            self._sweeper.start()
        return self._sweeper

    async def astop_sweeper(self) -> None:
        """Stop the background sweeper, awaiting a sweep in progress to end."""
        if self._sweeper is not None:
            await self._sweeper.stop()
            self._last_sweeper_stats = self._sweeper.stats
            self._sweeper = None

    @asynccontextmanager
    async def auto_sweeper(self) -> AsyncIterator[None]:
        """Run the background sweeper for the block (a task on the running loop,
        every ``cleanup_interval`` seconds), whether or not ``auto_cleanup`` is set:
        entering the block asks for it. A sweeper already running
        (``auto_cleanup=True`` in ``from_conn_string``) is left running when the
        block ends. Its counters: :attr:`sweeper_stats`."""
        started = self._sweeper is None or not self._sweeper.running
        await self.astart_sweeper()
        try:
            yield
        finally:
            if started:
                await self.astop_sweeper()

    # --- health (docs/resilience.md) ------------------------------------------
    async def ahealth_check(self, *, timeout: float = HEALTH_TIMEOUT) -> HealthReport:
        """Probe the database once, within ``timeout`` seconds; never raises
        (see :class:`~pgcheckpoint.health.HealthReport`)."""
        started = time.monotonic()
        plan = health_plan(self.schema, self.queries)
        try:
            probe = await self.runner.run(plan, retry=one_attempt(timeout))
        except Exception as exc:
            return self.health_log.failed(exc, started, self.runner.secrets)
        return self.health_log.passed(probe, started, self.runner.source, self.serde)

    def pool_stats(self) -> dict[str, Any]:
        """Connection pool counters (``pool_size``, ``pool_available``, ``requests_waiting``...)."""
        return pool_stats(self.runner.source)
