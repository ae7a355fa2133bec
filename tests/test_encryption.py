"""Encryption at rest (docs/encryption.md): keys, real graphs on an encrypted saver,
what stays in clear, filters, fail-closed reads, keyed chunk ids.

The tampering matrix is in test_encryption_tamper.py, rotation and the CLI in
test_encryption_rotate.py.
"""

from __future__ import annotations

import operator
import pickle
import warnings
from collections.abc import Iterator
from typing import Annotated, Any

import psycopg
import pytest
from langchain_core.messages import AIMessage, HumanMessage
from langgraph.checkpoint.conformance.capabilities import ALL_CAPABILITIES as _ALL_CAPABILITIES
from langgraph.graph import START, StateGraph
from langgraph.graph.message import add_messages
from typing_extensions import TypedDict

from _helpers import cfg, make_checkpoint
from pgcheckpoint import (
    ConfigurationError,
    DeserializationError,
    IntegrityError,
    Keyring,
    PostgresSaver,
)
from pgcheckpoint.keyring import ENV_VAR

SECRET = "the-launch-code-is-7731"
K1 = bytes(range(32))
K2 = bytes(range(100, 132))


def ring(*ids: str, primary: str | None = None) -> Keyring:
    material = {"k1": K1, "k2": K2, "k3": bytes(range(7, 39))}
    return Keyring({i: material[i] for i in ids}, primary=primary or ids[0])


@pytest.fixture
def enc(db_url: str) -> Iterator[PostgresSaver]:
    with PostgresSaver.from_conn_string(db_url, encryption=ring("k1")) as s:
        s.setup()
        yield s


class State(TypedDict):
    messages: Annotated[list[Any], add_messages]
    notes: Annotated[list[str], operator.add]
    title: str


def chat_graph(saver: PostgresSaver) -> Any:
    def reply(state: State) -> dict[str, Any]:
        n = len(state["messages"])
        return {
            "messages": [AIMessage(f"reply {n}: {SECRET} " + "x" * 3000)],
            "notes": [f"{SECRET}-note-{n}"],
            "title": f"{SECRET} title",
        }

    b = StateGraph(State)
    b.add_node("reply", reply)
    b.add_edge(START, "reply")
    return b.compile(checkpointer=saver)


def raw_dump(url: str) -> bytes:
    """Every stored byte of every pgcheckpoint table, as one blob to search."""
    out = bytearray()
    with psycopg.connect(url) as conn:
        for table in ("checkpoints", "blobs", "chunks", "writes"):
            for row in conn.execute(f"SELECT * FROM public.{table}"):
                for v in row:
                    out += v if isinstance(v, bytes) else str(v).encode()
    return bytes(out)


# --- the keyring --------------------------------------------------------------


def test_keyring_from_env_first_key_writes() -> None:
    a, b = Keyring.generate_key(), Keyring.generate_key()
    text = f"new:{Keyring.encode_key(a)}, old:{Keyring.encode_key(b)}"
    r = Keyring.from_env({ENV_VAR: text})
    assert r is not None and r.primary == "new" and r.key_ids == ("new", "old")
    assert Keyring.from_env({}) is None


@pytest.mark.parametrize(
    "text",
    ["k1", "k1:!!notbase64!!", "k1:" + Keyring.encode_key(b"short"), "bad id:AAAA", "k:a,k:a"],
)
def test_bad_keys_are_refused_without_echoing_them(text: str) -> None:
    with pytest.raises(ConfigurationError) as info:
        Keyring.parse(text)
    secret_part = text.partition(":")[2]
    if secret_part:
        assert secret_part not in str(info.value)


