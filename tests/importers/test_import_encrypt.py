"""Imports into a saver with a keyring (docs/encryption.md, "Export and import"): every
importer seals what it writes as the saver's own writes do, a re-run skips identical
rows, and no plaintext of a known state string reaches a stored column. Real graphs,
real PostgreSQL."""

from __future__ import annotations

import operator
from pathlib import Path
from typing import Annotated, Any

import psycopg
import pytest
from langchain_core.messages import AIMessage, HumanMessage
from langgraph.checkpoint.postgres import PostgresSaver as OfficialSaver
from langgraph.checkpoint.sqlite import SqliteSaver
from langgraph.graph import START, StateGraph
from langgraph.graph.message import add_messages
from typing_extensions import TypedDict

from _helpers import raw_dump
from graph_fixtures import resume, same_threads
from pgcheckpoint import (
    AsyncPostgresSaver,
    DeserializationError,
    ImportConflictError,
    Keyring,
    PostgresSaver,
)
from pgcheckpoint.importers import aimport_sqlite, import_official, import_saver, import_sqlite
from pgcheckpoint.transfer import aimport_ndjson, export_file, import_ndjson

SECRET = "imported-launch-code-5521"
RING_A = Keyring({"a1": bytes(range(32))}, primary="a1")
RING_B = Keyring({"b1": bytes(range(50, 82))}, primary="b1")


class State(TypedDict):
    messages: Annotated[list[Any], add_messages]
    notes: Annotated[list[str], operator.add]


def chat(saver: Any, thread: str, turns: int = 4) -> None:
    """A real graph whose message list grows past the chunking threshold."""

    def reply(state: State) -> dict[str, Any]:
        n = len(state["messages"])
        return {"messages": [AIMessage(f"reply {n}: {SECRET} " + "y" * 3000)],
                "notes": [f"{SECRET}-note-{n}"]}

    b = StateGraph(State)
    b.add_node("reply", reply)
    b.add_edge(START, "reply")
    graph = b.compile(checkpointer=saver)
    for i in range(turns):
        graph.invoke({"messages": [HumanMessage(f"q{i} {SECRET}")]},
                     {"configurable": {"thread_id": thread}, "metadata": {"user": "alice"}})


def test_sqlite_into_an_encrypted_saver(
    db_url: str, sqlite_file: tuple[Path, SqliteSaver, list[str]]
) -> None:
    path, source, ids = sqlite_file
    with PostgresSaver.from_conn_string(db_url, encryption=RING_A) as enc:
        report = import_sqlite(enc, path)
        assert report.verified is True and report.threads == 4 and report.writes > 0
        same_threads(source, enc, ids)
        # The metadata's blind index works on imported rows.
        assert {t.config["configurable"]["thread_id"] for t in enc.list(
            None, filter={"user": "u1"})} == {"thread-1", "thread-3"}
        again = import_sqlite(enc, path)
        assert again.skipped == 4 and again.checkpoints == 0 and again.writes == 0
        assert again.skipped_checkpoints == report.checkpoints
        # An imported thread goes on through the encrypted saver as if written by it.
        got, want = resume(enc, "thread-1"), resume(source, "thread-1")
        assert [m.content for m in got["messages"]] == [m.content for m in want["messages"]]
    dump = raw_dump(db_url)
    assert b"hello 1" not in dump and b"answer: yes" not in dump
    with (
        PostgresSaver.from_conn_string(db_url) as plain,
        pytest.raises(DeserializationError, match="encrypted under key 'a1'"),
    ):
        plain.get_tuple({"configurable": {"thread_id": "thread-0"}})


