"""Per-thread retention: a thread's own policy, and pins on threads and checkpoints.

Plans for the savers' ``set_thread_retention`` / ``get_thread_retention``,
``pin_thread`` / ``unpin_thread`` and ``pin_checkpoint`` / ``unpin_checkpoint``
(docs/retention.md). The sweep (:mod:`pgcheckpoint.sweeper`) reads what they store.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from langchain_core.runnables import RunnableConfig

from . import codec
from ._plans import Plan, PlanGen, Query, Rows, execute_plan, fetch_decoded
from .errors import InvalidInputError
from .retention import RetentionPolicy

if TYPE_CHECKING:
    from ._core import SaverCore



def set_retention_plan(
    core: SaverCore, thread_id: Any, policy: RetentionPolicy | None
) -> Plan[None]:
    tid = codec.text_id(thread_id, "thread_id")
    if policy is not None and not isinstance(policy, RetentionPolicy):
        raise InvalidInputError(
            f"policy must be a RetentionPolicy or None, got {type(policy).__name__}"
        )
    params = {"thread_id": tid, "retention": None if policy is None else policy.to_json()}
    return execute_plan("set_thread_retention", core.queries["retention_set_thread"], params)


def get_retention_plan(core: SaverCore, thread_id: Any) -> Plan[RetentionPolicy | None]:
    tid = codec.text_id(thread_id, "thread_id")

    def decode(rows: Rows) -> RetentionPolicy | None:
        if not rows or rows[0][0] is None:
            return None
        return RetentionPolicy.from_json(rows[0][0])

    return fetch_decoded(
        "get_thread_retention", core.queries["retention_get_thread"], {"thread_id": tid}, decode
    )


def pin_thread_plan(core: SaverCore, thread_id: Any, pinned: bool) -> Plan[None]:
    params = {"thread_id": codec.text_id(thread_id, "thread_id"), "pinned": pinned}
    name = "pin_thread" if pinned else "unpin_thread"
    return execute_plan(name, core.queries["retention_pin_thread"], params)


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
