"""The source model every importer shares: a source is a list of thread ids and
a function that loads one thread, decoded (:class:`SourceCheckpoint`) or as
stored (:class:`~pgcheckpoint.importers.rows.StoredThread`); see ``common.py``."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

from langchain_core.runnables import RunnableConfig
from langgraph.checkpoint.base import Checkpoint

from .rows import StoredThread


@dataclass(frozen=True, slots=True)
class SourceWrite:
    """One pending write as the source stores it."""

    task_id: str
    channel: str
    value: Any
    idx: int
    task_path: str = ""


@dataclass(slots=True)
class SourceCheckpoint:
    """One checkpoint of a source thread, decoded."""

    thread_id: str
    checkpoint_ns: str
    checkpoint_id: str
    parent_checkpoint_id: str | None
    checkpoint: Checkpoint
    metadata: dict[str, Any]
    writes: list[SourceWrite] = field(default_factory=list)

    @property
    def config(self) -> RunnableConfig:
        return {
            "configurable": {
                "thread_id": self.thread_id,
                "checkpoint_ns": self.checkpoint_ns,
                "checkpoint_id": self.checkpoint_id,
            }
        }


@runtime_checkable
class Source(Protocol):
    """What :func:`run_import` reads from. Its calls are made one at a time, from a
    worker thread when the target saver is async (``jobs.py``). A source that leaves
    some of its content out (a partial NDJSON file) lists it in ``left_out``."""

    name: str

    def thread_ids(self) -> list[str]:
        """Every thread id of the source, in a stable order."""
        ...

    def load_thread(self, thread_id: str) -> list[SourceCheckpoint] | StoredThread:
        """One thread: its checkpoints decoded (oldest first, with their writes), or
        every row of it in storage form."""
        ...


@runtime_checkable
class OpenedSource(Source, Protocol):
    """A source the import opened itself, and closes once it ends (:func:`source_job`)."""

    def close(self) -> None:
        """Release what the source holds open (a file, a connection)."""
        ...


@runtime_checkable
class CheckedSource(Source, Protocol):
    """A source that can check a thread more cheaply than loading it for a write."""

    def check_thread(self, thread_id: str) -> None:
        """Raise TransferError if the thread does not hold together (rows.check_thread)."""
        ...
