"""The parts of the saver contract the conformance suite does not reach."""

from __future__ import annotations

import asyncio
import random
import time
from typing import Annotated, Any

import pytest
from langchain_core.runnables import RunnableConfig
from langgraph.checkpoint.base import BaseCheckpointSaver
from langgraph.checkpoint.serde.jsonplus import JsonPlusSerializer
from langgraph.graph import START, StateGraph
from langgraph.types import Command, interrupt
from typing_extensions import TypedDict

from _helpers import Api, cfg, make_checkpoint
from pgcheckpoint import BlockedTypeError, PostgresSaver

DeltaChannel: Any
try:
    from langgraph.channels.delta import DeltaChannel
except ImportError:  # pragma: no cover - older LangGraph
    DeltaChannel = None

needs_delta = pytest.mark.skipif(DeltaChannel is None, reason="LangGraph has no DeltaChannel")


def _extend(state: Any, writes: Any) -> list[Any]:
    out = list(state or [])
    for w in writes:
        out.extend(w)
    return out


def delta_graph(saver: Any, steps: int, snapshot_every: int) -> Any:
    # Functional form: the channel is built from this call's arguments.
    items = Annotated[list[int], DeltaChannel(_extend, snapshot_frequency=snapshot_every)]
    S = TypedDict("S", {"items": items, "n": int, "stop": int}, total=False)  # type: ignore[misc]  # noqa: UP013

    def step(s: Any) -> Any:
        return {"items": [s.get("n", 0)], "n": s.get("n", 0) + 1}

    def route(s: Any) -> str:
        return "step" if s["n"] < s["stop"] else "__end__"

    b = StateGraph(S)
    b.add_node("step", step)
    b.add_edge(START, "step")
    b.add_conditional_edges("step", route)
    return b.compile(checkpointer=saver)


def _run_cfg(thread: str) -> RunnableConfig:
    return {"configurable": {"thread_id": thread}, "recursion_limit": 100_000}


async def _invoke(api: Api, graph: Any, inp: Any, config: RunnableConfig, **kw: Any) -> Any:
    if api.is_async:
        return await graph.ainvoke(inp, config, **kw)
    return await asyncio.to_thread(graph.invoke, inp, config, **kw)


async def _state(api: Api, graph: Any, config: RunnableConfig) -> Any:
    if api.is_async:
        return await graph.aget_state(config)
    return await asyncio.to_thread(graph.get_state, config)


@needs_delta
async def test_delta_history_of_a_long_thread(api: Api) -> None:
    """> 2000 checkpoints, no snapshot: the whole chain is walked, nothing truncated, fast."""
    steps = 2100
    graph = delta_graph(api.saver, steps, snapshot_every=1_000_000)
    out = await _invoke(api, graph, {"n": 0, "stop": steps}, _run_cfg("long"), durability="async")
    assert out["items"] == list(range(steps))
    head = await api.call("get_tuple", cfg("long"))
    started = time.monotonic()
    hist = await api.call("get_delta_channel_history", config=head.config, channels=["items", "n"])
    elapsed = time.monotonic() - started
    assert [w[2] for w in hist["items"]["writes"]] == [[i] for i in range(steps)]
    assert "seed" not in hist["items"]
    # The contract's reference implementation (a get_tuple walk) agrees exactly.
    if isinstance(api.saver, PostgresSaver):
        reference = await asyncio.to_thread(
            BaseCheckpointSaver.get_delta_channel_history, api.saver,
            config=head.config, channels=["items", "n"])
    else:
        reference = await BaseCheckpointSaver.aget_delta_channel_history(
            api.saver, config=head.config, channels=["items", "n"])
    assert hist == reference
    assert elapsed < 2.0, f"delta walk of {steps} checkpoints took {elapsed:.2f}s"
    # A fresh load of the thread rebuilds the channel from that history.
    state = await _state(api, delta_graph(api.saver, steps, 1_000_000), _run_cfg("long"))
    assert state.values["items"] == list(range(steps))