def test_no_key_material_in_repr_or_errors_or_pickle() -> None:
    r = ring("k1", "k2")
    text = repr(r) + str(vars(type(r)))
    for key in (K1, K2):
        assert key.hex() not in text and Keyring.encode_key(key) not in text
    assert "k1" in repr(r)
    with pytest.raises(TypeError):
        pickle.dumps(r)
    with pytest.raises(IntegrityError) as info:
        r.open(b"\x01\x02k9" + b"\x00" * 40, b"", "a value")
    assert "k9" in str(info.value) and K1.hex() not in str(info.value)
    with pytest.raises(ConfigurationError):
        Keyring({"k1": K1}, primary="nope")
    with pytest.raises(ConfigurationError, match="allow_plaintext"):
        PostgresSaver("postgresql://127.0.0.1:1/x", allow_plaintext=True)
    with pytest.raises(ConfigurationError, match="Keyring"):
        PostgresSaver("postgresql://127.0.0.1:1/x", encryption=K1)  # type: ignore[arg-type]


# --- a real graph on an encrypted saver ----------------------------------------


def test_a_graph_runs_and_nothing_secret_is_stored_in_clear(
    enc: PostgresSaver, db_url: str
) -> None:
    graph = chat_graph(enc)
    config = {"configurable": {"thread_id": "t1"}}
    for i in range(4):
        graph.invoke({"messages": [HumanMessage(f"question {i} {SECRET}")]}, config)
    state = graph.get_state(config)
    assert len(state.values["messages"]) == 8
    assert state.values["title"] == f"{SECRET} title"
    history = list(graph.get_state_history(config))
    assert len(history) >= 8
    dump = raw_dump(db_url)
    assert SECRET.encode() not in dump
    assert b"question 1" not in dump and b"reply 1:" not in dump
    # Ids, namespaces, channel and node names (task paths) stay in clear (documented).
    assert b"t1" in dump and b"messages" in dump
    with psycopg.connect(db_url) as conn:
        types = {r[0] for r in conn.execute(
            "SELECT type FROM public.checkpoints UNION SELECT type FROM public.blobs "
            "UNION SELECT type FROM public.writes")}
        assert types and all(t.endswith("+enc") for t in types), types
        assert conn.execute("SELECT count(*) FROM public.chunks").fetchone()[0] > 0


def test_list_filter_and_delete_for_runs_work_on_encrypted_metadata(
    enc: PostgresSaver, db_url: str
) -> None:
    graph = chat_graph(enc)
    graph.invoke({"messages": [HumanMessage("hi")]},
                 {"configurable": {"thread_id": "a", "run_id": "run-a"}})
    graph.invoke({"messages": [HumanMessage("hi")]},
                 {"configurable": {"thread_id": "b", "run_id": "run-b"}})
    loops = list(enc.list(None, filter={"source": "loop"}))
    assert {t.config["configurable"]["thread_id"] for t in loops} == {"a", "b"}
    assert all(t.metadata["source"] == "loop" for t in loops)
    assert list(enc.list(None, filter={"source": "loop", "step": 99})) == []
    step0 = list(enc.list(cfg("a"), filter={"step": 0}))
    assert len(step0) == 1 and step0[0].metadata["step"] == 0
    with psycopg.connect(db_url) as conn:
        stored = conn.execute("SELECT metadata::text FROM public.checkpoints").fetchall()
    assert all("loop" not in s and "run-a" not in s for (s,) in stored)
    # Under a keyring holding a second (new primary) key, rows of both keys match.
    with PostgresSaver.from_conn_string(db_url, encryption=ring("k2", "k1")) as two:
        chat_graph(two).invoke({"messages": [HumanMessage("x")]},
                               {"configurable": {"thread_id": "c"}})
        found = {t.config["configurable"]["thread_id"]
                 for t in two.list(None, filter={"source": "loop"})}
        assert found == {"a", "b", "c"}
        names = {t.thread_id for t in two.list_threads(filter={"source": "loop"})}
        assert "c" in names  # list_threads matches rows under the primary key
    enc.delete_for_runs(["run-a"])
    assert list(enc.list(cfg("a"))) == []
    assert list(enc.list(cfg("b")))


