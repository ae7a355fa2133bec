"""The one-writer rule, both ways (docs/concurrency.md, concurrency.py).

Legitimate single-writer patterns (an addressed resume of an earlier
checkpoint, a subgraph continued from its own checkpoint, resuming a history
put by hand, time travel) always pass. Two writers that read the same head and
each write a child of it never fork the thread: the second is refused with
``ConcurrentUpdateError`` at its first put, which is its input checkpoint when
it brings input, so none of its nodes run (counted here). A put whose parent no
longer exists is refused with ``MissingParentError``.
"""

from __future__ import annotations

import asyncio
import operator
import os
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Annotated, Any, TypedDict

import psycopg
import pytest
from langgraph.checkpoint.base import empty_checkpoint
from langgraph.graph import END, START, StateGraph
from langgraph.types import Command, interrupt

from _faultgraph import check_history, config, counter_graph, start_input
from pgcheckpoint import (
    AsyncPostgresSaver,
    ConcurrentUpdateError,
    MissingParentError,
    PostgresSaver,
)
from pgcheckpoint.concurrency import EXISTS, HEAD, AddressedId, GuardMemory, HeadId

TESTS_DIR = Path(__file__).parent


# --- the rule itself, without a database -------------------------------------
def _params(parent: str | None, cid: str = "c2") -> dict[str, Any]:
    return {"thread_id": "t", "checkpoint_ns": "", "checkpoint_id": cid,
            "parent_checkpoint_id": parent}


def test_mode_follows_what_the_writer_read() -> None:
    memory = GuardMemory()
    loop = {"source": "loop"}
    assert memory.mode(_params("p"), HeadId("p"), loop) == HEAD
    assert memory.mode(_params("p"), AddressedId("p"), loop) == EXISTS
    assert memory.mode(_params("p"), "p", loop) == EXISTS  # chosen by the caller
    assert memory.mode(_params("p"), HeadId("p"), {"source": "fork"}) == EXISTS
    memory.saved(_params("p", cid="c1"))  # this saver wrote c1: its next step extends it
    assert memory.mode(_params("c1"), "c1", loop) == HEAD
    assert memory.mode(_params("c1"), AddressedId("c1"), loop) == EXISTS
    memory.saved(_params("c1", cid="c2"))  # built on: c1 is no longer "ours to extend"
    assert memory.mode(_params("c1"), "c1", loop) == EXISTS
    assert memory.mode(_params(None), None, {"source": "input"}) is None
    memory.read("t", "", head=True, found=False)  # read the thread as empty
    assert memory.mode(_params(None), None, {"source": "input"}) == HEAD
    assert memory.mode(_params(None), None, {"source": "fork"}) is None
    memory.read("t", "", head=False, found=True)
    assert memory.mode(_params(None), None, {"source": "input"}) is None


def test_memory_is_bounded() -> None:
    memory = GuardMemory(size=3)
    for i in range(10):
        memory.saved(_params(None, cid=f"c{i}"))
        memory.read(f"t{i}", "", head=True, found=False)
    assert memory.mode(_params("c9"), "c9", {}) == HEAD
    assert memory.mode(_params("c0"), "c0", {}) == EXISTS  # forgotten: only "exists"


class _AnyStr(str):
    """A matcher like LangGraph's tests use."""

    def __eq__(self, other: object) -> bool:
        return isinstance(other, str)

    def __ne__(self, other: object) -> bool:
        return not isinstance(other, str)

    __hash__ = str.__hash__


@pytest.mark.parametrize("kind", [HeadId, AddressedId])
def test_tagged_ids_are_plain_strings(kind: type[str]) -> None:
    tagged = kind("1f0-abc")
    assert tagged == "1f0-abc" and "1f0-abc" == tagged and tagged != "1f0-abd"  # noqa: SIM300
    assert hash(tagged) == hash("1f0-abc") and repr(tagged) == "'1f0-abc'"
    assert type(str(tagged)) is str and {tagged: 1}["1f0-abc"] == 1
    assert tagged == _AnyStr() and _AnyStr() == tagged
    assert not (tagged != _AnyStr())  # noqa: SIM202 (__ne__ is what is tested)
    assert {"checkpoint_id": tagged} == {"checkpoint_id": _AnyStr()}
    assert tagged == HeadId("1f0-abc") and tagged != AddressedId("x")


