"""Importers against real sources written by the real savers running a real graph."""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

import psycopg
import pytest
from langgraph.checkpoint.memory import InMemorySaver
from langgraph.checkpoint.postgres import PostgresSaver as OfficialSaver
from langgraph.checkpoint.sqlite import SqliteSaver

from graph_fixtures import TICKET_ALLOW, populate, populate_tickets, resume, same_threads
from pgcheckpoint import BlockedTypeError, ImportConflictError, PostgresSaver, TransferError
from pgcheckpoint.importers import ThreadResult, import_official, import_saver, import_sqlite


def _contents(state: dict[str, Any]) -> list[str]:
    return [f"{type(m).__name__}:{m.content}" for m in state["messages"]]


def test_sqlite_import_is_lossless_and_resumes(
    saver: PostgresSaver, sqlite_file: tuple[Path, SqliteSaver, list[str]]
) -> None:
    path, source, ids = sqlite_file
    report = import_sqlite(saver, path)
    assert report.verified is True and report.skipped_checkpoints == 0
    assert report.threads == 4 and report.checkpoints == sum(1 for _ in source.list(None))
    assert report.writes > 0
    same_threads(source, saver, ids)
    namespaces = {t.config["configurable"]["checkpoint_ns"] for t in saver.list(None)}
    assert len(namespaces) > 1  # the subgraph's checkpoints came along
    # Resuming the interrupted thread gives the same result on both sides.
    assert _contents(resume(saver, "thread-1")) == _contents(resume(source, "thread-1"))


def test_interrupted_import_finishes_without_duplicates(
    saver: PostgresSaver, sqlite_file: tuple[Path, SqliteSaver, list[str]]
) -> None:
    path, source, ids = sqlite_file
    done: list[ThreadResult] = []

    def stop_after_two(result: ThreadResult) -> None:
        done.append(result)
        if len(done) == 2:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        import_sqlite(saver, path, on_thread=stop_after_two)
    assert len(saver.list_threads()) == 2
    report = import_sqlite(saver, path)
    assert report.skipped == 2 and report.threads == 4 and report.verified is True
    total = sum(1 for _ in source.list(None))
    assert sum(1 for _ in saver.list(None)) == total
    same_threads(source, saver, ids)


def test_official_tables_import(saver: PostgresSaver, make_db_url: Any) -> None:
    other = make_db_url(False)
    with psycopg.connect(other, autocommit=True) as conn:
        official = OfficialSaver(conn)  # type: ignore[arg-type]
        official.setup()
        ids = populate(official, 3)
        report = import_official(saver, other)
        assert report.verified is True and report.threads == 3
        same_threads(official, saver, ids)
        assert _contents(resume(saver, "thread-1")) == _contents(resume(official, "thread-1"))


def test_official_tables_in_another_schema_same_database(db_url: str) -> None:
    with psycopg.connect(db_url, autocommit=True) as conn:
        conn.execute("CREATE SCHEMA legacy")
        conn.execute("SET search_path TO legacy")
        official = OfficialSaver(conn)  # type: ignore[arg-type]
        official.setup()
        ids = populate(official, 2)
        with PostgresSaver.from_conn_string(db_url) as saver:
            report = import_official(saver, db_url, schema="legacy")
            assert report.verified is True
            same_threads(official, saver, ids)


def test_memory_saver_import(saver: PostgresSaver) -> None:
    memory = InMemorySaver()
    ids = populate(memory, 3)
    report = import_saver(saver, memory)
    assert report.verified is True and report.threads == 3
    same_threads(memory, saver, ids)
    assert import_saver(saver, memory).skipped == 3


def test_bad_sources_raise_transfer_error(saver: PostgresSaver, tmp_path: Path) -> None:
    with pytest.raises(TransferError, match="does not exist"):
        import_sqlite(saver, tmp_path / "nope.sqlite")
    empty = tmp_path / "empty.sqlite"
    sqlite3.connect(empty).execute("CREATE TABLE x (a int)")
    with pytest.raises(TransferError, match="not a langgraph-checkpoint-sqlite"):
        import_sqlite(saver, empty)
    with pytest.raises(TransferError, match="no official"):
        import_official(saver, str(saver.conn.conninfo), schema="missing")  # type: ignore[union-attr]


def test_official_import_carries_types_the_allowlist_refuses(
    saver: PostgresSaver, make_db_url: Any
) -> None:
    other = make_db_url(False)
    with psycopg.connect(other, autocommit=True) as conn:
        official = OfficialSaver(conn)  # type: ignore[arg-type]
        official.setup()
        populate_tickets(official.with_allowlist(TICKET_ALLOW), "tickets")
        report = import_official(saver, other)  # no allowlist: values are not loaded
        assert report.threads == 1 and report.checkpoints > 0
        with pytest.raises(BlockedTypeError):
            saver.get_tuple({"configurable": {"thread_id": "tickets"}})
        same_threads(
            official.with_allowlist(TICKET_ALLOW), saver.with_allowlist(TICKET_ALLOW), ["tickets"]
        )
        again = import_official(saver, other)
        assert (again.skipped, again.checkpoints) == (1, 0)
        assert again.skipped_checkpoints == report.checkpoints


def test_sqlite_import_never_replaces_a_different_row(
    saver: PostgresSaver, db_url: str, sqlite_file: tuple[Path, SqliteSaver, list[str]]
) -> None:
    path, _, _ = sqlite_file
    import_sqlite(saver, path, thread_ids=["thread-2"])
    with psycopg.connect(db_url, autocommit=True) as conn:
        row = conn.execute(
            "SELECT checkpoint_id FROM public.writes WHERE thread_id = 'thread-2' LIMIT 1"
        ).fetchone()
        assert row is not None
        conn.execute(
            "UPDATE public.writes SET value = '\\x00'::bytea, type = 'bytes' "
            "WHERE thread_id = 'thread-2' AND checkpoint_id = %s",
            (row[0],),
        )
        before = conn.execute("SELECT count(*) FROM public.checkpoints").fetchone()
    with pytest.raises(ImportConflictError, match=f"thread 'thread-2' checkpoint '{row[0]}'"):
        import_sqlite(saver, path)
    with psycopg.connect(db_url) as conn:
        assert conn.execute("SELECT count(*) FROM public.checkpoints").fetchone() == before
    assert [t.thread_id for t in saver.list_threads()] == ["thread-2"]
