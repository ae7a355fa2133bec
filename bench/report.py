"""Rendering: a rich table for people, JSON for machines, Markdown for docs/benchmarks.md.

All three come from the same rows (``rows()``), so the console, the JSON file and the
pasted Markdown table can never disagree.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from bench.runner import Measurement
from bench.savers import OFFICIAL, OURS
from bench.targets import MEMORY, Verdict, evaluate, gain

NONE = "no checkpointer"


def _fmt(value: float | None, unit: str) -> str:
    if value is None:
        return "—"
    if unit == "ms":
        return f"{value:.3f}" if value < 10 else f"{value:.1f}"
    if unit == "B/step":
        return f"{value:,.0f}"
    return f"{value:,.0f}" if value >= 100 else f"{value:.1f}"


def _floor_value(m: Measurement, floors: dict[str, float]) -> float | None:
    return floors.get(f"floor.{m.floor}") if m.floor else None


def floor_multiples(m: Measurement, floor: float | None) -> dict[str, float]:
    """Each side's figure as a multiple of the row's floor.

    Latencies: ÷ the floor row (SELECT 1, or the INSERT of the same bytes). Rates with
    an ``InMemorySaver`` figure: time per superstep ÷ InMemorySaver's. Conversation
    storage rows: bytes per superstep ÷ the compressed bytes the superstep added.
    """
    if m.unit == "ms":
        return {name: v / floor for name, v in m.values.items()} if floor else {}
    if m.higher_is_better:
        memory = m.values.get(MEMORY)
        return {name: memory / v for name, v in m.values.items() if v} if memory else {}
    added = m.extra.get("added_bytes_per_step")
    return {name: v / added for name, v in m.values.items()} if added else {}


def rows(measurements: list[Measurement]) -> list[dict[str, Any]]:
    """One dict per measurement with everything the renderers and the JSON need."""
    floors = {m.key: m.values["postgres"] for m in measurements if m.key.startswith("floor.")}
    verdicts = evaluate(measurements)
    out: list[dict[str, Any]] = []
    for m in measurements:
        floor = _floor_value(m, floors)
        verdict: Verdict | None = verdicts.get(m.key)
        multiples = floor_multiples(m, floor)
        out.append(
            {
                "key": m.key,
                "title": m.title,
                "unit": m.unit,
                "values": m.values,
                "samples": m.samples,
                "gain": gain(m),
                "gain_meaning": (
                    "pgcheckpoint ÷ official" if m.higher_is_better else "official ÷ pgcheckpoint"
                ),
                "floor": m.floor,
                "floor_ms": floor,
                "floor_multiples": multiples,
                "target": verdict.target if verdict else None,
                "pass": verdict.ok if verdict else None,
                "extra": m.extra,
            }
        )
    return out


def _verdict_text(ok: bool | None, *, rich: bool) -> str:
    if ok is None:
        return "—"
    if rich:
        return "[green]PASS[/green]" if ok else "[red]FAIL[/red]"
    return "PASS" if ok else "FAIL"


def _cells(row: dict[str, Any], *, rich: bool) -> list[str]:
    unit, values = row["unit"], row["values"]
    if row["key"].startswith("floor."):
        return [row["title"], unit, _fmt(values["postgres"], unit), "", "", "", "", "", ""]
    mult = row["floor_multiples"]
    g = row["gain"]
    arrow = "↑" if unit in ("ops/s", "steps/s") else ""
    return [
        row["title"],
        unit,
        _fmt(values.get(OFFICIAL), unit),
        _fmt(values.get(OURS), unit),
        "—" if g is None else f"{g:.2f}x{arrow}",
        f"{mult[OFFICIAL]:.1f}" if OFFICIAL in mult else "",
        f"{mult[OURS]:.1f}" if OURS in mult else "",
        row["target"] or "",
        _verdict_text(row["pass"], rich=rich),
    ]


HEADERS = [
    "workload",
    "unit",
    "official",
    "pgcheckpoint",
    "gain",
    "official x floor",
    "ours x floor",
    "target",
    "result",
]
FOOTNOTE = (
    "gain = official ÷ pgcheckpoint for latencies and bytes; ↑ marks rates (ops/s, "
    "supersteps/s), where gain = pgcheckpoint ÷ official. x floor = median ÷ the floor row "
    "it refers to (SELECT 1 round trip for reads, an INSERT of the same bytes for writes); "
    "for graph rates, time per superstep ÷ InMemorySaver's; for conversation bytes, bytes "
    "per superstep ÷ the zstd-compressed bytes the superstep added."
)


def print_report(
    measurements: list[Measurement], meta: dict[str, Any], console: Console | None = None
) -> None:
    console = console or Console()
    console.print(_machine_line(meta))
    table = Table(title="pgcheckpoint vs langgraph-checkpoint-postgres (medians)", show_lines=False)
    for i, header in enumerate(HEADERS):
        table.add_column(header, justify="left" if i in (0, 1, 7) else "right")
    for row in rows(measurements):
        table.add_row(*_cells(row, rich=True))
    console.print(table)
    console.print(FOOTNOTE, style="dim")
    for m in measurements:
        if m.key.startswith("e2e."):
            parts = [
                f"{name} {v:,.0f} steps/s ({m.extra['ms_per_step'][name]:.2f} ms/step)"
                for name, v in m.values.items()
            ]
            console.print(f"{m.key}: " + "; ".join(parts))
        if m.key.startswith("swarm.c"):
            wal = m.extra["wal_bytes_per_step"]
            cpu = m.extra.get("cpu_ms_per_step", {})
            console.print(
                f"{m.key}: "
                + "; ".join(f"{name} {v:,.0f} steps/s" for name, v in m.values.items())
                + "; client CPU per superstep: "
                + ", ".join(f"{name} {v:.2f} ms" for name, v in cpu.items())
                + f"; server WAL per superstep ({m.extra.get('wal_source', 'server')}): "
                + ", ".join(f"{name} {v:,.0f} B" for name, v in wal.items())
            )
        if m.key.startswith("conv.t"):
            console.print(
                f"{m.key}: {m.extra['supersteps']} supersteps measured "
                f"({m.extra['threads']} threads x {m.extra['window_turns']} turns); each added "
                f"{m.extra['added_bytes_per_step']:,.0f} B compressed; allowance "
                f"{m.extra['allowance_bytes_per_step']:,.0f} B; stored "
                + ", ".join(f"{k} {v:,.0f}" for k, v in m.values.items())
                + "; WAL "
                + ", ".join(f"{k} {v:,.0f}" for k, v in m.extra["wal_bytes_per_step"].items())
                + "; stored by table: "
                + "; ".join(
                    f"{side} "
                    + ", ".join(f"{t} {b:,}" for t, b in sorted(tables.items(), key=_by_size))
                    for side, tables in m.extra["stored_bytes_per_step_by_table"].items()
                )
            )


def _by_size(item: tuple[str, int]) -> int:
    return -item[1]


def _machine_line(meta: dict[str, Any]) -> str:
    packages = ", ".join(f"{k} {v}" for k, v in meta["machine"]["packages"].items())
    machine = meta["machine"]
    return (
        f"{machine['cpu_count']} CPUs ({machine['cpu_model']}), {machine['platform']}, "
        f"Python {machine['python']}, PostgreSQL {machine['postgresql']} at {machine['server']} "
        f"{machine['postgresql_settings']}\n{packages}\nmode: {meta['mode']}, "
        f"wall time {meta.get('elapsed_s', 0):.0f} s"
    )


def markdown(measurements: list[Measurement]) -> str:
    """The same table as Markdown, for pasting into docs/benchmarks.md."""
    lines = ["| " + " | ".join(HEADERS) + " |", "|" + "---|" * len(HEADERS)]
    for row in rows(measurements):
        lines.append("| " + " | ".join(_cells(row, rich=False)) + " |")
    return "\n".join(lines)


def write_json(path: Path, measurements: list[Measurement], meta: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    document = {"meta": meta, "results": rows(measurements), "markdown": markdown(measurements)}
    path.write_text(json.dumps(document, indent=2, default=str) + "\n", encoding="utf-8")


__all__ = ["MEMORY", "NONE", "markdown", "print_report", "rows", "write_json"]
