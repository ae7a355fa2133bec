"""Batched saves: the next checkpoint of many threads in one pipelined transaction."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from ._guard import guard_put
from ._plans import PipelinePlan, Plan, PlanGen, QueryMany
from .errors import InvalidInputError

if TYPE_CHECKING:
    from langchain_core.runnables import RunnableConfig
    from langgraph.checkpoint.base import ChannelVersions, Checkpoint, CheckpointMetadata

    from ._core import SaverCore

BatchItem = tuple["RunnableConfig", "Checkpoint", "CheckpointMetadata", "ChannelVersions"]


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
        params, config, meta = core.encode_put(*item)
        guard_put(core.guard_memory, item[0], params, meta)
        key = (params["thread_id"], params["checkpoint_ns"])
        if key in seen:
            raise InvalidInputError(
                f"items[{n}]: thread {key[0]!r} (namespace {key[1]!r}) appears twice in the batch"
            )
        seen.add(key)
        encoded.append((params, config))
    queries = core.queries

    def make() -> PlanGen[list[RunnableConfig]]:
        if not encoded:
            return []
        citus = yield from core.citus()
        # Each put checks its own thread (put_checkpoint's guard); a refused
        # item rolls the whole batch back. On Citus each is a call of
        # pgcheckpoint_put, delegated to its thread's node (put_checkpoint's
        # CTEs would go through the coordinator); the transaction spans the
        # nodes the threads are on and commits on all or none (two-phase commit).
        sql = queries["put_function" if citus else "put_checkpoint"]
        yield QueryMany(sql, None, params_seq=[p for p, _ in encoded])
        for params, _ in encoded:
            core.guard_memory.saved(params)
        return [c for _, c in encoded]

    return PipelinePlan("batch_save_checkpoints", make, transaction=True)
