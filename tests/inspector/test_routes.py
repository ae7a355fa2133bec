"""The inspector's routes over HTTP (Starlette's TestClient), on a database
written by real LangGraph graphs (tests/inspector/_chat.py)."""

from __future__ import annotations

import copy
import json
import re
from collections.abc import Iterator
from typing import Any

import pytest
from _chat import XSS, XSS_THREAD, build_chat, populate_chats
from starlette.testclient import TestClient

from pgcheckpoint import InvalidInputError, PostgresSaver
from pgcheckpoint.inspector import create_app
from pgcheckpoint.inspector._views import next_nodes


def _rows(html: str) -> list[str]:
    """Thread ids linked from the threads page, unescaped."""
    import html as h

    return [h.unescape(m) for m in re.findall(r'<td class="tid"><a href="[^"]*">([^<]*)</a>', html)]


@pytest.fixture(scope="module")
def client(chat_saver: PostgresSaver) -> Iterator[TestClient]:
    with TestClient(create_app(chat_saver)) as c:
        yield c


def test_threads_page_lists_every_thread_with_its_status(
    client: TestClient, chat_db: tuple[str, dict[str, str]]
) -> None:
    threads = chat_db[1]
    r = client.get("/")
    assert r.status_code == 200
    assert sorted(_rows(r.text)) == sorted(threads.values())
    # the failed thread shows its error, the waiting one its interrupt's question
    assert "no weather station in Atlantis" in r.text
    assert "send this answer?" in r.text
    assert 'class="status st-failed"' in r.text and 'class="status st-waiting"' in r.text


def test_search_by_prefix_and_by_metadata_narrows(
    client: TestClient, chat_db: tuple[str, dict[str, str]]
) -> None:
    assert _rows(client.get("/", params={"prefix": "chat-"}).text) and all(
        t.startswith("chat-") for t in _rows(client.get("/", params={"prefix": "chat-"}).text)
    )
    assert _rows(client.get("/", params={"meta": "user=alice"}).text) == ["chat-alice-1"]
    assert _rows(client.get("/", params={"prefix": "chat-a", "meta": "user=alice"}).text) == [
        "chat-alice-1"
    ]
    assert _rows(client.get("/", params={"prefix": "chat-b", "meta": "user=alice"}).text) == []
    assert _rows(client.get("/", params={"meta": "user=carol source=loop"}).text) == [
        "chat-carol-1"
    ]
    assert _rows(client.get("/", params={"prefix": "nobody"}).text) == []
    bad = client.get("/", params={"meta": "no-equals-sign"})
    assert bad.status_code == 400 and "key=value" in bad.text


def test_threads_page_pages_by_keyset(
    client: TestClient, chat_db: tuple[str, dict[str, str]]
) -> None:
    seen: list[str] = []
    url: str | None = "/?limit=2"
    while url:
        r = client.get(url)
        page = _rows(r.text)
        assert len(page) <= 2
        seen += page
        m = re.search(r'<a class="next" href="([^"]*)"', r.text)
        url = m.group(1).replace("&amp;", "&") if m else None
    assert sorted(seen) == sorted(chat_db[1].values())
    assert len(seen) == len(set(seen))


def test_thread_summaries_keyset_and_validation(chat_saver: PostgresSaver) -> None:
    everything = chat_saver.thread_summaries(limit=100)
    order = [(s.updated_at, s.thread_id) for s in everything]
    assert order == sorted(order, reverse=True)
    first = chat_saver.thread_summaries(limit=2)
    rest = chat_saver.thread_summaries(limit=100, after=(first[-1].updated_at, first[-1].thread_id))
    assert [s.thread_id for s in first + rest] == [s.thread_id for s in everything]
    one = chat_saver.thread_summary("chat-carol-1")
    assert one is not None and one.status == "failed" and "Atlantis" in repr(one.error)
    assert one.stored_bytes == chat_saver.thread_stats("chat-carol-1").stored_bytes  # type: ignore[union-attr]
    assert chat_saver.thread_summary("no-such-thread") is None
    with pytest.raises(InvalidInputError):
        chat_saver.thread_summaries(after=("yesterday", "x"))  # type: ignore[arg-type]
    with pytest.raises(InvalidInputError):
        chat_saver.thread_summaries(limit=10**6)


