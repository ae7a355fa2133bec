"""Server time of the inspector's pages (issue 15): ``python -m bench.inspector``.

Fills a scratch database (``bench_inspector_<run>``, dropped at the end; with
``--keep``, ``bench_inspector``, recreated and kept for ``--reuse``) through
pgcheckpoint's own writes: ``--threads`` threads of one checkpoint each (saved
with ``batch_save_checkpoints``, 1,000 threads per transaction) and one thread of
``--checkpoints`` checkpoints (``put`` after ``put``, a chain), on a connection
with ``synchronous_commit=off``. Then it times, in-process through Starlette's
TestClient (so the figure is the app's time plus the ASGI round trip, no
network), the threads page (first page and a page deep into the keyset), the
long thread's page, its head checkpoint page and a diff. Nothing is asserted:
the figures go to the terminal (and ``--json``).

Examples::

    python -m bench.inspector                                  # 100,000 threads, 10,000 cps
    python -m bench.inspector --threads 10000 --checkpoints 1000 --rounds 10
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time
from pathlib import Path
from typing import Any

import psycopg
from langchain_core.messages import AIMessage, HumanMessage
from langgraph.checkpoint.base import empty_checkpoint

from bench.db import (
    bulk_connection,
    default_dsn,
    recreate_databases,
    scratch_databases,
    settle,
    with_dbname,
)
from pgcheckpoint import PostgresSaver

DATABASE = "bench_inspector"
LONG = "long-thread"


def _state(saver: PostgresSaver, i: int, prev: dict[str, Any] | None) -> dict[str, Any]:
    cp = empty_checkpoint()
    versions = dict((prev or {}).get("channel_versions") or {})
    for channel in ("messages", "step"):
        versions[channel] = saver.get_next_version(versions.get(channel))
    cp["channel_values"] = {
        "messages": [HumanMessage(f"question {i}"), AIMessage(f"answer {i} " + "x" * 200)],
        "step": i,
    }
    cp["channel_versions"] = versions
    return cp  # type: ignore[return-value]


def populate(dsn: str, threads: int, checkpoints: int) -> dict[str, float]:
    started = time.perf_counter()
    with bulk_connection(dsn) as conn:
        saver = PostgresSaver(conn)
        saver.setup()
        batch: list[Any] = []
        for n in range(threads):
            cp = _state(saver, n, None)
            config = {"configurable": {"thread_id": f"user-{n:07d}", "checkpoint_ns": ""}}
            meta = {"source": "input", "step": -1, "user": f"u{n % 100}"}
            batch.append((config, cp, meta, dict(cp["channel_versions"])))
            if len(batch) == 1000:
                saver.batch_save_checkpoints(batch)
                batch = []
        if batch:
            saver.batch_save_checkpoints(batch)
        threads_s = time.perf_counter() - started
        config: Any = {"configurable": {"thread_id": LONG, "checkpoint_ns": ""}}
        prev = None
        for i in range(checkpoints):
            cp = _state(saver, i, prev)
            new = {c: v for c, v in cp["channel_versions"].items()}
            config = saver.put(config, cp, {"source": "loop", "step": i}, new)
            prev = cp
    settle(dsn)
    return {"threads_s": threads_s, "total_s": time.perf_counter() - started}


def _time(client: Any, url: str, rounds: int) -> dict[str, float]:
    client.get(url)  # warm: templates compiled, statements planned
    samples = []
    for _ in range(rounds):
        t0 = time.perf_counter()
        r = client.get(url)
        samples.append((time.perf_counter() - t0) * 1000)
        if r.status_code != 200:
            raise RuntimeError(f"{url}: HTTP {r.status_code}")
    samples.sort()
    return {
        "median_ms": statistics.median(samples),
        "p95_ms": samples[max(0, int(len(samples) * 0.95) - 1)],
        "bytes": len(r.content),
    }


def measure(dsn: str, rounds: int) -> dict[str, dict[str, float]]:
    from starlette.testclient import TestClient

    from pgcheckpoint.inspector import create_app

    with PostgresSaver.from_conn_string(dsn) as saver:
        page = saver.thread_summaries(limit=50)
        deep = saver.thread_summaries(limit=1, after=(page[-1].updated_at, page[-1].thread_id))
        middle = saver.thread_summaries(limit=1, prefix="user-00500")  # half-way down
        head = saver.list_versions(LONG, checkpoint_ns="", limit=1)[0].checkpoint_id
        urls = {
            "threads page (first 50)": "/",
            "threads page (deep keyset page)": (
                f"/?after_at={middle[0].updated_at.isoformat()}&after_id={middle[0].thread_id}"
                if middle
                else f"/?after_at={deep[0].updated_at.isoformat()}&after_id={deep[0].thread_id}"
            ),
            "threads search (prefix)": "/?prefix=user-00123",
            "threads search (metadata)": "/?meta=user%3Du7",
            "thread page (long thread)": f"/thread?thread_id={LONG}",
            "checkpoint page (head)": f"/checkpoint?thread_id={LONG}&checkpoint_id={head}",
            "diff (head vs parent)": f"/diff?thread_id={LONG}&checkpoint_id={head}",
        }
        with TestClient(create_app(saver)) as client:
            return {
                name: _time(client, url.replace("+", "%2B"), rounds) for name, url in urls.items()
            }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.inspector", description=__doc__)
    parser.add_argument("--dsn", help="server whose user may create databases")
    parser.add_argument("--threads", type=int, default=100_000)
    parser.add_argument("--checkpoints", type=int, default=10_000)
    parser.add_argument("--rounds", type=int, default=20)
    parser.add_argument("--json", type=Path)
    parser.add_argument(
        "--reuse",
        action="store_true",
        help="measure the database (bench_inspector) a previous --keep run filled",
    )
    parser.add_argument(
        "--keep",
        action="store_true",
        help="fill bench_inspector (a fixed name, dropped and recreated) and keep it for --reuse",
    )
    parser.add_argument(
        "--no-index",
        action="store_true",
        help="drop migration 0007's threads_updated_idx first (the scratch database only)",
    )
    args = parser.parse_args(argv)
    admin = args.dsn or default_dsn()
    if args.reuse:
        return _report(args, with_dbname(admin, DATABASE), {})
    if args.keep:
        dsn = recreate_databases(admin, [DATABASE])[DATABASE]
        return _report(args, dsn, _fill(args, dsn))
    with scratch_databases(admin, [DATABASE]) as dsns:
        dsn = dsns[DATABASE]
        return _report(args, dsn, _fill(args, dsn))


def _fill(args: argparse.Namespace, dsn: str) -> dict[str, float]:
    fill = populate(dsn, args.threads, args.checkpoints)
    print(
        f"populated {args.threads:,} threads + one of {args.checkpoints:,} checkpoints "
        f"in {fill['total_s']:.0f} s"
    )
    return fill


def _report(args: argparse.Namespace, dsn: str, fill: dict[str, float]) -> int:
    with psycopg.connect(dsn, autocommit=True) as conn:
        if args.no_index:
            conn.execute("DROP INDEX IF EXISTS threads_updated_idx")
        conn.execute("ANALYZE threads")
        load = conn.execute("SELECT count(*) FROM threads").fetchone()
    print(
        f"{load[0] if load else 0:,} threads; "
        f"index on updated_at: {'no' if args.no_index else 'yes'}"
    )
    results = measure(dsn, args.rounds)
    width = max(map(len, results))
    for name, r in results.items():
        print(
            f"{name:<{width}}  median {r['median_ms']:7.1f} ms  p95 {r['p95_ms']:7.1f} ms  "
            f"{r['bytes'] / 1024:6.1f} KB"
        )
    print(f"load average: {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs")
    if args.json:
        args.json.write_text(json.dumps({"populate": fill, "pages": results}, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
