"""What each part of pgcheckpoint's put statement costs: ``python -m bench.put_variants``.

Captures the statement and parameters of one real ``put`` of a 1 KB checkpoint (a
``messages`` channel that changed), then replays variants of that statement, each
``--calls`` times on one connection, extending a chain of checkpoints so that the
one-writer check (mode 'head') passes every time, and prints the median per call:

* ``as shipped``: the statement ``put`` sends;
* ``CAS on thread row``: no guard call; the thread-row upsert becomes the check, a
  compare-and-set of a ``head`` column (added to the scratch table for the run)
  ``WHERE head IS NOT DISTINCT FROM parent``, so a refused put inserts nothing;
* ``no guard``: without the ``pgcheckpoint_put_guard`` call (its CTE removed);
* ``inline guard``: the head check as a scalar subquery in the statement instead of a
  PL/pgSQL call, the checkpoint inserted only when it holds (the client would see no
  row inserted and ask the function why);
* ``no thread upsert``: neither the guard nor the ``threads`` row upsert (the thread
  id taken from the parameter);
* ``checkpoint row only``: one INSERT of the checkpoint row, like the official
  saver's second statement.

Run twice: with ``--sync-off`` the commit does not wait for the WAL flush, which
isolates what the statement costs from what the durable commit costs (the same for
every variant). Uses the scratch database ``anatomy_variants``, dropped and recreated.
"""

from __future__ import annotations

import argparse
import statistics
import time
import uuid
from typing import Any

import psycopg

from bench.db import default_dsn, scratch_databases
from bench.savers import our_classes
from bench.states import PUT_PROFILES, ThreadBuilder

_GUARD_CTE_START = "), g AS ("


def capture(dsn: str) -> tuple[str, dict[str, Any]]:
    """The put statement and parameters of one 1 KB put (the third of a thread)."""
    sync_cls, _ = our_classes()
    seen: list[tuple[str, dict[str, Any]]] = []
    original = psycopg.Cursor.execute

    def spy(self: Any, query: Any, params: Any = None, **kw: Any) -> Any:
        if isinstance(query, str) and query.lstrip().startswith("WITH t AS"):
            seen.append((query, dict(params)))
        return original(self, query, params, **kw)

    with psycopg.connect(dsn, autocommit=True) as conn:
        saver = sync_cls(conn)
        saver.setup()
        steps = ThreadBuilder("capture", saver.get_next_version, PUT_PROFILES["1KB"]).steps(3)
        psycopg.Cursor.execute = spy  # type: ignore[method-assign]
        try:
            for s in steps:
                saver.put(s.config, s.checkpoint, s.metadata, s.new_versions)
        finally:
            psycopg.Cursor.execute = original  # type: ignore[method-assign]
    return seen[-1]


def variants(query: str) -> dict[str, str]:
    head, rest = query.split(_GUARD_CTE_START, 1)
    guard_end = rest.index(")", rest.index("FROM t")) + 1
    after_guard = rest[guard_end:]
    no_guard = head + ")" + after_guard.replace("FROM t, g", "FROM t", 1)
    inline = (
        head + "), g AS (SELECT (SELECT c.checkpoint_id FROM {schema}.checkpoints c"
        " WHERE c.thread_id = %(thread_id)s AND c.checkpoint_ns = %(checkpoint_ns)s"
        " AND c.checkpoint_id <> %(checkpoint_id)s ORDER BY c.checkpoint_id DESC LIMIT 1)"
        " IS NOT DISTINCT FROM %(parent_checkpoint_id)s AS ok)"
        + after_guard.replace("FROM t, g", "FROM t, g WHERE g.ok", 1)
    ).replace("{schema}", '"public"')
    no_thread = "WITH t AS (SELECT %(thread_id)s::text AS thread_id)" + after_guard.replace(
        "FROM t, g", "FROM t", 1
    )
    insert = query[query.index("INSERT INTO", query.index("checkpoints (") - 40) :]
    row_only = insert.replace("FROM t, g", "", 1).replace("t.thread_id", "%(thread_id)s", 1)
    # The one-writer rule as a compare-and-set on the thread row the put already
    # upserts: a ``head`` column (added to the scratch table by ``run``) replaces the
    # PL/pgSQL probe; when the CAS fails, ``t`` is empty and nothing is inserted.
    upsert_end = head.index("RETURNING")
    cas = (
        head[:upsert_end]
        .replace("(thread_id, updated_at)", "(thread_id, updated_at, head)", 1)
        .replace(
            "VALUES (%(thread_id)s, now())", "VALUES (%(thread_id)s, now(), %(checkpoint_id)s)", 1
        )
        .replace(
            "DO UPDATE SET updated_at = EXCLUDED.updated_at",
            "DO UPDATE SET updated_at = EXCLUDED.updated_at, head = EXCLUDED.head"
            " WHERE th.head IS NOT DISTINCT FROM %(parent_checkpoint_id)s"
            " OR th.head = EXCLUDED.head",
            1,
        )
        + head[upsert_end:]
        + ")"
        + after_guard.replace("FROM t, g", "FROM t", 1)
    )
    return {
        "as shipped": query,
        "CAS on thread row": cas,
        "no guard": no_guard,
        "inline guard": inline,
        "no thread upsert": no_thread,
        "checkpoint row only": row_only,
    }


def run(dsn: str, calls: int, sync_off: bool) -> None:
    query, params = capture(dsn)
    options = "-c synchronous_commit=off" if sync_off else ""
    with psycopg.connect(dsn, autocommit=True, prepare_threshold=0, options=options) as conn:
        cur = conn.cursor()
        cur.execute("alter table public.threads add column if not exists head text")
        results: dict[str, list[float]] = {}
        texts = variants(query)
        # One chain (thread) per variant: the CAS variant keeps its head in the thread row.
        tag = uuid.uuid4().hex[:6]
        threads = {name: f"variants-{tag}-{i}" for i, name in enumerate(texts)}
        parents: dict[str, str | None] = dict.fromkeys(texts)
        for thread in threads.values():
            cur.execute(
                "insert into public.threads (thread_id, updated_at) values (%s, now())", (thread,)
            )
        seq = 0
        for _ in range(6):  # rounds, variants interleaved
            for name, text in texts.items():
                out = results.setdefault(name, [])
                for _ in range(calls // 6):
                    seq += 1
                    cid = f"2fff{seq:032d}"  # increasing: each put extends the chain
                    p = {
                        **params,
                        "thread_id": threads[name],
                        "parent_checkpoint_id": parents[name],
                        "checkpoint_id": cid,
                    }
                    t0 = time.perf_counter()
                    cur.execute(text, p, binary=True)
                    out.append(time.perf_counter() - t0)
                    if cur.rowcount != 1:
                        raise RuntimeError(f"{name}: the put inserted {cur.rowcount} rows")
                    parents[name] = cid
        mode = "synchronous_commit=off" if sync_off else "synchronous_commit=on"
        base = statistics.median(results["as shipped"])
        for name, samples in results.items():
            med = statistics.median(samples)
            print(f"{mode:24} {name:20} {med * 1e3:.3f} ms  ({(med - base) * 1e3:+.3f} ms)")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.put_variants", description=__doc__)
    parser.add_argument("--dsn", help="default: as python -m bench")
    parser.add_argument("--calls", type=int, default=1200)
    parser.add_argument("--sync-off", action="store_true")
    args = parser.parse_args(argv)
    with scratch_databases(args.dsn or default_dsn(), ("anatomy_variants",)) as dsns:
        run(dsns["anatomy_variants"], args.calls, args.sync_off)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