@needs_delta
async def test_prune_keep_latest_keeps_delta_ancestors(api: Api) -> None:
    graph = delta_graph(api.saver, 23, snapshot_every=5)
    await _invoke(api, graph, {"n": 0, "stop": 23}, _run_cfg("p"))
    before = await api.call("list", cfg("p"))
    await api.call("prune", ["p"], strategy="keep_latest")
    kept = await api.call("list", cfg("p"))
    assert 1 < len(kept) < len(before), "keep_latest must keep the ancestors back to a snapshot"
    state = await _state(api, graph, _run_cfg("p"))
    assert state.values["items"] == list(range(23))
    out = await _invoke(api, graph, {"stop": 30}, _run_cfg("p"))
    assert out["items"] == list(range(30))


class Q(TypedDict, total=False):
    log: list[str]


def approval_graph(saver: Any) -> Any:
    def ask(s: Q) -> Q:
        return {"log": [*s.get("log", []), f"answer:{interrupt('ok?')}"]}

    b = StateGraph(Q)
    b.add_node("ask", ask)
    b.add_edge(START, "ask")
    return b.compile(checkpointer=saver)


async def test_copy_thread_then_resume(api: Api) -> None:
    graph = approval_graph(api.saver)
    await _invoke(api, graph, {"log": ["start"]}, _run_cfg("src"))
    await api.call("copy_thread", "src", "dst")
    src_hist = await api.call("list", cfg("src"))
    dst_hist = await api.call("list", cfg("dst"))
    assert [t.checkpoint["id"] for t in dst_hist] == [t.checkpoint["id"] for t in src_hist]
    assert [t.pending_writes for t in dst_hist] == [t.pending_writes for t in src_hist]
    out = await _invoke(api, graph, Command(resume="copy"), _run_cfg("dst"))
    assert out["log"] == ["start", "answer:copy"]
    assert (await _state(api, graph, _run_cfg("src"))).next == ("ask",)
    out = await _invoke(api, graph, Command(resume="orig"), _run_cfg("src"))
    assert out["log"] == ["start", "answer:orig"]


async def test_list_filter_before_limit_all_threads(api: Api) -> None:
    ids: dict[str, list[str]] = {}
    for thread in ("a", "b", "c"):
        parent = None
        for step in range(5):
            saved = await api.put(thread, {"v": step}, parent=parent,
                                  metadata={"step": step, "thread": thread, "even": step % 2 == 0})
            parent = saved["configurable"]["checkpoint_id"]
            ids.setdefault(thread, []).append(parent)
    everything = await api.call("list", None)
    assert len(everything) == 15
    all_ids = [t.checkpoint["id"] for t in everything]
    assert all_ids == sorted(all_ids, reverse=True)
    by_thread = await api.call("list", cfg("b"))
    assert [t.checkpoint["id"] for t in by_thread] == ids["b"][::-1]
    evens = await api.call("list", cfg("a"), filter={"even": True})
    assert [t.metadata["step"] for t in evens] == [4, 2, 0]
    assert len(await api.call("list", None, filter={"even": False})) == 6
    assert await api.call("list", None, filter={"thread": "zz"}) == []
    before = await api.call("list", cfg("c"), before=cfg("c", "", ids["c"][3]))
    assert [t.checkpoint["id"] for t in before] == ids["c"][2::-1]
    limited = await api.call("list", cfg("c"), before=cfg("c", "", ids["c"][4]), limit=2)
    assert [t.checkpoint["id"] for t in limited] == [ids["c"][3], ids["c"][2]]
    assert await api.call("list", cfg("c"), limit=0) == []
    one = await api.call("list", cfg("a", "", ids["a"][1]))
    assert [t.checkpoint["id"] for t in one] == [ids["a"][1]]


