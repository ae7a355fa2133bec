"""Real LangGraph graphs on both savers, compared with the same graphs on InMemorySaver.

Every scenario runs with sync ``invoke`` (PostgresSaver, on a worker thread so
the event loop stays free) and async ``ainvoke`` (AsyncPostgresSaver), under
each durability mode. The whole state history, not only the final state, must
match what InMemorySaver records.
"""

from __future__ import annotations

import asyncio
import operator
from typing import Annotated, Any, Literal

import psycopg
import pytest
from langchain_core.messages import AIMessage, AnyMessage, BaseMessage, HumanMessage
from langchain_core.runnables import RunnableConfig
from langgraph.checkpoint.base import BaseCheckpointSaver
from langgraph.checkpoint.memory import InMemorySaver
from langgraph.graph import END, START, StateGraph
from langgraph.graph.message import add_messages
from langgraph.types import Command, Send, StateSnapshot, interrupt
from typing_extensions import TypedDict

from pgcheckpoint import AsyncPostgresSaver, PostgresSaver

Durability = Literal["sync", "async", "exit"]
DURABILITIES: tuple[Durability, ...] = ("sync", "async", "exit")


class Driver:
    """Runs a compiled graph the sync way (``invoke``) or the async way (``ainvoke``)."""

    def __init__(self, is_async: bool, saver: BaseCheckpointSaver[Any]) -> None:
        self.is_async = is_async
        self.saver = saver

    async def invoke(self, graph: Any, inp: Any, cfg: RunnableConfig, **kw: Any) -> Any:
        if self.is_async:
            return await graph.ainvoke(inp, cfg, **kw)
        return await asyncio.to_thread(graph.invoke, inp, cfg, **kw)

    async def state(self, graph: Any, cfg: RunnableConfig, subgraphs: bool = False) -> Any:
        if self.is_async:
            return await graph.aget_state(cfg, subgraphs=subgraphs)
        return await asyncio.to_thread(graph.get_state, cfg, subgraphs=subgraphs)

    async def history(self, graph: Any, cfg: RunnableConfig) -> list[StateSnapshot]:
        if self.is_async:
            return [s async for s in graph.aget_state_history(cfg)]
        return await asyncio.to_thread(lambda: list(graph.get_state_history(cfg)))

    async def update(self, graph: Any, cfg: RunnableConfig, values: Any) -> RunnableConfig:
        if self.is_async:
            return await graph.aupdate_state(cfg, values)  # type: ignore[no-any-return]
        return await asyncio.to_thread(graph.update_state, cfg, values)  # type: ignore[no-any-return]

    def memory(self) -> Driver:
        """The same way of running, on a fresh InMemorySaver."""
        return Driver(self.is_async, InMemorySaver())


@pytest.fixture
def driver(either_saver: PostgresSaver | AsyncPostgresSaver) -> Driver:
    """The graph tests run once on each saver (conftest's ``either_saver``)."""
    return Driver(isinstance(either_saver, AsyncPostgresSaver), either_saver)