# --- legitimate single-writer patterns ----------------------------------------
class Asked(TypedDict):
    log: Annotated[list[str], operator.add]


def _ask_graph(checkpointer: Any) -> Any:
    def first(state: Asked) -> dict[str, Any]:
        return {"log": ["first"]}

    def ask(state: Asked) -> dict[str, Any]:
        return {"log": [f"answer:{interrupt('question')}"]}

    builder = StateGraph(Asked)
    builder.add_node("first", first)
    builder.add_node("ask", ask)
    builder.add_edge(START, "first")
    builder.add_edge("first", "ask")
    builder.add_edge("ask", END)
    return builder.compile(checkpointer=checkpointer)


def test_addressed_resume_of_a_superseded_checkpoint(saver: PostgresSaver) -> None:
    graph = _ask_graph(saver)
    cfg = {"configurable": {"thread_id": f"addr-{uuid.uuid4().hex[:8]}"}}
    graph.invoke({"log": []}, cfg)
    paused = graph.get_state(cfg).config
    graph.update_state(cfg, {"log": ["edited"]})  # the thread moves past `paused`
    out = graph.invoke(Command(resume="yes"), paused)  # refused before the fix
    assert out["log"] == ["first", "answer:yes"]
    assert graph.get_state(cfg).values["log"] == ["first", "answer:yes"]


def test_subgraph_continued_from_its_own_checkpoint(saver: PostgresSaver) -> None:
    sub = _ask_graph(True)
    builder = StateGraph(Asked)
    builder.add_node("router", lambda s: {"log": ["routed"]})
    builder.add_node("sub", sub)
    builder.add_node("post", lambda s: {"log": ["post"]})
    builder.add_edge(START, "router")
    builder.add_edge("router", "sub")
    builder.add_edge("sub", "post")
    graph = builder.compile(checkpointer=saver)
    cfg = {"configurable": {"thread_id": f"sub-{uuid.uuid4().hex[:8]}"}}
    graph.invoke({"log": []}, cfg)
    sub_state = graph.get_state(cfg, subgraphs=True).tasks[0].state
    assert sub_state is not None
    sub_cfg = sub_state.config
    assert "__interrupt__" in graph.invoke(None, sub_cfg)  # replay from the subgraph's checkpoint
    out = graph.invoke(Command(resume="again"), sub_cfg)  # refused before the fix
    assert out["log"][-2:] == ["answer:again", "post"]


def test_resume_of_a_history_put_by_hand(saver: PostgresSaver) -> None:
    """As LangGraph's migration tests do: put a saved history, resume an earlier checkpoint."""
    graph = _ask_graph(saver)
    src = {"configurable": {"thread_id": f"src-{uuid.uuid4().hex[:8]}"}}
    graph.invoke({"log": []}, src)
    graph.update_state(src, {"log": ["edited"]})
    history = list(saver.list(src))[::-1]
    dst = {"configurable": {"thread_id": f"dst-{uuid.uuid4().hex[:8]}", "checkpoint_ns": ""}}
    parent: str | None = None
    for tup in history:
        at = {"configurable": {**dst["configurable"], "checkpoint_id": tup.checkpoint["id"]}}
        for task_id, channel, value in tup.pending_writes or []:
            saver.put_writes(at, [(channel, value)], task_id)
        saver.put(
            {"configurable": {**dst["configurable"], "checkpoint_id": parent}},
            tup.checkpoint, tup.metadata, tup.checkpoint["channel_versions"],
        )
        parent = tup.checkpoint["id"]
    paused = next(s for s in graph.get_state_history(dst) if s.metadata["source"] == "loop"
                  and s.next == ("ask",))
    out = graph.invoke(Command(resume="two"), paused.config)  # refused before the fix
    assert out["log"] == ["first", "answer:two"]


