"""Graphs and checks shared by the prune and retention tests (tests/test_prune.py,
tests/test_retention.py): what keep_latest and a sweep must leave behind."""

from __future__ import annotations

import operator
from collections.abc import Sequence
from typing import Annotated, Any, TypedDict

import psycopg
from langgraph.graph import START, StateGraph
from langgraph.types import StateSnapshot, interrupt

from pgcheckpoint import PostgresSaver


class State(TypedDict):
    notes: Annotated[list[str], operator.add]


def cfg(thread: str) -> dict[str, Any]:
    return {"configurable": {"thread_id": thread}}


def sql(url: str, query: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
    with psycopg.connect(url, autocommit=True) as conn:
        cur = conn.execute(query, params)
        return cur.fetchall() if cur.description else []


# A checkpoint naming a parent that is not in the table: what neither prune nor
# the sweep may leave behind (get_state would show a parent_config that leads
# nowhere).
DANGLING = """
SELECT c.thread_id, c.checkpoint_ns, c.checkpoint_id, c.parent_checkpoint_id
FROM checkpoints c
WHERE c.parent_checkpoint_id IS NOT NULL
  AND NOT EXISTS (SELECT 1 FROM checkpoints p
                  WHERE p.thread_id = c.thread_id AND p.checkpoint_ns = c.checkpoint_ns
                    AND p.checkpoint_id = c.parent_checkpoint_id)
"""


def dangling(url: str) -> list[tuple[Any, ...]]:
    return sql(url, DANGLING)


def namespaces(saver: PostgresSaver, thread: str) -> list[str]:
    return sorted({t.config["configurable"]["checkpoint_ns"] for t in saver.list(cfg(thread))})


def ids(saver: PostgresSaver, thread: str, ns: str = "") -> list[str]:
    return [t.config["configurable"]["checkpoint_id"]
            for t in saver.list({"configurable": {"thread_id": thread, "checkpoint_ns": ns}})]


def parentless(snap: StateSnapshot) -> StateSnapshot:
    """The snapshot as prune must leave it: no parent, here and in subgraph states."""
    tasks = tuple(t._replace(state=parentless(t.state)) if isinstance(t.state, StateSnapshot)
                  else t for t in snap.tasks)
    return snap._replace(parent_config=None, tasks=tasks)


def _note(name: str, fail: set[str] | None = None) -> Any:
    def node(state: State) -> dict[str, Any]:
        if fail is not None and name in fail:
            fail.discard(name)
            raise ValueError(f"{name} failed")
        return {"notes": [name]}

    return node


def _ask(state: State) -> dict[str, Any]:
    return {"notes": [f"answer {interrupt('approve?')} after {len(state['notes'])}"]}


def fan_graph(saver: Any, *, ask: bool = False, fail: set[str] | None = None) -> Any:
    """left and right in one step, then reply (which may ask)."""
    b = StateGraph(State)
    b.add_node("left", _note("left", fail))
    b.add_node("right", _note("right", fail))
    b.add_node("reply", _ask if ask else _note("reply"))
    b.add_edge(START, "left")
    b.add_edge(START, "right")
    b.add_edge(["left", "right"], "reply")
    return b.compile(checkpointer=saver)


def turn(i: int) -> dict[str, Any]:
    return {"notes": [f"turn {i}"]}


def subgraph_graph(saver: Any) -> Any:
    sub = StateGraph(State)
    sub.add_node("reply", _ask)
    sub.add_edge(START, "reply")
    outer = StateGraph(State)
    outer.add_node("sub", sub.compile())
    outer.add_edge(START, "sub")
    return outer.compile(checkpointer=saver)


def _merge(left: list[str], right: list[str]) -> list[str]:
    # A subgraph run as a node returns its whole state, the parent's notes
    # included: a plain `operator.add` would double the list at every call.
    return left + [n for n in right if n not in left]


class MemoryState(TypedDict):
    notes: Annotated[list[str], _merge]


class Calls(TypedDict):
    notes: Annotated[list[str], _merge]
    calls: Annotated[list[str], operator.add]


def counting(name: str, *, checkpointer: bool | None) -> Any:
    def count(state: Calls) -> dict[str, Any]:
        n = len(state["calls"]) + 1
        return {"calls": [name], "notes": [f"{name} call {n} after {len(state['notes'])} notes"]}

    b = StateGraph(Calls)
    b.add_node("count", count)
    b.add_edge(START, "count")
    return b.compile(checkpointer=checkpointer)


def memory_graph(saver: Any) -> Any:
    """A `checkpointer=True` subgraph (its state outlives each call), then a plain one."""
    b = StateGraph(MemoryState)
    b.add_node("memory", counting("memory", checkpointer=True))
    b.add_node("call", counting("call", checkpointer=None))
    b.add_edge(START, "memory")
    b.add_edge("memory", "call")
    return b.compile(checkpointer=saver)


def remembered(values: dict[str, Any], calls: int) -> bool:
    """Whether the memory subgraph counted ``calls`` calls (it kept its state)."""
    return any(n.startswith(f"memory call {calls} after") for n in values["notes"])