def test_thread_page_shows_timeline_head_fork_and_nodes(
    client: TestClient, chat_saver: PostgresSaver
) -> None:
    r = client.get("/thread", params={"thread_id": "chat-bob-1"})
    assert r.status_code == 200
    versions = chat_saver.list_versions("chat-bob-1", checkpoint_ns="")
    assert r.text.count('<td class="cid">') == len(versions)
    assert r.text.count('class="tag head"') == 1
    head = versions[0].checkpoint_id
    assert re.search(rf"{head[-12:]}</a>\s*<span class=\"tag head\">head</span>", r.text)
    assert "fork of" in r.text  # update_state on an earlier checkpoint made a branch
    assert '<span class="node">tools</span>' in r.text


def test_next_nodes_match_langgraph(chat_saver: PostgresSaver) -> None:
    graph = build_chat(chat_saver)
    checked = 0
    for tid in ("chat-alice-1", "chat-bob-1", "chat-carol-1"):
        for snap in graph.get_state_history({"configurable": {"thread_id": tid}}):
            t = chat_saver.get_tuple(snap.config)
            assert t is not None
            assert next_nodes(t.checkpoint) == sorted(snap.next), (tid, snap.metadata)
            checked += 1
    assert checked > 10


def test_subgraph_namespaces_are_selectable(
    client: TestClient, chat_saver: PostgresSaver, chat_db: tuple[str, dict[str, str]]
) -> None:
    tid = chat_db[1]["subgraph"]
    namespaces = sorted({v.checkpoint_ns for v in chat_saver.list_versions(tid)})
    assert len(namespaces) > 1
    page = client.get("/thread", params={"thread_id": tid}).text
    sub = namespaces[1]
    assert f"ns={sub.replace(':', '%3A').replace('|', '%7C')}" in page
    r = client.get("/thread", params={"thread_id": tid, "ns": sub})
    n = len(chat_saver.list_versions(tid, checkpoint_ns=sub))
    assert r.status_code == 200 and r.text.count('<td class="cid">') == n


def test_checkpoint_page_shows_the_conversation(
    client: TestClient, chat_saver: PostgresSaver
) -> None:
    head = chat_saver.list_versions("chat-alice-1", checkpoint_ns="", limit=1)[0]
    r = client.get(
        "/checkpoint", params={"thread_id": "chat-alice-1", "checkpoint_id": head.checkpoint_id}
    )
    assert r.status_code == 200
    roles = re.findall(r'<div class="msg role-(\w+)">', r.text)
    assert roles == ["human", "ai", "tool", "ai"]
    assert "get_weather" in r.text and "sunny in Paris" in r.text
    assert 'class="tag waiting">interrupt' in r.text  # the pending approval


def test_diff_shows_the_message_a_step_added(client: TestClient, chat_saver: PostgresSaver) -> None:
    graph = build_chat(chat_saver)
    history = list(graph.get_state_history({"configurable": {"thread_id": "chat-alice-1"}}))
    tool_step = next(s for s in history if s.metadata and s.metadata.get("step") == 2)
    r = client.get(
        "/diff",
        params={
            "thread_id": "chat-alice-1",
            "checkpoint_id": tool_step.config["configurable"]["checkpoint_id"],
        },
    )
    assert r.status_code == 200
    added = r.text.split("<h4>added</h4>", 1)[1].split("</section>", 1)[0]
    assert "role-tool" in added and "sunny in Paris" in added
    assert "Weather in Paris" not in added  # unchanged messages are not listed as added