async def test_list_pages_through_many_checkpoints(api: Api) -> None:
    """More checkpoints than one page (200), across threads and namespaces."""
    for i in range(450):
        await api.put(f"t{i % 3}", {"i": i}, ns="" if i % 2 else "sub", metadata={"i": i})
    everything = await api.call("list", None)
    keys = [(t.checkpoint["id"], t.config["configurable"]["thread_id"]) for t in everything]
    assert len(keys) == len(set(keys)) == 450
    assert keys == sorted(keys, reverse=True)
    assert len(await api.call("list", None, limit=250)) == 250
    t0 = await api.call("list", {"configurable": {"thread_id": "t0"}})
    assert len(t0) == 150
    t0_root = await api.call("list", cfg("t0", ""))
    assert len(t0_root) == 75


async def test_pending_writes_order(api: Api) -> None:
    saved = await api.put("w", {"v": 1})
    tasks = [("~b", "t2"), ("~a", "t9"), ("~a", "t1"), ("", "t5")]
    random.Random(7).shuffle(tasks)
    for path, task in tasks:
        await api.call("put_writes", saved, [(f"{task}-c{i}", i) for i in range(3)], task, path)
    got = await api.call("get_tuple", saved)
    expected = [
        (task, f"{task}-c{i}", i)
        for _, task in sorted(tasks)
        for i in range(3)
    ]
    assert got.pending_writes == expected
    # Saving a task's regular writes again changes nothing (a retried call).
    await api.call("put_writes", saved, [("t1-c0", 99)], "t1", "~a")
    assert (await api.call("get_tuple", saved)).pending_writes == expected


@pytest.mark.parametrize("count", [1, 8, 9, 40, 130])
async def test_put_writes_as_rows_or_arrays(api: Api, count: int) -> None:
    """Up to PUT_WRITES_ROWS writes go as VALUES rows, more as arrays (on Citus
    through pgcheckpoint_put_writes): each saves every write in order, a retry
    of regular writes changes nothing and special writes (upsert) replace the
    task's earlier outcome."""
    from pgcheckpoint._core import PUT_WRITES_ROWS

    assert PUT_WRITES_ROWS == 8  # the parameters straddle it
    saved = await api.put(f"rows{count}", {"v": 1})
    writes = [(f"c{i}", {"i": i, "b": bytes([i % 256]) * i}) for i in range(count)]
    await api.call("put_writes", saved, writes, "task", "~p")
    await api.call("put_writes", saved, [(c, "again") for c, _ in writes], "task", "~p")
    specials = [("__error__", f"boom {count}"), ("__interrupt__", ["wait"])]
    await api.call("put_writes", saved, specials, "err", "~q")
    await api.call("put_writes", saved, [("__error__", "later")], "err", "~q")
    got = await api.call("get_tuple", saved)
    assert got.pending_writes == [
        ("task", c, v) for c, v in writes
    ] + [("err", "__interrupt__", ["wait"]), ("err", "__error__", "later")]


@pytest.mark.parametrize("size", [9_000, 70_000, 5 * 1024 * 1024])
async def test_large_values_round_trip(api: Api, size: int) -> None:
    rnd = random.Random(size)
    text = "".join(rnd.choice("abcdefghij \n") for _ in range(size))
    raw = rnd.randbytes(size)
    nested = [{"k": i, "s": text[i : i + 50]} for i in range(200)]
    value = {"text": text, "raw": raw, "nested": nested}
    saved = await api.put("big", {"state": value, "text": text})
    await api.call("put_writes", saved, [("state", value), ("raw", raw)], "task")
    got = await api.call("get_tuple", cfg("big"))
    assert got.checkpoint["channel_values"]["state"] == value
    assert got.checkpoint["channel_values"]["text"] == text
    assert got.pending_writes == [("task", "state", value), ("task", "raw", raw)]


class Custom(frozenset[int]):
    """Written by name, but not a data class: the default rule refuses it on read."""


async def test_blocked_msgpack_type_raises(api: Api) -> None:
    """A value of a type outside the allowlist is refused on read, not half-decoded."""
    with PostgresSaver.from_conn_string(api.url, serde=JsonPlusSerializer()) as writer:
        cp = make_checkpoint({"obj": Custom({3})})
        versions = dict(cp["channel_versions"])
        saved = await asyncio.to_thread(writer.put, cfg("blk"), cp, {}, versions)
    with pytest.raises(BlockedTypeError, match="Custom") as info:
        await api.call("get_tuple", saved)
    assert info.value.blocked == [f"{__name__}.Custom"]
    allowed = api.saver.with_allowlist([(__name__, "Custom")])
    if api.is_async:
        got = await allowed.aget_tuple(saved)
    else:
        got = await asyncio.to_thread(allowed.get_tuple, saved)
    assert got is not None and got.checkpoint["channel_values"]["obj"] == Custom({3})


