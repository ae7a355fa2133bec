"""Import from any ``BaseCheckpointSaver`` (InMemorySaver, Redis, ...) through its public API.

Only ``list`` is used (and ``get_tuple`` when a store's ``list`` leaves
``pending_writes`` out), so any conforming saver works. The public API does
not expose a write's ``idx`` or ``task_path``: each task's writes are numbered
in order (special channels keep their fixed negative idx) and ``task_path`` is
empty. BaseCheckpointSaver has no "list threads" call either, so unless
``thread_ids`` is given one pass over ``list(None)`` collects them, keeping
only the ids.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any

from langgraph.checkpoint.base import BaseCheckpointSaver, CheckpointTuple

from .common import (
    ImportReport,
    SourceCheckpoint,
    ThreadResult,
    meta_dict,
    run_import,
    writes_from_pending,
)

if TYPE_CHECKING:
    from ..saver import PostgresSaver

__all__ = ["SaverSource", "import_saver"]


class SaverSource:
    """A LangGraph checkpointer read through ``list`` / ``get_tuple``."""

    def __init__(self, saver: BaseCheckpointSaver[Any]) -> None:
        self.saver = saver
        self.name = f"saver:{type(saver).__name__}"

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
    saver: PostgresSaver,
    source: BaseCheckpointSaver[Any],
    *,
    thread_ids: Iterable[str] | None = None,
    verify: bool = True,
    on_start: Callable[[int], None] | None = None,
    on_thread: Callable[[ThreadResult], None] | None = None,
) -> ImportReport:
    """Import every thread of another checkpointer into ``saver``.

    Example::

        memory = InMemorySaver()
        ...  # run graphs on it
        report = import_saver(saver, memory)
    """
    return run_import(
        saver,
        SaverSource(source),
        thread_ids=thread_ids,
        verify=verify,
        on_start=on_start,
        on_thread=on_thread,
    )
