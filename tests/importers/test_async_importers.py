"""Importers, export and transfer into and from an ``AsyncPostgresSaver``: the same jobs as
the sync functions (importers/jobs.py), run by the async driver; real sources written
by real savers running a real graph, real PostgreSQL."""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
from langchain_core.runnables import RunnableConfig
from langgraph.checkpoint.base import CheckpointTuple
from langgraph.checkpoint.memory import InMemorySaver
from langgraph.checkpoint.postgres import PostgresSaver as OfficialSaver
from langgraph.checkpoint.sqlite import SqliteSaver

from graph_fixtures import populate, same_threads
from pgcheckpoint import AsyncPostgresSaver, ConfigurationError, PostgresSaver, TransferError
from pgcheckpoint.importers import (
    ThreadResult,
    aimport_official,
    aimport_saver,
    aimport_sqlite,
    import_sqlite,
)
from pgcheckpoint.transfer import (
    aexport_file,
    aexport_ndjson,
    aimport_ndjson,
    export_file,
    import_ndjson,
)


@pytest.fixture
def reader(db_url: str) -> Iterator[PostgresSaver]:
    """A sync saver on the async saver's database, to read back what it holds."""
    with PostgresSaver.from_conn_string(db_url) as s:
        yield s


async def test_sqlite_import_into_an_async_saver_is_lossless_and_resumes(
    asaver: AsyncPostgresSaver,
    reader: PostgresSaver,
    sqlite_file: tuple[Path, SqliteSaver, list[str]],
) -> None:
    path, source, ids = sqlite_file
    seen: list[ThreadResult] = []
    report = await aimport_sqlite(asaver, path, on_thread=seen.append)
    assert report.verified is True and report.threads == 4 == len(seen)
    assert report.checkpoints == sum(1 for _ in source.list(None)) and report.writes > 0
    same_threads(source, reader, ids)
    again = await aimport_sqlite(asaver, path)
    assert again.skipped == 4 and again.checkpoints == 0


async def test_an_async_import_reads_its_source_off_the_event_loop(
    asaver: AsyncPostgresSaver, reader: PostgresSaver
) -> None:
    """Source reads are blocking calls: they run in a worker thread, never on the loop."""
    loop_thread = threading.current_thread()
    readers: set[threading.Thread] = set()

    class Watched(InMemorySaver):
        def list(self, config: RunnableConfig | None, **kwargs: Any) -> Iterator[CheckpointTuple]:
            readers.add(threading.current_thread())
            return super().list(config, **kwargs)

    memory = Watched()
    ids = populate(memory, 2)
    report = await aimport_saver(asaver, memory)
    assert report.verified is True and report.threads == 2
    assert readers and loop_thread not in readers
    same_threads(memory, reader, ids)


async def test_official_tables_import_into_an_async_saver(
    asaver: AsyncPostgresSaver, reader: PostgresSaver, make_db_url: Any
) -> None:
    other = make_db_url(False)
    with psycopg.connect(other, autocommit=True) as conn:
        official = OfficialSaver(conn)  # type: ignore[arg-type]
        official.setup()
        ids = populate(official, 2)
        report = await aimport_official(asaver, other, thread_ids=[ids[0]])
        assert report.verified is True and report.threads == 1
        same_threads(official, reader, [ids[0]])
        assert reader.get_tuple({"configurable": {"thread_id": ids[1]}}) is None


async def test_ndjson_round_trip_between_the_two_colours(
    asaver: AsyncPostgresSaver, reader: PostgresSaver, make_db_url: Any, tmp_path: Path
) -> None:
    sync_file, async_file = tmp_path / "sync.ndjson", tmp_path / "async.ndjson"
    with PostgresSaver.from_conn_string(make_db_url(True)) as source:
        ids = populate(source, 3)
        exported = export_file(source, sync_file)
        # sync export -> async import
        report = await aimport_ndjson(asaver, sync_file)
        assert report.verified is True and report.checkpoints == exported.checkpoints
        same_threads(source, reader, ids)
        # async export: the same lines as the sync one (header and trailer hold the time)
        again = await aexport_file(asaver, async_file)
        assert {**again.as_dict(), "sha256": ""} == {**exported.as_dict(), "sha256": ""}
        assert sync_file.read_text().splitlines()[1:-1] == async_file.read_text().splitlines()[1:-1]
        # async export -> sync import into a third database
        with PostgresSaver.from_conn_string(make_db_url(True)) as third:
            assert import_ndjson(third, async_file).checkpoints == exported.checkpoints
            same_threads(source, third, ids)
    # async export to a stream, of one thread
    with (tmp_path / "one.ndjson").open("w") as out:
        one = await aexport_ndjson(asaver, out, thread_ids=[ids[1]])
    assert one.threads == 1
    assert (await aimport_ndjson(asaver, tmp_path / "one.ndjson")).skipped == 1


async def test_a_failed_async_export_leaves_no_file(
    asaver: AsyncPostgresSaver, tmp_path: Path
) -> None:
    with pytest.raises(TransferError, match="no checkpoints for thread"):
        await aexport_file(asaver, tmp_path / "out.ndjson", thread_ids=["nobody"])
    assert list(tmp_path.iterdir()) == []


async def test_a_bad_source_is_refused_by_the_async_import(
    asaver: AsyncPostgresSaver, reader: PostgresSaver, tmp_path: Path
) -> None:
    with pytest.raises(TransferError, match="does not exist"):
        await aimport_sqlite(asaver, tmp_path / "nope.sqlite")
    empty = tmp_path / "empty.sqlite"
    sqlite3.connect(empty).execute("CREATE TABLE x (a int)")
    with pytest.raises(TransferError, match="not a langgraph-checkpoint-sqlite"):
        await aimport_sqlite(asaver, empty)
    assert reader.list_threads() == []


async def test_each_function_refuses_a_saver_of_the_other_colour(
    asaver: AsyncPostgresSaver,
    saver: PostgresSaver,
    sqlite_file: tuple[Path, SqliteSaver, list[str]],
    tmp_path: Path,
) -> None:
    path, _, _ = sqlite_file
    with pytest.raises(ConfigurationError, match="with the a- prefix"):
        import_sqlite(asaver, path)  # type: ignore[arg-type]
    with pytest.raises(ConfigurationError, match="without the a- prefix"):
        await aimport_sqlite(saver, path)  # type: ignore[arg-type]
    with pytest.raises(ConfigurationError, match="without the a- prefix"):
        await aexport_file(saver, tmp_path / "x.ndjson")  # type: ignore[arg-type]
    assert saver.list_threads() == [] and list(tmp_path.glob("*.ndjson")) == []
