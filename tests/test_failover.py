"""Failover: the same saver follows a promoted standby, losing nothing acknowledged.

A primary and a synchronous streaming standby (pg_basebackup) run on two free
ports; the saver's DSN names both with ``target_session_attrs=read-write``.
Mid-run the primary is stopped (immediate: a crash) and the standby promoted.
The graph run must finish with no error, every checkpoint the saver
acknowledged before the crash must be on the new primary, and the history
must be linear and exact.
"""

from __future__ import annotations

import asyncio
import random
import threading
import time
import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from _cluster import Cluster, available
from _faultgraph import RUNS, Timeline, check_history, config, counter_graph, record, start_input
from pgcheckpoint import AsyncPostgresSaver, PoolSettings, PostgresSaver, RetryPolicy
from pgcheckpoint.metrics import instrument

pytestmark = [
    pytest.mark.skipif(not available(), reason="PostgreSQL server tools not installed"),
    pytest.mark.slow,
]

TARGET = 120
POOL = PoolSettings(min_size=2, max_size=4, connect_timeout=2, timeout=10)


@pytest.fixture
def pair() -> Iterator[tuple[Cluster, Cluster]]:
    primary = Cluster.create()
    primary.start()
    standby = None
    try:
        with PostgresSaver.from_conn_string(primary.url()) as saver:
            saver.setup()
        standby = primary.standby(synchronous=True)
        yield primary, standby
    finally:
        primary.destroy()
        if standby is not None:
            standby.destroy()


def multi_host(primary: Cluster, standby: Cluster) -> str:
    return (
        f"postgresql://postgres@127.0.0.1:{primary.port},127.0.0.1:{standby.port}/postgres"
        "?target_session_attrs=read-write"
    )


def fail_over(primary: Cluster, standby: Cluster) -> float:
    primary.stop("immediate")
    standby.promote()
    return time.monotonic()


class Acked:
    """Collects the checkpoint ids a saver acknowledged (put returned)."""

    def __init__(self) -> None:
        self.ids: list[str] = []
        self.lock = threading.Lock()

    def add(self, cfg: Any) -> Any:
        with self.lock:
            self.ids.append(cfg["configurable"]["checkpoint_id"])
        return cfg


def assert_all_present(url: str, thread_id: str, acked: list[str]) -> None:
    with PostgresSaver.from_conn_string(url) as reader:
        check_history(reader, thread_id, TARGET)
        stored = {t.config["configurable"]["checkpoint_id"] for t in reader.list(config(thread_id))}
    lost = [i for i in acked if i not in stored]
    assert not lost, f"{len(lost)} acknowledged checkpoint(s) lost in the failover"


@pytest.mark.parametrize("run", range(RUNS))
def test_sync_saver_follows_promotion(pair: tuple[Cluster, Cluster], run: int) -> None:
    primary, standby = pair
    thread_id = f"failover-{uuid.uuid4().hex[:8]}"
    acked, timeline, errors = Acked(), Timeline(), []
    with PostgresSaver.from_conn_string(
        multi_host(primary, standby), pool=POOL, retry=RetryPolicy(deadline=60)
    ) as saver:
        instrument(saver, timeline)
        put = saver.put
        saver.put = lambda *a, **k: acked.add(put(*a, **k))  # type: ignore[method-assign]
        graph = counter_graph(saver, delay=0.02)

        def run_graph() -> None:
            try:
                graph.invoke(start_input(TARGET), config(thread_id))
            except BaseException as exc:
                errors.append(exc)

        worker = threading.Thread(target=run_graph)
        worker.start()
        time.sleep(random.uniform(0.3, 1.2))
        before = len(acked.ids)
        back = fail_over(primary, standby)
        worker.join(90)
        assert not errors, f"the application saw {errors[0]!r}"
        recovery = timeline.first_success_after(back)
        assert saver.health_check().in_recovery is False
    assert before > 0
    assert_all_present(standby.url(), thread_id, acked.ids)
    record("failover", mode="sync", acked_before=before, recovery_s=recovery)


@pytest.mark.parametrize("run", range(RUNS))
async def test_async_saver_follows_promotion(pair: tuple[Cluster, Cluster], run: int) -> None:
    primary, standby = pair
    thread_id = f"afailover-{uuid.uuid4().hex[:8]}"
    acked, timeline = Acked(), Timeline()
    async with AsyncPostgresSaver.from_conn_string(
        multi_host(primary, standby), pool=POOL, retry=RetryPolicy(deadline=60)
    ) as saver:
        instrument(saver, timeline)
        aput = saver.aput

        async def recording_put(*a: Any, **k: Any) -> Any:
            return acked.add(await aput(*a, **k))

        saver.aput = recording_put  # type: ignore[method-assign]
        graph = counter_graph(saver, delay=0.01)
        task = asyncio.create_task(graph.ainvoke(start_input(TARGET), config(thread_id)))
        await asyncio.sleep(random.uniform(0.3, 0.8))
        before = len(acked.ids)
        back = await asyncio.to_thread(fail_over, primary, standby)
        result = await asyncio.wait_for(task, 90)
        assert result["n"] == TARGET
        recovery = timeline.first_success_after(back)
    assert before > 0
    await asyncio.to_thread(assert_all_present, standby.url(), thread_id, acked.ids)
    record("failover", mode="async", acked_before=before, recovery_s=recovery)
