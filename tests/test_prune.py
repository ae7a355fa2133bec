"""prune(strategy="keep_latest") against the contract's reference behaviour.

Each test runs a real graph twice on a real PostgreSQL, on a thread that is
pruned and on its twin that is not, and checks what the reference prune
(langgraph-checkpoint-postgres, and LangGraph's tests/test_prune_postgres.py)
promises: the state reads back exactly as before, except that a kept
checkpoint whose parent was deleted has no parent; finished subgraph calls go
while an interrupted subgraph and a ``checkpointer=True`` subgraph stay; and
the pruned thread then runs on exactly like its twin. After every prune, no
checkpoint in the database names a parent that does not exist.
"""

from __future__ import annotations

import itertools
import threading
from collections.abc import Sequence
from typing import Annotated, Any, TypedDict

import psycopg
import pytest
from langgraph.channels.delta import DeltaChannel
from langgraph.graph import START, StateGraph
from langgraph.types import Command

from _history import (
    cfg,
    dangling,
    fan_graph,
    ids,
    memory_graph,
    namespaces,
    parentless,
    remembered,
    sql,
    subgraph_graph,
    turn,
)
from pgcheckpoint import AsyncPostgresSaver, PostgresSaver


@pytest.mark.parametrize("durability", ["sync", "async", "exit"])
def test_keep_latest_keeps_only_the_head_with_no_parent(
    saver: PostgresSaver, db_url: str, durability: Any
) -> None:
    g = fan_graph(saver)
    for i in range(3):
        for t in ("pruned", "twin"):
            g.invoke(turn(i), cfg(t), durability=durability)
    before = g.get_state(cfg("pruned"))
    assert before.parent_config is not None
    twin_ids = ids(saver, "twin")

    saver.prune(["pruned"])

    assert ids(saver, "pruned") == [before.config["configurable"]["checkpoint_id"]]
    assert g.get_state(cfg("pruned")) == parentless(before)
    assert ids(saver, "twin") == twin_ids  # another thread is not touched
    assert dangling(db_url) == []
    for t in ("pruned", "twin"):
        g.invoke(turn(3), cfg(t), durability=durability)
    assert g.get_state(cfg("pruned")).values == g.get_state(cfg("twin")).values
    assert dangling(db_url) == []


def test_keep_latest_keeps_a_pending_interrupt_resumable(saver: PostgresSaver, db_url: str) -> None:
    g = fan_graph(saver, ask=True)
    for t in ("pruned", "twin"):
        for i in range(2):
            g.invoke(turn(i), cfg(t))
            g.invoke(Command(resume=f"yes {i}"), cfg(t))
        g.invoke(turn(2), cfg(t))
    before = g.get_state(cfg("pruned"))
    assert before.interrupts

    saver.prune(["pruned"])

    assert g.get_state(cfg("pruned")) == parentless(before)
    assert dangling(db_url) == []
    for t in ("pruned", "twin"):
        g.invoke(Command(resume="yes 2"), cfg(t))
    after = g.get_state(cfg("pruned")).values
    assert after == g.get_state(cfg("twin")).values
    assert after["notes"][-1] == "answer yes 2 after 11"


def test_keep_latest_keeps_writes_of_tasks_that_finished_before_a_failure(
    saver: PostgresSaver, db_url: str
) -> None:
    fail: set[str] = set()
    g = fan_graph(saver, fail=fail)
    for t in ("pruned", "twin"):
        for i in range(2):
            g.invoke(turn(i), cfg(t))
        fail.add("right")
        with pytest.raises(ValueError, match="right failed"):
            g.invoke(turn(2), cfg(t))
    head = saver.get_tuple(cfg("pruned"))
    assert head is not None and ("notes", ["left"]) in [(c, v) for _, c, v in head.pending_writes]
    before = g.get_state(cfg("pruned"))

    saver.prune(["pruned"])

    after = saver.get_tuple(cfg("pruned"))
    assert after is not None and after.pending_writes == head.pending_writes
    assert g.get_state(cfg("pruned")) == parentless(before)
    assert dangling(db_url) == []
    for t in ("pruned", "twin"):
        g.invoke(None, cfg(t))
    assert g.get_state(cfg("pruned")).values == g.get_state(cfg("twin")).values


def test_keep_latest_keeps_an_interrupted_subgraph_but_not_finished_calls(
    saver: PostgresSaver, db_url: str
) -> None:
    g = subgraph_graph(saver)
    for t in ("pruned", "twin"):
        for i in range(2):
            g.invoke(turn(i), cfg(t))
            g.invoke(Command(resume=f"yes {i}"), cfg(t))
        g.invoke(turn(2), cfg(t))
    assert len(namespaces(saver, "pruned")) == 4  # the root and three calls
    before = g.get_state(cfg("pruned"), subgraphs=True)
    paused = before.tasks[0].state.config["configurable"]["checkpoint_ns"]

    saver.prune(["pruned"])

    assert namespaces(saver, "pruned") == ["", paused]
    assert sql(db_url, "SELECT DISTINCT checkpoint_ns FROM writes WHERE thread_id = 'pruned' "
                       "ORDER BY 1") == [("",), (paused,)]
    assert g.get_state(cfg("pruned"), subgraphs=True) == parentless(before)
    assert dangling(db_url) == []
    for t in ("pruned", "twin"):
        g.invoke(Command(resume="yes 2"), cfg(t))
    assert g.get_state(cfg("pruned")).values == g.get_state(cfg("twin")).values


