"""Where a small operation's time goes: ``python -m bench.anatomy``.

For put 1 KB, put_writes, get_tuple, list(limit=10) and delete_thread, on each saver
(opened as ``python -m bench`` opens it: the official saver on one connection,
pgcheckpoint on its pool, here of one connection so that one trace sees everything):

* the wire: libpq's protocol trace of one call, summarised as the messages the client
  sent (Parse, Bind, Execute, Sync, Query) and the times it waited for the server
  (each ReadyForQuery ends one round trip, unless pipelined behind another);
* the server: every statement's execution time, buffers and WAL from ``auto_explain``
  (``log_analyze``, ``log_buffers``, ``log_wal``, nested statements included, so the
  statements inside PL/pgSQL functions show), sent to the client as notices;
* the client: wall and CPU time per call over ``--calls`` calls, split into time
  spent waiting on the socket and the rest (``cProfile``: the top functions by own
  time are printed with ``--profile``).

Nothing is asserted; the figures are printed. Uses its own scratch databases
(``anatomy_official``, ``anatomy_pgcheckpoint``), dropped and recreated.

Examples::

    python -m bench.anatomy --dsn postgresql://postgres@127.0.0.1:5432/postgres
    python -m bench.anatomy --calls 2000 --profile --only put_1kb
"""

from __future__ import annotations

import argparse
import cProfile
import io
import pstats
import re
import statistics
import tempfile
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from functools import partial
from typing import Any

import psycopg
from psycopg.rows import dict_row
from psycopg_pool import ConnectionPool

from bench.db import default_dsn, scratch_databases
from bench.savers import official_classes, our_classes
from bench.states import PUT_PROFILES, SMALL, ThreadBuilder, thread_config, three_writes
from bench.workloads import populate

DATABASES = ("anatomy_official", "anatomy_pgcheckpoint")
OPS = ("put_1kb", "put_writes", "get_tuple", "list10", "delete_thread")


@contextmanager
def open_saver(name: str, dsn: str) -> Iterator[tuple[Any, psycopg.Connection[Any]]]:
    """The saver and its one connection, opened as the benchmark opens it."""
    if name == "official":
        sync_cls, _ = official_classes()
        with psycopg.connect(
            dsn, autocommit=True, prepare_threshold=0, row_factory=dict_row
        ) as conn:
            yield sync_cls(conn), conn
        return
    from pgcheckpoint.pooling import PoolSettings  # type: ignore[import-not-found,unused-ignore]

    sync_cls, _ = our_classes()
    kwargs = PoolSettings().pool_kwargs()
    kwargs.update(min_size=1, max_size=1)
    with ConnectionPool(dsn, open=True, **kwargs) as pool:
        pool.wait()
        with pool.connection() as conn:
            pass
        yield sync_cls(pool), conn


class Fixture:
    """Arguments for ``calls`` calls of each operation on one saver."""

    def __init__(self, saver: Any, calls: int) -> None:
        tag = uuid.uuid4().hex[:8]
        self.puts = ThreadBuilder(f"put-{tag}", saver.get_next_version, PUT_PROFILES["1KB"]).steps(
            calls
        )
        writes_steps = populate(saver, [f"writes-{tag}"], calls)[f"writes-{tag}"]
        self.writes = [
            (s.stored, three_writes(i), str(uuid.uuid4())) for i, s in enumerate(writes_steps)
        ]
        populate(saver, [f"read-{tag}"], 10, profile=SMALL, writes=True)
        self.read = thread_config(f"read-{tag}")
        self.deletes = [f"del-{tag}-{i}" for i in range(calls)]
        populate(saver, self.deletes, 10, writes=True)

    def op(self, saver: Any, name: str) -> Callable[[int], object]:
        if name == "put_1kb":
            return lambda i: saver.put(
                self.puts[i].config,
                self.puts[i].checkpoint,
                self.puts[i].metadata,
                self.puts[i].new_versions,
            )
        if name == "put_writes":
            return lambda i: saver.put_writes(*self.writes[i])
        if name == "get_tuple":
            return lambda i: saver.get_tuple(self.read)
        if name == "list10":
            return lambda i: list(saver.list(self.read, limit=10))
        return lambda i: saver.delete_thread(self.deletes[i])


def wire(conn: psycopg.Connection[Any], call: Callable[[], object]) -> Counter[str]:
    """Protocol messages of one call, e.g. {'F Parse': 1, 'B ReadyForQuery': 1}."""
    with tempfile.TemporaryFile("w+") as fh:
        conn.pgconn.trace(fh.fileno())
        conn.pgconn.set_trace_flags(psycopg.pq.Trace.SUPPRESS_TIMESTAMPS)
        try:
            call()
        finally:
            conn.pgconn.untrace()
        fh.seek(0)
        counts: Counter[str] = Counter()
        for line in fh:
            parts = line.split("\t")
            if len(parts) >= 3:
                counts[f"{parts[0]} {parts[2].split(' ')[0].strip()}"] += 1
    return counts


