"""The async runner's gate in front of an AsyncConnectionPool (issue 16).

When more coroutines want a connection than the pool holds, they queue on the
runner's gate (``_acompat.AGate``) instead of in psycopg_pool's waiting list,
and ask the pool only once a connection is theirs to take. The gate must hand
its slots over first come first served, never lose one (timeouts,
cancellation), keep the pool's timeout, and leave the pool's queue empty.
"""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import pytest
from langgraph.checkpoint.base import empty_checkpoint
from psycopg_pool import AsyncConnectionPool

from pgcheckpoint import AsyncPostgresSaver
from pgcheckpoint._acompat import AGate, Gate
from pgcheckpoint._plans import execute_plan
from pgcheckpoint.retry import RetryPolicy

# --- the gate alone ----------------------------------------------------------------------


async def test_gate_admits_size_holders_then_hands_slots_over_in_order() -> None:
    gate = AGate()
    assert [await gate.enter(2, None) for _ in range(2)] == [True, True]
    order: list[int] = []

    async def wait(i: int) -> None:
        assert await gate.enter(2, None)
        order.append(i)

    waiters = [asyncio.create_task(wait(i)) for i in range(3)]
    await asyncio.sleep(0)
    assert order == [] and gate.inside == 2
    gate.leave()
    gate.leave()
    await asyncio.sleep(0)
    assert order == [0, 1] and gate.inside == 2  # handed over, not given back
    gate.leave()
    await asyncio.gather(*waiters)
    assert order == [0, 1, 2]
    gate.leave()  # the holders left: waiters 1 and 2
    gate.leave()
    assert gate.inside == 0


async def test_gate_timeout_lets_the_caller_through_without_a_slot() -> None:
    gate = AGate()
    assert await gate.enter(1, None)
    assert await gate.enter(1, 0.01) is False
    assert gate.inside == 1
    gate.leave()
    assert gate.inside == 0
    assert await gate.enter(1, 0.01) is True  # the expired waiter holds nothing


async def test_a_cancelled_waiter_passes_on_a_slot_it_was_handed() -> None:
    gate = AGate()
    assert await gate.enter(1, None)
    first = asyncio.create_task(gate.enter(1, None))
    second = asyncio.create_task(gate.enter(1, None))
    await asyncio.sleep(0)
    gate.leave()  # handed to `first`, which is cancelled before it runs
    first.cancel()
    with pytest.raises(asyncio.CancelledError):
        await first
    assert await second is True
    assert gate.inside == 1
    gate.leave()
    assert gate.inside == 0


async def test_a_waiter_cancelled_while_waiting_takes_no_slot() -> None:
    gate = AGate()
    assert await gate.enter(1, None)
    waiter = asyncio.create_task(gate.enter(1, None))
    await asyncio.sleep(0)
    waiter.cancel()
    with pytest.raises(asyncio.CancelledError):
        await waiter
    gate.leave()
    assert gate.inside == 0


def test_a_gate_serves_one_event_loop_and_the_sync_gate_none() -> None:
    gate = AGate()
    assert asyncio.run(gate.enter(1, None)) is True
    assert asyncio.run(gate.enter(1, None)) is False  # another loop: not gated
    assert gate.inside == 1
    assert Gate().enter(1, None) is False


# --- the gate in front of a real pool ------------------------------------------------------


def _config(thread_id: str) -> Any:
    return {"configurable": {"thread_id": thread_id, "checkpoint_ns": ""}}


async def test_many_callers_over_a_small_pool_never_queue_in_it(db_url: str) -> None:
    pool: AsyncConnectionPool[Any] = AsyncConnectionPool(
        db_url, min_size=2, max_size=2, kwargs={"autocommit": True}, open=False
    )
    await pool.open(wait=True)
    try:
        saver = AsyncPostgresSaver(pool)
        await saver.setup()
        prefix = f"gate-{uuid.uuid4().hex[:8]}"

        async def agent(a: int) -> None:
            config = await saver.aput(
                _config(f"{prefix}-{a}"), empty_checkpoint(), {"source": "input", "step": -1}, {}
            )
            for i in range(5):
                await saver.aput_writes(config, [("messages", f"w{i}")], f"task-{i}")

        before = pool.get_stats().get("requests_queued", 0)
        await asyncio.gather(*(agent(a) for a in range(24)))
        # Without the gate, 24 callers over 2 connections queue in the pool's list.
        assert pool.get_stats().get("requests_queued", 0) == before
        assert saver.runner._gate.inside == 0
        for a in range(24):
            got = await saver.aget_tuple(_config(f"{prefix}-{a}"))
            assert got is not None and len(got.pending_writes or []) == 5
    finally:
        await pool.close()


async def test_connections_held_outside_the_saver_are_waited_for(db_url: str) -> None:
    pool: AsyncConnectionPool[Any] = AsyncConnectionPool(
        db_url, min_size=1, max_size=1, kwargs={"autocommit": True}, open=False
    )
    await pool.open(wait=True)
    try:
        saver = AsyncPostgresSaver(pool)
        await saver.setup()
        held = await pool.getconn()  # the application's own use of the pool
        call = asyncio.create_task(saver.aget_tuple(_config("nobody")))
        await asyncio.sleep(0.2)
        assert not call.done()  # the gate let it through; it waits in the pool
        await pool.putconn(held)
        assert await call is None
        assert saver.runner._gate.inside == 0
    finally:
        await pool.close()


async def test_a_gate_wait_is_bounded_by_the_pool_timeout(db_url: str) -> None:
    pool: AsyncConnectionPool[Any] = AsyncConnectionPool(
        db_url, min_size=1, max_size=1, timeout=0.3, kwargs={"autocommit": True}, open=False
    )
    await pool.open(wait=True)
    try:
        saver = AsyncPostgresSaver(pool, retry=RetryPolicy(deadline=2.0, initial_delay=0.05))
        await saver.setup()
        busy = asyncio.create_task(
            saver.runner.run(execute_plan("sleep", "SELECT pg_sleep(4)", {}))
        )
        await asyncio.sleep(0.2)  # `busy` holds the gate's only slot and the connection
        # The caller does not wait in the gate for `busy` to end: after the pool's
        # timeout it goes the way a busy pool always went (a connection of the
        # runner's own stands in while the pool cannot serve).
        assert await saver.aget_tuple(_config("nobody")) is None
        assert not busy.done()
        await busy
        assert saver.runner._gate.inside == 0
        assert await saver.aget_tuple(_config("nobody")) is None  # no slot was lost
    finally:
        await pool.close()