def test_html_from_the_database_is_escaped(client: TestClient, chat_saver: PostgresSaver) -> None:
    for r in (
        client.get("/"),
        client.get("/thread", params={"thread_id": XSS_THREAD}),
        client.get(
            "/checkpoint",
            params={
                "thread_id": XSS_THREAD,
                "checkpoint_id": chat_saver.list_versions(XSS_THREAD, limit=1)[0].checkpoint_id,
            },
        ),
    ):
        assert r.status_code == 200
        assert "<script>alert" not in r.text and "<i>html</i>" not in r.text
        assert "<img src=x" not in r.text
        assert r.text.count("<script") == 1  # only the app's own script tag
        assert "default-src 'none'" in r.headers["content-security-policy"]
    page = client.get(
        "/checkpoint",
        params={
            "thread_id": XSS_THREAD,
            "checkpoint_id": chat_saver.list_versions(XSS_THREAD, limit=1)[0].checkpoint_id,
        },
    ).text
    assert "&lt;script&gt;alert(&#34;xss&#34;)&lt;/script&gt;" in page
    assert XSS not in page


def test_errors_are_pages_not_crashes(client: TestClient) -> None:
    assert client.get("/thread", params={"thread_id": "nope"}).status_code == 404
    assert client.get("/thread").status_code == 400
    assert client.get("/thread", params={"thread_id": "x", "limit": "lots"}).status_code == 400
    assert (
        client.get("/checkpoint", params={"thread_id": "nope", "checkpoint_id": "1"}).status_code
        == 404
    )
    assert client.get("/?after_at=yesterday&after_id=x").status_code == 400


class NotAllowed(frozenset[str]):
    """A type the allowlist refuses (not a data class): its values must be shown raw."""


def test_values_the_allowlist_refuses_are_shown_raw(saver: PostgresSaver) -> None:
    from langgraph.checkpoint.base import empty_checkpoint
    from langgraph.checkpoint.serde.jsonplus import JsonPlusSerializer

    # The saver refuses to write what it could not read back: these rows come from a
    # writer with LangGraph's permissive serde, as from another application.
    writer = copy.copy(saver)
    writer.serde = JsonPlusSerializer()
    cp = empty_checkpoint()
    cp["channel_values"] = {"thing": NotAllowed({"<b>raw</b>"}), "n": 1}
    cp["channel_versions"] = {
        "thing": saver.get_next_version(None),
        "n": saver.get_next_version(None),
    }
    conf = writer.put(
        {"configurable": {"thread_id": "blocked", "checkpoint_ns": ""}},
        cp,
        {"source": "input", "step": -1},
        dict(cp["channel_versions"]),
    )
    writer.put_writes(conf, [("__interrupt__", [NotAllowed({"why"})])], "task-1")
    with TestClient(create_app(saver)) as c:
        listing = c.get("/")
        assert listing.status_code == 200 and "refusing to load" in listing.text
        page = c.get(
            "/checkpoint",
            params={"thread_id": "blocked", "checkpoint_id": conf["configurable"]["checkpoint_id"]},
        )
        assert page.status_code == 200
        assert "Shown raw, not loaded" in page.text and "NotAllowed" in page.text
        assert "&lt;b&gt;raw&lt;/b&gt;" in page.text and "<b>raw</b>" not in page.text
        assert c.get("/thread", params={"thread_id": "blocked"}).status_code == 200
        assert (
            c.get(
                "/diff",
                params={
                    "thread_id": "blocked",
                    "checkpoint_id": conf["configurable"]["checkpoint_id"],
                },
            ).status_code
            == 200
        )


# --- writes ------------------------------------------------------------------------


def _csrf(html: str) -> str:
    m = re.search(r'name="csrf" value="([^"]+)"', html)
    assert m, "no CSRF token on the page"
    return m.group(1)


@pytest.fixture
def writable(saver: PostgresSaver) -> Iterator[tuple[TestClient, PostgresSaver, dict[str, str]]]:
    threads = populate_chats(saver)
    with TestClient(create_app(saver, allow_writes=True), follow_redirects=False) as c:
        yield c, saver, threads


def _snapshot(saver: PostgresSaver) -> list[Any]:
    return [
        (v.thread_id, v.checkpoint_ns, v.checkpoint_id)
        for s in saver.thread_summaries(limit=100)
        for v in saver.list_versions(s.thread_id)
    ] + [(s.thread_id, s.pinned, s.retention) for s in saver.thread_summaries(limit=100)]


