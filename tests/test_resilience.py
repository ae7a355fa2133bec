"""A graph run survives connection faults with no error reaching the application.

Each fault hits a run at a random moment, on a throwaway server started for
this module (tests/_cluster.py), through a breakable proxy (tests/_proxy.py):
all connections cut, one connection dropped right after a statement or a
put was forwarded (in doubt), every session terminated by the server, and
an immediate restart with seconds of downtime; sync and async. Afterwards the
thread's whole history must be linear and intact and its final state exact.
``PGCHECKPOINT_FAULT_RUNS=N`` repeats each case N times;
``PGCHECKPOINT_FAULT_REPORT=path`` appends recovery times there.
Also here: deadlines and what is never retried (the retry decisions themselves are
unit-tested without a server in tests/unit/test_retry_decisions.py).
"""

from __future__ import annotations

import asyncio
import random
import threading
import time
import uuid
from collections.abc import Iterator

import psycopg
import pytest

from _cluster import Cluster, available
from _faultgraph import (
    RUNS,
    Timeline,
    batch_item,
    check_history,
    config,
    counter_graph,
    record,
    start_input,
)
from _proxy import Proxy
from pgcheckpoint import (
    AsyncPostgresSaver,
    PoolSettings,
    PostgresSaver,
    RetryExhaustedError,
    RetryPolicy,
    StorageError,
)
from pgcheckpoint._plans import execute_plan
from pgcheckpoint.metrics import instrument

pytestmark = pytest.mark.skipif(not available(), reason="PostgreSQL server tools not installed")

TARGET = 80
FAULTS = ("cut_all", "drop_mid_statement", "drop_after_put", "terminate_all", "restart")
# The text of the put statements (put_head, put_head_new, put_checkpoint; sent
# in full: the tests switch prepared statements off) returns the thread row's
# id so; of the other statements only import_lock_thread does, which these
# tests do not run.
PUT_STATEMENT = b"RETURNING th.thread_id"
POOL = PoolSettings(min_size=2, max_size=4, connect_timeout=2, timeout=10)


@pytest.fixture
def proxy(server: Cluster) -> Iterator[Proxy]:
    p = Proxy(server.port)
    try:
        yield p
    finally:
        p.close()


def inject(fault: str, server: Cluster, proxy: Proxy) -> float:
    """Break things; returns the moment the database is usable again."""
    if fault == "cut_all":
        proxy.cut_all()
    elif fault == "drop_mid_statement":
        proxy.drop_after(b"INSERT INTO")
        proxy.sprung.wait(10)
    elif fault == "drop_after_put":
        # put is one autocommitted statement: once forwarded, it commits
        # whether or not the reply gets back (in doubt).
        proxy.drop_after(PUT_STATEMENT)
        proxy.sprung.wait(10)
    elif fault == "terminate_all":
        with psycopg.connect(server.url(), autocommit=True) as conn:
            conn.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                "WHERE pid <> pg_backend_pid() AND backend_type = 'client backend'"
            )
    elif fault == "restart":
        server.stop("immediate")
        time.sleep(2.0 + random.random())
        server.start()
    return time.monotonic()


def _settle_delay() -> float:
    return random.uniform(0.05, 0.6)


@pytest.mark.slow
@pytest.mark.parametrize("run", range(RUNS))
@pytest.mark.parametrize("fault", FAULTS)
def test_sync_graph_survives(server: Cluster, proxy: Proxy, fault: str, run: int) -> None:
    thread_id = f"sync-{fault}-{uuid.uuid4().hex[:8]}"
    timeline = Timeline()
    errors: list[BaseException] = []
    # Unprepared, so every statement's text crosses the proxy and the trap can match it.
    with PostgresSaver.from_conn_string(
        proxy.url(), pool=POOL, retry=RetryPolicy(deadline=30), transaction_pooler=True
    ) as saver:
        instrument(saver, timeline)
        graph = counter_graph(saver, delay=0.02)

        def run_graph() -> None:
            try:
                graph.invoke(start_input(TARGET), config(thread_id))
            except BaseException as exc:
                errors.append(exc)

        worker = threading.Thread(target=run_graph)
        worker.start()
        time.sleep(_settle_delay())
        hit = worker.is_alive()
        back = inject(fault, server, proxy)
        worker.join(60)
        assert not worker.is_alive()
        assert not errors, f"{fault}: the application saw {errors[0]!r}"
        recovery = timeline.first_success_after(back)
        check_history(saver, thread_id, TARGET)
    record(fault, mode="sync", hit=hit, recovery_s=recovery, retries=timeline.retries)