def test_pending_writes_and_interrupts_round_trip(enc: PostgresSaver) -> None:
    cp = make_checkpoint({"big": "y" * 9000}, {"big": "1"})
    conf = enc.put(cfg("w"), cp, {"source": "input", "step": -1}, {"big": "1"})
    enc.put_writes(conf, [("big", SECRET), ("__interrupt__", {"why": SECRET})], "task-1")
    got = enc.get_tuple(conf)
    assert got is not None
    assert got.checkpoint["channel_values"]["big"] == "y" * 9000
    assert sorted(w[1] for w in got.pending_writes or []) == ["__interrupt__", "big"]
    assert {"why": SECRET} in [w[2] for w in got.pending_writes or []]


def test_versions_listing_decrypts_metadata(enc: PostgresSaver) -> None:
    chat_graph(enc).invoke({"messages": [HumanMessage("hi")]}, {"configurable": {"thread_id": "v"}})
    versions = enc.list_versions("v")
    assert versions and {v.metadata.get("source") for v in versions} >= {"loop", "input"}


# --- fail closed ----------------------------------------------------------------


def test_a_keyring_refuses_plaintext_rows_unless_allowed(db_url: str, saver: PostgresSaver) -> None:
    chat_graph(saver).invoke({"messages": [HumanMessage("plain")]},
                             {"configurable": {"thread_id": "p"}})
    with PostgresSaver.from_conn_string(db_url, encryption=ring("k1")) as strict:
        with pytest.raises(IntegrityError, match="not encrypted"):
            strict.get_tuple(cfg("p"))
        with pytest.raises(IntegrityError):
            list(strict.list(cfg("p")))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with PostgresSaver.from_conn_string(
            db_url, encryption=ring("k1"), allow_plaintext=True
        ) as lenient:
            got = lenient.get_tuple(cfg("p"))
    assert any("allow_plaintext" in str(w.message) for w in caught)
    assert got is not None and got.checkpoint["channel_values"]["title"].endswith("title")


def test_without_the_keyring_an_encrypted_row_names_its_key(
    enc: PostgresSaver, db_url: str, saver: PostgresSaver
) -> None:
    chat_graph(enc).invoke({"messages": [HumanMessage("x")]}, {"configurable": {"thread_id": "e"}})
    with pytest.raises(DeserializationError, match="'k1'"):
        saver.get_tuple(cfg("e"))
    with (
        PostgresSaver.from_conn_string(db_url, encryption=ring("k2")) as other,
        pytest.raises(IntegrityError, match=r"'k1'.*not in the keyring"),
    ):
        other.get_tuple(cfg("e"))


# --- chunk ids --------------------------------------------------------------------


def test_chunk_ids_are_keyed_per_thread_and_still_dedup(
    enc: PostgresSaver, db_url: str, saver: PostgresSaver
) -> None:
    big = "".join(f"line {i} of a long shared document\n" for i in range(3000))
    for thread in ("x", "y"):
        conf = enc.put(cfg(thread), make_checkpoint({"doc": big}, {"doc": "1"}), {}, {"doc": "1"})
        cp2 = make_checkpoint({"doc": big}, {"doc": "2"})
        enc.put(conf, cp2, {}, {"doc": "2"})
    saver.put(cfg("plain"), make_checkpoint({"doc": big}, {"doc": "1"}), {}, {"doc": "1"})
    with psycopg.connect(db_url) as conn:
        rows = conn.execute("SELECT thread_id, hash FROM public.chunks").fetchall()
    by_thread: dict[str, set[bytes]] = {}
    for thread, h in rows:
        by_thread.setdefault(thread, set()).add(bytes(h))
    assert by_thread["x"] and not by_thread["x"] & by_thread["y"]
    assert not by_thread["x"] & by_thread["plain"]
    # Two versions of the same content in one thread share their chunks.
    with psycopg.connect(db_url) as conn:
        refs = conn.execute(
            "SELECT chunk_refs FROM public.blobs WHERE thread_id = 'x' ORDER BY version"
        ).fetchall()
    assert refs[0][0] == refs[1][0]
    assert enc.get_tuple(cfg("y")).checkpoint["channel_values"]["doc"] == big  # type: ignore[union-attr]