def test_put_function_writes_what_the_statement_does(databases: Any, template_db: str) -> None:
    """put on Citus calls pgcheckpoint_put (sql/functions/), elsewhere it runs the
    put_checkpoint statement (sql/queries/put.sql); the two must write the same
    rows and refuse the same puts. The same puts (fixed ids and versions, values
    inline, as blobs and as chunks, a namespace, a fork, a missing parent) into
    two databases, one saver per way, then every row compared (timestamps aside)."""
    import psycopg

    from pgcheckpoint.errors import MissingParentError

    big = "".join(random.Random(5).choice("abcdefgh \n") for _ in range(300_000))
    rows: dict[bool, dict[str, list[str]]] = {}
    for by_function in (False, True):
        name = databases.create(template=template_db)
        try:
            url = databases.url(name)
            with psycopg.connect(url) as conn:
                on_citus = conn.execute(
                    "SELECT EXISTS (SELECT 1 FROM pg_extension WHERE extname = 'citus')"
                ).fetchone()
            if on_citus and on_citus[0]:
                # The saver never runs the statement on Citus (put calls
                # pgcheckpoint_put once has_citus is known), and Citus refuses
                # put_head's UPDATE, whose SET computes updated_at with now() in a CASE.
                pytest.skip("put_head and put_checkpoint are the plain-PostgreSQL path")
            with PostgresSaver.from_conn_string(url) as saver:
                saver.has_citus = by_function  # what the citus probe would set
                parent: str | None = None
                for step, values in enumerate(
                    [{"n": 1}, {"n": 2, "text": "t" * 5000}, {"n": 3, "big": big}, {"n": 4}]
                ):
                    cp = make_checkpoint(values, {k: f"{step:032}.{k}" for k in values})
                    cp["id"] = f"1ef{step:05d}-0000-6000-8000-000000000000"
                    cp["ts"] = "2026-12-01T00:00:00+00:00"
                    for ns in ("", "sub:1"):
                        conf = cfg("t", ns, parent) if parent else cfg("t", ns)
                        meta = {"source": "loop", "step": step}
                        saver.put(conf, cp, meta, cp["channel_versions"])
                    parent = cp["id"]
                stale = make_checkpoint({"n": 9}, {"n": f"{9:032}.n"})
                stale["id"] = "1ef99999-0000-6000-8000-000000000000"
                stale["ts"] = "2026-12-01T00:00:00+00:00"
                # A direct put may fork from an older checkpoint ('exists' mode)...
                saver.put(cfg("t", "", "1ef00001-0000-6000-8000-000000000000"), stale,
                          {"source": "update", "step": 9}, {})  # fmt: skip
                # ... but not from one that does not exist.
                with pytest.raises(MissingParentError):
                    saver.put(cfg("t", "", "1ef77777-0000-6000-8000-000000000000"), stale,
                              {"source": "update", "step": 9}, {})  # fmt: skip
            with psycopg.connect(url, autocommit=True) as conn:
                rows[by_function] = {
                    table: [
                        str(r[0])
                        for r in conn.execute(
                            "SELECT (to_jsonb(x) - 'created_at' - 'updated_at')::text "
                            f"FROM {table} x ORDER BY 1"  # a name of ours, not input
                        )
                    ]
                    for table in ("threads", "checkpoints", "blobs", "chunks", "writes")
                }
        finally:
            databases.drop(name)
    assert rows[False]["chunks"] and rows[False]["blobs"]
    for table in rows[False]:
        diff = set(rows[True][table]) ^ set(rows[False][table])
        assert not diff, (table, sorted(d[:400] for d in diff))
