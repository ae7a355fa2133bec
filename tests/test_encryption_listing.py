"""Listings over encrypted metadata (issue 12): ``list_threads`` and
``thread_summaries`` show what LangGraph wrote, filters match rows sealed under
any key of the ring, and the CLI and the inspector show decrypted metadata with
the keys and "encrypted under key <id>" without them.

Real PostgreSQL, real graphs (an interrupt that waits for approval).
"""

from __future__ import annotations

import operator
import os
import subprocess
import sys
from collections.abc import Callable
from typing import Annotated, Any

import psycopg
import pytest
from langgraph.graph import START, StateGraph
from langgraph.types import Command, interrupt
from typing_extensions import TypedDict

from pgcheckpoint import Keyring, PostgresSaver
from pgcheckpoint.threads import encrypted_under

SECRET = "listing-secret-5521"
K1 = bytes(range(32))
K2 = bytes(range(100, 132))


def ring(*ids: str) -> Keyring:
    material = {"k1": K1, "k2": K2}
    return Keyring({i: material[i] for i in ids}, primary=ids[0])


def keys_env(*ids: str) -> str:
    material = {"k1": K1, "k2": K2}
    return ",".join(f"{i}:{Keyring.encode_key(material[i])}" for i in ids)


class State(TypedDict):
    notes: Annotated[list[str], operator.add]
    approved: bool


def approval_graph(saver: PostgresSaver) -> Any:
    def work(state: State) -> dict[str, Any]:
        return {"notes": [f"{SECRET} note {len(state['notes'])}"]}

    def ask(state: State) -> dict[str, Any]:
        answer = interrupt({"question": "approve?", "draft": state["notes"][-1]})
        return {"approved": answer == "yes"}

    # work -> ask (interrupt) -> END
    return StateGraph(State).add_sequence([work, ask]).add_edge(START, "work").compile(
        checkpointer=saver
    )


def run_threads(saver: PostgresSaver, user: str = "alice", *names: str) -> None:
    """Each named thread waits at the interrupt; "done" threads are resumed."""
    graph = approval_graph(saver)
    for name in names:
        config: Any = {"configurable": {"thread_id": name}, "metadata": {"user": user}}
        graph.invoke({"notes": ["start"]}, config)
        if name.startswith("done"):
            graph.invoke(Command(resume="yes"), config)


def _listing(saver: PostgresSaver) -> list[tuple[str, int, dict[str, Any]]]:
    return sorted((t.thread_id, t.checkpoints, t.metadata) for t in saver.list_threads())


def _interrupt_values(value: Any) -> list[Any]:
    return [getattr(i, "value", i) for i in value or []]


def _summaries(saver: PostgresSaver, **kw: Any) -> list[tuple[Any, ...]]:
    return sorted(
        (s.thread_id, s.checkpoints, s.status, s.metadata, _interrupt_values(s.interrupt),
         s.problem)
        for s in saver.thread_summaries(**kw)
    )


def test_encrypted_listings_equal_the_plaintext_ones(
    make_db_url: Callable[[bool], str],
) -> None:
    plain_url, enc_url = make_db_url(True), make_db_url(True)
    with (
        PostgresSaver.from_conn_string(plain_url) as plain,
        PostgresSaver.from_conn_string(enc_url, encryption=ring("k1")) as enc,
    ):
        for s in (plain, enc):
            run_threads(s, "alice", "waiting-1", "done-1")
        listed = _listing(enc)
        assert listed == _listing(plain)
        assert [m["user"] for _, _, m in listed] == ["alice", "alice"]
        assert all("step" in m and "pgc:kid" not in m for _, _, m in listed)
        summaries = _summaries(enc)
        assert summaries == _summaries(plain)
        waiting = next(s for s in summaries if s[0] == "waiting-1")
        assert waiting[2] == "waiting" and waiting[5] is None
        assert waiting[4] == [{"question": "approve?", "draft": f"{SECRET} note 1"}]
        one = enc.thread_summary("waiting-1")
        assert one is not None and one.metadata == waiting[3] and one.metadata["user"] == "alice"
    # The rows are sealed: the plaintext is not in the stored metadata.
    with psycopg.connect(enc_url) as conn:
        stored = [str(r[0]) for r in conn.execute("SELECT metadata::text FROM public.checkpoints")]
    assert stored and all("alice" not in m and '"pgc:kid": "k1"' in m for m in stored)


