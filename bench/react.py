"""Issue 16's graph rows: 64 agents over a pool, and storage over long conversations.

Both use a ReAct-style ``StateGraph``: ``agent`` answers a user message with a tool
call, ``tools`` returns the tool's output, ``agent`` runs again and answers, and a
conditional edge ends the turn. LangGraph runs 4 supersteps a turn (``__start__``,
agent, tools, agent), each checkpointed before the next starts
(``durability="sync"``), plus the checkpoint of the input. Every message carries
about 450 bytes of pseudo-English (``MESSAGE_BYTES``), the issue's measure.

* ``swarm.c64``: 64 coroutines, each its own agent on its own thread, over one
  ``AsyncConnectionPool`` of 16 connections per saver; ``InMemorySaver`` runs the
  same agents in the same process as the ceiling LangGraph itself sets. Reported in
  supersteps per second, with the client's CPU per superstep (``process_time``, which
  a loaded box inflates far less than wall time) and the server's WAL bytes per
  superstep: the WAL records of the saver's own database and the commit records of
  their transactions (``pg_walinspect``), so that other clients of a shared server do
  not count; where the extension cannot be created, the whole server's
  ``pg_current_wal_lsn()`` difference (``wal_source`` in the JSON says which).
* ``conv.tN``: one conversation of N turns (several threads of it, so that relation
  sizes, which grow by 8 KB pages, are read over enough supersteps), then a window of
  further turns: bytes stored (``pg_total_relation_size`` over the saver's database)
  and WAL bytes per superstep of that window, beside what the window added: the
  zstd-compressed size of each new message (``added_bytes``), per superstep.

The history of an N-turn conversation is written as one checkpoint
(``update_state``) before the window, rather than by running N turns: the official
saver re-stores the whole message list at every superstep (≈1.8 MB at 1,000 turns),
so growing it turn by turn would write gigabytes. What a saver stores for the window
is what it stores at that length, however the history got there.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import random
import statistics
import time
from collections.abc import Awaitable, Callable, Sequence
from contextlib import AsyncExitStack
from functools import cache
from typing import Any

import psycopg
import zstandard
from langchain_core.messages import AIMessage, AnyMessage, HumanMessage, ToolMessage
from langgraph.checkpoint.memory import InMemorySaver
from langgraph.graph import END, START, StateGraph
from psycopg.conninfo import conninfo_to_dict

from bench.db import table_bytes
from bench.e2e import ChatState
from bench.runner import Context, Measurement, aalternate_rounds, run_async
from bench.states import SERDE, text, thread_config

MEMORY = "InMemorySaver"
MESSAGE_BYTES = 450
AGENTS = 64
POOL_SIZE = 16
WAL_SQL = "select pg_current_wal_lsn()::text"
WAL_DIFF_SQL = "select pg_wal_lsn_diff(%s::pg_lsn, %s::pg_lsn)::bigint"
# The WAL bytes between two LSNs that belong to one database: records whose blocks
# are in it, plus the commit (and other block-less) records of the transactions that
# wrote them. On the shared development box the whole server's LSN difference
# counted other helpers' test runs too (2026-12-01: 4,765 B/step of the saver's own
# beside 2,862-9,634 B/step of other databases in the same round); records summed
# leave out page headers and alignment (about 1 % less than the LSN difference alone).
WAL_OWN_SQL = """
with r as (
    select xid, record_length, block_ref ~ %(blocks)s as own, block_ref is null as bare
    from pg_get_wal_records_info(%(start)s::pg_lsn, %(stop)s::pg_lsn)
)
select coalesce(sum(record_length) filter (
    where own or (bare and xid <> '0' and xid in (select xid from r where own))), 0)::bigint
