"""Why ``writes`` has no foreign key to ``checkpoints``: LangGraph saves writes first.

LangGraph submits a checkpoint's ``put`` to a background executor and does not
wait for it before the next tasks run and their ``put_writes`` are submitted
(``durability="async"``), nor before the final writes under ``"exit"``, nor
before the input writes of the first step under ``"sync"``. With a database
that answers ``put`` slowly (modelled by a delay in the saver below), writes are
committed for checkpoints that do not exist yet, in every durability mode.
A foreign key would turn that into failed runs; these tests show both.
"""

from __future__ import annotations

import asyncio
import operator
import time
from collections.abc import AsyncIterator
from typing import Annotated, Any, Literal

import psycopg
import pytest
from langchain_core.runnables import RunnableConfig
from langgraph.graph import END, START, StateGraph
from langgraph.types import Command, interrupt
from typing_extensions import TypedDict

from pgcheckpoint import AsyncPostgresSaver, PostgresSaver, StorageError

Durability = Literal["sync", "async", "exit"]
PUT_DELAY = 0.15  # seconds: a slow network round trip, far below any real timeout


def _checkpoint_exists(url: str, cfg: RunnableConfig) -> bool:
    conf = cfg["configurable"]
    with psycopg.connect(url, autocommit=True) as conn:
        row = conn.execute(
            "SELECT count(*) FROM checkpoints WHERE thread_id = %s AND checkpoint_ns = %s "
            "AND checkpoint_id = %s",
            (str(conf["thread_id"]), conf.get("checkpoint_ns", ""), conf["checkpoint_id"]),
        ).fetchone()
    return bool(row and row[0])


class SlowPutSaver(PostgresSaver):
    """PostgresSaver whose ``put`` is slow; records writes committed before their checkpoint."""

    url = ""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.early: list[tuple[str, list[str]]] = []
        self.write_calls = 0

    def put(self, *args: Any) -> RunnableConfig:
        time.sleep(PUT_DELAY)
        return super().put(*args)

    def put_writes(
        self, config: RunnableConfig, writes: Any, task_id: str, task_path: str = ""
    ) -> None:
        super().put_writes(config, writes, task_id, task_path)
        self.write_calls += 1
        if not _checkpoint_exists(self.url, config):
            self.early.append((config["configurable"]["checkpoint_id"], [w[0] for w in writes]))


class ASlowPutSaver(AsyncPostgresSaver):
    """AsyncPostgresSaver with the same slow ``aput`` and recording."""

    url = ""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.early: list[tuple[str, list[str]]] = []
        self.write_calls = 0

    async def aput(self, *args: Any) -> RunnableConfig:
        await asyncio.sleep(PUT_DELAY)
        return await super().aput(*args)

    async def aput_writes(
        self, config: RunnableConfig, writes: Any, task_id: str, task_path: str = ""
    ) -> None:
        await super().aput_writes(config, writes, task_id, task_path)
        self.write_calls += 1
        if not await asyncio.to_thread(_checkpoint_exists, self.url, config):
            self.early.append((config["configurable"]["checkpoint_id"], [w[0] for w in writes]))


class S(TypedDict, total=False):
    log: Annotated[list[str], operator.add]


def _graph(saver: Any) -> Any:
    def ask(state: S) -> S:
        return {"log": [f"answer:{interrupt('go?')}"]}

    b = StateGraph(S)
    b.add_node("a", lambda s: {"log": ["a"]})
    b.add_node("ask", ask)
    b.add_node("c", lambda s: {"log": ["c"]})
    b.add_edge(START, "a")
    b.add_edge("a", "ask")
    b.add_edge("ask", "c")
    b.add_edge("c", END)
    return b.compile(checkpointer=saver)


async def _run(saver: Any, is_async: bool, durability: Durability) -> Any:
    graph = _graph(saver)
    cfg: RunnableConfig = {"configurable": {"thread_id": f"t-{durability}"}}
    if is_async:
        await graph.ainvoke({"log": []}, cfg, durability=durability)
        return await graph.ainvoke(Command(resume="y"), cfg, durability=durability)
    await asyncio.to_thread(graph.invoke, {"log": []}, cfg, durability=durability)
    return await asyncio.to_thread(graph.invoke, Command(resume="y"), cfg, durability=durability)


