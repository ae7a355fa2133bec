"""Command line: ``python -m bench [--quick] [--dsn DSN] [--only PATTERN] [--json PATH]``.

Examples::

    python -m bench --quick                      # < 1.5 minutes
    python -m bench                              # the full run, < 10 minutes
    python -m bench --quick --only put,get       # a subset (substring or glob on keys)
    python -m bench --self-test --quick          # official vs official: ratios should be ~1
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from rich.console import Console

from bench import e2e, encryption, react, report, scaling, workloads
from bench.db import default_dsn, describe, machine_info, scratch_databases
from bench.runner import Context, Measurement, Mode
from bench.savers import Side, make_sides

DEFAULT_JSON = Path("bench/results/latest.json")

# Conversations first: their WAL figures are cleanest before any CHECKPOINT (settle)
# makes the next write of every page a full-page image.
# Scaling last: it fills the databases with 100,000-checkpoint threads and crowds.
SECTIONS: tuple[tuple[str, Callable[[Context], list[Measurement]]], ...] = (
    ("storage over long conversations", react.run_conversations),
    ("floors", workloads.run_floors),
    ("sync operations", workloads.run_sync),
    ("async operations", workloads.run_async_ops),
    ("async concurrency over a pool", scaling.run_concurrency),
    ("end-to-end agent graph (sync)", e2e.run_agent_sync),
    ("end-to-end agent graph (async)", e2e.run_agent_async),
    ("64 agents over a pool of 16", react.run_swarm_rows),
    ("encryption at rest", encryption.run_encryption),
    ("scaling", scaling.run_scaling),
)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m bench",
        description="Benchmark pgcheckpoint against langgraph-checkpoint-postgres.",
        epilog="Example: python -m bench --quick --only 'put_*'",
    )
    parser.add_argument("--quick", action="store_true", help="smaller samples, < 1.5 minutes")
    parser.add_argument(
        "--dsn",
        help="server to use (its user must be allowed to create databases); default: "
        "$DATABASE_URL, else pgcheckpoint's embedded server, else postgres@127.0.0.1:5432",
    )
    parser.add_argument(
        "--only",
        metavar="PATTERN",
        help="comma-separated substrings or globs of workload keys, e.g. 'put,list10.sync'",
    )
    parser.add_argument("--json", type=Path, default=DEFAULT_JSON, help=f"default: {DEFAULT_JSON}")
    parser.add_argument(
        "--compare",
        action="store_true",
        help="both savers side by side, ratio official ÷ pgcheckpoint "
        "(the default; kept as an explicit alias)",
    )
    parser.add_argument(
        "--self-test",
        action="store_true",
        help="run the official saver on both sides, to validate the harness (ratios ≈ 1)",
    )
    parser.add_argument("--markdown", action="store_true", help="also print the Markdown table")
    return parser.parse_args(argv)


def _run(
    dsns: dict[str, str], args: argparse.Namespace, console: Console
) -> tuple[list[Measurement], list[Side], list[str], dict[str, float]] | None:
    """Every section on the scratch databases ``dsns``; None if pgcheckpoint is missing."""
    try:
        sides = make_sides(dsns, self_test=args.self_test)
    except ImportError as exc:
        console.print(f"[red]cannot import pgcheckpoint ({exc}); try --self-test[/red]")
        return None
    for side in sides:
        side.setup()
    only = [p.strip() for p in args.only.split(",") if p.strip()] if args.only else []
    ctx = Context(
        sides=sides, floor_dsn=dsns["bench_floor"], mode=Mode(quick=args.quick), only=only
    )
    measurements: list[Measurement] = []
    section_s: dict[str, float] = {}
    try:
        for title, section in SECTIONS:
            t0 = time.perf_counter()
            got = section(ctx)
            if got:
                section_s[title] = time.perf_counter() - t0
                console.print(f"[dim]{title}: {len(got)} rows in {section_s[title]:.1f} s[/dim]")
            measurements.extend(got)
    finally:
        ctx.close()
    return measurements, sides, only, section_s


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    console = Console()
    if not console.is_terminal:  # piped or captured: do not squeeze the table into 80 columns
        console = Console(width=180)
    dsn = args.dsn or default_dsn()
    started = time.perf_counter()
    with scratch_databases(dsn) as dsns:
        names = ", ".join(describe(d).rsplit("/", 1)[1] for d in dsns.values())
        console.print(f"server {describe(dsn)}; scratch databases {names} (dropped at exit)")
        got = _run(dsns, args, console)
    if got is None:
        return 2
    measurements, sides, only, section_s = got
    meta: dict[str, Any] = {
        "mode": "quick" if args.quick else "default",
        "self_test": args.self_test,
        "only": only,
        "command": " ".join(["python -m bench", *(argv if argv is not None else sys.argv[1:])]),
        "machine": machine_info(dsn),
        "sides": {side.name: side.label for side in sides},
        "elapsed_s": time.perf_counter() - started,
        "section_s": section_s,
    }
    report.print_report(measurements, meta, console)
    if args.markdown:
        console.print(report.markdown(measurements), markup=False, highlight=False)
    report.write_json(args.json, measurements, meta)
    console.print(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