@pytest.mark.slow
@pytest.mark.parametrize("run", range(RUNS))
@pytest.mark.parametrize("fault", FAULTS)
async def test_async_graph_survives(server: Cluster, proxy: Proxy, fault: str, run: int) -> None:
    thread_id = f"async-{fault}-{uuid.uuid4().hex[:8]}"
    timeline = Timeline()
    async with AsyncPostgresSaver.from_conn_string(
        proxy.url(), pool=POOL, retry=RetryPolicy(deadline=30), transaction_pooler=True
    ) as saver:
        instrument(saver, timeline)
        graph = counter_graph(saver, delay=0.012)
        task = asyncio.create_task(graph.ainvoke(start_input(TARGET), config(thread_id)))
        await asyncio.sleep(_settle_delay())
        hit = not task.done()
        back = await asyncio.to_thread(inject, fault, server, proxy)
        result = await asyncio.wait_for(task, 60)
        assert result["log"] == list(range(1, TARGET + 1))
        recovery = timeline.first_success_after(back)
    with PostgresSaver.from_conn_string(server.url()) as reader:
        check_history(reader, thread_id, TARGET)
    record(fault, mode="async", hit=hit, recovery_s=recovery, retries=timeline.retries)


def test_non_transient_errors_are_never_retried(server: Cluster) -> None:
    timeline = Timeline()
    with PostgresSaver.from_conn_string(server.url(), pool=POOL) as saver:
        instrument(saver, timeline)
        with pytest.raises(StorageError, match="22012"):
            saver.runner.run(execute_plan("boom", "SELECT 1/0", {}))
    assert timeline.retries == 0


def test_retry_exhausted_says_what_was_tried(server: Cluster, proxy: Proxy) -> None:
    proxy.down = True
    settings = PoolSettings(min_size=0, max_size=2, connect_timeout=1, timeout=1)
    with PostgresSaver.from_conn_string(
        proxy.url(), pool=settings, retry=RetryPolicy(deadline=1.5, initial_delay=0.05)
    ) as saver:
        started = time.monotonic()
        with pytest.raises(RetryExhaustedError) as info:
            saver.get_tuple(config("nobody"))
        elapsed = time.monotonic() - started
    message = str(info.value)
    assert "get_tuple failed after" in message and "attempt(s)" in message
    assert info.value.attempts >= 2 and "last error" in message
    assert elapsed < 5, "the retry deadline was not honoured"


def _count(server: Cluster, thread_prefix: str) -> tuple[int, int]:
    with psycopg.connect(server.url()) as conn:
        row = conn.execute(
            "SELECT count(*), count(DISTINCT (thread_id, checkpoint_id)) FROM checkpoints "
            "WHERE thread_id LIKE %s",
            (thread_prefix + "%",),
        ).fetchone()
    assert row is not None
    return int(row[0]), int(row[1])


def test_in_doubt_put_retried_once_written(server: Cluster, proxy: Proxy) -> None:
    """The put reaches the server (and commits) but the reply is lost: the retry
    must neither duplicate the checkpoint nor report a fork."""
    thread_id = f"indoubt-{uuid.uuid4().hex[:8]}"
    with PostgresSaver.from_conn_string(proxy.url(), pool=POOL, transaction_pooler=True) as s:
        graph = counter_graph(s, delay=0)
        graph.invoke(start_input(3), config(thread_id))
        proxy.drop_after(PUT_STATEMENT)
        graph.invoke({"target": 6}, config(thread_id))
        assert proxy.sprung.is_set()
        check_history(s, thread_id, 6)
    total, distinct = _count(server, thread_id)
    assert total == distinct


def test_in_doubt_commit_of_a_batch(server: Cluster, proxy: Proxy) -> None:
    """A transactional plan whose COMMIT is forwarded and the reply lost is
    retried whole; the batch is saved exactly once."""
    prefix = f"bdoubt-{uuid.uuid4().hex[:6]}-"
    items = [batch_item(f"{prefix}{i}", i) for i in range(10)]
    with PostgresSaver.from_conn_string(proxy.url(), pool=POOL, transaction_pooler=True) as s:
        proxy.drop_after(b"COMMIT")
        configs = s.batch_save_checkpoints(items)
        assert proxy.sprung.is_set()
        assert all(s.get_tuple(c) is not None for c in configs)
    assert _count(server, prefix) == (10, 10)


def test_broken_connection_is_discarded(server: Cluster, proxy: Proxy) -> None:
    with PostgresSaver.from_conn_string(
        proxy.url(), pool=PoolSettings(min_size=1, max_size=1), transaction_pooler=True
    ) as saver:
        saver.get_tuple(config("x"))
        before = saver.pool_stats()
        proxy.drop_after(b"SELECT")
        saver.get_tuple(config("x"))  # fails once, retried on a new connection
        after = saver.pool_stats()
    assert proxy.sprung.is_set()
    assert (
        after.get("connections_lost", 0) + after.get("connections_num", 0)
        > before.get("connections_num", 0)
        or after.get("returns_bad", 0) >= 1
    )
