"""A small real graph used to make checkpoint sources for import/export/CLI tests.

It has what an import must carry over: a growing ``messages`` list, parallel
tasks (several writes per step), a subgraph (a non-root ``checkpoint_ns``) and
an ``interrupt`` (a pending INTERRUPT write on the checkpoint it stops at).
"""

from __future__ import annotations

import operator
from typing import Annotated, Any, TypedDict

from langchain_core.messages import AIMessage, AnyMessage, HumanMessage
from langgraph.graph import END, START, StateGraph
from langgraph.graph.message import add_messages
from langgraph.types import Command, interrupt


class State(TypedDict):
    messages: Annotated[list[AnyMessage], add_messages]
    count: int


def _sub_node(state: State) -> dict[str, Any]:
    return {"messages": [AIMessage(f"sub saw {len(state['messages'])}")]}


def _subgraph() -> Any:
    b = StateGraph(State)
    b.add_node("inner", _sub_node)
    b.add_edge(START, "inner")
    b.add_edge("inner", END)
    return b.compile()


def _a(state: State) -> dict[str, Any]:
    return {"messages": [AIMessage("a" * 40)], "count": state.get("count", 0) + 1}


def _b(state: State) -> dict[str, Any]:
    return {"messages": [AIMessage("b")]}


def _c(state: State) -> dict[str, Any]:
    return {"messages": [AIMessage("c")]}


def _ask(state: State) -> dict[str, Any]:
    answer = interrupt("continue?")
    return {"messages": [HumanMessage(f"answer: {answer}")], "count": state["count"] + 1}


def build_graph(checkpointer: Any) -> Any:
    """START -> a -> (b | c) -> sub -> ask (interrupts) -> END."""
    b = StateGraph(State)
    b.add_node("a", _a)
    b.add_node("b", _b)
    b.add_node("c", _c)
    b.add_node("sub", _subgraph())
    b.add_node("ask", _ask)
    b.add_edge(START, "a")
    b.add_edge("a", "b")
    b.add_edge("a", "c")
    b.add_edge(["b", "c"], "sub")
    b.add_edge("sub", "ask")
    b.add_edge("ask", END)
    return b.compile(checkpointer=checkpointer)


def populate(checkpointer: Any, threads: int = 3) -> list[str]:
    """Run the graph on ``threads`` threads: even ones are resumed past the interrupt,
    odd ones are left waiting on it."""
    graph = build_graph(checkpointer)
    ids = []
    for i in range(threads):
        tid = f"thread-{i}"
        config = {"configurable": {"thread_id": tid}, "metadata": {"user": f"u{i % 2}"}}
        graph.invoke({"messages": [HumanMessage(f"hello {i}")], "count": 0}, config)
        if i % 2 == 0:
            graph.invoke(Command(resume="yes"), config)
        ids.append(tid)
    return ids


def resume(checkpointer: Any, thread_id: str) -> Any:
    """Resume an interrupted thread and return its final state."""
    graph = build_graph(checkpointer)
    return graph.invoke(Command(resume="later"), {"configurable": {"thread_id": thread_id}})


def every_tuple(checkpointer: Any, thread_id: str) -> list[Any]:
    """Every checkpoint of a thread, all namespaces, read back through ``get_tuple``."""
    configs = [t.config for t in checkpointer.list({"configurable": {"thread_id": thread_id}})]
    configs.sort(
        key=lambda c: (c["configurable"]["checkpoint_ns"], c["configurable"]["checkpoint_id"])
    )
    return [checkpointer.get_tuple(c) for c in configs]


def same_threads(source: Any, target: Any, thread_ids: list[str]) -> None:
    """Assert ``target`` holds every checkpoint of ``source``'s threads as ``source`` does
    (config, state, metadata, parent, pending writes), both read through ``get_tuple``."""
    for tid in thread_ids:
        want, got = every_tuple(source, tid), every_tuple(target, tid)
        assert len(got) == len(want) > 0
        for w, g in zip(want, got, strict=True):
            assert (g.config, g.checkpoint, g.metadata, g.parent_config) == (
                w.config,
                w.checkpoint,
                w.metadata,
                w.parent_config,
            )
            assert sorted(g.pending_writes or [], key=lambda x: x[0]) == sorted(
                w.pending_writes or [], key=lambda x: x[0]
            )


class Ticket:
    """A user type no allowlist knows by default (a class of its own, not a data class:
    pgcheckpoint.allowlist refuses it unless listed): a thread holding it must still
    export, import and copy byte for byte (the allowlist applies when the application
    reads it). LangGraph writes it by its ``_asdict()`` and rebuilds it as
    ``Ticket(**fields)``."""

    def __init__(self, title: str, priority: int) -> None:
        self.title = title
        self.priority = priority

    def _asdict(self) -> dict[str, Any]:
        return {"title": self.title, "priority": self.priority}

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Ticket) and self._asdict() == other._asdict()

    def __hash__(self) -> int:
        return hash((self.title, self.priority))

    def __repr__(self) -> str:
        return f"Ticket(title={self.title!r}, priority={self.priority!r})"


TICKET_ALLOW = [("graph_fixtures", "Ticket")]


class TicketState(TypedDict):
    tickets: Annotated[list[Ticket], operator.add]
    note: str


def _file_ticket(state: TicketState) -> dict[str, Any]:
    n = len(state.get("tickets") or [])
    return {"tickets": [Ticket(f"ticket {n}", n)], "note": f"filed {n + 1}"}


def populate_tickets(checkpointer: Any, thread_id: str = "tickets", runs: int = 3) -> None:
    """Run a one-node graph whose state holds ``Ticket`` objects; the checkpointer must
    allow the type (``checkpointer.with_allowlist(TICKET_ALLOW)``)."""
    b = StateGraph(TicketState)
    b.add_node("file", _file_ticket)
    b.add_edge(START, "file")
    b.add_edge("file", END)
    graph = b.compile(checkpointer=checkpointer)
    for _ in range(runs):
        graph.invoke({"tickets": [], "note": "new"}, {"configurable": {"thread_id": thread_id}})
