"""Import from any ``BaseCheckpointSaver`` (InMemorySaver, Redis, ...) through its public API.

Only ``list`` is used (and ``get_tuple`` when a store's ``list`` leaves
``pending_writes`` out), so any conforming saver works. The public API does
not expose a write's ``idx`` or ``task_path``: each task's writes are numbered
in order (special channels keep their fixed negative idx) and ``task_path`` is
empty. BaseCheckpointSaver has no "list threads" call either, so unless
``thread_ids`` is given one pass over ``list(None)`` collects them, keeping
only the ids.

Into an ``AsyncPostgresSaver`` (:func:`aimport_saver`) the source is read in a
worker thread through its sync API; a source that has only an async API and a
loop of its own (langgraph's async savers bridge their sync methods to it) works
there too.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from langgraph.checkpoint.base import BaseCheckpointSaver, CheckpointTuple

from .common import (
    ImportOptions,
    ImportReport,
    SourceCheckpoint,
    meta_dict,
    source_job,
)
from .decoded import writes_from_pending
from .jobs import arun_job, run_job

if TYPE_CHECKING:
    from typing_extensions import Unpack

    from ..aio import AsyncPostgresSaver
    from ..saver import PostgresSaver

__all__ = ["SaverSource", "aimport_saver", "import_saver"]


class SaverSource:
    """A LangGraph checkpointer read through ``list`` / ``get_tuple``."""

    def __init__(self, saver: BaseCheckpointSaver[Any]) -> None:
        self.saver = saver
        self.name = f"saver:{type(saver).__name__}"

    def close(self) -> None:
        """Nothing to release: the checkpointer belongs to the caller."""

    def thread_ids(self) -> list[str]:
        seen: dict[str, None] = {}
        for item in self.saver.list(None):
            seen.setdefault(str(item.config["configurable"]["thread_id"]), None)
        return sorted(seen)

    def _item(self, t: CheckpointTuple) -> SourceCheckpoint:
        if t.pending_writes is None:
            full = self.saver.get_tuple(t.config)
            t = full if full is not None else t
        conf = t.config["configurable"]
        parent = (t.parent_config or {}).get("configurable", {}).get("checkpoint_id")
        return SourceCheckpoint(
            str(conf["thread_id"]),
            str(conf.get("checkpoint_ns") or ""),
            str(conf["checkpoint_id"]),
            parent,
            t.checkpoint,
            meta_dict(t.metadata),
            writes_from_pending(t.pending_writes),
        )

    def load_thread(self, thread_id: str) -> list[SourceCheckpoint]:
        items = [self._item(t) for t in self.saver.list({"configurable": {"thread_id": thread_id}})]
        items.sort(key=lambda c: (c.checkpoint_id, c.checkpoint_ns))
        return items


def import_saver(
    saver: PostgresSaver, source: BaseCheckpointSaver[Any], **options: Unpack[ImportOptions]
) -> ImportReport:
    """Import every thread of another checkpointer into ``saver``.
    ``options``: :class:`~pgcheckpoint.importers.common.ImportOptions`.

    Example::

        memory = InMemorySaver()
        ...  # run graphs on it
        report = import_saver(saver, memory)
    """
    return run_job(saver, source_job(saver, lambda: SaverSource(source), options))


async def aimport_saver(
    saver: AsyncPostgresSaver, source: BaseCheckpointSaver[Any], **options: Unpack[ImportOptions]
) -> ImportReport:
    """:func:`import_saver` into an ``AsyncPostgresSaver`` (``source`` is read in a
    worker thread).

    Example::

        report = await aimport_saver(saver, memory)
    """
    return await arun_job(saver, source_job(saver, lambda: SaverSource(source), options))