def test_read_only_app_refuses_every_write(saver: PostgresSaver) -> None:
    populate_chats(saver)
    before = _snapshot(saver)
    with TestClient(create_app(saver), follow_redirects=False) as c:
        page = c.get("/thread", params={"thread_id": "chat-alice-1"}).text
        assert 'method="post"' not in page
        first = saver.list_versions("chat-alice-1")[-1].checkpoint_id
        for name in ("rollback", "pin", "retention", "delete", "export"):
            r = c.post(
                f"/action/{name}",
                data={"thread_id": "chat-alice-1", "checkpoint_id": first, "confirmed": "yes"},
            )
            assert r.status_code == 403, name
    assert _snapshot(saver) == before


def test_a_write_without_the_csrf_token_is_refused(
    writable: tuple[TestClient, PostgresSaver, dict[str, str]],
) -> None:
    c, saver, _ = writable
    before = _snapshot(saver)
    first = saver.list_versions("chat-alice-1")[-1].checkpoint_id
    form = {"thread_id": "chat-alice-1", "checkpoint_id": first, "confirmed": "yes"}
    assert c.post("/action/rollback", data=form).status_code == 403
    assert c.post("/action/delete", data={**form, "csrf": "guess"}).status_code == 403
    assert _snapshot(saver) == before


def test_rollback_is_confirmed_then_becomes_the_head(
    writable: tuple[TestClient, PostgresSaver, dict[str, str]],
) -> None:
    c, saver, _ = writable
    page = c.get("/thread", params={"thread_id": "chat-alice-1"}).text
    token = _csrf(page)
    target = saver.list_versions("chat-alice-1", checkpoint_ns="")[2].checkpoint_id
    form = {"csrf": token, "thread_id": "chat-alice-1", "ns": "", "checkpoint_id": target}
    before = _snapshot(saver)
    ask = c.post("/action/rollback", data=form)
    assert ask.status_code == 200 and 'name="confirmed" value="yes"' in ask.text
    assert _snapshot(saver) == before  # nothing done until confirmed
    done = c.post("/action/rollback", data={**form, "confirmed": "yes"})
    assert done.status_code == 303
    head = saver.list_versions("chat-alice-1", checkpoint_ns="", limit=1)[0]
    assert head.metadata["rollback_of"] == target
    t = saver.get_tuple({"configurable": {"thread_id": "chat-alice-1"}})
    old = saver.get_tuple(
        {
            "configurable": {
                "thread_id": "chat-alice-1",
                "checkpoint_ns": "",
                "checkpoint_id": target,
            }
        }
    )
    assert t is not None and old is not None
    assert t.checkpoint["channel_values"] == old.checkpoint["channel_values"]


def _act(c: TestClient, name: str, **fields: str) -> Any:
    token = _csrf(c.get("/thread", params={"thread_id": "chat-bob-1"}).text)
    return c.post(f"/action/{name}", data={"csrf": token, "confirmed": "yes", **fields})


def test_pin_retention_export_delete(
    writable: tuple[TestClient, PostgresSaver, dict[str, str]],
) -> None:
    c, saver, _ = writable
    assert _act(c, "pin", thread_id="chat-bob-1", pinned="1").status_code == 303
    assert saver.thread_summary("chat-bob-1").pinned  # type: ignore[union-attr]
    assert _act(c, "pin", thread_id="chat-bob-1", pinned="0").status_code == 303
    assert not saver.thread_summary("chat-bob-1").pinned  # type: ignore[union-attr]

    r = _act(c, "retention", thread_id="chat-bob-1", keep_last="5", max_age="7d")
    assert r.status_code == 303
    policy = saver.get_thread_retention("chat-bob-1")
    assert policy is not None and policy.keep_last == 5 and policy.max_age.days == 7  # type: ignore[union-attr]
    assert not policy.keep_interrupted
    bad = _act(c, "retention", thread_id="chat-bob-1", keep_last="-1")
    assert bad.status_code == 400 and saver.get_thread_retention("chat-bob-1") == policy
    assert _act(c, "retention", thread_id="chat-bob-1", clear="1").status_code == 303
    assert saver.get_thread_retention("chat-bob-1") is None

    export = _act(c, "export", thread_id="chat-bob-1")
    assert export.status_code == 200
    assert export.headers["content-type"].startswith("application/x-ndjson")
    records = [json.loads(line) for line in export.text.splitlines()]
    assert records[0]["format"] == "pgcheckpoint.ndjson"
    kept = len(saver.list_versions("chat-bob-1"))
    assert sum(r.get("kind") == "checkpoint" for r in records) == kept
    assert records[-1]["kind"] == "trailer"
    assert records[-1]["threads"]["chat-bob-1"]["checkpoints"] == kept

    assert _act(c, "delete", thread_id="chat-bob-1").status_code == 303
    assert saver.thread_summary("chat-bob-1") is None
    assert saver.thread_summary("chat-alice-1") is not None