def test_time_travel_and_forks(saver: PostgresSaver) -> None:
    graph = counter_graph(saver, delay=0)
    cfg = config(f"branches-{uuid.uuid4().hex[:8]}")
    graph.invoke(start_input(5), cfg)
    old = next(s for s in graph.get_state_history(cfg) if s.values.get("n") == 2)
    graph.invoke(None, old.config)
    graph.invoke({"target": 7}, old.config)
    graph.invoke(None, graph.update_state(old.config, None, as_node="__copy__"))
    graph.invoke(None, graph.update_state(old.config, {"target": 4}))
    assert graph.get_state(cfg).values["n"] == 4


# --- two writers: no fork, the loser refused before its nodes run -------------
class _PausingSaver(AsyncPostgresSaver):
    """Holds every head read of the root namespace until two runs have made one,
    so that the runs really read the same head."""

    barrier: asyncio.Barrier | None = None

    async def aget_tuple(self, config: Any) -> Any:
        found = await super().aget_tuple(config)
        conf = config["configurable"]
        head_read = not conf.get("checkpoint_id") and not conf.get("checkpoint_ns")
        if head_read and self.barrier is not None:
            await self.barrier.wait()
        return found


def _counting_graph(saver: Any, counts: list[str], name: str) -> Any:
    """counter_graph whose node records which run executed it."""
    from _faultgraph import Counter

    def step(state: Counter) -> dict[str, Any]:
        counts.append(name)
        return {"n": state["n"] + 1, "log": [state["n"] + 1]}

    builder = StateGraph(Counter)
    builder.add_node("step", step)
    builder.add_edge(START, "step")
    builder.add_conditional_edges("step", lambda s: "step" if s["n"] < s["target"] else END)
    return builder.compile(checkpointer=saver)


@pytest.mark.parametrize("durability", ["sync", "async", "exit"])
@pytest.mark.parametrize("fresh", [False, True], ids=["existing-thread", "new-thread"])
async def test_two_tasks_with_input_do_not_fork(
    db_url: str, durability: str, fresh: bool
) -> None:
    """The loser's first put (its input checkpoint, or under "exit" its only one) is
    refused. LangGraph runs a superstep while that put is in flight and waits for
    puts only under "sync", so the loser runs at most one superstep there; under
    "async" and "exit" it runs on, but nothing it writes is stored."""
    thread = f"race-{uuid.uuid4().hex[:8]}"
    counts: list[str] = []
    async with _PausingSaver.from_conn_string(db_url) as saver:
        start = 0
        if not fresh:
            await counter_graph(saver, delay=0).ainvoke(start_input(3), config(thread))
            start = 3
        saver.barrier = asyncio.Barrier(2)
        runs = [_counting_graph(saver, counts, name) for name in ("a", "b")]
        results = await asyncio.gather(
            *(g.ainvoke({"target": 12} if start else start_input(12), config(thread),
                        durability=durability) for g in runs),
            return_exceptions=True,
        )
    errors = [r for r in results if isinstance(r, BaseException)]
    assert len(errors) == 1 and isinstance(errors[0], ConcurrentUpdateError), results
    loser, winner = ("a", "b") if results[0] is errors[0] else ("b", "a")
    assert counts.count(winner) == 12 - start
    if durability == "sync":
        assert counts.count(loser) <= 1  # refused before a second superstep
    with PostgresSaver.from_conn_string(db_url) as reader:
        check_history(reader, thread, 12)  # one linear chain: no fork


async def test_two_tasks_resuming_do_not_fork(db_url: str) -> None:
    """Without input there is no input checkpoint: the loser is refused at its first step."""
    thread = f"resume-{uuid.uuid4().hex[:8]}"
    counts: list[str] = []
    async with _PausingSaver.from_conn_string(db_url) as saver:
        graph = counter_graph(saver, delay=0)
        await graph.ainvoke(start_input(2), config(thread))
        await graph.aupdate_state(config(thread), {"target": 10})
        saver.barrier = asyncio.Barrier(2)
        runs = [_counting_graph(saver, counts, name) for name in ("a", "b")]
        results = await asyncio.gather(
            *(g.ainvoke(None, config(thread), durability="sync") for g in runs),
            return_exceptions=True,
        )
    errors = [r for r in results if isinstance(r, BaseException)]
    assert len(errors) == 1 and isinstance(errors[0], ConcurrentUpdateError), results
    loser = "a" if results[0] is errors[0] else "b"
    assert counts.count(loser) == 1  # its first step ran, its checkpoint was refused
    with PostgresSaver.from_conn_string(db_url) as reader:
        check_history(reader, thread, 10)


