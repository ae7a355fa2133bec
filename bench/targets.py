"""Issue 3's targets, as pure checks over the measurements of one run.

``gain`` is always "how many times better pgcheckpoint is": official ÷ pgcheckpoint for
costs (ms, bytes per step), pgcheckpoint ÷ official for rates (ops/s, supersteps/s).
Rows without a numeric target in the issue still carry its general rule, "measurably
faster on every operation" (gain > 1).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass

from bench.runner import Measurement
from bench.savers import OFFICIAL, OURS

MEMORY = "InMemorySaver"
LINEAR_GROWTH_MAX = 1.3
"""Marginal bytes per superstep, second half of the chat ÷ first: 1.0 linear, 3.0 quadratic."""


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


def _at_least(x: float) -> Check:
    def check(m: Measurement, _: Mapping[str, Measurement]) -> Verdict:
        g = gain(m)
        return Verdict(f"≥{x:g}x", None if g is None else g >= x)

    return check


def _faster(m: Measurement, _: Mapping[str, Measurement]) -> Verdict:
    g = gain(m)
    return Verdict(">1x (every op)", None if g is None else g > 1.0)


def _long_thread(m: Measurement, all_: Mapping[str, Measurement]) -> Verdict:
    g = gain(m)
    short = all_.get("scale.get_latest.t10")
    ours_short = short.values.get(OURS) if short else None
    ours_here = m.values.get(OURS)
    flat = None if not ours_short or ours_here is None else ours_here <= 1.5 * ours_short
    ok = None if g is None or flat is None else g >= 10 and flat
    return Verdict("≥10x, ours ≤1.5x short", ok)


def _end_to_end(m: Measurement, _: Mapping[str, Measurement]) -> Verdict:
    g = gain(m)
    ours, memory = m.values.get(OURS), m.values.get(MEMORY)
    near_memory = None if not ours or not memory else (1 / ours) <= 2 * (1 / memory)
    ok = None if g is None or near_memory is None else g >= 2.5 and near_memory
    return Verdict("≥2.5x, ≤2x InMemory time", ok)


def _storage(m: Measurement, _: Mapping[str, Measurement]) -> Verdict:
    official, ours = m.values.get(OFFICIAL), m.values.get(OURS)
    growth = m.extra.get("growth", {}).get(OURS)
    if not official or ours is None or growth is None:
        return Verdict("≤0.3x official, linear", None)
    ok = ours <= 0.3 * official and growth <= LINEAR_GROWTH_MAX
    return Verdict(f"≤0.3x official, linear (growth {growth:.2f})", ok)


def _storage_half(m: Measurement, _: Mapping[str, Measurement]) -> Verdict:
    official, ours = m.values.get(OFFICIAL), m.values.get(OURS)
    ok = None if not official or ours is None else ours <= 0.3 * official
    return Verdict("≤0.3x official", ok)


def _rule(key: str) -> Check | None:
    if key.startswith("floor."):
        return None
    base = key.split(".")[0]
    exact: dict[str, Check] = {
        "put_1kb": _at_least(1.5),
        "put_100kb": _at_least(2.5),
        "put_5mb": _at_least(2.5),
        "put_writes": _at_least(1.5),
        "get_latest": _at_least(2),
        "get_by_id": _at_least(2),
        "list10": _at_least(5),
        "list_all": _at_least(10),
        "e2e": _end_to_end,
    }
    if base in exact:
        return exact[base]
    if key == "storage.full":
        return _storage
    if key == "storage.half":
        return _storage_half
    if key == "async.c32":
        return _at_least(2)
    if key == "scale.get_latest.t10":
        return _at_least(2)
    if key in ("scale.get_latest.t3000", "scale.get_latest.t100000"):
        return _long_thread
    if key.startswith("scale.list10."):
        return _at_least(5)
    return _faster


def evaluate(measurements: list[Measurement]) -> dict[str, Verdict]:
    by_key = {m.key: m for m in measurements}
    verdicts: dict[str, Verdict] = {}
    for m in measurements:
        rule = _rule(m.key)
        if rule is not None:
            verdicts[m.key] = rule(m, by_key)
    return verdicts
