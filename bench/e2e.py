"""End-to-end workloads: a real LangGraph ``StateGraph`` driven with no LLM.

* ``agent``: START -> agent (AI message with a tool call) -> tools (tool result) ->
  respond (AI answer) -> END, an ``add_messages`` reducer, many threads, several turns
  per thread. Reported as supersteps per second for the official saver, pgcheckpoint,
  ``InMemorySaver`` and no checkpointer at all. A superstep is one step of LangGraph's
  loop, i.e. one checkpoint (the input step, the ``__start__`` step, then one per node:
  5 per agent turn, 3 per chat turn, counted on an ``InMemorySaver`` by
  ``supersteps_per_turn``); the same count is used for every contender. With no
  checkpointer the caller carries the history itself, so the state grows the same way.
* storage over long conversations moved to ``bench/react.py`` (issue 16's graph).

Node outputs are deterministic functions of the history length, so every contender
stores the same bytes.
"""

from __future__ import annotations

import random
import time
from collections.abc import Awaitable, Callable, Mapping
from contextlib import AsyncExitStack
from functools import cache
from typing import Annotated, Any, TypedDict

from langchain_core.messages import AIMessage, AnyMessage, HumanMessage, ToolMessage
from langgraph.checkpoint.memory import InMemorySaver
from langgraph.graph import END, START, StateGraph
from langgraph.graph.message import add_messages

from bench.runner import Context, Measurement, aalternate_rounds, alternate_rounds, rate, run_async
from bench.states import text, thread_config

MEMORY = "InMemorySaver"
NONE = "no checkpointer"


class ChatState(TypedDict):
    messages: Annotated[list[AnyMessage], add_messages]


def _rng(state: ChatState) -> random.Random:
    return random.Random(len(state["messages"]))


def _agent(state: ChatState) -> dict[str, Any]:
    n = len(state["messages"])
    call = {"name": "lookup", "args": {"query": text(_rng(state), 40)}, "id": f"call-{n}"}
    return {"messages": [AIMessage(content="", tool_calls=[call], id=f"m{n}")]}


def _tools(state: ChatState) -> dict[str, Any]:
    n = len(state["messages"])
    last = state["messages"][-1]
    call_id = (
        last.tool_calls[0]["id"] if isinstance(last, AIMessage) and last.tool_calls else "none"
    )
    return {
        "messages": [ToolMessage(content=text(_rng(state), 300), tool_call_id=call_id, id=f"m{n}")]
    }


def _respond(state: ChatState) -> dict[str, Any]:
    n = len(state["messages"])
    return {"messages": [AIMessage(content=text(_rng(state), 200), id=f"m{n}")]}


def agent_graph(checkpointer: Any) -> Any:
    builder = StateGraph(ChatState)
    builder.add_node("agent", _agent)
    builder.add_node("tools", _tools)
    builder.add_node("respond", _respond)
    builder.add_edge(START, "agent")
    builder.add_edge("agent", "tools")
    builder.add_edge("tools", "respond")
    builder.add_edge("respond", END)
    return builder.compile(checkpointer=checkpointer)


def _user(thread: str, turn: int, size: int = 55) -> HumanMessage:
    return HumanMessage(content=text(random.Random(f"{thread}:{turn}"), size), id=f"u{turn}")


def _converse(graph: Any, thread: str, turns: int, *, stateless: bool, first_turn: int = 0) -> None:
    """``turns`` user turns on one thread; ``stateless`` carries the history by hand."""
    config = {"configurable": {"thread_id": thread}}
    history: list[AnyMessage] = []
    for turn in range(first_turn, first_turn + turns):
        if stateless:
            history = graph.invoke({"messages": [*history, _user(thread, turn)]})["messages"]
        else:
            graph.invoke({"messages": [_user(thread, turn)]}, config)


async def _aconverse(graph: Any, thread: str, turns: int, *, stateless: bool) -> None:
    config = {"configurable": {"thread_id": thread}}
    history: list[AnyMessage] = []
    for turn in range(turns):
        if stateless:
            result = await graph.ainvoke({"messages": [*history, _user(thread, turn)]})
            history = result["messages"]
        else:
            await graph.ainvoke({"messages": [_user(thread, turn)]}, config)


@cache
def supersteps_per_turn(factory: Callable[[Any], Any]) -> int:
    """Checkpoints one turn writes, counted on an InMemorySaver (turn 2, a warm thread)."""
    saver = InMemorySaver()
    graph = factory(saver)
    config = thread_config("count")
    _converse(graph, "count", 1, stateless=False)
    first = len(list(saver.list(config)))
    _converse(graph, "count", 1, stateless=False, first_turn=1)
    return len(list(saver.list(config))) - first


def _sizes(ctx: Context) -> tuple[int, int, int]:
    """(rounds, threads per round, turns per thread)."""
    sizes: tuple[int, int, int] = ctx.mode.pick((4, 2, 5), (6, 5, 10))
    return sizes


def run_agent_sync(ctx: Context) -> list[Measurement]:
    if not ctx.wants("e2e.sync"):
        return []
    rounds, per_round, turns = _sizes(ctx)
    steps = per_round * turns * supersteps_per_turn(agent_graph)
    graphs: dict[str, Any] = {name: agent_graph(s) for name, s in ctx.sync_savers().items()}
    graphs[MEMORY] = agent_graph(InMemorySaver())
    graphs[NONE] = agent_graph(None)

    def bind(name: str) -> Callable[[int], float]:
        def run(r: int) -> float:
            start = time.perf_counter()
            for t in range(per_round):
                _converse(graphs[name], f"e2e-sync-{r}-{t}", turns, stateless=name == NONE)
            return steps / (time.perf_counter() - start)

        return run

    for name in graphs:
        _converse(graphs[name], "warm", 1, stateless=name == NONE)
    figures = alternate_rounds({name: bind(name) for name in graphs}, rounds)
    return [_e2e_measurement("e2e.sync", "end-to-end agent graph (sync)", figures, turns)]


def run_agent_async(ctx: Context) -> list[Measurement]:
    if not ctx.wants("e2e.async"):
        return []
    measurement: Measurement = run_async(_run_agent_async(ctx))
    return [measurement]


async def _run_agent_async(ctx: Context) -> Measurement:
    rounds, per_round, turns = _sizes(ctx)
    steps = per_round * turns * supersteps_per_turn(agent_graph)
    async with AsyncExitStack() as stack:
        graphs: dict[str, Any] = {
            s.name: agent_graph(await stack.enter_async_context(s.async_saver())) for s in ctx.sides
        }
        graphs[MEMORY] = agent_graph(InMemorySaver())
        graphs[NONE] = agent_graph(None)

        def bind(name: str) -> Callable[[int], Awaitable[float]]:
            async def run(r: int) -> float:
                start = time.perf_counter()
                for t in range(per_round):
                    await _aconverse(
                        graphs[name], f"e2e-async-{r}-{t}", turns, stateless=name == NONE
                    )
                return steps / (time.perf_counter() - start)

            return run

        for name in graphs:
            await _aconverse(graphs[name], "warm", 1, stateless=name == NONE)
        figures = await aalternate_rounds({name: bind(name) for name in graphs}, rounds)
    return _e2e_measurement("e2e.async", "end-to-end agent graph (async)", figures, turns)


def _e2e_measurement(
    key: str, title: str, figures: Mapping[str, list[float]], turns: int
) -> Measurement:
    m = rate(key, f"{title}, supersteps/s", "steps/s", figures)
    m.extra["turns_per_thread"] = turns
    m.extra["ms_per_step"] = {name: 1e3 / v for name, v in m.values.items()}
    return m
