"""Scaling and concurrency: long threads, a crowded database, 1 and 32 async callers.

Scaling threads hold tiny checkpoints (one short message, the ``messages`` channel
changing every step) written through each side's own ``put`` on a connection with
``synchronous_commit=off``. Measured at 0.19 ms per put for the official saver on the
development box, so 100,000 checkpoints take ~20 s per side: inside the ten-minute
budget, and it keeps the fixture honest (each saver's real rows, real indexes) where a
hand-written INSERT ... SELECT would have to know each saver's schema. After
populating, both databases get VACUUM (ANALYZE) and a CHECKPOINT, as autovacuum and
the checkpointer would have done by then.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from contextlib import AsyncExitStack
from typing import Any

from bench.db import settle
from bench.runner import (
    Context,
    Measurement,
    Plan,
    aalternate_rounds,
    alternate,
    latency,
    rate,
    run_async,
)
from bench.savers import Side
from bench.states import SMALL, TINY, Step, ThreadBuilder, thread_config
from bench.workloads import populate


def _lengths(ctx: Context) -> list[int]:
    lengths: list[int] = ctx.mode.pick([10, 1_000, 3_000], [10, 1_000, 3_000, 100_000])
    return lengths


def run_scaling(ctx: Context) -> list[Measurement]:
    lengths = _lengths(ctx)
    tags = [f"t{n}" for n in lengths] + ["crowded"]
    if not ctx.wants_any(
        f"scale.{kind}.{tag}" for kind in ("get_latest", "list10") for tag in tags
    ):
        return []
    crowd: int = ctx.mode.pick(1_000, 10_000)
    out: list[Measurement] = []
    started = time.perf_counter()
    for side in ctx.sides:
        for n in lengths:
            populate(side, [f"scale-{n}"], n, profile=TINY)
        settle(side.dsn)
    long_populate_s = time.perf_counter() - started
    savers = ctx.sync_savers()
    for n in lengths:
        for m in _measure(ctx, savers, f"scale-{n}", f"t{n}", f"{n:,}-checkpoint thread"):
            m.extra["populate_s"] = long_populate_s
            out.append(m)
    started = time.perf_counter()
    for side in ctx.sides:
        populate(side, [f"crowd-{i}" for i in range(crowd)], 3, profile=TINY)
        settle(side.dsn)
    populate_s = time.perf_counter() - started
    title = f"10-checkpoint thread among {crowd:,} other threads"
    for m in _measure(ctx, savers, "scale-10", "crowded", title):
        m.extra["other_threads"] = crowd
        m.extra["populate_s"] = populate_s
        out.append(m)
    return out


def _measure(
    ctx: Context, savers: dict[str, Any], thread: str, tag: str, what: str
) -> list[Measurement]:
    config = thread_config(thread)
    plan = ctx.mode.plan(Plan(3, 10), Plan(5, 20))
    samples = alternate({name: _getter(s, config) for name, s in savers.items()}, plan)
    out = [
        latency(f"scale.get_latest.{tag}", f"get_tuple latest, {what}", samples, floor="select1")
    ]
    samples = alternate({name: _lister(s, config) for name, s in savers.items()}, plan)
    out.append(latency(f"scale.list10.{tag}", f"list(limit=10), {what}", samples, floor="select1"))
    return out


def _getter(saver: Any, config: Any) -> Callable[[int], object]:
    return lambda i: saver.get_tuple(config)


def _lister(saver: Any, config: Any) -> Callable[[int], object]:
    return lambda i: list(saver.list(config, limit=10))


# --- concurrency --------------------------------------------------------------------------


def run_concurrency(ctx: Context) -> list[Measurement]:
    out: list[Measurement] = []
    for callers in (1, 32):
        if ctx.wants(f"async.c{callers}"):
            out.append(run_async(_concurrency(ctx, callers)))
    return out


async def _concurrency(ctx: Context, callers: int) -> Measurement:
    """``callers`` coroutines, each on its own thread: aput a new checkpoint, aget_tuple it."""
    rounds: int = ctx.mode.pick(4, 8)
    per_caller: int = ctx.mode.pick(60, 100) if callers == 1 else ctx.mode.pick(6, 10)
    async with AsyncExitStack() as stack:
        savers = {
            s.name: await stack.enter_async_context(s.pooled_async_saver(callers))
            for s in ctx.sides
        }
        plans = {
            s.name: _caller_steps(s, savers[s.name], callers, rounds * per_caller + 1)
            for s in ctx.sides
        }

        async def caller(saver: Any, steps: list[Step], first: int) -> None:
            for step in steps[first : first + per_caller]:
                await saver.aput(step.config, step.checkpoint, step.metadata, step.new_versions)
                await saver.aget_tuple(thread_config(step.config["configurable"]["thread_id"]))

        def bind(name: str) -> Callable[[int], Awaitable[float]]:
            async def run(r: int) -> float:
                first = 1 + r * per_caller
                start = time.perf_counter()
                await asyncio.gather(*(caller(savers[name], st, first) for st in plans[name]))
                return 2 * callers * per_caller / (time.perf_counter() - start)

            return run

        for name, saver in savers.items():  # first checkpoint of every thread, untimed
            await asyncio.gather(*(caller_first(saver, st[0]) for st in plans[name]))
        figures = await aalternate_rounds({s.name: bind(s.name) for s in ctx.sides}, rounds)
    m = rate(
        f"async.c{callers}", f"async put+get_tuple mix, {callers} caller(s), pool", "ops/s", figures
    )
    m.extra.update(callers=callers, pool_size=callers, ops_per_caller_per_round=2 * per_caller)
    return m


async def caller_first(saver: Any, step: Step) -> None:
    await saver.aput(step.config, step.checkpoint, step.metadata, step.new_versions)


def _caller_steps(side: Side, saver: Any, callers: int, n: int) -> list[list[Step]]:
    return [
        ThreadBuilder(f"conc-{callers}-{c}", saver.get_next_version, SMALL).steps(n)
        for c in range(callers)
    ]
