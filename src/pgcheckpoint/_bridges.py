"""The savers' methods of the other colour: the only sync/async code written twice.

``PostgresSaver`` (sync) also answers LangGraph's ``a*`` contract methods by
running its sync ones on a worker thread (:class:`ThreadBridges`);
``AsyncPostgresSaver`` also answers the sync ones by handing the coroutine to
the event loop it was made in (:class:`LoopBridges`), as the official savers
do. Everything else each saver does is in :mod:`pgcheckpoint.aio`, from which
:mod:`pgcheckpoint.saver` is generated; tools/async_to_sync.py maps
``LoopBridges`` to ``ThreadBridges``.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any, TypeVar

from langchain_core.runnables import RunnableConfig
from langgraph.checkpoint.base import (
    ChannelVersions,
    Checkpoint,
    CheckpointMetadata,
    CheckpointTuple,
    DeltaChannelHistory,
)
from typing_extensions import Unpack

from ._core import SaverCore
from .errors import ConfigurationError
from .options import SaverOptions

if TYPE_CHECKING:
    from ._runner import SyncRunner
    from ._runner_async import AsyncRunner

T = TypeVar("T")


class ThreadBridges(SaverCore):
    """``PostgresSaver``'s ``a*`` contract methods: each runs its sync twin on a
    worker thread (``asyncio.to_thread``). Async applications should prefer
    :class:`~pgcheckpoint.AsyncPostgresSaver`."""

    runner: SyncRunner

    async def aget_tuple(self, config: RunnableConfig) -> CheckpointTuple | None:
        """:meth:`get_tuple` on a worker thread."""
        return await asyncio.to_thread(self.get_tuple, config)

    async def alist(
        self,
        config: RunnableConfig | None,
        *,
        filter: dict[str, Any] | None = None,
        before: RunnableConfig | None = None,
        limit: int | None = None,
    ) -> AsyncIterator[CheckpointTuple]:
        """:meth:`list`, a page at a time on a worker thread."""
        lister = self._lister(config, filter, before, limit)
        while (plan := lister.next_plan()) is not None:
            for item in await asyncio.to_thread(self.runner.run, plan):
                yield item

    async def aput(
        self,
        config: RunnableConfig,
        checkpoint: Checkpoint,
        metadata: CheckpointMetadata,
        new_versions: ChannelVersions,
    ) -> RunnableConfig:
        """:meth:`put` on a worker thread."""
        return await asyncio.to_thread(self.put, config, checkpoint, metadata, new_versions)

    async def aput_writes(
        self,
        config: RunnableConfig,
        writes: Sequence[tuple[str, Any]],
        task_id: str,
        task_path: str = "",
    ) -> None:
        """:meth:`put_writes` on a worker thread."""
        await asyncio.to_thread(self.put_writes, config, writes, task_id, task_path)

    async def adelete_thread(self, thread_id: str) -> None:
        """:meth:`delete_thread` on a worker thread."""
        await asyncio.to_thread(self.delete_thread, thread_id)

    async def adelete_for_runs(self, run_ids: Sequence[str]) -> None:
        """:meth:`delete_for_runs` on a worker thread."""
        await asyncio.to_thread(self.delete_for_runs, run_ids)

    async def acopy_thread(self, source_thread_id: str, target_thread_id: str) -> None:
        """:meth:`copy_thread` on a worker thread."""
        await asyncio.to_thread(self.copy_thread, source_thread_id, target_thread_id)

    async def aprune(self, thread_ids: Sequence[str], *, strategy: str = "keep_latest") -> None:
        """:meth:`prune` on a worker thread."""
        await asyncio.to_thread(self.prune, thread_ids, strategy=strategy)

    async def aget_delta_channel_history(
        self, *, config: RunnableConfig, channels: Sequence[str]
    ) -> Mapping[str, DeltaChannelHistory]:
        """:meth:`get_delta_channel_history` on a worker thread."""
        return await asyncio.to_thread(
            self.get_delta_channel_history, config=config, channels=channels
        )


class LoopBridges(SaverCore):
    """``AsyncPostgresSaver``'s sync contract methods: each hands its coroutine to
    the event loop the saver was made in and waits for it, so they work from other
    threads (not from that loop itself: that would deadlock)."""

    runner: AsyncRunner

    def __init__(self, **options: Unpack[SaverOptions]) -> None:
        super().__init__(**options)
        try:
            self.loop: asyncio.AbstractEventLoop | None = asyncio.get_running_loop()
        except RuntimeError:
            self.loop = None

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
        """:meth:`aget_tuple`, run on the saver's event loop."""
        return self._bridge(self.aget_tuple(config))

    def list(
        self,
        config: RunnableConfig | None,
        *,
        filter: dict[str, Any] | None = None,
        before: RunnableConfig | None = None,
        limit: int | None = None,
    ) -> Iterator[CheckpointTuple]:
        """:meth:`alist`, a page at a time on the saver's event loop."""
        lister = self._lister(config, filter, before, limit)
        while (plan := lister.next_plan()) is not None:
            yield from self._bridge(self.runner.run(plan))

    def put(
        self,
        config: RunnableConfig,
        checkpoint: Checkpoint,
        metadata: CheckpointMetadata,
        new_versions: ChannelVersions,
    ) -> RunnableConfig:
        """:meth:`aput`, run on the saver's event loop."""
        return self._bridge(self.aput(config, checkpoint, metadata, new_versions))

    def put_writes(
        self,
        config: RunnableConfig,
        writes: Sequence[tuple[str, Any]],
        task_id: str,
        task_path: str = "",
    ) -> None:
        """:meth:`aput_writes`, run on the saver's event loop."""
        self._bridge(self.aput_writes(config, writes, task_id, task_path))

    def delete_thread(self, thread_id: str) -> None:
        """:meth:`adelete_thread`, run on the saver's event loop."""
        self._bridge(self.adelete_thread(thread_id))

    def delete_for_runs(self, run_ids: Sequence[str]) -> None:
        """:meth:`adelete_for_runs`, run on the saver's event loop."""
        self._bridge(self.adelete_for_runs(run_ids))

    def copy_thread(self, source_thread_id: str, target_thread_id: str) -> None:
        """:meth:`acopy_thread`, run on the saver's event loop."""
        self._bridge(self.acopy_thread(source_thread_id, target_thread_id))

    def prune(self, thread_ids: Sequence[str], *, strategy: str = "keep_latest") -> None:
        """:meth:`aprune`, run on the saver's event loop."""
        self._bridge(self.aprune(thread_ids, strategy=strategy))

    def get_delta_channel_history(
        self, *, config: RunnableConfig, channels: Sequence[str]
    ) -> Mapping[str, DeltaChannelHistory]:
        """:meth:`aget_delta_channel_history`, run on the saver's event loop."""
        return self._bridge(self.aget_delta_channel_history(config=config, channels=channels))
