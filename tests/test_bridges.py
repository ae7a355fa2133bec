"""The bridges of the other colour (_bridges.py): refused calls of AsyncPostgresSaver's
sync methods, and the contract methods bridged both ways."""

from __future__ import annotations

import gc
import inspect
import warnings
from typing import Any

from langgraph.checkpoint.base import BaseCheckpointSaver

from pgcheckpoint import AsyncPostgresSaver, ConfigurationError, PostgresSaver
from pgcheckpoint._bridges import CONTRACT

CONFIG: Any = {"configurable": {"thread_id": "t", "checkpoint_ns": ""}}


def _refused(saver: AsyncPostgresSaver) -> str:
    # In a function of its own, so that nothing of the failed call (its frames, a
    # coroutine) outlives it through a kept exception.
    try:
        saver.get_tuple(CONFIG)
    except ConfigurationError as exc:
        return str(exc)
    raise AssertionError("a sync call on the saver's own event loop was not refused")


async def test_sync_call_on_own_loop_is_refused_leaving_no_coroutine(
    asaver: AsyncPostgresSaver,
) -> None:
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        message = _refused(asaver)
        gc.collect()
    assert "would deadlock" in message
    never_awaited = [w for w in caught if "never awaited" in str(w.message)]
    assert never_awaited == []


def test_every_contract_method_is_bridged_both_ways() -> None:
    declared = {
        name for name, _ in inspect.getmembers(BaseCheckpointSaver, inspect.isfunction)
        if not name.startswith("_") and f"a{name}" in vars(BaseCheckpointSaver)
    }
    # get/aget: the base class answers them with get_tuple/aget_tuple; list is
    # bridged page by page, by a factory of its own.
    assert declared - {"get", "list"} == set(CONTRACT)
    for name in CONTRACT:
        assert name in vars(PostgresSaver)  # generated from the async saver's a<name>
        assert f"a{name}" in vars(AsyncPostgresSaver)
        assert getattr(PostgresSaver, f"a{name}").__qualname__ == f"a{name}"
        assert getattr(AsyncPostgresSaver, name).__qualname__ == name