async def test_two_tasks_with_exit_durability_do_not_fork(db_url: str) -> None:
    """Under durability="exit" a run saves only its last checkpoint: that put is refused."""
    thread = f"exit-{uuid.uuid4().hex[:8]}"
    counts: list[str] = []
    async with _PausingSaver.from_conn_string(db_url) as saver:
        await counter_graph(saver, delay=0).ainvoke(start_input(2), config(thread))
        saver.barrier = asyncio.Barrier(2)
        runs = [_counting_graph(saver, counts, name) for name in ("a", "b")]
        results = await asyncio.gather(
            *(g.ainvoke({"target": 6}, config(thread), durability="exit") for g in runs),
            return_exceptions=True,
        )
    errors = [r for r in results if isinstance(r, BaseException)]
    assert len(errors) == 1 and isinstance(errors[0], ConcurrentUpdateError), results
    with PostgresSaver.from_conn_string(db_url) as reader:
        tuples = list(reader.list(config(thread)))
        parents = [t.parent_config["configurable"]["checkpoint_id"]
                   for t in tuples if t.parent_config]
        assert len(parents) == len(set(parents)), "forked"
        assert tuples[0].checkpoint["channel_values"]["n"] == 6


# Two processes: each holds its head read until both have made one (files in a
# directory), then runs the thread to `target` with new input, counting its nodes.
CHILD = """
import os, sys, time
from langgraph.graph import END, START, StateGraph
from _faultgraph import Counter, config
from pgcheckpoint import ConcurrentUpdateError, PostgresSaver

url, thread_id, target, rendezvous, durability = sys.argv[1:3] + [int(sys.argv[3])] + sys.argv[4:6]
nodes = 0

class Saver(PostgresSaver):
    def get_tuple(self, config):
        found = super().get_tuple(config)
        conf = config["configurable"]
        if not conf.get("checkpoint_id") and not conf.get("checkpoint_ns"):
            open(os.path.join(rendezvous, str(os.getpid())), "w").close()
            deadline = time.monotonic() + 60
            while len(os.listdir(rendezvous)) < 2 and time.monotonic() < deadline:
                time.sleep(0.005)
        return found

def step(state):
    global nodes
    nodes += 1
    return {"n": state["n"] + 1, "log": [state["n"] + 1]}

with Saver.from_conn_string(url) as saver:
    b = StateGraph(Counter)
    b.add_node("step", step)
    b.add_edge(START, "step")
    b.add_conditional_edges("step", lambda s: "step" if s["n"] < s["target"] else END)
    graph = b.compile(checkpointer=saver)
    try:
        graph.invoke({"target": target}, config(thread_id), durability=durability)
    except ConcurrentUpdateError as exc:
        print("CONFLICT", nodes, exc)
        sys.exit(3)
print("OK", nodes)
"""


