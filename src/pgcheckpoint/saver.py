"""``PostgresSaver``: the synchronous checkpointer."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any

from langchain_core.runnables import RunnableConfig
from langgraph.checkpoint.base import (
    ChannelVersions,
    Checkpoint,
    CheckpointMetadata,
    CheckpointTuple,
    DeltaChannelHistory,
)
from psycopg_pool import ConnectionPool
from typing_extensions import Unpack

from ._connections import SyncRunner, SyncSource
from ._core import SaverCore
from .concurrency import BatchSync
from .distribution import Distributed, check_option
from .health import HealthSync
from .migrations import MigrationState, report_plan, setup_plan, status_plan
from .options import SaverOptions, configure
from .pooling import PoolSettings
from .retention import sweeper_settings_from_env
from .sweeper import RetentionSync
from .threads import ThreadsSync


class PostgresSaver(ThreadsSync, RetentionSync, HealthSync, BatchSync, SaverCore):
    """A LangGraph checkpointer on PostgreSQL, for sync graphs (``invoke``/``stream``).

    Give it a psycopg ``Connection`` (``autocommit=True`` recommended) or a
    psycopg_pool ``ConnectionPool``, or build one with :meth:`from_conn_string`.
    Call :meth:`setup` once before use. Its ``a*`` methods also work, by running
    the sync ones in a worker thread; async applications should prefer
    :class:`~pgcheckpoint.AsyncPostgresSaver`.

    Keyword options (``schema``, ``serde``, ``retry``, ``retention``, ...) are those
    of :class:`~pgcheckpoint.options.SaverOptions`; an unknown one raises
    ``ConfigurationError``.

    Example::

        with PostgresSaver.from_conn_string("postgresql://localhost/app") as saver:
            saver.setup()
            graph = builder.compile(checkpointer=saver)
    """

    def __init__(self, conn: SyncSource, **options: Unpack[SaverOptions]) -> None:
        retry, prepared = configure(self, dict(options))
        self.conn = conn
        self._runner = SyncRunner(conn, retry=retry, prepared_statements=prepared)

    @classmethod
    @contextmanager
    def from_conn_string(
        cls,
        conn_string: str | None = None,
        *,
        pool: PoolSettings | None = None,
        pipeline: bool = False,
        **options: Unpack[SaverOptions],
    ) -> Iterator[PostgresSaver]:
        """A saver on a new connection pool, closed when the block ends.

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
        options.setdefault("prepared_statements", settings.prepared_statements)
        dsn = resolve_dsn(conn_string)
        check(dsn)
        with ConnectionPool(dsn, open=True, **settings.pool_kwargs()) as p:
            saver = cls(p, **options)
            if not saver.auto_cleanup:
                yield saver
                return
            with saver.auto_sweeper():
                yield saver

    @classmethod
    @contextmanager
    def from_env(cls, **options: Unpack[SaverOptions]) -> Iterator[PostgresSaver]:
        """:meth:`from_conn_string` on ``DATABASE_URL`` with the retention settings of
        ``CHECKPOINT_RETENTION_DAYS``, ``CHECKPOINT_MAX_VERSIONS``,
        ``CHECKPOINT_AUTO_CLEANUP`` and ``CHECKPOINT_CLEANUP_INTERVAL``;
        keyword arguments override them."""
        settings = sweeper_settings_from_env()
        if any(k in options for k in ("max_versions", "max_age", "retention_days")):
            settings.pop("retention")
        settings.update(options)
        with cls.from_conn_string(None, **settings) as saver:
            yield saver

    # --- schema -------------------------------------------------------------
    def setup(self, *, distributed: Distributed = "auto") -> None:
        """Create or upgrade the schema. Idempotent and safe to call from many processes.

        ``distributed``: on a Citus coordinator, distribute the tables by thread id
        (docs/scaling.md). ``"auto"`` (the default) does when the ``citus`` extension
        is installed in the database, ``True`` requires it, ``False`` never does."""
        self._runner.run(setup_plan(self.schema, check_option(distributed)))

    def migration_status(self) -> dict[int, str]:
        """Applied migration versions with their checksums."""
        return self._runner.run(status_plan(self.schema))

    def migration_report(self) -> list[MigrationState]:
        """Every migration this release ships or the database has (newer ones
        included), applied or not; see docs/migrations.md."""
        return self._runner.run(report_plan(self.schema))

    # --- the checkpoint contract -------------------------------------------
    def get_tuple(self, config: RunnableConfig) -> CheckpointTuple | None:
        """The checkpoint ``config`` names (its ``checkpoint_id``, or the latest)."""
        return self._runner.run(self._get_plan(config))

    def list(
        self,
        config: RunnableConfig | None,
        *,
        filter: dict[str, Any] | None = None,
        before: RunnableConfig | None = None,
        limit: int | None = None,
    ) -> Iterator[CheckpointTuple]:
        """Checkpoints newest first: of a thread (and namespace), or of all threads if
        ``config`` is None; ``filter`` matches metadata, ``before`` and ``limit`` page."""
        lister = self._lister(config, filter, before, limit)
        while (plan := lister.next_plan()) is not None:
            yield from self._runner.run(plan)

    def put(
        self,
        config: RunnableConfig,
        checkpoint: Checkpoint,
        metadata: CheckpointMetadata,
        new_versions: ChannelVersions,
    ) -> RunnableConfig:
        """Store a checkpoint (and the channel values in ``new_versions``) atomically."""
        return self._runner.run(self._put_plan(config, checkpoint, metadata, new_versions))

    def put_writes(
        self,
        config: RunnableConfig,
        writes: Sequence[tuple[str, Any]],
        task_id: str,
        task_path: str = "",
    ) -> None:
        """Store a task's pending writes against the checkpoint in ``config``."""
        plan = self._put_writes_plan(config, writes, task_id, task_path)
        if plan is not None:
            self._runner.run(plan)

    def delete_thread(self, thread_id: str) -> None:
        """Delete a thread: every checkpoint, value and write, atomically."""
        self._runner.run(self._delete_thread_plan(thread_id))

    def delete_for_runs(self, run_ids: Sequence[str]) -> None:
        """Delete the checkpoints (and their writes) written by the given runs."""
        self._runner.run(self._delete_for_runs_plan(run_ids))

    def copy_thread(self, source_thread_id: str, target_thread_id: str) -> None:
        """Copy a whole thread, history included, to a new thread id."""
        self._runner.run(self._copy_thread_plan(source_thread_id, target_thread_id))

    def prune(self, thread_ids: Sequence[str], *, strategy: str = "keep_latest") -> None:
        """Prune threads, in one transaction under their row locks.

        ``delete`` deletes the threads. ``keep_latest`` keeps each namespace's
        newest checkpoint with its pending writes, and the ancestors its
        DeltaChannels need; drops the namespaces of finished subgraph calls (a
        call's namespace stays while it belongs to the root's newest checkpoint;
        a ``checkpointer=True`` subgraph's always does); and leaves no kept
        checkpoint naming a deleted parent (its parent becomes None). See
        docs/retention.md, "prune".
        """
        self._runner.run(self._prune_plan(thread_ids, strategy))

    def get_delta_channel_history(
        self, *, config: RunnableConfig, channels: Sequence[str]
    ) -> Mapping[str, DeltaChannelHistory]:
        """Writes and seed of each channel along the parent chain, in one walk."""
        return self._runner.run(self._delta_plan(config, channels))

    # --- async, on a worker thread -----------------------------------------
    async def aget_tuple(self, config: RunnableConfig) -> CheckpointTuple | None:
        return await asyncio.to_thread(self.get_tuple, config)

    async def alist(
        self,
        config: RunnableConfig | None,
        *,
        filter: dict[str, Any] | None = None,
        before: RunnableConfig | None = None,
        limit: int | None = None,
    ) -> AsyncIterator[CheckpointTuple]:
        lister = self._lister(config, filter, before, limit)
        while (plan := lister.next_plan()) is not None:
            for item in await asyncio.to_thread(self._runner.run, plan):
                yield item

    async def aput(
        self,
        config: RunnableConfig,
        checkpoint: Checkpoint,
        metadata: CheckpointMetadata,
        new_versions: ChannelVersions,
    ) -> RunnableConfig:
        return await asyncio.to_thread(self.put, config, checkpoint, metadata, new_versions)

    async def aput_writes(
        self,
        config: RunnableConfig,
        writes: Sequence[tuple[str, Any]],
        task_id: str,
        task_path: str = "",
    ) -> None:
        await asyncio.to_thread(self.put_writes, config, writes, task_id, task_path)

    async def adelete_thread(self, thread_id: str) -> None:
        await asyncio.to_thread(self.delete_thread, thread_id)

    async def adelete_for_runs(self, run_ids: Sequence[str]) -> None:
        await asyncio.to_thread(self.delete_for_runs, run_ids)

    async def acopy_thread(self, source_thread_id: str, target_thread_id: str) -> None:
        await asyncio.to_thread(self.copy_thread, source_thread_id, target_thread_id)

    async def aprune(self, thread_ids: Sequence[str], *, strategy: str = "keep_latest") -> None:
        await asyncio.to_thread(self.prune, thread_ids, strategy=strategy)

    async def aget_delta_channel_history(
        self, *, config: RunnableConfig, channels: Sequence[str]
    ) -> Mapping[str, DeltaChannelHistory]:
        return await asyncio.to_thread(
            self.get_delta_channel_history, config=config, channels=channels
        )