from r
"""


def _seeded(state: ChatState) -> random.Random:
    return random.Random(len(state["messages"]))


def _react_agent(state: ChatState) -> dict[str, Any]:
    n = len(state["messages"])
    last = state["messages"][-1]
    if isinstance(last, ToolMessage):
        return {"messages": [AIMessage(content=text(_seeded(state), MESSAGE_BYTES), id=f"m{n}")]}
    call = {"name": "search", "args": {"query": text(_seeded(state), 60)}, "id": f"call-{n}"}
    return {
        "messages": [
            AIMessage(content=text(_seeded(state), MESSAGE_BYTES), tool_calls=[call], id=f"m{n}")
        ]
    }


def _react_tools(state: ChatState) -> dict[str, Any]:
    n = len(state["messages"])
    last = state["messages"][-1]
    call_id = (
        last.tool_calls[0]["id"] if isinstance(last, AIMessage) and last.tool_calls else "none"
    )
    content = text(_seeded(state), MESSAGE_BYTES)
    return {"messages": [ToolMessage(content=content, tool_call_id=call_id, id=f"m{n}")]}


def _route(state: ChatState) -> str:
    last = state["messages"][-1]
    return "tools" if isinstance(last, AIMessage) and last.tool_calls else END


def react_graph(checkpointer: Any) -> Any:
    builder = StateGraph(ChatState)
    builder.add_node("agent", _react_agent)
    builder.add_node("tools", _react_tools)
    builder.add_edge(START, "agent")
    builder.add_conditional_edges("agent", _route, ["tools", END])
    builder.add_edge("tools", "agent")
    return builder.compile(checkpointer=checkpointer)


def user_message(thread: str, turn: int) -> HumanMessage:
    return HumanMessage(
        content=text(random.Random(f"{thread}:{turn}"), MESSAGE_BYTES), id=f"u{turn}"
    )


@cache
def react_supersteps_per_turn() -> int:
    """Supersteps LangGraph runs in one turn (checkpoints of source "loop"): 4."""
    saver = InMemorySaver()
    graph = react_graph(saver)
    config = thread_config("count")
    graph.invoke({"messages": [user_message("count", 0)]}, config, durability="sync")
    return len([t for t in saver.list(config) if t.metadata.get("source") == "loop"])


def wal_lsn(conn: psycopg.Connection[Any]) -> str:
    row = conn.execute(WAL_SQL).fetchone()
    return str(row[0]) if row else "0/0"


def wal_since(conn: psycopg.Connection[Any], start: str) -> int:
    row = conn.execute(WAL_DIFF_SQL, (wal_lsn(conn), start)).fetchone()
    return int(row[0]) if row else 0


async def awal_lsn(conn: psycopg.AsyncConnection[Any]) -> str:
    cur = await conn.execute(WAL_SQL)
    row = await cur.fetchone()
    return str(row[0]) if row else "0/0"


async def awal_since(conn: psycopg.AsyncConnection[Any], start: str) -> int:
    cur = await conn.execute(WAL_DIFF_SQL, (await awal_lsn(conn), start))
    row = await cur.fetchone()
    return int(row[0]) if row else 0


async def awal_inspector(conn: psycopg.AsyncConnection[Any]) -> bool:
    """Whether ``conn``'s database has pg_walinspect (created here if allowed)."""
    try:
        await conn.execute("create extension if not exists pg_walinspect")
    except psycopg.Error:  # not installed on the server, or not allowed
        return False
    return True


async def adatabase_oid(conn: psycopg.AsyncConnection[Any], dsn: str) -> int:
    name = conninfo_to_dict(dsn).get("dbname")
    cur = await conn.execute("select oid::bigint from pg_database where datname = %s", (name,))
    row = await cur.fetchone()
    return int(row[0]) if row else 0


async def awal_own_since(
    conn: psycopg.AsyncConnection[Any], start: str, database_oid: int
) -> int | None:
    """WAL bytes since ``start`` of the database ``database_oid`` (see WAL_OWN_SQL);
    None if the server has already recycled the segments (a busy shared server)."""
    params = {
        "blocks": f"rel [0-9]+/{database_oid}/",
        "start": start,
        # The flush position: pg_walinspect refuses an end past it ("cannot accept
        # future end LSN"), which the insert position can be on a busy server.
        "stop": str(((await (await conn.execute(
            "select pg_current_wal_flush_lsn()::text")).fetchone()) or ("",))[0]),
    }
    try:
        cur = await conn.execute(WAL_OWN_SQL, params)
    except psycopg.Error:
        return None
    row = await cur.fetchone()
    return int(row[0]) if row else 0


# --- 64 agents over a pool of 16 ----------------------------------------------------------


def run_swarm(ctx: Context) -> list[Measurement]:
    if not ctx.wants(f"swarm.c{AGENTS}"):
        return []
    measurement: Measurement = run_async(_swarm(ctx))
    return [measurement]


