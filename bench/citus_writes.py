"""put_writes and the batch put on a Citus cluster, the forms interleaved (docs/scaling.md).

    python -m bench.citus_writes --dsn postgresql://postgres@127.0.0.1:9700/postgres

On a fresh database distributed by ``setup()`` (made on every node, as the tests
make theirs): put_writes of each ``--counts`` number of writes as the array
statement (through the coordinator), as ``pgcheckpoint_put_writes`` (delegated
to the thread's node) and as one ``VALUES`` statement (routed); then batches of
10 new threads as ``put_checkpoint`` statements against ``pgcheckpoint_put``
calls. The forms alternate round by round; medians of wall time and client CPU
per call are printed. Only for comparing forms: the figures of a shared machine
are noisy, their ratios less so.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from functools import partial
from pathlib import Path
from typing import Any

import psycopg

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

import pgcheckpoint._core as core
from _citus import CitusDatabases, citus_workers
from _helpers import cfg, make_checkpoint
from pgcheckpoint import PostgresSaver

# form -> (has_citus, PUT_WRITES_ROWS)
WRITE_FORMS = {
    "arrays (coordinator)": (False, 8),
    "pgcheckpoint_put_writes": (True, 8),
    "VALUES rows, 1 statement": (True, 1_000_000),
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dsn", required=True, help="the Citus coordinator")
    parser.add_argument("--counts", default="20,130", help="writes per call, comma-separated")
    parser.add_argument("--rounds", type=int, default=20)
    parser.add_argument("--per-round", type=int, default=20)
    args = parser.parse_args()
    workers = citus_workers(args.dsn)
    if not workers:
        sys.exit(f"{args.dsn} is not a Citus coordinator with workers")
    dbs = CitusDatabases(args.dsn, workers)
    name = dbs.create()
    results: dict[tuple[str, str], list[tuple[float, float]]] = {}

    def timed(key: tuple[str, str], calls: int, call: Any) -> None:
        t0, c0 = time.perf_counter(), time.process_time()
        for _ in range(calls):
            call()
        t1, c1 = time.perf_counter(), time.process_time()
        results.setdefault(key, []).append(((t1 - t0) / calls * 1e3, (c1 - c0) / calls * 1e6))

    try:
        with psycopg.connect(dbs.url(name), autocommit=True) as conn:
            saver = PostgresSaver(conn)
            saver.setup()
            head = saver.put(cfg("w"), make_checkpoint({"v": 1}), {"step": 0}, {})
            tasks = iter(range(10**9))
            for count in (int(c) for c in args.counts.split(",")):
                writes = [(f"c{i}", {"i": i, "v": "w" * 50}) for i in range(count)]
                for _ in range(args.rounds):
                    for form, (citus, rows) in WRITE_FORMS.items():
                        saver.has_citus, core.PUT_WRITES_ROWS = citus, rows
                        call = partial(saver.put_writes, head, writes)
                        timed((f"put_writes {count}", form), args.per_round,
                              lambda c=call: c(f"t{next(tasks)}"))  # fmt: skip
            core.PUT_WRITES_ROWS = 8
            batches = iter(range(10**9))

            def batch() -> None:
                n = next(batches)
                saver.batch_save_checkpoints([
                    (cfg(f"b{n}-{i}"), make_checkpoint({"v": i, "m": "x" * 2000}), {"step": 0},
                     {"v": f"{1:032}.0", "m": f"{1:032}.0"})
                    for i in range(10)
                ])  # fmt: skip

            for _ in range(args.rounds):
                for citus in (False, True):
                    saver.has_citus = citus
                    form = "pgcheckpoint_put" if citus else "put_checkpoint"
                    timed(("batch of 10 threads", form), max(1, args.per_round // 2), batch)
    finally:
        dbs.drop(name)
        dbs.close()
    for (what, form), values in results.items():
        wall = statistics.median(v[0] for v in values)
        cpu = statistics.median(v[1] for v in values)
        print(f"{what:20} {form:26} wall {wall:8.2f} ms  client CPU {cpu:6.0f} us")


if __name__ == "__main__":
    main()
