"""The thread API on both savers: list, stats, get_at_time, list_versions, rollback, delete."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest
from langchain_core.messages import HumanMessage
from langgraph.types import Command

from graph_fixtures import build_graph, populate
from pgcheckpoint import AsyncPostgresSaver, InvalidInputError, PostgresSaver
from pgcheckpoint.threads import ThreadInfo, diff_checkpoints


def _ids(saver: PostgresSaver, tid: str) -> list[str]:
    return [v.checkpoint_id for v in saver.list_versions(tid, checkpoint_ns="")]


def test_list_threads_pages_and_filters(saver: PostgresSaver) -> None:
    populate(saver, 5)
    threads = saver.list_threads()
    assert [t.thread_id for t in threads] == [f"thread-{i}" for i in (4, 3, 2, 1, 0)]
    assert all(isinstance(t, ThreadInfo) and t.first_at <= t.last_at for t in threads)
    assert threads[0].checkpoints == sum(
        1 for _ in saver.list({"configurable": {"thread_id": "thread-4"}})
    )
    assert [t.thread_id for t in saver.list_threads(limit=2, offset=2)] == ["thread-2", "thread-1"]
    page = saver.list_threads(limit=2, after=threads[1])
    assert [t.thread_id for t in page] == ["thread-2", "thread-1"]
    assert {t.thread_id for t in saver.list_threads(filter={"user": "u1"})} == {
        "thread-1",
        "thread-3",
    }
    with pytest.raises(InvalidInputError, match="limit"):
        saver.list_threads(limit=-1)


def test_stats_and_versions(saver: PostgresSaver) -> None:
    populate(saver, 1)
    stats = saver.thread_stats("thread-0")
    assert stats is not None and stats.checkpoints > 3 and stats.namespaces == 2
    assert stats.writes > 0 and stats.stored_bytes > 0
    assert stats.head_checkpoint_id == _ids(saver, "thread-0")[0]
    assert saver.thread_stats("nope") is None
    versions = saver.list_versions("thread-0", checkpoint_ns="")
    assert versions == sorted(versions, key=lambda v: v.checkpoint_id, reverse=True)
    assert versions[-1].parent_checkpoint_id is None and versions[-1].metadata["source"] == "input"
    assert len(saver.list_versions("thread-0", limit=2)) == 2


def test_get_at_time(saver: PostgresSaver) -> None:
    populate(saver, 1)
    versions = list(reversed(saver.list_versions("thread-0", checkpoint_ns="")))
    for v in versions:
        at = saver.get_at_time("thread-0", v.created_at)
        assert at is not None and at.config["configurable"]["checkpoint_id"] == v.checkpoint_id
    between = versions[1].created_at + (versions[2].created_at - versions[1].created_at) / 2
    at = saver.get_at_time("thread-0", between)
    assert at is not None
    assert at.config["configurable"]["checkpoint_id"] == versions[1].checkpoint_id
    before = versions[0].created_at - dt.timedelta(seconds=1)
    assert saver.get_at_time("thread-0", before) is None
    with pytest.raises(InvalidInputError, match="timezone-aware"):
        saver.get_at_time("thread-0", dt.datetime.now())


def test_rollback_then_resume(saver: PostgresSaver) -> None:
    graph = build_graph(saver)
    config: Any = {"configurable": {"thread_id": "t"}}
    graph.invoke({"messages": [HumanMessage("hi")], "count": 0}, config)
    graph.invoke(Command(resume="yes"), config)
    final = graph.get_state(config).values
    waiting = next(s for s in graph.get_state_history(config) if s.next == ("ask",))
    interrupted = next(
        v
        for v in saver.list_versions("t", checkpoint_ns="")
        if v.checkpoint_id == waiting.config["configurable"]["checkpoint_id"]
    )
    before = _ids(saver, "t")
    new = saver.rollback("t", interrupted.checkpoint_id)
    head = saver.get_tuple(config)
    assert head is not None and head.config == new
    assert head.metadata["rollback_of"] == interrupted.checkpoint_id
    assert head.metadata["rolled_back_from"] == before[0]
    assert head.metadata["source"] == "fork"
    assert head.parent_config is not None
    assert head.parent_config["configurable"]["checkpoint_id"] == before[0]
    old = saver.get_tuple(
        {"configurable": {"thread_id": "t", "checkpoint_id": interrupted.checkpoint_id}}
    )
    assert old is not None
    assert head.checkpoint["channel_values"] == old.checkpoint["channel_values"]
    assert _ids(saver, "t")[1:] == before  # history kept
    # Resuming re-runs from the restored state: the interrupt is asked again.
    state = graph.invoke(None, config)
    assert "__interrupt__" in state
    state = graph.invoke(Command(resume="no"), config)
    assert [m.content for m in state["messages"]][:-1] == [m.content for m in final["messages"]][
        :-1
    ]
    assert state["messages"][-1].content == "answer: no"
    with pytest.raises(InvalidInputError, match="no checkpoint"):
        saver.rollback("t", "missing")


def test_delete_checkpoint_only_leaves(saver: PostgresSaver) -> None:
    populate(saver, 1)
    ids = _ids(saver, "thread-0")
    blobs = saver.thread_stats("thread-0")
    with pytest.raises(InvalidInputError, match="child checkpoint"):
        saver.delete_checkpoint("thread-0", ids[1])
    with pytest.raises(InvalidInputError, match="no checkpoint"):
        saver.delete_checkpoint("thread-0", "nope")
    assert _ids(saver, "thread-0") == ids
    saver.delete_checkpoint("thread-0", ids[0])
    assert _ids(saver, "thread-0") == ids[1:]
    head = saver.get_tuple({"configurable": {"thread_id": "thread-0"}})
    assert head is not None and head.config["configurable"]["checkpoint_id"] == ids[1]
    after = saver.thread_stats("thread-0")
    assert blobs is not None and after is not None and after.blobs <= blobs.blobs


def test_diff_checkpoints(saver: PostgresSaver) -> None:
    populate(saver, 1)
    ids = _ids(saver, "thread-0")
    a = saver.get_tuple({"configurable": {"thread_id": "thread-0", "checkpoint_id": ids[-2]}})
    b = saver.get_tuple({"configurable": {"thread_id": "thread-0", "checkpoint_id": ids[0]}})
    assert a is not None and b is not None
    diffs = {d.channel: d for d in diff_checkpoints(a.checkpoint, b.checkpoint)}
    assert diffs["messages"].status == "changed"
    assert [m.content for m in diffs["messages"].added][-1] == "answer: yes"
    assert diffs["messages"].removed == []


async def test_async_twins(asaver: AsyncPostgresSaver) -> None:
    graph = build_graph(asaver)
    config: Any = {"configurable": {"thread_id": "a"}}
    await graph.ainvoke({"messages": [HumanMessage("hi")], "count": 0}, config)
    [info] = await asaver.alist_threads()
    assert info.thread_id == "a"
    stats = await asaver.athread_stats("a")
    assert stats is not None and stats.checkpoints == info.checkpoints
    versions = await asaver.alist_versions("a", checkpoint_ns="")
    at = await asaver.aget_at_time("a", versions[-1].created_at)
    assert at is not None
    new = await asaver.arollback("a", versions[-1].checkpoint_id)
    assert (await asaver.aget_tuple(config)).config == new  # type: ignore[union-attr]
    await asaver.adelete_checkpoint("a", new["configurable"]["checkpoint_id"])
    assert len(await asaver.alist_versions("a", checkpoint_ns="")) == len(versions)
