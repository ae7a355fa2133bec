"""Timing: alternate the savers round by round, keep every sample, report medians.

Why alternate: a run on a laptop or a CI box drifts (thermal throttling, autovacuum,
a neighbour's compile). Timing all of A then all of B puts that drift into the ratio;
interleaving rounds (A B, B A, A B, ...) spreads it evenly over both, and the median
over many samples discards the odd spike. A few warm-up calls per side go first, so
prepared statements, plan caches and connection buffers are warm for both.
"""

from __future__ import annotations

import asyncio
import gc
import statistics
import time
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from contextlib import ExitStack
from dataclasses import dataclass, field
from fnmatch import fnmatch
from typing import Any, Literal

from bench.savers import Side

Unit = Literal["ms", "ops/s", "steps/s", "B/step"]


@dataclass(frozen=True)
class Plan:
    """How many samples a workload takes: ``rounds`` x ``per_round`` per side, after warm-up."""

    rounds: int
    per_round: int
    warmup: int = 5

    @property
    def total(self) -> int:
        return self.warmup + self.rounds * self.per_round


@dataclass(frozen=True)
class Mode:
    """Sizes that differ between ``--quick`` and the default run."""

    quick: bool

    def plan(self, quick: Plan, full: Plan) -> Plan:
        return quick if self.quick else full

    def pick(self, quick: Any, full: Any) -> Any:
        return quick if self.quick else full


@dataclass
class Measurement:
    """One row of the report: a median per side, and what it is compared against."""

    key: str
    title: str
    unit: Unit
    values: dict[str, float]
    samples: int
    floor: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def higher_is_better(self) -> bool:
        return self.unit in ("ops/s", "steps/s")


@dataclass
class Context:
    """What every workload receives: the sides, the floor database, the mode, and a cache."""

    sides: list[Side]
    floor_dsn: str
    mode: Mode
    only: Sequence[str] = ()
    cache: dict[str, Any] = field(default_factory=dict)
    _stack: ExitStack = field(default_factory=ExitStack)
    _savers: dict[str, Any] | None = None

    def sync_savers(self) -> dict[str, Any]:
        """One sync saver per side, opened once and shared by every sync workload.

        Opening per workload would have pgcheckpoint's pool (``from_conn_string`` makes
        one) fill in the background while the first samples are timed.
        """
        if self._savers is None:
            self._savers = {s.name: self._stack.enter_context(s.sync_saver()) for s in self.sides}
        return self._savers

    def close(self) -> None:
        self._stack.close()

    def wants(self, key: str) -> bool:
        """Whether ``--only`` selects the row ``key`` (substring or glob)."""
        if not self.only:
            return True
        return any(pattern in key or fnmatch(key, pattern) for pattern in self.only)

    def wants_any(self, keys: Iterable[str]) -> bool:
        """Whether ``--only`` selects any of ``keys``: sections with a costly set-up
        (populating threads) check this before doing it."""
        return any(self.wants(key) for key in keys)


def _orders(names: Sequence[str], rounds: int) -> list[Sequence[str]]:
    """Two contenders alternate (A B, B A, ...). Three or more rotate (A B C, B C A,
    C A B, ...): reversing alone kept the middle one in the middle every round, and a
    self-test of the 64-agent row (official on both sides, with InMemorySaver third)
    read 1.43x for the side always run second."""
    if len(names) <= 2:
        return [names if r % 2 == 0 else list(reversed(names)) for r in range(rounds)]
    n = len(names)
    return [[names[(i + r) % n] for i in range(n)] for r in range(rounds)]


def alternate(ops: Mapping[str, Callable[[int], object]], plan: Plan) -> dict[str, list[float]]:
    """Time ``ops[name](i)`` for i = 0..plan.total-1, rounds interleaved; seconds per call."""
    names = list(ops)
    samples: dict[str, list[float]] = {name: [] for name in names}
    for name in names:
        for i in range(plan.warmup):
            ops[name](i)
    index = dict.fromkeys(names, plan.warmup)
    clock = time.perf_counter
    for order in _orders(names, plan.rounds):
        for name in order:
            op = ops[name]
            out = samples[name]
            gc.collect()
            for _ in range(plan.per_round):
                i = index[name]
                index[name] = i + 1
                start = clock()
                op(i)
                out.append(clock() - start)
    return samples


async def aalternate(
    ops: Mapping[str, Callable[[int], Awaitable[object]]], plan: Plan
) -> dict[str, list[float]]:
    """The async twin of ``alternate``: same order, same warm-up, awaited calls."""
    names = list(ops)
    samples: dict[str, list[float]] = {name: [] for name in names}
    for name in names:
        for i in range(plan.warmup):
            await ops[name](i)
    index = dict.fromkeys(names, plan.warmup)
    clock = time.perf_counter
    for order in _orders(names, plan.rounds):
        for name in order:
            op = ops[name]
            out = samples[name]
            gc.collect()
            for _ in range(plan.per_round):
                i = index[name]
                index[name] = i + 1
                start = clock()
                await op(i)
                out.append(clock() - start)
    return samples


def alternate_rounds(
    runs: Mapping[str, Callable[[int], float]], rounds: int
) -> dict[str, list[float]]:
    """For throughput: ``runs[name](round)`` does a batch and returns its own figure."""
    names = list(runs)
    results: dict[str, list[float]] = {name: [] for name in names}
    for r, order in enumerate(_orders(names, rounds)):
        for name in order:
            gc.collect()
            results[name].append(runs[name](r))
    return results


async def aalternate_rounds(
    runs: Mapping[str, Callable[[int], Awaitable[float]]], rounds: int
) -> dict[str, list[float]]:
    names = list(runs)
    results: dict[str, list[float]] = {name: [] for name in names}
    for r, order in enumerate(_orders(names, rounds)):
        for name in order:
            gc.collect()
            results[name].append(await runs[name](r))
    return results


def latency(
    key: str,
    title: str,
    samples: Mapping[str, list[float]],
    *,
    floor: str | None = None,
    **extra: Any,
) -> Measurement:
    """Median milliseconds per side."""
    values = {name: statistics.median(s) * 1e3 for name, s in samples.items()}
    count = min(len(s) for s in samples.values())
    extra["p90_ms"] = {name: _quantile(s, 0.9) * 1e3 for name, s in samples.items()}
    return Measurement(key, title, "ms", values, count, floor, extra)


def rate(
    key: str, title: str, unit: Unit, figures: Mapping[str, list[float]], **extra: Any
) -> Measurement:
    """Median over rounds of a per-round figure (ops/s, steps/s)."""
    values = {name: statistics.median(f) for name, f in figures.items()}
    count = min(len(f) for f in figures.values())
    return Measurement(key, title, unit, values, count, None, extra)


def _quantile(values: Sequence[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def run_async(coro: Awaitable[Any]) -> Any:
    """Run a coroutine on a fresh loop (psycopg async wants a selector loop on Windows)."""
    return asyncio.run(coro)  # type: ignore[arg-type]
