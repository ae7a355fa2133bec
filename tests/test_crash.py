"""Crashes at random moments: every acknowledged checkpoint survives, intact.

Two kinds of crash, each repeated (``PGCHECKPOINT_FAULT_RUNS`` multiplies the
counts): ``kill -9`` of the process running the graph, and an immediate stop
of PostgreSQL (no shutdown checkpoint: crash recovery on restart). A
checkpoint counts as acknowledged once ``put`` returned to LangGraph; the
writer records its id right then. After every crash each acknowledged id must
be readable, the thread's history linear and self-consistent, and finally the
thread must resume to exactly the expected final state.
"""

from __future__ import annotations

import os
import random
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path
from typing import Any

import pytest

from _cluster import Cluster, available
from _faultgraph import RUNS, check_history, config, counter_graph, record, start_input, wait_for
from pgcheckpoint import PoolSettings, PostgresSaver, RetryPolicy

pytestmark = [
    pytest.mark.skipif(not available(), reason="PostgreSQL server tools not installed"),
    pytest.mark.slow,
]

TARGET = 150
KILL_TARGET = 300
KILLS = 6 * RUNS
PG_CRASHES = 3 * RUNS
TESTS_DIR = Path(__file__).parent

# The writer process: runs (or resumes) the thread, recording acknowledged ids.
CHILD = """
import os, sys
from _faultgraph import config, counter_graph, start_input
from pgcheckpoint import PostgresSaver
url, thread_id, acks, target = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
fd = os.open(acks, os.O_WRONLY | os.O_APPEND | os.O_CREAT)
with PostgresSaver.from_conn_string(url) as saver:
    put = saver.put
    def recording_put(*a, **k):
        cfg = put(*a, **k)
        os.write(fd, (cfg["configurable"]["checkpoint_id"] + "\\n").encode())
        return cfg
    saver.put = recording_put
    graph = counter_graph(saver, delay=0.005)
    state = graph.get_state(config(thread_id))
    if not state.values:
        graph.invoke(start_input(target), config(thread_id))
    elif state.values.get("n") != target:
        graph.invoke(None, config(thread_id))
"""


def acked_ids(path: Path) -> list[str]:
    if not path.exists():
        return []
    return [line for line in path.read_text().splitlines() if len(line) >= 32]


def verify(saver: PostgresSaver, thread_id: str, acked: list[str]) -> None:
    for checkpoint_id in acked:
        conf = {"thread_id": thread_id, "checkpoint_ns": "", "checkpoint_id": checkpoint_id}
        cfg = {"configurable": conf}
        found = saver.get_tuple(cfg)
        assert found is not None, f"acknowledged checkpoint {checkpoint_id} is missing"
    if acked:
        check_history(saver, thread_id)


def kill_once(args: list[str], env: dict[str, str], acks: Path) -> bool:
    """Start the writer, kill -9 it at a random moment once it writes; whether it was killed."""
    seen = len(acked_ids(acks))
    child = subprocess.Popen(args, env=env)
    try:
        wait_for(lambda: len(acked_ids(acks)) > seen or child.poll() is not None)
        time.sleep(random.uniform(0, 0.4))
    finally:
        killed = child.poll() is None
        if killed:
            child.kill()
        child.wait()
    return killed


def test_kill9_of_the_writer(server: Cluster, tmp_path: Path) -> None:
    """KILLS writers killed mid-run; a thread that reaches its end is checked and
    replaced by a new one, so every kill lands in a running graph."""
    path = f"{TESTS_DIR}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"
    env = {**os.environ, "PYTHONPATH": path}
    kills = threads = 0
    with PostgresSaver.from_conn_string(server.url()) as saver:
        while kills < KILLS:
            threads += 1
            thread_id = f"kill9-{uuid.uuid4().hex[:8]}"
            acks = tmp_path / thread_id
            url = server.url()
            args = [sys.executable, "-c", CHILD, url, thread_id, str(acks), str(KILL_TARGET)]
            while kills < KILLS and kill_once(args, env, acks):
                kills += 1
                verify(saver, thread_id, acked_ids(acks))
            # Resume to the end, in a process that is not killed.
            subprocess.run(args, env=env, check=True, timeout=120)
            verify(saver, thread_id, acked_ids(acks))
            check_history(saver, thread_id, KILL_TARGET)
    record("kill9", runs=kills, threads=threads, failed=0)


def crash_postgres_once(server: Cluster) -> None:
    """Run a thread, stop PostgreSQL immediately mid-run, restart it, check everything."""
    thread_id = f"pgcrash-{uuid.uuid4().hex[:8]}"
    acked: list[str] = []
    errors: list[BaseException] = []
    settings = PoolSettings(min_size=1, max_size=2, connect_timeout=2, timeout=10)
    with PostgresSaver.from_conn_string(
        server.url(), pool=settings, retry=RetryPolicy(deadline=60)
    ) as saver:
        put = saver.put

        def recording_put(*a: Any, **k: Any) -> Any:
            cfg = put(*a, **k)
            acked.append(cfg["configurable"]["checkpoint_id"])
            return cfg

        saver.put = recording_put  # type: ignore[method-assign]
        graph = counter_graph(saver, delay=0.005)

        def run_graph() -> None:
            try:
                graph.invoke(start_input(TARGET), config(thread_id))
            except BaseException as exc:
                errors.append(exc)

        worker = threading.Thread(target=run_graph)
        worker.start()
        wait_for(lambda: len(acked) > 0)
        time.sleep(random.uniform(0, 0.5))
        snapshot = list(acked)
        server.stop("immediate")
        time.sleep(random.uniform(0.2, 1.5))
        server.start()
        worker.join(90)
        assert not errors, f"the application saw {errors[0]!r}"
        verify(saver, thread_id, snapshot)
        verify(saver, thread_id, acked)
        check_history(saver, thread_id, TARGET)


def test_immediate_stop_of_postgres(server: Cluster) -> None:
    for _ in range(PG_CRASHES):
        crash_postgres_once(server)
    record("pg_immediate_stop", runs=PG_CRASHES, crashes=PG_CRASHES, failed=0)
