"""``list()``'s paging (``listing.Lister``) driven with canned rows, with no database.

The rows are real ``read_checkpoints`` rows: checkpoints encoded by the saver's
own codec (the importers' storage form, ``importers.common``), so decoding runs
as it does on rows from PostgreSQL."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from _helpers import cfg, make_checkpoint
from _plan_driver import Driver, Issued
from pgcheckpoint import listing
from pgcheckpoint._core import SaverCore
from pgcheckpoint.importers.common import SourceCheckpoint
from pgcheckpoint.importers.decoded import decoded_row, stored_from_decoded

Row = tuple[Any, ...]


def _rows(core: SaverCore, thread_id: str, n: int) -> list[Row]:
    """``n`` checkpoints of one thread as ``read_checkpoints`` returns them, newest first."""
    items: list[SourceCheckpoint] = []
    parent: str | None = None
    for i in range(n):
        cp = make_checkpoint({"step": i})
        items.append(SourceCheckpoint(thread_id, "", cp["id"], parent, cp, {"step": i}))
        parent = cp["id"]
    thread = stored_from_decoded(core, thread_id, items)
    return [decoded_row(thread, cp) for cp in reversed(thread.checkpoints)]


class FakeTable:
    """Answers ``read_checkpoints`` pages from a list of rows sorted newest first,
    as the statement does: rows after the page key, at most ``limit``."""

    def __init__(self, rows: list[Row]) -> None:
        self.rows = rows

    def __call__(self, issued: Issued) -> list[Row]:
        params = issued.params or {}
        rows = self.rows
        if "page_id" in params:
            keys = [r[2] for r in rows]
            rows = rows[keys.index(params["page_id"]) + 1 :]
        return rows[: params["limit"]]


def _reads(core: SaverCore) -> Callable[[str], str | None]:
    """Names every variant of ``read_checkpoints`` (its WHERE is assembled per call)."""
    head = core.queries["read_checkpoints"].split("{where}")[0]
    return lambda sql: "read_checkpoints" if sql.startswith(head) else None


def _list(core: SaverCore, rows: list[Row], limit: int | None) -> tuple[list[str], Driver]:
    lister = core._lister(cfg("t1"), None, None, limit)
    driver = Driver({"read_checkpoints": FakeTable(rows)}, namer=_reads(core))
    ids: list[str] = []
    while (plan := lister.next_plan()) is not None:
        ids.extend(t.config["configurable"]["checkpoint_id"] for t in driver.run(plan))
    return ids, driver


@pytest.fixture
def page_size(monkeypatch: pytest.MonkeyPatch) -> int:
    monkeypatch.setattr(listing, "LIST_PAGE_SIZE", 3)
    return 3


def test_list_pages_through_a_thread_newest_first(page_size: int) -> None:
    core = SaverCore()
    rows = _rows(core, "t1", 7)
    ids, d = _list(core, rows, None)
    assert ids == [r[2] for r in rows]  # every checkpoint once, in order
    pages = d.params_of("read_checkpoints")
    assert [p["limit"] for p in pages if p] == [3, 3, 3]
    # Keyset paging: each page starts after the last checkpoint of the one before.
    assert [p.get("page_id") for p in pages if p] == [None, rows[2][2], rows[5][2]]
    assert all(p and p["page_thread"] == "t1" for p in pages[1:])


def test_a_full_last_page_costs_one_empty_read(page_size: int) -> None:
    core = SaverCore()
    ids, d = _list(core, _rows(core, "t1", 6), None)
    assert len(ids) == 6 and len(d.issued) == 3  # pages of 3, 3 and 0


def test_limit_caps_the_last_page_and_stops_reading(page_size: int) -> None:
    core = SaverCore()
    rows = _rows(core, "t1", 10)
    ids, d = _list(core, rows, 4)
    assert ids == [r[2] for r in rows[:4]]
    assert [p["limit"] for p in d.params_of("read_checkpoints") if p] == [3, 1]


def test_limit_zero_reads_nothing() -> None:
    core = SaverCore()
    ids, d = _list(core, _rows(core, "t1", 2), 0)
    assert ids == [] and d.issued == []


def test_a_page_decodes_each_checkpoint_with_its_parent() -> None:
    core = SaverCore()
    rows = _rows(core, "t1", 2)
    lister = core._lister(cfg("t1"), None, None, None)
    plan = lister.next_plan()
    assert plan is not None
    page = Driver({"read_checkpoints": [rows]}, namer=_reads(core)).run(plan)
    newest, oldest = page
    assert newest.checkpoint["channel_values"] == {"step": 1}
    assert newest.metadata == {"step": 1}
    assert newest.parent_config is not None
    assert (
        newest.parent_config["configurable"]["checkpoint_id"]
        == oldest.config["configurable"]["checkpoint_id"]
    )
    assert oldest.parent_config is None
    assert lister.next_plan() is None  # a short page ends the listing


class FakeShards:
    """Answers list(None) on Citus (Lister._page_by_keys) from rows of several
    threads: the key page over every thread, then each thread's read, both after
    the page cursor, at most ``limit``, newest first."""

    def __init__(self, rows: list[Row]) -> None:
        self.rows = sorted(rows, key=lambda r: (r[2], r[0], r[1]), reverse=True)

    def _after(self, params: Any, rows: list[Row]) -> list[Row]:
        if "page_id" in params:
            cursor = (params["page_id"], params["page_thread"], params["page_ns"])
            rows = [r for r in rows if (r[2], r[0], r[1]) < cursor]
        return rows[: params["limit"]]

    def keys(self, issued: Issued) -> list[Row]:
        return [r[:3] for r in self._after(issued.params, self.rows)]

    def read(self, issued: Issued) -> list[Row]:
        params = issued.params or {}
        return self._after(params, [r for r in self.rows if r[0] == params["thread_id"]])


def test_list_of_every_thread_on_citus_reads_keys_then_each_thread(page_size: int) -> None:
    """With the citus extension, a page of list(None) is its keys over every thread,
    then one read per thread of the page (Citus cannot plan the one-statement read
    of every thread); the result is the same order as the one statement's."""
    core = SaverCore()
    rows = _rows(core, "a", 4) + _rows(core, "b", 4)  # b's are the newer
    shards = FakeShards(rows)
    keys_sql = core.queries.list_keys(["where_all"])
    reads = _reads(core)

    def namer(sql: str) -> str | None:
        if sql.startswith("SELECT thread_id, checkpoint_ns, checkpoint_id"):
            return "list_keys"
        return "has_citus" if "pg_extension" in sql else reads(sql)

    assert namer(keys_sql) == "list_keys"
    lister = core._lister(None, None, None, None)
    driver = Driver(
        {"has_citus": [[(True,)]], "list_keys": shards.keys, "read_checkpoints": shards.read},
        namer=namer,
    )
    ids: list[str] = []
    while (plan := lister.next_plan()) is not None:
        ids.extend(t.config["configurable"]["checkpoint_id"] for t in driver.run(plan))
    assert ids == [r[2] for r in shards.rows]
    names = driver.issued_names
    assert names[0] == "has_citus" and names.count("has_citus") == 1  # once per saver
    assert names.count("list_keys") == 3  # pages of 3, 3 and 2 keys
    # The second page holds b's oldest and a's two newest: one read per thread.
    threads = [p["thread_id"] for p in driver.params_of("read_checkpoints") if p]
    assert threads == ["b", "b", "a", "a"]