def test_listings_without_the_key_name_it_and_never_fail(db_url: str) -> None:
    with PostgresSaver.from_conn_string(db_url, encryption=ring("k1")) as enc:
        run_threads(enc, "alice", "waiting-1")
    for options in ({}, {"encryption": ring("k2")}):
        with PostgresSaver.from_conn_string(db_url, **options) as other:
            (info,) = other.list_threads()
            assert info.metadata == {"pgc:kid": "k1"} and encrypted_under(info.metadata) == "k1"
            (s,) = other.thread_summaries()
            assert s.status == "waiting" and s.interrupt is None
            assert encrypted_under(s.metadata) == "k1"
            assert s.problem is not None and "'k1'" in s.problem and SECRET not in s.problem
    assert encrypted_under({"pgc:kid": "k1", "step": 1}) is None
    assert encrypted_under({"step": 1}) is None


def test_filters_match_rows_under_every_key_after_a_rotation(db_url: str) -> None:
    with PostgresSaver.from_conn_string(db_url, encryption=ring("k1")) as old:
        run_threads(old, "alice", "under-k1")
    with PostgresSaver.from_conn_string(db_url, encryption=ring("k2", "k1")) as new:
        run_threads(new, "alice", "under-k2")
        run_threads(new, "bob", "bob-k2")
        with psycopg.connect(db_url) as conn:
            kids = dict(conn.execute(
                "SELECT DISTINCT ON (thread_id) thread_id, metadata->>'pgc:kid' "
                "FROM public.checkpoints ORDER BY thread_id, checkpoint_id DESC"
            ).fetchall())
        assert kids == {"under-k1": "k1", "under-k2": "k2", "bob-k2": "k2"}
        alice = {"user": "alice"}
        assert sorted(t.thread_id for t in new.list_threads(filter=alice)) == [
            "under-k1", "under-k2"]
        assert sorted(s.thread_id for s in new.thread_summaries(filter=alice)) == [
            "under-k1", "under-k2"]
        assert {t.config["configurable"]["thread_id"] for t in new.list(None, filter=alice)} == {
            "under-k1", "under-k2"}
        both = [t.metadata for t in new.list_threads(filter=alice)]
        assert all(m["user"] == "alice" for m in both)
        assert [t.thread_id for t in new.list_threads(filter={"user": "bob"})] == ["bob-k2"]
        assert new.list_threads(filter={"user": "carol"}) == []
        assert new.thread_summaries(filter={"user": "carol"}) == []
    # A ring without the old key no longer matches (nor opens) its rows.
    with PostgresSaver.from_conn_string(db_url, encryption=ring("k2")) as only_new:
        assert [t.thread_id for t in only_new.list_threads(filter=alice)] == ["under-k2"]


async def test_async_listings_open_and_filter(db_url: str) -> None:
    from pgcheckpoint import AsyncPostgresSaver

    with PostgresSaver.from_conn_string(db_url, encryption=ring("k1")) as old:
        run_threads(old, "alice", "under-k1")
    async with AsyncPostgresSaver.from_conn_string(db_url, encryption=ring("k2", "k1")) as a:
        (t,) = await a.alist_threads(filter={"user": "alice"})
        assert t.thread_id == "under-k1" and t.metadata["user"] == "alice"
        (s,) = await a.athread_summaries(filter={"user": "alice"})
        assert _interrupt_values(s.interrupt)[0]["question"] == "approve?"


# --- the CLI and the inspector -----------------------------------------------------