@pytest.mark.parametrize("durability", ["sync", "async"])
def test_keep_latest_keeps_a_checkpointer_true_subgraph_but_not_finished_calls(
    saver: PostgresSaver, db_url: str, durability: Any
) -> None:
    g = memory_graph(saver)
    for i in range(3):
        for t in ("pruned", "twin"):
            g.invoke(turn(i), cfg(t), durability=durability)
    assert len(namespaces(saver, "pruned")) == 2 + 3  # root, memory, three calls

    saver.prune(["pruned"])

    assert namespaces(saver, "pruned") == ["", "memory"]
    assert len(ids(saver, "pruned", "memory")) == 1
    assert dangling(db_url) == []
    for t in ("pruned", "twin"):
        g.invoke(turn(3), cfg(t), durability=durability)
    values = g.get_state(cfg("pruned")).values
    assert values == g.get_state(cfg("twin")).values
    assert remembered(values, 4)  # the subgraph's memory survived


def _concat(state: list[str], writes: Sequence[list[str]]) -> list[str]:
    out = list(state)
    for w in writes:
        out.extend(w)
    return out


class DeltaState(TypedDict):
    log: Annotated[list[str], DeltaChannel(_concat, snapshot_frequency=3)]


def _log(state: DeltaState) -> dict[str, Any]:
    return {"log": [f"entry {len(state['log'])}"]}


def test_keep_latest_on_a_delta_channel_keeps_the_chain_it_needs(
    saver: PostgresSaver, db_url: str
) -> None:
    # The reference prune refuses DeltaChannel threads; ours keeps the ancestors
    # the channel is rebuilt from, linked as before, and only the oldest of
    # them, whose parent is deleted, loses its parent.
    b = StateGraph(DeltaState)
    b.add_node("a", _log)
    b.add_edge(START, "a")
    g = b.compile(checkpointer=saver)
    for i in range(7):
        for t in ("pruned", "twin"):
            g.invoke({"log": [f"in {i}"]}, cfg(t))
    before = g.get_state(cfg("pruned")).values
    all_ids = ids(saver, "pruned")

    saver.prune(["pruned"])

    kept = list(saver.list(cfg("pruned")))
    assert 1 < len(kept) < len(all_ids)
    kept_ids = [t.config["configurable"]["checkpoint_id"] for t in kept]
    assert kept_ids == all_ids[: len(kept)]  # the head and its nearest ancestors
    for child, parent in itertools.pairwise(kept):
        assert child.parent_config is not None
        assert child.parent_config["configurable"]["checkpoint_id"] == (
            parent.config["configurable"]["checkpoint_id"])
    assert kept[-1].parent_config is None
    assert dangling(db_url) == []
    assert g.get_state(cfg("pruned")).values == before
    for t in ("pruned", "twin"):
        g.invoke({"log": ["more"]}, cfg(t))
    assert g.get_state(cfg("pruned")).values == g.get_state(cfg("twin")).values


def test_keep_latest_waits_for_a_turn_being_saved(db_url: str) -> None:
    # prune locks the thread row that put_checkpoint upserts first: a turn that
    # saves while prune runs waits for it and is kept whole, and the turn saved
    # before it is still the parent the new checkpoint names.
    with PostgresSaver.from_conn_string(db_url) as saver, \
            PostgresSaver.from_conn_string(db_url) as pruner, \
            psycopg.connect(db_url) as locker:
        g = fan_graph(saver)
        for i in range(3):
            for t in ("pruned", "twin"):
                g.invoke(turn(i), cfg(t))
        locker.execute("SELECT 1 FROM threads WHERE thread_id = 'pruned' FOR UPDATE")
        done = threading.Event()

        def run_turn() -> None:
            g.invoke(turn(3), cfg("pruned"))
            done.set()

        writer = threading.Thread(target=run_turn)
        writer.start()
        prune = threading.Thread(target=pruner.prune, args=(["pruned"],))
        prune.start()
        locker.commit()  # both race for the row lock now
        writer.join(30)
        prune.join(30)
        assert done.is_set() and not prune.is_alive()
        g.invoke(turn(3), cfg("twin"))
        assert g.get_state(cfg("pruned")).values == g.get_state(cfg("twin")).values
        assert dangling(db_url) == []


async def test_akeep_latest_keeps_a_pending_interrupt_resumable(
    asaver: AsyncPostgresSaver, db_url: str
) -> None:
    g = fan_graph(asaver, ask=True)
    for t in ("pruned", "twin"):
        await g.ainvoke(turn(0), cfg(t))
        await g.ainvoke(Command(resume="yes 0"), cfg(t))
        await g.ainvoke(turn(1), cfg(t))
    before = await g.aget_state(cfg("pruned"))
    assert before.interrupts

    await asaver.aprune(["pruned"])

    assert [t.config["configurable"]["checkpoint_id"]
            async for t in asaver.alist(cfg("pruned"))] == [
        before.config["configurable"]["checkpoint_id"]]
    assert await g.aget_state(cfg("pruned")) == parentless(before)
    assert dangling(db_url) == []
    for t in ("pruned", "twin"):
        await g.ainvoke(Command(resume="yes 1"), cfg(t))
    assert (await g.aget_state(cfg("pruned"))).values == (await g.aget_state(cfg("twin"))).values