async def _swarm(ctx: Context) -> Measurement:
    rounds: int = ctx.mode.pick(3, 5)
    turns: int = ctx.mode.pick(1, 2)
    steps = AGENTS * turns * react_supersteps_per_turn()
    wal: dict[str, list[float]] = {}
    cpu: dict[str, list[float]] = {}
    sources: set[str] = set()  # where the WAL figures came from
    admin = await psycopg.AsyncConnection.connect(ctx.floor_dsn, autocommit=True)
    async with AsyncExitStack() as stack:
        await stack.enter_async_context(admin)
        inspect = await awal_inspector(admin)
        if inspect:
            # A temporary slot (dropped with this session) keeps the rounds' WAL
            # from being recycled before it is read: on the shared box (2026-12-01,
            # LangGraph's suite beside) 3 runs in 5 fell back to the whole
            # server's LSN difference without it.
            # Without replication privilege recycled segments fall back as before.
            with contextlib.suppress(psycopg.Error):
                await admin.execute(
                    "select pg_create_physical_replication_slot(%s, true, true)",
                    (f"bench_swarm_{os.getpid()}",),
                )
        oids = {side.name: await adatabase_oid(admin, side.dsn) for side in ctx.sides}
        graphs: dict[str, Any] = {}
        for side in ctx.sides:
            saver = await stack.enter_async_context(side.pooled_async_saver(POOL_SIZE))
            graphs[side.name] = react_graph(saver)
        graphs[MEMORY] = react_graph(InMemorySaver())

        async def agent(graph: Any, thread: str) -> None:
            config = {"configurable": {"thread_id": thread}}
            for turn in range(turns):
                await graph.ainvoke(
                    {"messages": [user_message(thread, turn)]}, config, durability="sync"
                )

        def bind(name: str) -> Callable[[int], Awaitable[float]]:
            async def run(r: int) -> float:
                threads = [f"swarm-{r}-{a}" for a in range(AGENTS)]
                lsn = await awal_lsn(admin)
                cpu_start = time.process_time()
                start = time.perf_counter()
                await asyncio.gather(*(agent(graphs[name], t) for t in threads))
                elapsed = time.perf_counter() - start
                cpu.setdefault(name, []).append((time.process_time() - cpu_start) * 1e3 / steps)
                if name != MEMORY:
                    written = await awal_own_since(admin, lsn, oids[name]) if inspect else None
                    if written is None:
                        sources.add("pg_current_wal_lsn, server")
                        written = await awal_since(admin, lsn)
                    else:
                        sources.add("pg_walinspect, own database")
                    wal.setdefault(name, []).append(written / steps)
                return steps / elapsed

            return run

        for graph in graphs.values():  # warm each pool's 16 connections and the graph
            await asyncio.gather(*(agent(graph, f"swarm-warm-{a}") for a in range(POOL_SIZE)))
        figures = await aalternate_rounds({name: bind(name) for name in graphs}, rounds)
    values = {name: statistics.median(f) for name, f in figures.items()}
    m = Measurement(
        f"swarm.c{AGENTS}",
        f"{AGENTS} ReAct agents, pool of {POOL_SIZE}, durability=sync, supersteps/s",
        "steps/s",
        values,
        min(len(f) for f in figures.values()),
    )
    m.extra.update(
        agents=AGENTS,
        pool_size=POOL_SIZE,
        turns_per_agent=turns,
        supersteps_per_round=steps,
        ms_per_step={name: 1e3 / v for name, v in values.items()},
        cpu_ms_per_step={name: statistics.median(c) for name, c in cpu.items()},
        cpu_ms_per_step_rounds=cpu,
        wal_source=" + ".join(sorted(sources)),
        steps_per_s_rounds=figures,
        wal_bytes_per_step={name: statistics.median(w) for name, w in wal.items()},
        wal_bytes_per_step_rounds=wal,
    )
    return m


def swarm_wal_row(m: Measurement) -> Measurement:
    """The swarm's WAL bytes per superstep as a row of its own (compared like bytes)."""
    return Measurement(
        f"swarm.wal.c{AGENTS}",
        f"server WAL per superstep, {AGENTS} agents",
        "B/step",
        dict(m.extra["wal_bytes_per_step"]),
        m.samples,
        None,
        {"rounds": m.extra["wal_bytes_per_step_rounds"]},
    )


