"""One writer per thread; many writers on many threads; batched saves.

Two processes that run the same thread at the same time must not fork its
history silently: the one whose step no longer extends the latest checkpoint
gets ``ConcurrentUpdateError`` (docs/concurrency.md), and the thread's latest
checkpoint is one linear, self-consistent chain. LangGraph's deliberate
branches (time travel, ``update_state``, new input from an old checkpoint)
are never refused. Processes on different threads never see an error or a
deadlock.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import pytest

from _faultgraph import RUNS, batch_item, check_history, config, counter_graph, start_input
from pgcheckpoint import (
    AsyncPostgresSaver,
    ConcurrentUpdateError,
    InvalidInputError,
    PostgresSaver,
)

TESTS_DIR = Path(__file__).parent

# Waits for a common start time, then runs the thread to `target`.
CHILD = """
import sys, time
from _faultgraph import config, counter_graph
from pgcheckpoint import ConcurrentUpdateError, PostgresSaver
url, thread_id, target, start_at = sys.argv[1], sys.argv[2], int(sys.argv[3]), float(sys.argv[4])
with PostgresSaver.from_conn_string(url) as saver:
    graph = counter_graph(saver, delay=0.01)
    time.sleep(max(0.0, start_at - time.time()))
    try:
        graph.invoke({"target": target}, config(thread_id))
    except ConcurrentUpdateError as exc:
        print("CONFLICT", exc)
        sys.exit(3)
print("OK")
"""


def run_children(
    db_url: str, threads: list[str], target: int
) -> list[subprocess.CompletedProcess[str]]:
    path = f"{TESTS_DIR}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"
    env = {**os.environ, "PYTHONPATH": path}
    start_at = str(time.time() + 4.0)  # after every child has imported langgraph
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", CHILD, db_url, t, str(target), start_at],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for t in threads
    ]
    out = []
    for p in procs:
        stdout, stderr = p.communicate(timeout=120)
        out.append(subprocess.CompletedProcess(p.args, p.returncode, stdout, stderr))
    return out


def latest_chain(saver: PostgresSaver, thread_id: str) -> list[Any]:
    """The latest checkpoint and its ancestors, checked to be consistent."""
    chain = []
    tup = saver.get_tuple(config(thread_id))
    while tup is not None:
        values = tup.checkpoint["channel_values"]
        n = values.get("n", 0)
        assert values.get("log", []) == list(range(1, n + 1)), "inconsistent state on the chain"
        chain.append(tup)
        tup = saver.get_tuple(tup.parent_config) if tup.parent_config else None
    return chain


def loop_children_unique(saver: PostgresSaver, thread_id: str) -> None:
    parents = [
        t.parent_config["configurable"]["checkpoint_id"]
        for t in saver.list(config(thread_id))
        if t.parent_config and t.metadata.get("source") == "loop"
    ]
    assert len(parents) == len(set(parents)), "two graph steps were saved on one parent: a fork"


@pytest.mark.slow
@pytest.mark.parametrize("run", range(RUNS))
def test_two_processes_on_one_thread_do_not_fork(db_url: str, run: int) -> None:
    thread_id = f"shared-{uuid.uuid4().hex[:8]}"
    with PostgresSaver.from_conn_string(db_url) as saver:
        counter_graph(saver, delay=0).invoke(start_input(3), config(thread_id))
        results = run_children(db_url, [thread_id, thread_id], 150)
        codes = sorted(r.returncode for r in results)
        assert codes == [0, 3], [(r.returncode, r.stdout, r.stderr[-2000:]) for r in results]
        loser = next(r for r in results if r.returncode == 3)
        assert "no longer the thread's latest checkpoint" in loser.stdout
        assert "Two runs of this thread are running at once" in loser.stdout
        chain = latest_chain(saver, thread_id)
        assert chain[0].checkpoint["channel_values"]["n"] == 150
        loop_children_unique(saver, thread_id)


@pytest.mark.slow
def test_processes_on_different_threads(db_url: str) -> None:
    threads = [f"own-{i}-{uuid.uuid4().hex[:6]}" for i in range(4)]
    with PostgresSaver.from_conn_string(db_url) as saver:
        for t in threads:
            counter_graph(saver, delay=0).invoke(start_input(1), config(t))
        results = run_children(db_url, threads, 80)
        assert all(r.returncode == 0 for r in results), [r.stderr[-2000:] for r in results]
        for t in threads:
            check_history(saver, t, 80)


async def test_two_tasks_on_one_thread_async(db_url: str) -> None:
    thread_id = f"atasks-{uuid.uuid4().hex[:8]}"
    async with AsyncPostgresSaver.from_conn_string(db_url) as saver:
        graph = counter_graph(saver, delay=0.002)
        await graph.ainvoke(start_input(2), config(thread_id))
        results = await asyncio.gather(
            graph.ainvoke({"target": 60}, config(thread_id)),
            graph.ainvoke({"target": 60}, config(thread_id)),
            return_exceptions=True,
        )
    errors = [r for r in results if isinstance(r, BaseException)]
    assert len(errors) <= 1 and all(isinstance(e, ConcurrentUpdateError) for e in errors)
    with PostgresSaver.from_conn_string(db_url) as reader:
        assert latest_chain(reader, thread_id)[0].checkpoint["channel_values"]["n"] == 60
        loop_children_unique(reader, thread_id)


def test_deliberate_branches_are_allowed(saver: PostgresSaver) -> None:
    graph = counter_graph(saver, delay=0)
    cfg = config(f"branches-{uuid.uuid4().hex[:8]}")
    graph.invoke(start_input(5), cfg)
    history = list(graph.get_state_history(cfg))
    old = next(s for s in history if s.values.get("n") == 2)
    graph.invoke(None, old.config)  # time travel: replays from n=2
    graph.invoke({"target": 7}, old.config)  # new input from an old checkpoint
    forked = graph.update_state(old.config, {"target": 4})
    graph.invoke(None, forked)
    assert graph.get_state(cfg).values["n"] == 4


def test_batch_save_checkpoints(saver: PostgresSaver) -> None:
    items = [batch_item(f"batch-{i}", i) for i in range(50)]
    configs = saver.batch_save_checkpoints(items)
    assert [c["configurable"]["thread_id"] for c in configs] == [f"batch-{i}" for i in range(50)]
    for i, cfg in enumerate(configs):
        got = saver.get_tuple(cfg)
        assert got is not None and got.checkpoint["channel_values"]["n"] == i
        assert got.checkpoint["channel_values"]["blob"] == b"x" * 5000
    assert saver.batch_save_checkpoints([]) == []


def test_batch_is_validated_before_anything_is_sent(saver: PostgresSaver) -> None:
    with pytest.raises(InvalidInputError, match="appears twice"):
        saver.batch_save_checkpoints([batch_item("dup", 1), batch_item("dup", 2)])
    with pytest.raises(InvalidInputError):
        saver.batch_save_checkpoints([batch_item("fine", 1), ("not", "an", "item")])  # type: ignore[list-item]
    assert saver.get_tuple(config("fine")) is None and saver.get_tuple(config("dup")) is None


async def test_batch_async(asaver: AsyncPostgresSaver) -> None:
    configs = await asaver.abatch_save_checkpoints([batch_item(f"abatch-{i}", i) for i in range(5)])
    got = await asaver.aget_tuple(configs[3])
    assert got is not None and got.checkpoint["channel_values"]["n"] == 3
