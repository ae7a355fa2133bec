"""Import benchmark: a SqliteSaver database of >= 10,000 checkpoints into pgcheckpoint via the CLI.

1. Runs a real LangGraph graph with ``SqliteSaver``: THREADS threads, each one
   run of STEPS steps; every step appends an AI message to ``messages`` (so
   the state grows as in a chat) and bumps a counter.
2. Imports the file with ``pgcheckpoint import sqlite PATH --json`` into a
   fresh database (the command verifies every checkpoint by reading it back).
3. Runs the import again (everything must be skipped) and resumes one imported
   thread on pgcheckpoint, comparing the result with the same resume on SQLite.

Usage::

    python scripts/import_benchmark.py --dsn postgresql://postgres@127.0.0.1:5432/postgres \\
        [--threads 200] [--steps 50] [--workdir /tmp/pgc-bench]
"""

from __future__ import annotations

import argparse
import json
import sqlite3
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Annotated, Any, TypedDict
from urllib.parse import urlsplit, urlunsplit

import psycopg
from langchain_core.messages import AIMessage, AnyMessage, HumanMessage
from langgraph.checkpoint.sqlite import SqliteSaver
from langgraph.graph import END, START, StateGraph
from langgraph.graph.message import add_messages

from pgcheckpoint import PostgresSaver


class State(TypedDict):
    messages: Annotated[list[AnyMessage], add_messages]
    count: int
    limit: int


def step(state: State) -> dict[str, Any]:
    n = state["count"] + 1
    return {"messages": [AIMessage(f"step {n}: " + "lorem ipsum " * 8)], "count": n}


def route(state: State) -> str:
    return "step" if state["count"] < state["limit"] else END


def build(checkpointer: Any) -> Any:
    b = StateGraph(State)
    b.add_node("step", step)
    b.add_edge(START, "step")
    b.add_conditional_edges("step", route)
    return b.compile(checkpointer=checkpointer)


def make_source(path: Path, threads: int, steps: int) -> tuple[int, float]:
    started = time.monotonic()
    conn = sqlite3.connect(path, check_same_thread=False)
    saver = SqliteSaver(conn)
    graph = build(saver)
    for i in range(threads):
        config = {"configurable": {"thread_id": f"bench-{i:04d}"}, "recursion_limit": steps + 10}
        graph.invoke({"messages": [HumanMessage(f"hi {i}")], "count": 0, "limit": steps}, config)
    total = conn.execute("SELECT count(*) FROM checkpoints").fetchone()[0]
    conn.close()
    return int(total), time.monotonic() - started


def fresh_database(server: str) -> str:
    name = f"pgc_bench_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(server, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    return urlunsplit(urlsplit(server)._replace(path="/" + name))


def drop_database(server: str, url: str) -> None:
    name = urlsplit(url).path.lstrip("/")
    with psycopg.connect(server, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def cli(*args: str) -> tuple[dict[str, Any], float]:
    started = time.monotonic()
    out = subprocess.run(
        [sys.executable, "-m", "pgcheckpoint.cli", *args, "--json", "--quiet"],
        check=True,
        capture_output=True,
        text=True,
    )
    return json.loads(out.stdout), time.monotonic() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dsn", required=True, help="server URL (a database is created on it)")
    parser.add_argument("--threads", type=int, default=200)
    parser.add_argument("--steps", type=int, default=50)
    parser.add_argument("--workdir", type=Path, default=Path("/tmp/pgc-import-bench"))
    args = parser.parse_args()
    args.workdir.mkdir(parents=True, exist_ok=True)
    source = args.workdir / f"source-{args.threads}x{args.steps}.sqlite"
    if source.exists():
        source.unlink()
    total, made = make_source(source, args.threads, args.steps)
    size = source.stat().st_size
    print(
        f"source: {total:,} checkpoints in {args.threads} threads, "
        f"{size / 1e6:.1f} MB SQLite, written by SqliteSaver in {made:.1f}s"
    )

    target = fresh_database(args.dsn)
    unverified_db = fresh_database(args.dsn)
    try:
        first, wall = cli("import", "sqlite", str(source), "--dsn", target)
        print(
            f"import: {first['checkpoints']:,} checkpoints, {first['writes']:,} writes, "
            f"{first['threads']} threads in {first['seconds']:.2f}s "
            f"({first['checkpoints_per_second']:,.0f} checkpoints/s incl. verification; "
            f"{wall:.2f}s wall for the command)"
        )
        print(f"verification: {'PASSED' if first['verified'] else 'FAILED'}")
        again, wall2 = cli("import", "sqlite", str(source), "--dsn", target, "--no-verify")
        print(
            f"re-run: {again['skipped']}/{again['threads']} threads skipped "
            f"({again['skipped_checkpoints']:,} checkpoints compared, "
            f"{again['checkpoints']} imported) in {wall2:.2f}s wall"
        )

        backup = args.workdir / "backup.ndjson"
        exported, wall3 = cli("export", "--dsn", target, "-o", str(backup))
        print(
            f"export: {exported['checkpoints']:,} checkpoints, {exported['values']:,} values, "
            f"{exported['writes']:,} writes in {wall3:.2f}s wall, "
            f"{backup.stat().st_size / 1e6:.1f} MB NDJSON"
        )
        restored, wall4 = cli("import", "ndjson", str(backup), "--dsn", unverified_db)
        print(
            f"import ndjson into an empty database: {restored['seconds']:.2f}s "
            f"({restored['checkpoints_per_second']:,.0f} checkpoints/s, verified); "
            f"{wall4:.2f}s wall"
        )
        rerun, wall5 = cli("import", "ndjson", str(backup), "--dsn", unverified_db)
        print(
            f"import ndjson again: {rerun['skipped']}/{rerun['threads']} threads skipped, "
            f"{rerun['skipped_checkpoints']:,} checkpoints compared, in {wall5:.2f}s wall"
        )
        drop_database(args.dsn, unverified_db)
        unverified_db = fresh_database(args.dsn)

        raw, _ = cli("import", "sqlite", str(source), "--dsn", unverified_db, "--no-verify")
        print(
            f"import without verification: {raw['seconds']:.2f}s "
            f"({raw['checkpoints_per_second']:,.0f} checkpoints/s)"
        )

        tid = "bench-0000"
        more = {"messages": [HumanMessage("more")], "count": 0, "limit": 3}
        conn = sqlite3.connect(source, check_same_thread=False)
        want = build(SqliteSaver(conn)).invoke(more, {"configurable": {"thread_id": tid}})
        with PostgresSaver.from_conn_string(target) as saver:
            got = build(saver).invoke(more, {"configurable": {"thread_id": tid}})
        same = [m.content for m in got["messages"]] == [m.content for m in want["messages"]]
        print(
            f"resume after import: {'same result as on SQLite' if same else 'DIFFERENT'} "
            f"({len(got['messages'])} messages)"
        )
    finally:
        drop_database(args.dsn, target)
        drop_database(args.dsn, unverified_db)


if __name__ == "__main__":
    main()