# --- guard ---------------------------------------------------------------------------


def test_token_and_host_checks(chat_saver: PostgresSaver) -> None:
    app = create_app(chat_saver, token="s3cret")
    with TestClient(app) as c:
        assert c.get("/").status_code == 401
        assert c.get("/?token=wrong").status_code == 401
        assert c.get("/?token=s3cret").status_code == 200
        assert c.get("/").status_code == 200  # the cookie set by the first visit
    local = create_app(chat_saver, allowed_hosts=["127.0.0.1", "localhost"])
    with TestClient(local, base_url="http://127.0.0.1:8765") as c:
        assert c.get("/").status_code == 200
        assert c.get("/", headers={"host": "evil.example:8765"}).status_code == 400


def test_create_app_wants_a_sync_saver() -> None:
    with pytest.raises(InvalidInputError):
        create_app(object())  # type: ignore[arg-type]


def test_thread_graph_matches_the_history(chat_saver: PostgresSaver) -> None:
    for tid in ("chat-bob-1", "thread-0"):
        graph = chat_saver.thread_graph(tid)
        versions = chat_saver.list_versions(tid)
        assert sorted(
            (n.checkpoint_ns, n.checkpoint_id, n.parent_checkpoint_id) for n in graph
        ) == (sorted((x.checkpoint_ns, x.checkpoint_id, x.parent_checkpoint_id) for x in versions))
    assert chat_saver.thread_graph("no-such-thread") == []


async def test_async_twins_answer_the_same(db_url: str) -> None:
    from pgcheckpoint import AsyncPostgresSaver

    with PostgresSaver.from_conn_string(db_url) as saver:
        saver.setup()
        populate_chats(saver)
        want = saver.thread_summaries(filter={"user": "alice"})
        graph = saver.thread_graph("chat-bob-1")
        one = saver.thread_summary("chat-carol-1")
    async with AsyncPostgresSaver.from_conn_string(db_url) as asaver:
        assert await asaver.athread_summaries(filter={"user": "alice"}) == want
        assert await asaver.athread_graph("chat-bob-1") == graph
        got = await asaver.athread_summary("chat-carol-1")
        assert got is not None and one is not None
        assert (got.status, got.stored_bytes) == (one.status, one.stored_bytes)


def test_bad_action_input_is_refused_before_the_confirmation(
    writable: tuple[TestClient, PostgresSaver, dict[str, str]],
) -> None:
    c, saver, _ = writable
    token = _csrf(c.get("/thread", params={"thread_id": "chat-bob-1"}).text)
    before = _snapshot(saver)
    for name, form in (
        ("retention", {"keep_last": "3"}),
        ("rollback", {"thread_id": "chat-bob-1"}),
        ("retention", {"thread_id": "chat-bob-1", "max_age": "soon"}),
        ("rollback", {"thread_id": "chat-bob-1", "checkpoint_id": "nope", "confirmed": "yes"}),
    ):
        r = c.post(f"/action/{name}", data={"csrf": token, **form})
        assert r.status_code == 400, (name, form)
    assert c.post("/action/drop-database", data={"csrf": token}).status_code == 404
    assert _snapshot(saver) == before