@pytest.mark.parametrize("durability", ["sync", "async"])
def test_two_processes_with_input_do_not_fork(
    db_url: str, tmp_path: Path, durability: str
) -> None:
    thread = f"procs-{uuid.uuid4().hex[:8]}"
    with PostgresSaver.from_conn_string(db_url) as saver:
        counter_graph(saver, delay=0).invoke(start_input(3), config(thread))
    path = f"{TESTS_DIR}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"
    args = [db_url, thread, "40", str(tmp_path), durability]
    procs = [
        subprocess.Popen([sys.executable, "-c", CHILD, *args],
                         env={**os.environ, "PYTHONPATH": path},
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        for _ in range(2)
    ]
    results = [(p.wait(timeout=180), *p.communicate()) for p in procs]
    assert sorted(code for code, _, _ in results) == [0, 3], results
    (winner,) = [out for code, out, _ in results if code == 0]
    (loser,) = [out for code, out, _ in results if code == 3]
    assert winner.split() == ["OK", "37"]
    assert "no longer the thread's latest checkpoint" in loser
    if durability == "sync":
        assert int(loser.split()[1]) <= 1  # refused at its input checkpoint
    with PostgresSaver.from_conn_string(db_url) as saver:
        check_history(saver, thread, 40)


# --- a parent that no longer exists -------------------------------------------
def _lose(db_url: str, thread: str, checkpoint_id: str) -> None:
    """Delete one checkpoint row, as a failover with asynchronous replication may lose it."""
    with psycopg.connect(db_url, autocommit=True) as conn:
        conn.execute("DELETE FROM checkpoints WHERE thread_id = %s AND checkpoint_id = %s",
                     (thread, checkpoint_id))


def _count(db_url: str, thread: str) -> int:
    with psycopg.connect(db_url, autocommit=True) as conn:
        row = conn.execute("SELECT count(*) FROM checkpoints WHERE thread_id = %s",
                           (thread,)).fetchone()
    return int(row[0]) if row else 0


def test_a_run_whose_last_checkpoint_was_lost_stops(saver: PostgresSaver, db_url: str) -> None:
    thread = f"lost-{uuid.uuid4().hex[:8]}"
    lost: list[str] = []

    def step(state: Any) -> dict[str, Any]:
        if state["n"] == 3 and not lost:  # the previous step's checkpoint vanishes
            head = saver.get_tuple(config(thread))
            assert head is not None
            lost.append(head.checkpoint["id"])
            _lose(db_url, thread, lost[0])
        return {"n": state["n"] + 1, "log": [state["n"] + 1]}

    from _faultgraph import Counter

    builder = StateGraph(Counter)
    builder.add_node("step", step)
    builder.add_edge(START, "step")
    builder.add_conditional_edges("step", lambda s: "step" if s["n"] < s["target"] else END)
    graph = builder.compile(checkpointer=saver)
    with pytest.raises(MissingParentError, match="does not exist"):
        graph.invoke(start_input(6), config(thread), durability="sync")
    tuples = list(saver.list(config(thread)))
    ids = {t.checkpoint["id"] for t in tuples}
    assert all(t.parent_config is None or t.parent_config["configurable"]["checkpoint_id"] in ids
               for t in tuples), "a checkpoint names a parent the database does not have"


@pytest.mark.parametrize("read", ["head", "addressed", "none"])
def test_a_put_naming_a_missing_parent_is_refused(
    saver: PostgresSaver, db_url: str, read: str
) -> None:
    thread = f"gone-{uuid.uuid4().hex[:8]}"
    graph = counter_graph(saver, delay=0)
    graph.invoke(start_input(3), config(thread))
    head = saver.get_tuple(config(thread))
    assert head is not None
    parent_cfg = {"head": head.config,
                  "addressed": saver.get_tuple(head.config).config,  # type: ignore[union-attr]
                  "none": {"configurable": {**head.config["configurable"],
                                            "checkpoint_id": str(head.checkpoint["id"])}}}[read]
    _lose(db_url, thread, head.checkpoint["id"])
    before = _count(db_url, thread)
    cp = empty_checkpoint()
    with pytest.raises(MissingParentError, match="does not exist"):
        saver.put(parent_cfg, cp, {"source": "loop", "step": 9}, {})
    assert _count(db_url, thread) == before


def test_a_stale_head_read_is_refused(saver: PostgresSaver) -> None:
    """A writer that read the head, then saw it move on, cannot add a child to it."""
    graph = counter_graph(saver, delay=0)
    thread = f"stale-{uuid.uuid4().hex[:8]}"
    graph.invoke(start_input(2), config(thread))
    head = saver.get_tuple(config(thread))
    assert head is not None
    graph.invoke({"target": 4}, config(thread))  # another run moves the thread on
    cp = empty_checkpoint()
    with pytest.raises(ConcurrentUpdateError, match="no longer the thread's latest"):
        saver.put(head.config, cp, {"source": "update", "step": 9}, {})
    # Addressing the same checkpoint is a deliberate fork and is allowed.
    addressed = saver.get_tuple(head.config)
    assert addressed is not None
    saver.put(addressed.config, empty_checkpoint(), {"source": "update", "step": 9}, {})