def test_ndjson_plain_to_encrypted_and_encrypted_to_another_keyring(
    saver: PostgresSaver, db_url: str, make_db_url: Any, tmp_path: Path
) -> None:
    saver_url = db_url
    chat(saver, "t")
    saver.put_writes(saver.get_tuple({"configurable": {"thread_id": "t"}}).config,  # type: ignore[union-attr]
                     [("w", SECRET)], "task-1")
    plain_file = tmp_path / "plain.ndjson"
    export_file(saver, plain_file)
    url_a, url_b = make_db_url(), make_db_url()
    with PostgresSaver.from_conn_string(url_a, encryption=RING_A) as enc_a:
        report = import_ndjson(enc_a, plain_file)
        assert report.verified is True and report.checkpoints > 0
        same_threads(saver, enc_a, ["t"])
        again = import_ndjson(enc_a, plain_file)
        assert again.skipped == 1 and again.checkpoints == 0 and again.writes == 0
        decrypted = tmp_path / "decrypted.ndjson"
        export_file(enc_a, decrypted, decrypt=True)
        chat(enc_a, "t", turns=1)  # the saver writes on top of the imported rows
    with psycopg.connect(url_a) as conn:
        assert conn.execute("SELECT count(*) FROM public.chunks").fetchone()[0] > 0  # type: ignore[index]
    with PostgresSaver.from_conn_string(url_b, encryption=RING_B) as enc_b:
        import_ndjson(enc_b, decrypted)
        same_threads(saver, enc_b, ["t"])
        assert import_ndjson(enc_b, decrypted).skipped == 1
    for url in (url_a, url_b):
        assert SECRET.encode() not in raw_dump(url)
    # Keyed chunk ids: the same content has different ids under each keyring.
    ids = []
    for url in (url_a, url_b):
        with psycopg.connect(url) as conn:
            ids.append({bytes(r[0]) for r in conn.execute("SELECT hash FROM public.chunks")})
    assert ids[0] and ids[1] and not ids[0] & ids[1]
    # A file whose metadata differs from a stored row's (compared in clear) is refused,
    # the rows left as they were.
    with psycopg.connect(saver_url) as conn:
        conn.execute("UPDATE public.checkpoints SET metadata = metadata || "
                     "'{\"user\": \"mallory\"}'::jsonb WHERE thread_id = 't'")
    changed = tmp_path / "changed.ndjson"
    export_file(saver, changed)
    before = raw_dump(url_b)
    with (
        PostgresSaver.from_conn_string(url_b, encryption=RING_B) as enc_b,
        pytest.raises(ImportConflictError, match="metadata differs"),
    ):
        import_ndjson(enc_b, changed)
    assert raw_dump(url_b) == before


def test_any_saver_into_an_encrypted_saver(saver: PostgresSaver, make_db_url: Any) -> None:
    chat(saver, "s", turns=2)
    url = make_db_url()
    with PostgresSaver.from_conn_string(url, encryption=RING_B) as enc:
        assert import_saver(enc, saver).checkpoints > 0
        same_threads(saver, enc, ["s"])
        assert import_saver(enc, saver).skipped == 1
    assert SECRET.encode() not in raw_dump(url)


def test_official_tables_into_an_encrypted_saver(db_url: str, make_db_url: Any) -> None:
    other = make_db_url(False)
    with (
        psycopg.connect(other, autocommit=True) as conn,
        PostgresSaver.from_conn_string(db_url, encryption=RING_A) as enc,
    ):
        official = OfficialSaver(conn)  # type: ignore[arg-type]
        official.setup()
        chat(official, "o", turns=3)
        report = import_official(enc, other)
        assert report.verified is True and report.threads == 1
        same_threads(official, enc, ["o"])
        assert import_official(enc, other).skipped == 1
    assert SECRET.encode() not in raw_dump(db_url)


async def test_async_imports_into_an_encrypted_saver(
    saver: PostgresSaver, make_db_url: Any, tmp_path: Path,
    sqlite_file: tuple[Path, SqliteSaver, list[str]],
) -> None:
    chat(saver, "t", turns=3)
    path = tmp_path / "plain.ndjson"
    export_file(saver, path)
    sqlite_path, source, ids = sqlite_file
    url = make_db_url()
    async with AsyncPostgresSaver.from_conn_string(url, encryption=RING_A) as enc:
        report = await aimport_ndjson(enc, path)
        assert report.verified is True and report.checkpoints > 0
        assert (await aimport_ndjson(enc, path)).skipped == 1
        await aimport_sqlite(enc, sqlite_path)
        assert (await aimport_sqlite(enc, sqlite_path)).skipped == 4
    with PostgresSaver.from_conn_string(url, encryption=RING_A) as reader:
        same_threads(saver, reader, ["t"])
        same_threads(source, reader, ids)
    dump = raw_dump(url)
    assert SECRET.encode() not in dump and b"hello 1" not in dump
