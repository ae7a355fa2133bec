"""One writer per thread, and batched saves (plans only; no I/O).

Two processes that run the same thread at once both read its latest
checkpoint P and both write a child of P: the thread's history forks and one
of the runs is silently lost. pgcheckpoint refuses the second child instead.
The rule (docs/concurrency.md gives the reasoning and the cases):

    a checkpoint written by a graph step (metadata ``source == "loop"``) one
    step after its parent P is rejected with
    :class:`~pgcheckpoint.errors.ConcurrentUpdateError` when its (thread,
    namespace) already holds another checkpoint newer than P.

"One step after its parent" is every checkpoint under durability ``sync`` and
``async``; under ``exit`` a run saves only its last step, several steps after
the checkpoint it started from, which is also what re-running from an old
checkpoint looks like, so those are not checked (documented limitation).

Explicit branches are never refused: ``update_state`` (source ``update``),
time travel (LangGraph writes a ``fork`` checkpoint first) and new input from
an old checkpoint (source ``input``) choose their parent on purpose, and the
steps that follow them extend the branch they just made.

The check runs inside ``put_checkpoint`` (the PL/pgSQL function of migration
0003), after the statement's upsert of the ``threads`` row has taken that
row's lock, and with a snapshot of its own, so it sees every put on the thread
that committed before the lock was granted. Two racing writers are therefore
serialised by the row lock and the second one's check sees the first one's
checkpoint; the put stays one autocommitted statement.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, TypeVar

from ._plans import Plan, PlanGen, Query
from .errors import InvalidInputError

if TYPE_CHECKING:
    from langchain_core.runnables import RunnableConfig
    from langgraph.checkpoint.base import (
        ChannelVersions,
        Checkpoint,
        CheckpointMetadata,
    )

    from ._core import SaverCore

T = TypeVar("T")

BatchItem = tuple["RunnableConfig", "Checkpoint", "CheckpointMetadata", "ChannelVersions"]

# Sources whose parent is chosen by the graph loop, not by the caller.
GUARDED_SOURCES = frozenset({"loop"})


@dataclass(frozen=True, slots=True)
class PipelinePlan(Plan[T]):
    """A transactional plan the runner sends in pipeline mode (see the module doc)."""


@dataclass(frozen=True, slots=True)
class QueryMany(Query):
    """One statement run for each parameter set (psycopg's pipelined ``executemany``)."""

    params_seq: Sequence[Mapping[str, Any]] = field(default_factory=tuple)


def needs_guard(metadata: Mapping[str, Any], params: Mapping[str, Any]) -> bool:
    """Whether a put of this metadata and these parameters gets the fork check."""
    return (
        metadata.get("source") in GUARDED_SOURCES and params.get("parent_checkpoint_id") is not None
    )


def batch_plan(core: SaverCore, items: Sequence[BatchItem]) -> Plan[list[RunnableConfig]]:
    """Save checkpoints of many threads atomically in one pipelined transaction.

    Every item is validated and encoded before anything is sent. The items must
    name distinct (thread, namespace) pairs: a batch saves the next checkpoint
    of many threads, not a chain of one thread's.
    """
    if isinstance(items, str | bytes) or not isinstance(items, Sequence):
        raise InvalidInputError(f"items must be a list of tuples, got {type(items).__name__}")
    encoded = []
    seen: set[tuple[str, str]] = set()
    for n, item in enumerate(items):
        if not isinstance(item, Sequence) or len(item) != 4:
            raise InvalidInputError(
                f"items[{n}] must be (config, checkpoint, metadata, new_versions)"
            )
        params, config, meta = core._encode_put(*item)
        if needs_guard(meta, params):
            params["guard_step"] = meta.get("step")
        key = (params["thread_id"], params["checkpoint_ns"])
        if key in seen:
            raise InvalidInputError(
                f"items[{n}]: thread {key[0]!r} (namespace {key[1]!r}) appears twice in the batch"
            )
        seen.add(key)
        encoded.append((params, config))
    put_sql = core.queries["put_checkpoint"]

    def make() -> PlanGen[list[RunnableConfig]]:
        if not encoded:
            return []
        # Each put checks its own thread (put_checkpoint's guard); a refused
        # item rolls the whole batch back.
        yield QueryMany(put_sql, None, params_seq=[p for p, _ in encoded])
        return [c for _, c in encoded]

    return PipelinePlan("batch_save_checkpoints", make, transaction=True)


class BatchSync:
    """``batch_save_checkpoints`` for ``PostgresSaver``."""

    def batch_save_checkpoints(self, items: Sequence[BatchItem]) -> list[RunnableConfig]:
        """Save the next checkpoint of many threads in one transaction and one round trip
        (plus BEGIN/COMMIT, pipelined). ``items`` are ``put``'s arguments:
        ``(config, checkpoint, metadata, new_versions)``; returns their configs in order."""
        core: Any = self
        result: list[RunnableConfig] = core._runner.run(batch_plan(core, items))
        return result


class BatchAsync:
    """``abatch_save_checkpoints`` for ``AsyncPostgresSaver``."""

    async def abatch_save_checkpoints(self, items: Sequence[BatchItem]) -> list[RunnableConfig]:
        """See :meth:`BatchSync.batch_save_checkpoints`."""
        core: Any = self
        result: list[RunnableConfig] = await core._runner.run(batch_plan(core, items))
        return result
