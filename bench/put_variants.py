"""What each part of pgcheckpoint's put statement costs: ``python -m bench.put_variants``.

Captures the statement and parameters of one real ``put`` of a 1 KB checkpoint (a
``messages`` channel that changed: ``put_head``, the compare-and-set put), then replays
variants of it and of the checked statement (``put_checkpoint``), each ``--calls``
times on one connection, extending a chain of checkpoints so that the one-writer check
(mode 'head') passes every time, and prints the median per call:

* ``as shipped``: the statement ``put`` sends (``put_head``: the one-writer rule as a
  compare-and-set of ``threads.head`` in the thread-row upsert, plus one primary-key
  probe that the parent still exists);
* ``CAS, no parent probe``: the same without that probe;
* ``guard call``: ``put_checkpoint``, the checked statement (``pgcheckpoint_put_check``
  called under the thread-row lock), which every put sent before migration 0010 and
  which is now the fallback and the statement of forks and subgraphs;
* ``no guard``: ``put_checkpoint`` without the guard call (its CTE removed);
* ``inline guard``: the head check as a scalar subquery in the statement instead of a
  PL/pgSQL call, the checkpoint inserted only when it holds;
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
from pgcheckpoint._queries import Queries

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


def checked(cas: str) -> str:
    """put_checkpoint with the same CTEs as the captured put_head statement."""
    q = Queries("public")
    for chunks in (False, True):
        for blobs in (False, True):
            if q.put_head(chunks=chunks, blobs=blobs) == cas:
                return q.put_checkpoint(chunks=chunks, blobs=blobs)
    raise RuntimeError("the captured statement is not put_head")


def variants(cas: str) -> dict[str, str]:
    query = checked(cas)
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
    # put_head without its parent probe: the compare-and-set alone.
    probe = cas.index("    WHERE %(parent_checkpoint_id)s::text IS NULL")
    no_probe = cas[:probe] + cas[cas.index("    ON CONFLICT (thread_id) DO UPDATE") :]
    return {
        "as shipped": cas,
        "CAS, no parent probe": no_probe,
        "guard call": query,
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
        results: dict[str, list[float]] = {}
        texts = variants(query)
        # One chain (thread) per variant. The CAS variants start their thread rows
        # (and heads) with their first put; the others get theirs here.
        tag = uuid.uuid4().hex[:6]
        threads = {name: f"variants-{tag}-{i}" for i, name in enumerate(texts)}
        parents: dict[str, str | None] = dict.fromkeys(texts)
        for name, thread in threads.items():
            if name.startswith(("as shipped", "CAS")):
                continue
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
