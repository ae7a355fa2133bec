"""The graph and the checks shared by the fault-injection tests.

A counter graph: each step adds the next number to ``log`` until ``n`` reaches
``target``, so the exact final state is known in advance (``log == [1..target]``)
and every checkpoint of the history can be checked for integrity.
"""

from __future__ import annotations

import itertools
import json
import operator
import os
import threading
import time
from collections.abc import Callable
from typing import Annotated, Any, TypedDict

from langgraph.graph import END, START, StateGraph

from pgcheckpoint.metrics import OperationResult

RUNS = int(os.environ.get("PGCHECKPOINT_FAULT_RUNS", "1"))


class Counter(TypedDict):
    n: int
    target: int
    log: Annotated[list[int], operator.add]


def counter_graph(checkpointer: Any, delay: float = 0.01) -> Any:
    def step(state: Counter) -> dict[str, Any]:
        if delay:
            time.sleep(delay)
        return {"n": state["n"] + 1, "log": [state["n"] + 1]}

    def more(state: Counter) -> str:
        return "step" if state["n"] < state["target"] else END

    builder = StateGraph(Counter)
    builder.add_node("step", step)
    builder.add_edge(START, "step")
    builder.add_conditional_edges("step", more)
    return builder.compile(checkpointer=checkpointer)


def start_input(target: int) -> dict[str, Any]:
    return {"n": 0, "target": target, "log": []}


def config(thread_id: str) -> dict[str, Any]:
    # recursion_limit above the longest run.
    return {"configurable": {"thread_id": thread_id}, "recursion_limit": 10_000}


def check_history(saver: Any, thread_id: str, target: int | None = None) -> int:
    """Every checkpoint of the thread is readable, linear and self-consistent;
    returns the final n (which must equal ``target`` when given)."""
    tuples = list(saver.list({"configurable": {"thread_id": thread_id, "checkpoint_ns": ""}}))
    assert tuples, f"thread {thread_id} has no checkpoints"
    ids = [t.config["configurable"]["checkpoint_id"] for t in tuples]
    parents = [t.parent_config["configurable"]["checkpoint_id"] for t in tuples if t.parent_config]
    assert len(set(parents)) == len(parents), f"thread {thread_id} forked: {parents}"
    for newer, older in itertools.pairwise(tuples):
        assert newer.parent_config is not None
        assert (
            newer.parent_config["configurable"]["checkpoint_id"]
            == (older.config["configurable"]["checkpoint_id"])
        ), "history is not one linear chain"
    for t in tuples:
        values = t.checkpoint["channel_values"]
        n = values.get("n", 0)
        assert values.get("log", []) == list(range(1, n + 1)), f"corrupt state: {t.config}"
    final = tuples[0].checkpoint["channel_values"]["n"]
    if target is not None:
        assert final == target, f"thread {thread_id} ended at {final}, expected {target}"
    assert len(ids) == len(set(ids))
    return int(final)


class Timeline:
    """An operation hook recording when operations succeeded (recovery times)."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.successes: list[float] = []
        self.retries = 0

    def start(self, operation: str) -> Any:
        return None

    def retry(self, token: Any, operation: str, error: BaseException) -> None:
        with self.lock:
            self.retries += 1

    def finish(self, token: Any, result: OperationResult) -> None:
        if result.error is None:
            with self.lock:
                self.successes.append(time.monotonic())

    def first_success_after(self, moment: float) -> float | None:
        with self.lock:
            later = [t for t in self.successes if t >= moment]
        return min(later) - moment if later else None


def record(kind: str, **fields: Any) -> None:
    """Append a measurement to ``$PGCHECKPOINT_FAULT_REPORT`` (JSON lines), if set."""
    path = os.environ.get("PGCHECKPOINT_FAULT_REPORT")
    if path:
        with open(path, "a") as out:
            out.write(json.dumps({"fault": kind, **fields}) + "\n")


def wait_for(predicate: Callable[[], bool], timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise TimeoutError("condition not met")
        time.sleep(0.01)


def batch_item(thread_id: str, n: int = 1) -> tuple[Any, Any, Any, Any]:
    """``put``'s arguments for the first checkpoint of a thread (for batch saves)."""
    from langgraph.checkpoint.base import empty_checkpoint

    cp = empty_checkpoint()
    cp["channel_values"] = {"n": n, "blob": b"x" * 5000}
    cp["channel_versions"] = {"n": "1", "blob": "1"}
    cfg = {"configurable": {"thread_id": thread_id, "checkpoint_ns": ""}}
    return cfg, cp, {"source": "input", "step": -1}, {"n": "1", "blob": "1"}
