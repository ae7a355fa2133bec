"""The deterministic agent used by demo.py: no LLM, no network.

A LangGraph ``StateGraph`` with a ``messages`` channel (``add_messages``):

    START -> planner -> worker -> worker -> ... -> reviewer -> END

The planner announces N steps, the worker does one numbered step per visit
(appending a message and sleeping a little, so there is time to crash it), and
the reviewer sums up. Every node finishing is a checkpoint in PostgreSQL.
"""

from __future__ import annotations

import os
import time
from typing import Annotated, Any, Literal, TypedDict

from langchain_core.messages import AIMessage, AnyMessage
from langgraph.checkpoint.base import BaseCheckpointSaver
from langgraph.graph import END, START, StateGraph
from langgraph.graph.message import add_messages
from langgraph.graph.state import CompiledStateGraph


class AgentState(TypedDict, total=False):
    """What the agent checkpoints after every node."""

    messages: Annotated[list[AnyMessage], add_messages]
    task: str
    total_steps: int
    done_steps: int
    step_seconds: float


def say(text: str) -> None:
    """Print a line tagged with this process's PID, so crashes and resumes are visible."""
    print(f"    [agent pid {os.getpid()}] {text}", flush=True)


def planner(state: AgentState) -> dict[str, Any]:
    total = state["total_steps"]
    say(f"planner: the task {state['task']!r} will take {total} steps")
    plan = AIMessage(f"Plan: do {state['task']} in {total} numbered steps.", id="plan")
    return {"messages": [plan], "done_steps": 0}


def worker(state: AgentState) -> dict[str, Any]:
    step = state.get("done_steps", 0) + 1
    total = state["total_steps"]
    say(f"worker: working on step {step}/{total} ...")
    time.sleep(state.get("step_seconds", 0.3))
    say(f"worker: step {step}/{total} done")
    note = AIMessage(
        f"Step {step}/{total}: finished part {step} of {state['task']}.", id=f"step-{step}"
    )
    return {"messages": [note], "done_steps": step}


def reviewer(state: AgentState) -> dict[str, Any]:
    done = state["done_steps"]
    say(f"reviewer: checked all {done} steps")
    review = AIMessage(f"Review: all {done} steps of {state['task']} are done.", id="review")
    return {"messages": [review]}


def next_after_worker(state: AgentState) -> Literal["worker", "reviewer"]:
    return "worker" if state["done_steps"] < state["total_steps"] else "reviewer"


def build_graph(checkpointer: BaseCheckpointSaver[Any]) -> CompiledStateGraph[Any, Any, Any, Any]:
    """The compiled agent, saving its checkpoints with ``checkpointer``."""
    graph = StateGraph(AgentState)
    graph.add_node("planner", planner)
    graph.add_node("worker", worker)
    graph.add_node("reviewer", reviewer)
    graph.add_edge(START, "planner")
    graph.add_edge("planner", "worker")
    graph.add_conditional_edges("worker", next_after_worker)
    graph.add_edge("reviewer", END)
    return graph.compile(checkpointer=checkpointer)
