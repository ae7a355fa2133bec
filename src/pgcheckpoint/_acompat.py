"""The few names whose sync and async forms differ by more than ``async``/``await``.

:mod:`pgcheckpoint._runner_async` and :mod:`pgcheckpoint.aio` are written by
hand against the async names here; tools/async_to_sync.py maps each ``aX`` to
its sync ``X`` (``ALock`` -> ``Lock``, ``AGate`` -> ``Gate``, ``asleep`` -> ``sleep``,
``arun_blocking`` -> ``run_blocking``) when it generates their sync twins.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections import deque
from collections.abc import Callable
from typing import Any, TypeVar

T = TypeVar("T")

Lock = threading.Lock
ALock = asyncio.Lock

sleep = time.sleep
asleep = asyncio.sleep


# Why a gate in front of an AsyncConnectionPool: when more coroutines want a
# connection than the pool holds (issue 16's 64 agents over 16 connections),
# each one that finds the pool empty queues in psycopg_pool's waiting list: an
# asyncio.Lock, a Condition and an asyncio.wait_for timer per checkout, and the
# handover on putconn under the same locks. Queuing on a plain future first,
# and asking the pool only with a slot in hand (so a connection is ready), took
# one pooled INSERT from 388 to 280 Python calls (cProfile, 64 coroutines, pool
# of 16; client CPU about 20 % less in three interleaved pairs, 2026-12-01).


class AGate:
    """At most ``size`` holders at a time, first come first served, on one event loop.

    ``enter`` returns True with a slot (give it back with ``leave``), or False
    when ``timeout`` passed first (the caller goes on without one, and meets
    the pool's own wait). Callers from another event loop than the first
    caller's are let through without a slot (False at once).
    """

    __slots__ = ("_loop", "_waiters", "inside")

    def __init__(self) -> None:
        self.inside = 0
        self._waiters: deque[asyncio.Future[bool]] = deque()
        self._loop: asyncio.AbstractEventLoop | None = None

    async def enter(self, size: int, timeout: float | None) -> bool:
        loop = asyncio.get_running_loop()
        if self._loop is not loop:
            if self._loop is not None:
                return False
            self._loop = loop
        if self.inside < size and not self._waiters:
            self.inside += 1
            return True
        waiter: asyncio.Future[bool] = loop.create_future()
        self._waiters.append(waiter)
        timer = None if timeout is None else loop.call_later(timeout, _expire, waiter)
        try:
            return await waiter
        except BaseException:
            # Cancelled after leave() handed this waiter the slot: pass it on.
            if waiter.done() and not waiter.cancelled() and waiter.result():
                self.leave()
            raise
        finally:
            if timer is not None:
                timer.cancel()

    def leave(self) -> None:
        """Give back a slot: to the first waiter still waiting, else to the gate."""
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_result(True)
                return
        self.inside -= 1


def _expire(waiter: asyncio.Future[bool]) -> None:
    if not waiter.done():
        waiter.set_result(False)


class Gate:
    """The sync twin of :class:`AGate`: lets everyone through (psycopg_pool's
    sync waiting list is a threading.Condition, with no per-wait timer task)."""

    __slots__ = ()

    def enter(self, size: int, timeout: float | None) -> bool:
        return False

    def leave(self) -> None:  # pragma: no cover - enter never hands out a slot
        return None


def run_blocking(func: Callable[..., T], *args: Any) -> T:
    """Call ``func`` (sync code may block)."""
    return func(*args)


async def arun_blocking(func: Callable[..., T], *args: Any) -> T:
    """Call ``func`` on a worker thread, so that it does not block the event loop."""
    return await asyncio.to_thread(func, *args)
