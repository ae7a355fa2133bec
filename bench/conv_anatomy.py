"""Where a conversation superstep's bytes go: ``python -m bench.conv_anatomy``.

The ``conv.tN`` workload of ``python -m bench`` (the ReAct graph, an N-turn history
written as one checkpoint, then a window of turns), on pgcheckpoint only, with the
bytes it added broken down:

* stored: per relation (each table's heap, its TOAST table and each index apart),
  from ``pg_relation_size`` before and after the window, and the rows added per
  table with their mean ``pg_column_size`` (the row's data without page overhead);
* WAL: from ``pg_walinspect`` (PostgreSQL 15+, superuser), only the records whose
  blocks are in the scratch database, so other sessions on a shared server do not
  count (``pg_current_wal_lsn`` differences do count them), per relation, with
  the full-page images apart.

Nothing is asserted; the figures are printed (and written as JSON with ``--json``).
Uses its own scratch databases (``conv_anatomy``, ``conv_anatomy_wal``), dropped
and recreated.

Example::

    python -m bench.conv_anatomy --dsn postgresql://postgres@127.0.0.1:5432/postgres
"""

from __future__ import annotations

import argparse
import json
import os
from collections import defaultdict
from typing import Any

import psycopg
import zstandard

from bench.db import default_dsn, recreate_databases
from bench.react import (
    _history,
    compressed_size,
    react_graph,
    react_supersteps_per_turn,
    user_message,
)

# Every relation of the schema: tables, indexes, and each table's TOAST table and its
# index, labelled by the table they belong to.
RELATIONS_SQL = """
select c.relname::text, c.relfilenode, pg_relation_size(c.oid)
from pg_class c where c.relnamespace = 'public'::regnamespace and c.relkind in ('r', 'i')
union all
select c.relname || ' (toast)', t.relfilenode, pg_relation_size(t.oid)
from pg_class c join pg_class t on t.oid = c.reltoastrelid
where c.relnamespace = 'public'::regnamespace
union all
select c.relname || ' (toast index)', x.relfilenode, pg_relation_size(x.oid)
from pg_class c join pg_index i on i.indrelid = c.reltoastrelid
join pg_class x on x.oid = i.indexrelid
where c.relnamespace = 'public'::regnamespace
"""
ROWS_SQL = {
    "checkpoints": "select count(*), coalesce(sum(pg_column_size(t)), 0) from checkpoints t",
    "blobs": "select count(*), coalesce(sum(pg_column_size(t)), 0) from blobs t",
    "chunks": "select count(*), coalesce(sum(pg_column_size(t)), 0) from chunks t",
    "writes": "select count(*), coalesce(sum(pg_column_size(t)), 0) from writes t",
    "threads": "select count(*), coalesce(sum(pg_column_size(t)), 0) from threads t",
}
# Each block reference in a record's block_ref reads "blkref #0: rel 1663/<db>/<node> ...";
# a record is counted once, on its first block's relation.
WAL_SQL = """
select (regexp_match(block_ref, 'rel \\d+/(\\d+)/(\\d+)'))[1]::oid as db,
       (regexp_match(block_ref, 'rel \\d+/(\\d+)/(\\d+)'))[2]::oid as node,
       resource_manager, record_type, record_length, fpi_length
from pg_get_wal_records_info(%s::pg_lsn, %s::pg_lsn)
"""


def relations(conn: psycopg.Connection[Any]) -> dict[str, tuple[int, int]]:
    return {str(n): (int(node), int(size)) for n, node, size in conn.execute(RELATIONS_SQL)}


def rows(conn: psycopg.Connection[Any]) -> dict[str, tuple[int, int]]:
    return {t: tuple(conn.execute(q).fetchone() or (0, 0)) for t, q in ROWS_SQL.items()}  # type: ignore[misc]


