"""Issue 16's targets, as pure checks over the measurements of one run.

``gain`` is always "how many times better pgcheckpoint is": official ÷ pgcheckpoint for
costs (ms, bytes per step), pgcheckpoint ÷ official for rates (ops/s, supersteps/s).
Every row carries the issue's first rule, "never slower" (gain ≥ 1.0); some add a
bound against a floor (a PostgreSQL round trip or INSERT, ``InMemorySaver``, or the
compressed size of what a step added).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass

from bench.runner import Measurement
from bench.savers import OFFICIAL, OURS

MEMORY = "InMemorySaver"
FIXED_OVERHEAD = 1024
"""Issue 16, target 4: bytes per superstep at most 1 KB plus 1.5x what the step added."""
ADDED_FACTOR = 1.5


@dataclass(frozen=True)
class Verdict:
    target: str
    ok: bool | None


Check = Callable[[Measurement, Mapping[str, Measurement]], Verdict]


def gain(m: Measurement) -> float | None:
    official, ours = m.values.get(OFFICIAL), m.values.get(OURS)
    if not official or not ours:
        return None
    return ours / official if m.higher_is_better else official / ours


def _both(*checks: Check) -> Check:
    def check(m: Measurement, all_: Mapping[str, Measurement]) -> Verdict:
        verdicts = [c(m, all_) for c in checks]
        oks = [v.ok for v in verdicts]
        ok = None if any(o is None for o in oks) else all(oks)
        return Verdict(", ".join(v.target for v in verdicts), ok)

    return check


def _at_least(x: float) -> Check:
    def check(m: Measurement, _: Mapping[str, Measurement]) -> Verdict:
        g = gain(m)
        return Verdict(f"≥{x:g}x", None if g is None else g >= x)

    return check


NEVER_SLOWER = _at_least(1.0)


def _floor_within(x: float, floor_key: str, label: str) -> Check:
    """Ours at most ``x`` times the floor row ``floor_key`` (a latency)."""

    def check(m: Measurement, all_: Mapping[str, Measurement]) -> Verdict:
        floor = all_.get(floor_key)
        ours = m.values.get(OURS)
        base = floor.values.get("postgres") if floor else None
        ok = None if not base or ours is None else ours <= x * base
        return Verdict(f"≤{x:g}x {label}", ok)

    return check


def _memory_time_within(x: float) -> Check:
    """Ours at most ``x`` times InMemorySaver's time (``MEMORY`` value of the same row)."""

    def check(m: Measurement, _: Mapping[str, Measurement]) -> Verdict:
        ours, memory = m.values.get(OURS), m.values.get(MEMORY)
        if not ours or not memory:
            return Verdict(f"≤{x:g}x InMemory time", None)
        mine = 1 / ours if m.higher_is_better else ours
        theirs = 1 / memory if m.higher_is_better else memory
        return Verdict(f"≤{x:g}x InMemory time", mine <= x * theirs)

    return check


def _memory_rate_at_least(x: float) -> Check:
    def check(m: Measurement, _: Mapping[str, Measurement]) -> Verdict:
        ours, memory = m.values.get(OURS), m.values.get(MEMORY)
        ok = None if not ours or not memory else ours >= x * memory
        return Verdict(f"≥{x:g}x InMemory rate", ok)

    return check


def _at_most_official(x: float) -> Check:
    def check(m: Measurement, _: Mapping[str, Measurement]) -> Verdict:
        official, ours = m.values.get(OFFICIAL), m.values.get(OURS)
        ok = None if not official or ours is None else ours <= x * official
        return Verdict(f"≤{x:g}x official", ok)

    return check


def allowance(m: Measurement) -> float | None:
    """1 KB + 1.5x the compressed bytes a superstep added (conversation rows)."""
    added = m.extra.get("added_bytes_per_step")
    return None if added is None else FIXED_OVERHEAD + ADDED_FACTOR * float(added)


def _within_allowance(m: Measurement, _: Mapping[str, Measurement]) -> Verdict:
    limit, ours = allowance(m), m.values.get(OURS)
    ok = None if limit is None or ours is None else ours <= limit
    label = "≤1 KB + 1.5x added" + ("" if limit is None else f" ({limit:,.0f})")
    return Verdict(label, ok)


GET_SHORT = _both(NEVER_SLOWER, _floor_within(3, "floor.select1", "SELECT 1"))
GET_SHORT_ASYNC = _both(NEVER_SLOWER, _floor_within(3, "floor.select1_async", "SELECT 1"))


def _rule(key: str) -> Check | None:
    if key.startswith("floor."):
        return None
    exact: dict[str, Check] = {
        "put_1kb.sync": _both(NEVER_SLOWER, _floor_within(1.5, "floor.insert_1kb", "INSERT")),
        "put_1kb.async": _both(
            NEVER_SLOWER, _floor_within(1.5, "floor.insert_1kb_async", "INSERT")
        ),
        "get_latest.sync": GET_SHORT,
        "get_by_id.sync": GET_SHORT,
        "scale.get_latest.t10": GET_SHORT,
        "get_latest.async": GET_SHORT_ASYNC,
        "get_by_id.async": GET_SHORT_ASYNC,
        "list_all.sync": _both(_at_least(5), _memory_time_within(2)),
        "list_all.async": _both(_at_least(5), _memory_time_within(2)),
        "swarm.c64": _both(_at_least(2), _memory_rate_at_least(0.7)),
        "swarm.wal.c64": _at_most_official(0.5),
    }
    if key in exact:
        return exact[key]
    if key.startswith(("list10.", "scale.list10.")):
        return _at_least(5)
    if key.startswith(("conv.t", "conv.wal.t")):
        return _within_allowance
    return NEVER_SLOWER


def evaluate(measurements: list[Measurement]) -> dict[str, Verdict]:
    by_key = {m.key: m for m in measurements}
    verdicts: dict[str, Verdict] = {}
    for m in measurements:
        rule = _rule(m.key)
        if rule is not None:
            verdicts[m.key] = rule(m, by_key)
    return verdicts