@pytest.fixture(params=["sync-saver", "async-saver"])
async def slow_saver(request: pytest.FixtureRequest, db_url: str) -> AsyncIterator[Any]:
    if request.param == "sync-saver":
        with SlowPutSaver.from_conn_string(db_url) as s:
            assert isinstance(s, SlowPutSaver)
            s.url = db_url
            yield s
    else:
        async with ASlowPutSaver.from_conn_string(db_url) as a:
            assert isinstance(a, ASlowPutSaver)
            a.url = db_url
            yield a


def _orphan_writes(url: str) -> int:
    with psycopg.connect(url, autocommit=True) as conn:
        row = conn.execute(
            "SELECT count(*) FROM writes w WHERE NOT EXISTS (SELECT 1 FROM checkpoints c "
            "WHERE c.thread_id = w.thread_id AND c.checkpoint_ns = w.checkpoint_ns "
            "AND c.checkpoint_id = w.checkpoint_id)"
        ).fetchone()
    return int(row[0]) if row else -1


@pytest.mark.parametrize("durability", ["sync", "async", "exit"])
async def test_writes_can_precede_their_checkpoint(
    slow_saver: Any, durability: Durability, db_url: str
) -> None:
    """In every mode some writes are committed while their checkpoint is not yet saved."""
    out = await _run(slow_saver, isinstance(slow_saver, AsyncPostgresSaver), durability)
    assert out["log"] == ["a", "answer:y", "c"]
    print(f"\n{durability}: {len(slow_saver.early)}/{slow_saver.write_calls} early: "
          f"{slow_saver.early}")
    assert slow_saver.early, f"no write preceded its checkpoint under durability={durability!r}"
    # Once the runs end, every checkpoint the writes name has been saved.
    assert _orphan_writes(db_url) == 0


@pytest.mark.parametrize("durability", ["async", "exit"])
async def test_foreign_key_would_break_runs(
    slow_saver: Any, durability: Durability, db_url: str
) -> None:
    """With a writes -> checkpoints foreign key, the same runs fail with an FK violation."""
    with psycopg.connect(db_url, autocommit=True) as conn:
        conn.execute(
            "ALTER TABLE writes ADD CONSTRAINT writes_checkpoint_fk "
            "FOREIGN KEY (thread_id, checkpoint_ns, checkpoint_id) "
            "REFERENCES checkpoints (thread_id, checkpoint_ns, checkpoint_id)"
        )
    with pytest.raises(StorageError, match="23503"):
        await _run(slow_saver, isinstance(slow_saver, AsyncPostgresSaver), durability)


class FailingPutSaver(PostgresSaver):
    """A saver whose second checkpoint never gets saved (a crash or lost connection)."""

    puts = 0

    def put(self, *args: Any) -> RunnableConfig:
        self.puts += 1
        if self.puts == 2:
            time.sleep(PUT_DELAY)
            raise StorageError("simulated crash while saving a checkpoint")
        return super().put(*args)


def test_writes_of_a_never_saved_checkpoint_remain(db_url: str) -> None:
    """Under durability='async' a failed put leaves writes whose checkpoint never exists."""
    with FailingPutSaver.from_conn_string(db_url) as s:
        graph = _graph(s)
        cfg: RunnableConfig = {"configurable": {"thread_id": "crash"}}
        with pytest.raises(StorageError, match="simulated crash"):
            graph.invoke({"log": []}, cfg, durability="async")
        # The thread stays readable: its state is the one checkpoint saved (the input,
        # step -1), and the orphaned writes of the lost step 0 (node a's "a") are never read.
        state = graph.get_state(cfg)
        saved = [h.config["configurable"]["checkpoint_id"] for h in graph.get_state_history(cfg)]
        assert saved == [state.config["configurable"]["checkpoint_id"]]
        assert state.metadata is not None and state.metadata["step"] == -1
        assert state.values == {"log": []}
    assert _orphan_writes(db_url) > 0