def _norm(value: Any) -> Any:
    if isinstance(value, BaseMessage):
        return (value.type, value.content, value.id)
    if isinstance(value, dict):
        return {k: _norm(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_norm(v) for v in value]
    return value


def _snap(s: StateSnapshot) -> Any:
    """What must agree between savers: values, next nodes, step, source, interrupts."""
    return (
        _norm(s.values),
        tuple(s.next),
        s.metadata.get("source") if s.metadata else None,
        s.metadata.get("step") if s.metadata else None,
        [[_norm(i.value) for i in t.interrupts] for t in s.tasks],
    )


async def _compare(pg: Driver, mem: Driver, graphs: tuple[Any, Any], cfg: RunnableConfig) -> None:
    pg_hist = await pg.history(graphs[0], cfg)
    mem_hist = await mem.history(graphs[1], cfg)
    assert [_snap(s) for s in pg_hist] == [_snap(s) for s in mem_hist]
    assert pg_hist, "no checkpoints were saved"


# --- graphs -------------------------------------------------------------------


class ChatState(TypedDict, total=False):
    messages: Annotated[list[AnyMessage], add_messages]
    log: Annotated[list[str], operator.add]
    count: int


def chat_graph(saver: BaseCheckpointSaver[Any]) -> Any:
    def bot(state: ChatState) -> ChatState:
        n = len(state["messages"])
        last = state["messages"][-1].content
        return {
            "messages": [AIMessage(content=f"echo {last}", id=f"ai-{n}")],
            "log": ["bot"],
            "count": state.get("count", 0) + 1,
        }

    def tool(state: ChatState) -> ChatState:
        return {"log": [f"tool{state['count']}"]}

    b = StateGraph(ChatState)
    b.add_node("bot", bot)
    b.add_node("tool", tool)
    b.add_edge(START, "bot")
    b.add_edge("bot", "tool")
    b.add_edge("tool", END)
    return b.compile(checkpointer=saver)


def interrupt_graph(saver: BaseCheckpointSaver[Any]) -> Any:
    def prep(state: ChatState) -> ChatState:
        return {"log": ["prep"], "count": 1}

    def ask(state: ChatState) -> ChatState:
        answer = interrupt({"question": "approve?", "count": state["count"]})
        return {"log": [f"answer:{answer}"]}

    def finish(state: ChatState) -> ChatState:
        return {"log": ["finish"]}

    b = StateGraph(ChatState)
    b.add_node("prep", prep)
    b.add_node("ask", ask)
    b.add_node("finish", finish)
    b.add_edge(START, "prep")
    b.add_edge("prep", "ask")
    b.add_edge("ask", "finish")
    b.add_edge("finish", END)
    return b.compile(checkpointer=saver)


def subgraph_graph(saver: BaseCheckpointSaver[Any]) -> Any:
    def inner_a(state: ChatState) -> ChatState:
        return {"log": ["inner_a"]}

    def inner_ask(state: ChatState) -> ChatState:
        return {"log": [f"inner:{interrupt('inner?')}"]}

    child = StateGraph(ChatState)
    child.add_node("inner_a", inner_a)
    child.add_node("inner_ask", inner_ask)
    child.add_edge(START, "inner_a")
    child.add_edge("inner_a", "inner_ask")
    child.add_edge("inner_ask", END)

    def outer(state: ChatState) -> ChatState:
        return {"log": ["outer"]}

    parent = StateGraph(ChatState)
    parent.add_node("outer", outer)
    parent.add_node("child", child.compile())
    parent.add_edge(START, "outer")
    parent.add_edge("outer", "child")
    parent.add_edge("child", END)
    return parent.compile(checkpointer=saver)


class FanState(TypedDict, total=False):
    items: list[int]
    results: Annotated[list[int], operator.add]


def fanout_graph(saver: BaseCheckpointSaver[Any]) -> Any:
    def fan(state: FanState) -> list[Send]:
        return [Send("work", {"items": [i]}) for i in state["items"]]

    def work(state: FanState) -> FanState:
        return {"results": [state["items"][0] * 10]}

    def total(state: FanState) -> FanState:
        return {"results": [sum(state["results"])]}

    b = StateGraph(FanState)
    b.add_node("work", work)
    b.add_node("total", total)
    b.add_conditional_edges(START, fan, ["work"])
    b.add_edge("work", "total")
    b.add_edge("total", END)
    return b.compile(checkpointer=saver)


def _cfg(thread: str = "t1") -> RunnableConfig:
    return {"configurable": {"thread_id": thread}}


def _hi(text: str, mid: str) -> dict[str, Any]:
    return {"messages": [HumanMessage(content=text, id=mid)]}


# --- scenarios ----------------------------------------------------------------


@pytest.mark.parametrize("durability", DURABILITIES)
async def test_reducers(driver: Driver, durability: Durability) -> None:
    """add_messages and operator.add accumulate across invocations."""
    mem = driver.memory()
    graphs = (chat_graph(driver.saver), chat_graph(mem.saver))
    for d, g in ((driver, graphs[0]), (mem, graphs[1])):
        await d.invoke(g, _hi("hi", "h1"), _cfg(), durability=durability)
        out = await d.invoke(g, _hi("again", "h2"), _cfg(), durability=durability)
    assert [m.content for m in out["messages"]] == ["hi", "echo hi", "again", "echo again"]
    assert out["log"] == ["bot", "tool1", "bot", "tool2"]
    state = await driver.state(graphs[0], _cfg())
    assert _norm(state.values) == _norm(out) and state.next == ()
    await _compare(driver, mem, graphs, _cfg())


@pytest.mark.parametrize("durability", DURABILITIES)
async def test_interrupt_and_resume(driver: Driver, durability: Durability) -> None:
    """interrupt() stops the run; Command(resume=...) continues it where it stopped."""
    mem = driver.memory()
    graphs = (interrupt_graph(driver.saver), interrupt_graph(mem.saver))
    for d, g in ((driver, graphs[0]), (mem, graphs[1])):
        first = await d.invoke(g, {"log": []}, _cfg(), durability=durability)
        assert first["__interrupt__"][0].value == {"question": "approve?", "count": 1}
        paused = await d.state(g, _cfg())
        assert paused.next == ("ask",)
        assert paused.tasks[0].interrupts[0].value["question"] == "approve?"
        out = await d.invoke(g, Command(resume="yes"), _cfg(), durability=durability)
        assert out["log"] == ["prep", "answer:yes", "finish"]
    assert (await driver.state(graphs[0], _cfg())).next == ()
    await _compare(driver, mem, graphs, _cfg())


@pytest.mark.parametrize("durability", DURABILITIES)
async def test_time_travel_and_fork(driver: Driver, durability: Durability) -> None:
    """Re-running from an earlier checkpoint and update_state forks leave history intact."""
    mem = driver.memory()
    graphs = (chat_graph(driver.saver), chat_graph(mem.saver))
    for d, g in ((driver, graphs[0]), (mem, graphs[1])):
        await d.invoke(g, _hi("hi", "h1"), _cfg(), durability=durability)
        await d.invoke(g, _hi("again", "h2"), _cfg(), durability=durability)
        hist = await d.history(g, _cfg())
        # The final checkpoint of the first run: two messages, nothing left to do.
        old = next(s for s in hist if len(s.values.get("messages", [])) == 2 and not s.next)
        out = await d.invoke(g, _hi("other", "h3"), old.config, durability=durability)
        assert [m.content for m in out["messages"]] == ["hi", "echo hi", "other", "echo other"]
        if durability != "exit":
            # Replay: the checkpoint just before "tool" of the first run runs "tool" again.
            before_tool = next(
                s for s in hist if s.next == ("tool",) and len(s.values["messages"]) == 2
            )
            replay = await d.invoke(g, None, before_tool.config, durability=durability)
            assert replay["log"] == ["bot", "tool1"]
        forked = await d.update(g, old.config, {"log": ["patched"]})
        fork_state = await d.state(g, forked)
        assert fork_state.values["log"] == ["bot", "tool1", "patched"]
        assert fork_state.parent_config is not None
        assert (
            fork_state.parent_config["configurable"]["checkpoint_id"]
            == old.config["configurable"]["checkpoint_id"]
        )
        # The original branch is still there, unchanged.
        again = await d.state(g, hist[0].config)
        assert [m.content for m in again.values["messages"]][-1] == "echo again"
    await _compare(driver, mem, graphs, _cfg())


@pytest.mark.parametrize("durability", DURABILITIES)
async def test_subgraph_namespaces(driver: Driver, durability: Durability, db_url: str) -> None:
    """A subgraph that interrupts is checkpointed under its own checkpoint_ns and resumes."""
    mem = driver.memory()
    graphs = (subgraph_graph(driver.saver), subgraph_graph(mem.saver))
    for d, g in ((driver, graphs[0]), (mem, graphs[1])):
        first = await d.invoke(g, {"log": []}, _cfg(), durability=durability)
        assert first["__interrupt__"][0].value == "inner?"
        state = await d.state(g, _cfg(), subgraphs=True)
        assert state.next == ("child",)
        sub = state.tasks[0].state
        assert sub is not None and sub.next == ("inner_ask",)
        assert sub.values["log"] == ["outer", "inner_a"]
        assert sub.config["configurable"]["checkpoint_ns"].startswith("child:")
        out = await d.invoke(g, Command(resume="ok"), _cfg(), durability=durability)
        assert out["log"] == ["outer", "outer", "inner_a", "inner:ok"]
    with psycopg.connect(db_url) as conn:
        namespaces = {r[0] for r in conn.execute("SELECT DISTINCT checkpoint_ns FROM checkpoints")}
    assert "" in namespaces
    assert any(ns.startswith("child:") for ns in namespaces), namespaces
    await _compare(driver, mem, graphs, _cfg())


@pytest.mark.parametrize("durability", DURABILITIES)
async def test_send_fanout(driver: Driver, durability: Durability) -> None:
    """Send fans out to parallel tasks whose writes are all kept and reduced."""
    mem = driver.memory()
    graphs = (fanout_graph(driver.saver), fanout_graph(mem.saver))
    items = list(range(1, 8))
    for d, g in ((driver, graphs[0]), (mem, graphs[1])):
        out = await d.invoke(g, {"items": items}, _cfg(), durability=durability)
        assert sorted(out["results"][:-1]) == [i * 10 for i in items]
        assert out["results"][-1] == sum(i * 10 for i in items)
    await _compare(driver, mem, graphs, _cfg())


async def test_interrupt_survives_new_saver(db_url: str) -> None:
    """An interrupted thread resumes through a different saver object (a restarted process)."""
    with PostgresSaver.from_conn_string(db_url) as s:
        await asyncio.to_thread(interrupt_graph(s).invoke, {"log": []}, _cfg("x"))
    async with AsyncPostgresSaver.from_conn_string(db_url) as a:
        out = await interrupt_graph(a).ainvoke(Command(resume="later"), _cfg("x"))
    assert out["log"] == ["prep", "answer:later", "finish"]