def run_swarm_rows(ctx: Context) -> list[Measurement]:
    rows = run_swarm(ctx)
    return [*rows, *(swarm_wal_row(m) for m in rows)]


# --- storage over long conversations --------------------------------------------------------


def _history(thread: str, turns: int) -> list[AnyMessage]:
    """What ``turns`` turns of the ReAct graph leave in ``messages`` (same ids and text)."""
    messages: list[AnyMessage] = []
    for turn in range(turns):
        # Run the nodes' pure functions directly: cheaper than a graph with a saver.
        messages = [*messages, user_message(thread, turn)]
        for node in (_react_agent, _react_tools, _react_agent):
            messages = [*messages, *node({"messages": messages})["messages"]]
    return messages


def compressed_size(message: AnyMessage, compressor: zstandard.ZstdCompressor) -> int:
    """zstd (level 3) of the message as LangGraph's serializer writes it."""
    return len(compressor.compress(SERDE.dumps_typed(message)[1]))


def _lengths(ctx: Context) -> list[int]:
    lengths: list[int] = ctx.mode.pick([10, 100], [10, 100, 1_000])
    return lengths


def run_conversations(ctx: Context) -> list[Measurement]:
    lengths = [n for n in _lengths(ctx) if ctx.wants(f"conv.t{n}")]
    if not lengths:
        return []
    threads: int = ctx.mode.pick(3, 4)
    window: int = ctx.mode.pick(6, 8)  # turns measured per thread
    per_turn = react_supersteps_per_turn()
    compressor = zstandard.ZstdCompressor(level=3)
    out: list[Measurement] = []
    savers = ctx.sync_savers()
    with psycopg.connect(ctx.floor_dsn, autocommit=True) as admin:
        for n in lengths:
            histories = {f"conv-{n}-{t}": _history(f"conv-{n}-{t}", n) for t in range(threads)}
            added = 0
            for thread, history in histories.items():
                window_messages = _history(thread, n + window)[len(history) :]
                added += sum(compressed_size(msg, compressor) for msg in window_messages)
            steps = threads * window * per_turn
            stored: dict[str, float] = {}
            wal: dict[str, float] = {}
            seconds: dict[str, float] = {}
            per_table: dict[str, dict[str, int]] = {}
            for side in ctx.sides:
                graph = react_graph(savers[side.name])
                for thread, history in histories.items():
                    config = {"configurable": {"thread_id": thread}}
                    graph.update_state(config, {"messages": history}, as_node="agent")
                before = table_bytes(side.dsn)
                lsn = wal_lsn(admin)
                started = time.perf_counter()
                for thread in histories:
                    config = {"configurable": {"thread_id": thread}}
                    for turn in range(n, n + window):
                        graph.invoke(
                            {"messages": [user_message(thread, turn)]}, config, durability="sync"
                        )
                seconds[side.name] = time.perf_counter() - started
                wal[side.name] = wal_since(admin, lsn) / steps
                after = table_bytes(side.dsn)
                grew = {t: (b - before.get(t, 0)) / steps for t, b in after.items()}
                per_table[side.name] = {t: round(b) for t, b in grew.items() if b}
                stored[side.name] = sum(grew.values())
            added_per_step = added / steps
            common = {
                "turns": n,
                "threads": threads,
                "window_turns": window,
                "supersteps": steps,
                "added_bytes_per_step": added_per_step,
                "allowance_bytes_per_step": 1024 + 1.5 * added_per_step,
                "window_seconds": seconds,
                "stored_bytes_per_step_by_table": per_table,
            }
            out.append(
                Measurement(
                    f"conv.t{n}",
                    f"stored/superstep at {n:,} turns",
                    "B/step",
                    stored,
                    steps,
                    None,
                    {**common, "wal_bytes_per_step": wal},
                )
            )
            out.append(
                Measurement(
                    f"conv.wal.t{n}",
                    f"WAL/superstep at {n:,} turns",
                    "B/step",
                    wal,
                    steps,
                    None,
                    dict(common),
                )
            )
    return out


__all__: Sequence[str] = ("react_graph", "run_conversations", "run_swarm_rows")
