"""The few names whose sync and async forms differ by more than ``async``/``await``.

:mod:`pgcheckpoint._runner_async` and :mod:`pgcheckpoint.aio` are written by
hand against the async names here; tools/async_to_sync.py maps each ``aX`` to
its sync ``X`` (``ALock`` -> ``Lock``, ``asleep`` -> ``sleep``,
``arun_blocking`` -> ``run_blocking``) when it generates their sync twins.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable
from typing import Any, TypeVar

T = TypeVar("T")

Lock = threading.Lock
ALock = asyncio.Lock

sleep = time.sleep
asleep = asyncio.sleep


def run_blocking(func: Callable[..., T], *args: Any) -> T:
    """Call ``func`` (sync code may block)."""
    return func(*args)


async def arun_blocking(func: Callable[..., T], *args: Any) -> T:
    """Call ``func`` on a worker thread, so that it does not block the event loop."""
    return await asyncio.to_thread(func, *args)