def server_plans(conn: psycopg.Connection[Any], call: Callable[[], object]) -> list[str]:
    """auto_explain's plans of one call's statements (nested ones included)."""
    notices: list[str] = []

    def keep(diag: psycopg.errors.Diagnostic) -> None:
        if diag.message_primary and "duration" in diag.message_primary:
            notices.append(diag.message_primary)

    with conn.cursor() as cur:
        try:
            cur.execute("load 'auto_explain'")
        except psycopg.errors.UndefinedFile:  # not shipped with this server (pgserver's)
            call()
            return []
    conn.add_notice_handler(keep)
    with conn.cursor() as cur:
        for setting in (
            "set auto_explain.log_min_duration = 0",
            "set auto_explain.log_analyze = on",
            "set auto_explain.log_buffers = on",
            "set auto_explain.log_wal = on",
            "set auto_explain.log_nested_statements = on",
            "set auto_explain.log_level = notice",
        ):
            cur.execute(setting)
    try:
        call()
    finally:
        with conn.cursor() as cur:
            cur.execute("set auto_explain.log_min_duration = -1")
        conn.remove_notice_handler(keep)
    return notices


def timed(op: Callable[[int], object], first: int, calls: int) -> tuple[float, float]:
    """Median wall ms and mean CPU ms per call."""
    walls: list[float] = []
    cpu0 = time.process_time()
    for i in range(first, first + calls):
        t0 = time.perf_counter()
        op(i)
        walls.append(time.perf_counter() - t0)
    cpu = (time.process_time() - cpu0) / calls
    return statistics.median(walls) * 1e3, cpu * 1e3


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.anatomy", description=__doc__)
    parser.add_argument("--dsn", help="default: as python -m bench")
    parser.add_argument("--calls", type=int, default=300, help="timed calls per op (default 300)")
    parser.add_argument("--only", help="comma-separated ops: " + ",".join(OPS))
    parser.add_argument("--profile", action="store_true", help="print cProfile's top functions")
    parser.add_argument(
        "--plans", action="store_true", help="print auto_explain's plans in full, not summed"
    )
    parser.add_argument(
        "--sync-off",
        action="store_true",
        help="time with synchronous_commit=off: what an op costs besides the commit flush, "
        "which is the same for both savers (one commit per op)",
    )
    args = parser.parse_args(argv)
    ops = [o for o in OPS if not args.only or o in args.only.split(",")]
    with scratch_databases(args.dsn or default_dsn(), DATABASES) as dsns:
        _measure(args, ops, dsns)
    return 0


def _measure(args: argparse.Namespace, ops: list[str], dsns: dict[str, str]) -> None:
    for name, db in zip(("official", "pgcheckpoint"), DATABASES, strict=True):
        with open_saver(name, dsns[db]) as (saver, conn):
            saver.setup()
            total = 2 * args.calls + 20
            # Fixtures skip the commit flush; every measured call below has it.
            conn.execute("set synchronous_commit = off")
            fixture = Fixture(saver, total)
            if not args.sync_off:
                conn.execute("set synchronous_commit = on")
            for op_name in ops:
                op = fixture.op(saver, op_name)
                for i in range(5):  # warm: plan caches, type adapters (prepared after 5 uses)
                    op(i)
                op(5)  # the sixth use prepares psycopg's server-side statements
                counts = wire(conn, partial(op, 6))
                plans = server_plans(conn, partial(op, 7))
                wall, cpu = timed(op, 8, args.calls - 10)
                sent = {k[2:]: v for k, v in counts.items() if k.startswith("F ")}
                waits = counts.get("B ReadyForQuery", 0)
                server_ms = sum(
                    float(m.group(1)) for p in plans if (m := re.search(r"duration: ([0-9.]+)", p))
                )
                print(
                    f"{name:13} {op_name:13} wall {wall:.3f} ms  client cpu {cpu:.3f} ms  "
                    f"server (auto_explain, incl. nested) {server_ms:.3f} ms  "
                    f"round trips {waits}  sent {dict(sent)}"
                )
                if args.plans:
                    for plan in plans:
                        print("    " + plan.replace("\n", "\n    "))
                if args.profile:
                    prof = cProfile.Profile()
                    prof.enable()
                    for i in range(args.calls - 2, total):  # after the timed calls
                        op(i)
                    prof.disable()
                    out = io.StringIO()
                    pstats.Stats(prof, stream=out).sort_stats("tottime").print_stats(14)
                    print(out.getvalue().split("\n", 6)[-1])


if __name__ == "__main__":
    raise SystemExit(main())
