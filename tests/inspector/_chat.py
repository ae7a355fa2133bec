"""A small real chat graph for the inspector's tests: a model node that calls a
tool, the tool, and an approval step that interrupts; plus a tool that fails.

The "model" is deterministic (no LLM): it asks the weather tool for the city in
the last human message, then answers with the tool's result.
"""

from __future__ import annotations

import contextlib
from typing import Annotated, Any, TypedDict

from langchain_core.messages import AIMessage, AnyMessage, HumanMessage, ToolMessage
from langgraph.graph import END, START, StateGraph
from langgraph.graph.message import add_messages
from langgraph.types import Command, interrupt

XSS = '<script>alert("xss")</script><img src=x onerror="alert(1)"><b>bold?</b>'
XSS_THREAD = 'thread-<i>html</i>"quoted"<script>alert(2)</script>'


class ChatState(TypedDict):
    messages: Annotated[list[AnyMessage], add_messages]
    approved: bool


def _model(state: ChatState) -> dict[str, Any]:
    last = state["messages"][-1]
    if isinstance(last, ToolMessage):
        return {"messages": [AIMessage(f"The weather: {last.content}.")]}
    city = str(last.content).rsplit(" ", 1)[-1].strip("?")
    call = {"name": "get_weather", "args": {"city": city}, "id": f"call-{city}"}
    return {"messages": [AIMessage("Let me look that up.", tool_calls=[call])]}


def _tools(state: ChatState) -> dict[str, Any]:
    call = state["messages"][-1].tool_calls[0]  # type: ignore[union-attr]
    city = call["args"]["city"]
    if city == "Atlantis":
        raise ValueError("no weather station in Atlantis")
    return {"messages": [ToolMessage(f"sunny in {city}", tool_call_id=call["id"])]}


def _approve(state: ChatState) -> dict[str, Any]:
    answer = interrupt({"question": "send this answer?", "draft": state["messages"][-1].content})
    return {"approved": answer == "yes"}


def _route(state: ChatState) -> str:
    last = state["messages"][-1]
    return "tools" if getattr(last, "tool_calls", None) else "approve"


def build_chat(checkpointer: Any) -> Any:
    """START -> model -> tools -> model -> approve (interrupt) -> END."""
    b = StateGraph(ChatState)
    b.add_node("model", _model)
    b.add_node("tools", _tools)
    b.add_node("approve", _approve)
    b.add_edge(START, "model")
    b.add_conditional_edges("model", _route, ["tools", "approve"])
    b.add_edge("tools", "model")
    b.add_edge("approve", END)
    return b.compile(checkpointer=checkpointer)


def config(thread_id: str, **metadata: Any) -> dict[str, Any]:
    return {"configurable": {"thread_id": thread_id}, "metadata": metadata}


def populate_chats(saver: Any) -> dict[str, str]:
    """Threads in every state the inspector shows; returns role -> thread id."""
    graph = build_chat(saver)
    waiting = "chat-alice-1"
    graph.invoke({"messages": [HumanMessage("Weather in Paris")]}, config(waiting, user="alice"))
    done = "chat-bob-1"
    graph.invoke({"messages": [HumanMessage("Weather in Rome")]}, config(done, user="bob"))
    graph.invoke(Command(resume="yes"), config(done, user="bob"))
    failed = "chat-carol-1"
    with contextlib.suppress(ValueError):
        graph.invoke(
            {"messages": [HumanMessage("Weather in Atlantis")]}, config(failed, user="carol")
        )
    xss = XSS_THREAD
    graph.invoke({"messages": [HumanMessage(XSS + " Oslo")]}, config(xss, user="mallory"))
    # A real branch: edit an earlier state of bob's thread and run on from there.
    history = list(graph.get_state_history(config(done)))
    first_answer = next(s for s in history if s.next == ("tools",))
    branch = graph.update_state(
        first_answer.config, {"messages": [HumanMessage("Actually, weather in Lima")]}
    )
    graph.invoke(None, branch)
    graph.invoke(Command(resume="yes"), config(done))
    return {"waiting": waiting, "done": done, "failed": failed, "xss": xss}