def _cli(db_url: str, *args: str, keys: str | None) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "DATABASE_URL": db_url, "COLUMNS": "200"}
    env.pop("PGCHECKPOINT_DSN", None)
    env.pop("PGCHECKPOINT_KEYS", None)
    if keys is not None:
        env["PGCHECKPOINT_KEYS"] = keys
    return subprocess.run([sys.executable, "-m", "pgcheckpoint.cli", *args],
                          capture_output=True, text=True, env=env, timeout=120)


def test_cli_lists_decrypted_metadata_with_keys_and_the_key_id_without(db_url: str) -> None:
    with PostgresSaver.from_conn_string(db_url, encryption=ring("k1")) as enc:
        run_threads(enc, "alice", "waiting-1")
        expected = enc.list_threads()[0].metadata
    keys = keys_env("k1")
    listed = _cli(db_url, "threads", "list", keys=keys)
    assert listed.returncode == 0, listed.stderr
    assert "loop" in listed.stdout and "pgc:kid" not in listed.stdout
    as_json = _cli(db_url, "threads", "list", "--json", "--filter", '{"user": "alice"}',
                   keys=keys)
    assert as_json.returncode == 0, as_json.stderr
    assert '"user": "alice"' in as_json.stdout and f'"step": {expected["step"]}' in as_json.stdout
    shown = _cli(db_url, "threads", "show", "waiting-1", "--json", keys=keys)
    assert shown.returncode == 0 and '"user": "alice"' in shown.stdout, shown.stderr
    # Without the keys: the list names the key, `show` fails naming it; no traceback.
    bare = _cli(db_url, "threads", "list", keys=None)
    assert bare.returncode == 0, bare.stderr
    assert "encrypted" in bare.stdout and "k1" in bare.stdout and "loop" not in bare.stdout
    for args in (("threads", "show", "waiting-1"), ("threads", "show", "waiting-1", "--json")):
        failed = _cli(db_url, *args, keys=None)
        assert failed.returncode != 0 and "'k1'" in failed.stderr, args
        assert "Traceback" not in failed.stderr and SECRET not in failed.stdout + failed.stderr


def test_inspector_shows_metadata_and_interrupts_under_keys(db_url: str) -> None:
    pytest.importorskip("starlette", reason="the inspector needs the 'ui' extra")
    from starlette.testclient import TestClient

    from pgcheckpoint.inspector import create_app

    with PostgresSaver.from_conn_string(db_url, encryption=ring("k1")) as enc:
        run_threads(enc, "alice", "waiting-1")
        head = enc.list_threads()[0]
        (latest,) = enc.list({"configurable": {"thread_id": "waiting-1"}}, limit=1)
        cid = latest.config["configurable"]["checkpoint_id"]
        with TestClient(create_app(enc)) as client:
            page = client.get("/")
            assert page.status_code == 200
            assert "approve?" in page.text and "pgc:kid" not in page.text
            assert client.get("/", params={"meta": "user=alice"}).text.count("waiting-1") >= 1
            assert "waiting-1" not in client.get("/", params={"meta": "user=bob"}).text
            thread = client.get("/thread", params={"thread_id": "waiting-1"})
            assert thread.status_code == 200, thread.text
            assert "approve?" in thread.text
            cp = client.get(
                "/checkpoint", params={"thread_id": "waiting-1", "ns": "", "checkpoint_id": cid}
            )
            assert cp.status_code == 200
            assert "alice" in cp.text and f"step {head.metadata['step']}" in cp.text
    with PostgresSaver.from_conn_string(db_url) as bare, TestClient(create_app(bare)) as client:
        page = client.get("/")
        assert page.status_code == 200
        assert "encrypted under key" in page.text and "k1" in page.text
        assert SECRET not in page.text and "approve?" not in page.text
        at_cp = {"thread_id": "waiting-1", "ns": "", "checkpoint_id": cid}
        for path, params in (("/thread", {"thread_id": "waiting-1"}), ("/checkpoint", at_cp)):
            r = client.get(path, params=params)
            assert r.status_code < 500, (path, r.text[:500])
            assert "k1" in r.text and SECRET not in r.text and "alice" not in r.text