@pytest.mark.parametrize("citus", [False, True])
def test_the_citus_check_is_made_once_per_saver(page_size: int, citus: bool) -> None:
    """The first list(None) asks whether the citus extension is installed; the saver
    keeps the answer, so later lists of every thread cost no extra round trip."""
    core = SaverCore()
    shards = FakeShards(_rows(core, "a", 2))
    reads = _reads(core)

    def namer(sql: str) -> str | None:
        if sql.startswith("SELECT thread_id, checkpoint_ns, checkpoint_id"):
            return "list_keys"
        return "has_citus" if "pg_extension" in sql else reads(sql)

    table = FakeTable(shards.rows)

    def read(issued: Issued) -> list[Row]:  # one thread's read, or every thread's
        return shards.read(issued) if "thread_id" in (issued.params or {}) else table(issued)

    driver = Driver(
        {"has_citus": [[(citus,)]], "list_keys": shards.keys, "read_checkpoints": read},
        namer=namer,
    )
    for _ in range(3):
        lister = core._lister(None, None, None, None)
        while (plan := lister.next_plan()) is not None:
            assert len(driver.run(plan)) == 2
    names = driver.issued_names
    assert names.count("has_citus") == 1
    assert names.count("list_keys") == (3 if citus else 0)
    assert core.has_citus is citus
