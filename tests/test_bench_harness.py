"""The benchmark harness's own logic: issue 16's target rules, floor multiples, and the
pieces of the graph rows that talk to PostgreSQL (the WAL position, the ReAct graph's
superstep count). Speed itself is never asserted here; ``python -m bench`` shows it."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any

import psycopg
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the repository root: bench/

import asyncio

from bench.react import (
    adatabase_oid,
    awal_inspector,
    awal_lsn,
    awal_own_since,
    react_supersteps_per_turn,
    wal_lsn,
    wal_since,
)
from bench.report import floor_multiples
from bench.runner import Measurement
from bench.savers import OFFICIAL, OURS
from bench.targets import MEMORY, evaluate


def _m(key: str, unit: str, values: dict[str, float], **extra: object) -> Measurement:
    return Measurement(key, key, unit, values, 10, None, dict(extra))  # type: ignore[arg-type]


def test_every_row_must_not_be_slower() -> None:
    rows = [
        _m("put_writes.sync", "ms", {OFFICIAL: 1.0, OURS: 1.01}),
        _m("delete_thread.sync", "ms", {OFFICIAL: 1.0, OURS: 0.99}),
        _m("async.c32", "ops/s", {OFFICIAL: 100.0, OURS: 99.0}),
    ]
    verdicts = evaluate(rows)
    assert [verdicts[r.key].ok for r in rows] == [False, True, False]


def test_put_1kb_is_also_held_to_its_insert_floor() -> None:
    floor = _m("floor.insert_1kb", "ms", {"postgres": 0.30})
    fast_but_far = _m("put_1kb.sync", "ms", {OFFICIAL: 0.60, OURS: 0.50})
    near = _m("put_1kb.sync", "ms", {OFFICIAL: 0.60, OURS: 0.44})
    assert evaluate([floor, fast_but_far])["put_1kb.sync"].ok is False
    assert evaluate([floor, near])["put_1kb.sync"].ok is True
    assert evaluate([near])["put_1kb.sync"].ok is None  # no floor measured: no verdict


def test_swarm_needs_twice_the_official_and_most_of_in_memory() -> None:
    rows = [_m("swarm.c64", "steps/s", {OFFICIAL: 200.0, OURS: 420.0, MEMORY: 588.0})]
    assert evaluate(rows)["swarm.c64"].ok is True
    rows = [_m("swarm.c64", "steps/s", {OFFICIAL: 200.0, OURS: 400.0, MEMORY: 600.0})]
    assert evaluate(rows)["swarm.c64"].ok is False  # 0.67x InMemorySaver
    wal = [_m("swarm.wal.c64", "B/step", {OFFICIAL: 5000.0, OURS: 2600.0})]
    assert evaluate(wal)["swarm.wal.c64"].ok is False


def test_conversation_rows_are_held_to_the_bytes_each_step_added() -> None:
    added = 400.0  # allowance: 1024 + 1.5 * 400 = 1624
    ok = _m("conv.t100", "B/step", {OFFICIAL: 9000.0, OURS: 1600.0}, added_bytes_per_step=added)
    over = _m(
        "conv.wal.t100", "B/step", {OFFICIAL: 9000.0, OURS: 1700.0}, added_bytes_per_step=added
    )
    verdicts = evaluate([ok, over])
    assert verdicts["conv.t100"].ok is True
    assert verdicts["conv.wal.t100"].ok is False
    assert floor_multiples(ok, None) == {OFFICIAL: 22.5, OURS: 4.0}


def test_graph_rates_are_shown_as_multiples_of_in_memory_time() -> None:
    m = _m("e2e.sync", "steps/s", {OFFICIAL: 500.0, OURS: 250.0, MEMORY: 1000.0})
    assert floor_multiples(m, None) == {OFFICIAL: 2.0, OURS: 4.0, MEMORY: 1.0}


def test_full_list_is_held_to_in_memory_listing() -> None:
    rows = [_m("list_all.sync", "ms", {OFFICIAL: 600.0, OURS: 110.0, MEMORY: 60.0})]
    assert evaluate(rows)["list_all.sync"].ok is True
    rows = [_m("list_all.sync", "ms", {OFFICIAL: 600.0, OURS: 119.0, MEMORY: 50.0})]
    assert evaluate(rows)["list_all.sync"].ok is False  # 2.4x InMemorySaver's time


def test_react_graph_runs_four_supersteps_a_turn() -> None:
    assert react_supersteps_per_turn() == 4


def test_wal_position_moves_with_a_write(empty_db_url: str) -> None:
    with psycopg.connect(empty_db_url, autocommit=True) as conn:
        conn.execute("create table wal_probe (payload bytea)")
        start = wal_lsn(conn)
        conn.execute("insert into wal_probe values (%s)", (os.urandom(10_000),))
        assert wal_since(conn, start) >= 10_000
        with pytest.raises(psycopg.errors.InvalidTextRepresentation):
            wal_since(conn, "not an lsn")


def test_own_wal_counts_one_database_only(make_db_url: Any) -> None:
    mine, other = make_db_url(False), make_db_url(False)

    async def measure() -> tuple[int | None, int | None, int]:
        async with await psycopg.AsyncConnection.connect(mine, autocommit=True) as conn:
            if not await awal_inspector(conn):
                pytest.skip("pg_walinspect is not installed on this server")
            oid = await adatabase_oid(conn, mine)
            await conn.execute("create table wal_probe (payload bytea)")
            async with await psycopg.AsyncConnection.connect(other, autocommit=True) as o:
                await o.execute("create table wal_elsewhere (payload bytea)")
                start = await awal_lsn(conn)
                await o.execute("insert into wal_elsewhere values (%s)", (os.urandom(50_000),))
                await conn.execute("insert into wal_probe values (%s)", (os.urandom(10_000),))
                own = await awal_own_since(conn, start, oid)
                # The first WAL segment of the server is long gone: no figure, no error.
                gone = await awal_own_since(conn, "0/10", oid)
                return own, gone, oid

    own, gone, oid = asyncio.run(measure())
    assert oid > 0
    assert own is not None and 10_000 <= own < 50_000
    assert gone is None


def test_contenders_take_every_position_in_turn() -> None:
    from bench.runner import _orders

    assert _orders(["a", "b"], 3) == [["a", "b"], ["b", "a"], ["a", "b"]]
    orders = _orders(["a", "b", "c"], 3)
    for position in range(3):
        assert sorted(order[position] for order in orders) == ["a", "b", "c"]