# --- export and import ------------------------------------------------------------


def test_export_decrypts_only_on_request(
    enc: PostgresSaver, make_db_url: Any, tmp_path: Any
) -> None:
    from pgcheckpoint import TransferError
    from pgcheckpoint.transfer import export_file, import_ndjson

    graph = chat_graph(enc)
    for i in range(4):  # large enough to be chunked
        graph.invoke({"messages": [HumanMessage(f"q{i}")]}, {"configurable": {"thread_id": "x"}})
    enc.put_writes(enc.get_tuple(cfg("x")).config, [("w", SECRET)], "task")  # type: ignore[union-attr]
    path = tmp_path / "out.ndjson"
    with pytest.raises(TransferError, match="decrypt"):
        export_file(enc, path)
    assert not path.exists()
    export_file(enc, path, decrypt=True)
    other = make_db_url()
    with PostgresSaver.from_conn_string(other) as plain:
        plain.setup()
        import_ndjson(plain, path)
        got, want = plain.get_tuple(cfg("x")), enc.get_tuple(cfg("x"))
        assert got is not None and want is not None
        assert got.checkpoint == want.checkpoint and got.metadata == want.metadata
        assert got.pending_writes == want.pending_writes
    with (
        PostgresSaver.from_conn_string(other, encryption=ring("k1")) as target,
        pytest.raises(TransferError, match="pgcheckpoint encrypt"),
    ):
        import_ndjson(target, path)


# --- the LangGraph contract under a keyring ----------------------------------------


@pytest.mark.parametrize("capability", sorted(c.value for c in _ALL_CAPABILITIES))
async def test_conformance_with_a_keyring(capability: str, db_url: str) -> None:
    """LangGraph's conformance suite on an AsyncPostgresSaver with a keyring (the sync
    saver shares every line of the codec with it)."""
    from langgraph.checkpoint.conformance import checkpointer_test, validate

    from pgcheckpoint import AsyncPostgresSaver

    async def make() -> Any:
        async with AsyncPostgresSaver.from_conn_string(
            db_url, encryption=ring("k1", "k2")
        ) as s:
            await s.setup()
            yield s

    registered = checkpointer_test(name=f"encrypted:{capability}")(make)
    report = await validate(registered, capabilities={capability})
    result = report.results[capability]
    assert result.detected and result.tests_failed == 0, result.failures
    assert result.tests_passed > 0
    with psycopg.connect(db_url) as conn:
        types = conn.execute(
            "SELECT type FROM public.checkpoints UNION SELECT type FROM public.writes"
        ).fetchall()
    assert all(t.endswith("+enc") for (t,) in types)


def test_delta_channel_history_under_a_keyring(enc: PostgresSaver) -> None:
    from langgraph.checkpoint.base import BaseCheckpointSaver

    DeltaChannel = pytest.importorskip("langgraph.channels.delta").DeltaChannel
    from test_saver_contract import delta_graph

    graph = delta_graph(enc, 12, snapshot_every=5)
    out = graph.invoke({"n": 0, "stop": 12}, {"configurable": {"thread_id": "d"}})
    assert out["items"] == list(range(12)) and DeltaChannel is not None
    head = enc.get_tuple(cfg("d"))
    assert head is not None
    hist = enc.get_delta_channel_history(config=head.config, channels=["items", "n"])
    reference = BaseCheckpointSaver.get_delta_channel_history(
        enc, config=head.config, channels=["items", "n"]
    )
    assert hist == reference


def test_from_env_reads_the_keyring(db_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DATABASE_URL", db_url)
    monkeypatch.setenv(ENV_VAR, f"k2:{Keyring.encode_key(K2)},k1:{Keyring.encode_key(K1)}")
    with PostgresSaver.from_env() as saver:
        saver.setup()
        assert saver.encryption is not None
        assert saver.encryption.keyring.primary == "k2"
        assert saver.encryption.keyring.key_ids == ("k2", "k1")
