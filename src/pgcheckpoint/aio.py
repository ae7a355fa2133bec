"""``AsyncPostgresSaver``: the asyncio checkpointer."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Iterator, Mapping, Sequence
from contextlib import asynccontextmanager
from typing import Any, TypeVar

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

from ._connections import AsyncRunner, AsyncSource
from ._core import SaverCore
from .concurrency import BatchAsync
from .distribution import Distributed, check_option
from .errors import ConfigurationError
from .health import HealthAsync
from .migrations import MigrationState, report_plan, setup_plan, status_plan
from .options import SaverOptions, configure
from .pooling import PoolSettings
from .retention import sweeper_settings_from_env
from .sweeper import RetentionAsync
from .threads import ThreadsAsync

T = TypeVar("T")


class AsyncPostgresSaver(ThreadsAsync, RetentionAsync, HealthAsync, BatchAsync, SaverCore):
    """A LangGraph checkpointer on PostgreSQL, for async graphs (``ainvoke``/``astream``).

    Give it a psycopg ``AsyncConnection`` or a psycopg_pool
    ``AsyncConnectionPool``, or build one with :meth:`from_conn_string`; await
    :meth:`setup` once. Its sync methods work from other threads (they hand the
    call to the saver's event loop), as the official saver's do.

    Keyword options are those of :class:`~pgcheckpoint.options.SaverOptions`, as
    for :class:`~pgcheckpoint.PostgresSaver`.

    Example::

        async with AsyncPostgresSaver.from_conn_string(url) as saver:
            await saver.setup()
            graph = builder.compile(checkpointer=saver)
    """

    def __init__(self, conn: AsyncSource, **options: Unpack[SaverOptions]) -> None:
        retry, prepared = configure(self, dict(options))
        self.conn = conn
        self._runner = AsyncRunner(conn, retry=retry, prepared_statements=prepared)
        try:
            self.loop: asyncio.AbstractEventLoop | None = asyncio.get_running_loop()
        except RuntimeError:
            self.loop = None

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
        PostgreSQL. ``pipeline`` and the other arguments: see
        :meth:`PostgresSaver.from_conn_string`.
        """
        from ._conninfo import check
        from .embedded import resolve_dsn

        del pipeline  # accepted for compatibility; see PostgresSaver.from_conn_string
        settings = pool or PoolSettings()
        options.setdefault("prepared_statements", settings.prepared_statements)
        dsn = await asyncio.to_thread(resolve_dsn, conn_string)
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
        """See :meth:`PostgresSaver.from_env`."""
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
        await self._runner.run(setup_plan(self.schema, check_option(distributed)))

    async def migration_status(self) -> dict[int, str]:
        """Applied migration versions with their checksums."""
        return await self._runner.run(status_plan(self.schema))

    async def migration_report(self) -> list[MigrationState]:
        """Every migration this release ships or the database has (newer ones
        included), applied or not; see docs/migrations.md."""
        return await self._runner.run(report_plan(self.schema))

    # --- the checkpoint contract -------------------------------------------
    async def aget_tuple(self, config: RunnableConfig) -> CheckpointTuple | None:
        """The checkpoint ``config`` names (its ``checkpoint_id``, or the latest)."""
        return await self._runner.run(self._get_plan(config))

    async def alist(
        self,
        config: RunnableConfig | None,
        *,
        filter: dict[str, Any] | None = None,
        before: RunnableConfig | None = None,
        limit: int | None = None,
    ) -> AsyncIterator[CheckpointTuple]:
        """Checkpoints newest first; see :meth:`PostgresSaver.list`."""
        lister = self._lister(config, filter, before, limit)
        while (plan := lister.next_plan()) is not None:
            for item in await self._runner.run(plan):
                yield item

    async def aput(
        self,
        config: RunnableConfig,
        checkpoint: Checkpoint,
        metadata: CheckpointMetadata,
        new_versions: ChannelVersions,
    ) -> RunnableConfig:
        """Store a checkpoint (and the channel values in ``new_versions``) atomically."""
        return await self._runner.run(self._put_plan(config, checkpoint, metadata, new_versions))

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
            await self._runner.run(plan)

    async def adelete_thread(self, thread_id: str) -> None:
        """Delete a thread: every checkpoint, value and write, atomically."""
        await self._runner.run(self._delete_thread_plan(thread_id))

    async def adelete_for_runs(self, run_ids: Sequence[str]) -> None:
        """Delete the checkpoints (and their writes) written by the given runs."""
        await self._runner.run(self._delete_for_runs_plan(run_ids))

    async def acopy_thread(self, source_thread_id: str, target_thread_id: str) -> None:
        """Copy a whole thread, history included, to a new thread id."""
        await self._runner.run(self._copy_thread_plan(source_thread_id, target_thread_id))

    async def aprune(self, thread_ids: Sequence[str], *, strategy: str = "keep_latest") -> None:
        """See :meth:`PostgresSaver.prune`."""
        await self._runner.run(self._prune_plan(thread_ids, strategy))

    async def aget_delta_channel_history(
        self, *, config: RunnableConfig, channels: Sequence[str]
    ) -> Mapping[str, DeltaChannelHistory]:
        """Writes and seed of each channel along the parent chain, in one walk."""
        return await self._runner.run(self._delta_plan(config, channels))

    # --- sync, handed to the saver's loop ----------------------------------
    def _bridge(self, coro: Awaitable[T]) -> T:
        loop = self.loop
        if loop is None or loop.is_closed():
            raise ConfigurationError(
                "the sync methods of AsyncPostgresSaver need the event loop it was made in; "
                "use PostgresSaver in sync code"
            )
        try:
            if asyncio.get_running_loop() is loop:
                raise ConfigurationError(
                    "sync call of AsyncPostgresSaver from its own event loop would deadlock; "
                    "await the a* method instead"
                )
        except RuntimeError:
            pass

        async def wrap() -> T:
            return await coro

        return asyncio.run_coroutine_threadsafe(wrap(), loop).result()

    def get_tuple(self, config: RunnableConfig) -> CheckpointTuple | None:
        return self._bridge(self.aget_tuple(config))

    def list(
        self,
        config: RunnableConfig | None,
        *,
        filter: dict[str, Any] | None = None,
        before: RunnableConfig | None = None,
        limit: int | None = None,
    ) -> Iterator[CheckpointTuple]:
        lister = self._lister(config, filter, before, limit)
        while (plan := lister.next_plan()) is not None:
            yield from self._bridge(self._runner.run(plan))

    def put(
        self,
        config: RunnableConfig,
        checkpoint: Checkpoint,
        metadata: CheckpointMetadata,
        new_versions: ChannelVersions,
    ) -> RunnableConfig:
        return self._bridge(self.aput(config, checkpoint, metadata, new_versions))

    def put_writes(
        self,
        config: RunnableConfig,
        writes: Sequence[tuple[str, Any]],
        task_id: str,
        task_path: str = "",
    ) -> None:
        self._bridge(self.aput_writes(config, writes, task_id, task_path))

    def delete_thread(self, thread_id: str) -> None:
        self._bridge(self.adelete_thread(thread_id))

    def delete_for_runs(self, run_ids: Sequence[str]) -> None:
        self._bridge(self.adelete_for_runs(run_ids))

    def copy_thread(self, source_thread_id: str, target_thread_id: str) -> None:
        self._bridge(self.acopy_thread(source_thread_id, target_thread_id))

    def prune(self, thread_ids: Sequence[str], *, strategy: str = "keep_latest") -> None:
        self._bridge(self.aprune(thread_ids, strategy=strategy))

    def get_delta_channel_history(
        self, *, config: RunnableConfig, channels: Sequence[str]
    ) -> Mapping[str, DeltaChannelHistory]:
        return self._bridge(self.aget_delta_channel_history(config=config, channels=channels))
