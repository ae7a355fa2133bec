"""Storage over time under a steady agent workload, with and without a retention policy.

    python scripts/storage_curve.py curve [--rounds 12] [--threads 20] [--steps 3]
    python scripts/storage_curve.py compression

``curve`` runs the same workload on two fresh databases side by side: each
round starts ``--threads`` new conversations and gives each ``--steps`` turns
of a chat graph (two nodes appending ~1 KB messages), like an agent serving a
stream of users. One database has no policy; the other has
``RetentionPolicy(keep_last=2, thread_ttl=--ttl seconds)`` and, after each
round, a sweep and a plain ``VACUUM (ANALYZE)`` (what a cron job or the
in-app sweeper does). It prints the total size (pg_total_relation_size of
every table) after each round: the first grows without bound, the second
levels off once threads start expiring.

``compression`` times ``put`` of a 100 KB and a 5 MB state, and measures the
bytes one chat superstep adds, with compression on (zstd level 3) and off.

Both make throw-away databases on ``--dsn`` (default: the local server) and
drop them afterwards.
"""

from __future__ import annotations

import argparse
import operator
import random
import statistics
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta
from typing import Annotated, Any, TypedDict

import psycopg
from langgraph.checkpoint.base import empty_checkpoint
from langgraph.graph import END, START, StateGraph
from psycopg import sql

from pgcheckpoint import CompressionPolicy, PostgresSaver
from pgcheckpoint.retention import RetentionPolicy

DEFAULT_DSN = "postgresql://postgres@127.0.0.1:5432/postgres"
WORDS = [
    "the", "agent", "called", "a", "tool", "and", "read", "result", "before", "it", "answered",
    "user", "with", "plan", "that", "listed", "every", "step", "query", "database", "search",
    "documents", "summary", "because", "context",
]


def text(n: int, rng: random.Random) -> str:
    """About ``n`` characters of word salad (compresses like real prose, ~3x)."""
    out: list[str] = []
    size = 0
    while size < n:
        word = rng.choice(WORDS)
        out.append(word)
        size += len(word) + 1
    return " ".join(out)[:n]


@contextmanager
def scratch_db(dsn: str) -> Iterator[str]:
    name = f"pgc_curve_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    try:
        yield psycopg.conninfo.make_conninfo(dsn, dbname=name)
    finally:
        with psycopg.connect(dsn, autocommit=True) as conn:
            conn.execute(sql.SQL("DROP DATABASE {} WITH (FORCE)").format(sql.Identifier(name)))


class Chat(TypedDict):
    messages: Annotated[list[str], operator.add]


def chat_graph(saver: PostgresSaver, seed: int) -> Any:
    rng = random.Random(seed)

    def think(state: Chat) -> dict[str, Any]:
        return {"messages": [text(600, rng)]}

    def answer(state: Chat) -> dict[str, Any]:
        return {"messages": [text(1000, rng)]}

    b = StateGraph(Chat)
    b.add_node("think", think)
    b.add_node("answer", answer)
    b.add_edge(START, "think")
    b.add_edge("think", "answer")
    b.add_edge("answer", END)
    return b.compile(checkpointer=saver)


def total_bytes(saver: PostgresSaver) -> int:
    return saver.storage_report(top=0).total_bytes


def curve(args: argparse.Namespace) -> None:
    policy = RetentionPolicy(keep_last=2, thread_ttl=timedelta(seconds=args.ttl))
    with (
        scratch_db(args.dsn) as plain_url,
        scratch_db(args.dsn) as kept_url,
        PostgresSaver.from_conn_string(plain_url) as plain,
        PostgresSaver.from_conn_string(kept_url, retention=policy) as kept,
    ):
        plain.setup()
        kept.setup()
        graphs = [chat_graph(plain, 1), chat_graph(kept, 1)]
        print(f"policy: {policy}; {args.threads} new threads x {args.steps} turns per round")
        print(f"{'round':>5} {'seconds':>8} {'threads':>8} {'no policy':>12} {'with policy':>12}"
              f" {'swept ckpts':>11}")
        started = time.monotonic()
        for rnd in range(1, args.rounds + 1):
            for t in range(args.threads):
                thread = f"r{rnd}-t{t}"
                for g in graphs:
                    for step in range(args.steps):
                        g.invoke({"messages": [f"user turn {step}"]},
                                 {"configurable": {"thread_id": thread}})
            report = kept.cleanup_old_checkpoints()
            kept.optimize()
            print(f"{rnd:>5} {time.monotonic() - started:>8.1f} {rnd * args.threads:>8}"
                  f" {total_bytes(plain):>12,} {total_bytes(kept):>12,}"
                  f" {report.checkpoints_deleted:>11}", flush=True)
            time.sleep(args.pause)


def _put_timing(saver: PostgresSaver, size: int, repeats: int) -> tuple[float, int]:
    rng = random.Random(size)
    before = total_bytes(saver)
    times = []
    for i in range(repeats):
        cp = empty_checkpoint()
        value = [text(2000, rng) for _ in range(size // 2000)]
        cp["channel_values"] = {"state": value}
        cp["channel_versions"] = {"state": f"{i + 1:032}.0"}
        config: Any = {"configurable": {"thread_id": f"put-{size}", "checkpoint_ns": ""}}
        t0 = time.perf_counter()
        saver.put(config, cp, {}, {"state": cp["channel_versions"]["state"]})
        times.append(time.perf_counter() - t0)
    saver.optimize()
    return statistics.median(times) * 1000, (total_bytes(saver) - before) // repeats


def compression(args: argparse.Namespace) -> None:
    settings = {"on (zstd 3)": CompressionPolicy(), "off": CompressionPolicy(enabled=False)}
    print(f"{'compression':<12} {'state':>6} {'put ms (median)':>16} {'bytes/put':>12}")
    rows = []
    for label, policy in settings.items():
        with scratch_db(args.dsn) as url, PostgresSaver.from_conn_string(
            url, compression=policy
        ) as saver:
            saver.setup()
            for size, name, repeats in ((100_000, "100KB", 20), (5_000_000, "5MB", 5)):
                ms, per_put = _put_timing(saver, size, repeats)
                print(f"{label:<12} {name:>6} {ms:>16.1f} {per_put:>12,}", flush=True)
            g = chat_graph(saver, 2)
            before = total_bytes(saver)
            steps = 0
            for t in range(10):
                for _ in range(5):
                    g.invoke({"messages": ["hi"]}, {"configurable": {"thread_id": f"chat{t}"}})
                    steps += 3  # input, think, answer
            saver.optimize()
            rows.append((label, (total_bytes(saver) - before) // steps))
    for label, per_step in rows:
        print(f"chat graph, compression {label}: {per_step:,} bytes per superstep")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--dsn", default=DEFAULT_DSN, help="server URL (a database to connect to)")
    sub = parser.add_subparsers(dest="command", required=True)
    c = sub.add_parser("curve", help="total bytes over time, with and without a policy")
    c.add_argument("--rounds", type=int, default=12)
    c.add_argument("--threads", type=int, default=20, help="new threads per round")
    c.add_argument("--steps", type=int, default=3, help="turns per thread")
    c.add_argument("--ttl", type=float, default=8.0, help="thread_ttl of the policy, seconds")
    c.add_argument("--pause", type=float, default=0.0, help="seconds to wait between rounds")
    sub.add_parser("compression", help="put timings and bytes per superstep, zstd on vs off")
    args = parser.parse_args()
    curve(args) if args.command == "curve" else compression(args)


if __name__ == "__main__":
    main()