def measure(admin_dsn: str, n: int, threads: int, window: int) -> dict[str, Any]:
    from pgcheckpoint import PostgresSaver

    dsn = recreate_databases(admin_dsn, ["conv_anatomy"])["conv_anatomy"]
    wal_dsn = recreate_databases(admin_dsn, ["conv_anatomy_wal"])["conv_anatomy_wal"]
    compressor = zstandard.ZstdCompressor(level=3)
    per_turn = react_supersteps_per_turn()
    steps = threads * window * per_turn
    histories = {f"conv-{n}-{t}": _history(f"conv-{n}-{t}", n) for t in range(threads)}
    added = sum(
        compressed_size(m, compressor)
        for t, h in histories.items()
        for m in _history(t, n + window)[len(h) :]
    )
    with (
        PostgresSaver.from_conn_string(dsn) as saver,
        psycopg.connect(dsn, autocommit=True) as conn,
        psycopg.connect(wal_dsn, autocommit=True) as walconn,
    ):
        saver.setup()
        walconn.execute("create extension if not exists pg_walinspect")
        # A temporary slot (dropped with this session) keeps the window's WAL from
        # being recycled before it is read on a busy shared server.
        walconn.execute(
            "select pg_create_physical_replication_slot(%s, true, true)",
            (f"conv_anatomy_{os.getpid()}",),
        )
        db_oid = conn.execute("select oid from pg_database where datname = current_database()")
        db = int((db_oid.fetchone() or (0,))[0])
        graph = react_graph(saver)
        for thread, history in histories.items():
            graph.update_state({"configurable": {"thread_id": thread}}, {"messages": history},
                               as_node="agent")
        conn.execute("checkpoint")  # full-page images after it are the window's own
        rel0, rows0 = relations(conn), rows(conn)
        by_node = {node: name for name, (node, _) in rel0.items()}
        wal: dict[str, list[int]] = defaultdict(lambda: [0, 0, 0])
        # The flush position: pg_walinspect refuses an end past it ("cannot accept
        # future end LSN"), which the insert position can be on a busy server.
        lsn = "select pg_current_wal_flush_lsn()::text"
        start = str((conn.execute(lsn).fetchone() or ("",))[0])
        for thread in histories:
            config = {"configurable": {"thread_id": thread}}
            for turn in range(n, n + window):
                graph.invoke({"messages": [user_message(thread, turn)]}, config,
                             durability="sync")
                # Read turn by turn: on a busy server the window's first segments
                # can be recycled before the window ends.
                end = str((conn.execute(lsn).fetchone() or ("",))[0])
                for rdb, node, rmgr, _t, length, fpi in walconn.execute(WAL_SQL, (start, end)):
                    if rdb is None or int(rdb) != db:
                        continue  # other databases, and records without a block (commits)
                    key = by_node.get(int(node), f"other ({rmgr})")
                    wal[key][0] += 1
                    wal[key][1] += int(length)
                    wal[key][2] += int(fpi or 0)
                start = end
        rel1, rows1 = relations(conn), rows(conn)
    stored = {k: (rel1[k][1] - rel0.get(k, (0, 0))[1]) / steps for k in rel1}
    added_rows = {
        t: {
            "rows_per_step": (rows1[t][0] - rows0[t][0]) / steps,
            "mean_row_bytes": ((rows1[t][1] - rows0[t][1]) / max(rows1[t][0] - rows0[t][0], 1)),
        }
        for t in ROWS_SQL
    }
    return {
        "turns": n,
        "supersteps": steps,
        "added_compressed_per_step": added / steps,
        "stored_per_step": {k: round(v) for k, v in sorted(stored.items()) if v},
        "stored_total_per_step": round(sum(stored.values())),
        "rows": added_rows,
        "wal_per_step": {
            k: {"records": round(v[0] / steps, 2), "bytes": round(v[1] / steps),
                "fpi_bytes": round(v[2] / steps)}
            for k, v in sorted(wal.items())
        },
        "wal_total_per_step": round(sum(v[1] for v in wal.values()) / steps),
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dsn", default=None)
    parser.add_argument("--turns", default="10,100,1000")
    parser.add_argument("--threads", type=int, default=3)
    parser.add_argument("--window", type=int, default=6)
    parser.add_argument("--json", default=None)
    args = parser.parse_args(argv)
    dsn = args.dsn or default_dsn()
    out = []
    for n in (int(x) for x in args.turns.split(",")):
        r = measure(dsn, n, args.threads, args.window)
        out.append(r)
        print(f"conv t{n}: {r['supersteps']} supersteps, added "
              f"{r['added_compressed_per_step']:.0f} B compressed; "
              f"stored {r['stored_total_per_step']} B/step, "
              f"WAL (this database) {r['wal_total_per_step']} B/step")
        print("  stored per relation:", r["stored_per_step"])
        print("  rows:", {t: f"{v['rows_per_step']:.2f}/step x {v['mean_row_bytes']:.0f} B"
                          for t, v in r["rows"].items() if v["rows_per_step"]})
        print("  WAL per relation:", {k: f"{v['records']} rec {v['bytes']} B (fpi {v['fpi_bytes']})"
                                      for k, v in r["wal_per_step"].items()})
    if args.json:
        with open(args.json, "w") as f:
            json.dump(out, f, indent=1)


if __name__ == "__main__":
    main()
