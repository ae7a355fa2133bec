"""The inspector in a real browser: Playwright driving Debian's Chromium
(``apt-get install chromium``; no browser download), against uvicorn serving
the app over a database written by real LangGraph graphs.

Set ``INSPECTOR_SCREENSHOTS=docs/images`` to refresh the screenshots of
docs/inspector.md (otherwise they go to a temporary directory).
"""

from __future__ import annotations

import os
import re
import shutil
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from _chat import XSS, XSS_THREAD, build_chat, populate_chats
from _live import LiveServer

from pgcheckpoint import PostgresSaver
from pgcheckpoint.inspector import create_app

CHROMIUM = os.environ.get("PGCHECKPOINT_CHROMIUM", "/usr/bin/chromium")

sync_api = pytest.importorskip("playwright.sync_api", reason="playwright is not installed")
if not (os.path.exists(CHROMIUM) or shutil.which(CHROMIUM)):
    pytest.skip(
        f"Chromium not found at {CHROMIUM} (apt-get install chromium; scripts/test.sh "
        "installs it when run as root on Debian)",
        allow_module_level=True,
    )

expect = sync_api.expect


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    with sync_api.sync_playwright() as p:
        b = p.chromium.launch(
            executable_path=CHROMIUM, args=["--no-sandbox", "--disable-dev-shm-usage"]
        )
        try:
            yield b
        finally:
            b.close()


class Watched:
    """A page that records every dialog (alert/confirm) and page error."""

    def __init__(self, browser: Any) -> None:
        self.context = browser.new_context(viewport={"width": 1280, "height": 860})
        self.page = self.context.new_page()
        self.dialogs: list[str] = []
        self.errors: list[str] = []
        self.page.on("dialog", self._dialog)
        self.page.on("pageerror", lambda e: self.errors.append(str(e)))

    def _dialog(self, dialog: Any) -> None:
        self.dialogs.append(dialog.message)
        dialog.dismiss()

    def close(self) -> None:
        self.context.close()


@pytest.fixture
def watched(browser: Any) -> Iterator[Watched]:
    w = Watched(browser)
    try:
        yield w
    finally:
        w.close()


@pytest.fixture(scope="module")
def read_only(chat_saver: PostgresSaver) -> Iterator[LiveServer]:
    with LiveServer(create_app(chat_saver)) as server:
        yield server


@pytest.fixture
def writable(saver: PostgresSaver) -> Iterator[tuple[LiveServer, PostgresSaver]]:
    populate_chats(saver)
    with LiveServer(create_app(saver, allow_writes=True)) as server:
        yield server, saver


def _thread_links(page: Any) -> list[str]:
    return [t.strip() for t in page.locator("td.tid a").all_inner_texts()]


def test_threads_page_lists_them_and_search_narrows(
    read_only: LiveServer, watched: Watched, chat_db: tuple[str, dict[str, str]]
) -> None:
    page = watched.page
    page.goto(read_only.url)
    assert sorted(_thread_links(page)) == sorted(chat_db[1].values())
    page.fill("input[name=prefix]", "chat-")
    page.click("form.search button")
    expect(page.locator("td.tid a")).to_have_count(3)
    assert all(t.startswith("chat-") for t in _thread_links(page))
    page.fill("input[name=meta]", "user=alice")
    page.click("form.search button")
    expect(page.locator("td.tid a")).to_have_count(1)
    assert _thread_links(page) == ["chat-alice-1"]
    expect(page.locator("td .status")).to_have_text("waiting")
    assert not watched.errors


def test_a_thread_shows_its_conversation(read_only: LiveServer, watched: Watched) -> None:
    page = watched.page
    page.goto(read_only.url)
    page.click("text=chat-alice-1")
    expect(page.locator("h1.tid")).to_have_text("chat-alice-1")
    page.locator("tr.is-head td.cid a").first.click()
    messages = page.locator(".conversation .msg")
    expect(messages).to_have_count(4)
    roles = [r.lower() for r in page.locator(".conversation .msg .role").all_inner_texts()]
    assert roles == ["human", "ai", "tool", "ai"]
    expect(page.locator(".tool-call").first).to_contain_text("get_weather")
    expect(page.locator(".conversation").first).to_contain_text("The weather: sunny in Paris.")
    expect(page.locator(".pending-box")).to_contain_text("send this answer?")


def test_a_diff_shows_the_message_a_step_added(
    read_only: LiveServer, watched: Watched, chat_saver: PostgresSaver
) -> None:
    page = watched.page
    versions = chat_saver.list_versions("chat-alice-1", checkpoint_ns="")
    tool_step = next(x for x in versions if x.metadata.get("step") == 2)
    page.goto(read_only.url + "thread?thread_id=chat-alice-1")
    row = page.locator("tr", has=page.locator(f"a:text-is('{tool_step.checkpoint_id[-12:]}')"))
    row.locator("a:text-is('diff')").click()
    added = page.locator("section.channel", has_text="messages").locator(".added")
    expect(added.locator(".msg")).to_have_count(1)
    expect(added.locator(".msg .role")).to_have_text(re.compile("tool", re.I))
    expect(added).to_contain_text("sunny in Paris")


def test_a_fork_from_an_earlier_checkpoint_becomes_the_head(
    writable: tuple[LiveServer, PostgresSaver], watched: Watched
) -> None:
    server, saver = writable
    page = watched.page
    target = saver.list_versions("chat-alice-1", checkpoint_ns="")[3]
    page.goto(server.url + "thread?thread_id=chat-alice-1")
    row = page.locator("tr", has=page.locator(f"a:text-is('{target.checkpoint_id[-12:]}')"))
    row.locator("button:text-is('Fork here')").click()
    expect(page.locator(".confirm h1")).to_contain_text("rollback")
    assert saver.list_versions("chat-alice-1", checkpoint_ns="", limit=1)[0].checkpoint_id != (
        target.checkpoint_id
    )
    page.click("#confirm")
    head_row = page.locator("tr.is-head")
    expect(head_row.locator(".tag.fork")).to_contain_text(target.checkpoint_id[-8:])
    head = saver.list_versions("chat-alice-1", checkpoint_ns="", limit=1)[0]
    assert head.metadata["rollback_of"] == target.checkpoint_id
    expect(head_row.locator("td.cid a").first).to_have_text(head.checkpoint_id[-12:])
    assert not watched.dialogs  # confirmation is a page, not a dialog


def test_html_and_script_in_the_database_render_as_text(
    read_only: LiveServer, watched: Watched, chat_saver: PostgresSaver
) -> None:
    page = watched.page
    page.goto(read_only.url)
    expect(page.locator("td.tid a", has_text="thread-<i>html</i>")).to_have_text(XSS_THREAD)
    page.locator("td.tid a", has_text="thread-<i>html</i>").click()
    expect(page.locator("h1.tid")).to_have_text(XSS_THREAD)
    page.locator("tr.is-head td.cid a").first.click()
    human = page.locator(".conversation .msg.role-human .msg-body").first
    expect(human).to_have_text(XSS + " Oslo")
    page.wait_for_timeout(300)  # give an injected handler (onerror) its chance to run
    assert not watched.dialogs, watched.dialogs
    assert page.locator("script").count() == 1  # the app's own
    assert page.locator("img").count() == 0 and page.locator("main i").count() == 0
    assert not watched.errors


def test_a_write_without_the_csrf_token_is_refused(
    writable: tuple[LiveServer, PostgresSaver], watched: Watched
) -> None:
    server, saver = writable
    page = watched.page
    page.goto(server.url + "thread?thread_id=chat-alice-1")
    first = saver.list_versions("chat-alice-1")[-1].checkpoint_id
    before = saver.list_versions("chat-alice-1")
    response = page.request.post(
        server.url + "action/rollback",
        form={"thread_id": "chat-alice-1", "checkpoint_id": first, "confirmed": "yes"},
    )
    assert response.status == 403
    # the same form from the page, its token removed, is refused too
    page.evaluate("document.querySelectorAll('input[name=csrf]').forEach(e => e.remove())")
    page.locator("button:text-is('Fork here')").first.click()
    expect(page.locator(".error-page h1")).to_have_text("Refused")
    assert saver.list_versions("chat-alice-1") == before


def test_without_allow_writes_no_write_is_possible(
    read_only: LiveServer, watched: Watched, chat_saver: PostgresSaver
) -> None:
    page = watched.page
    for path in ("", "thread?thread_id=chat-alice-1"):
        page.goto(read_only.url + path)
        assert page.locator("form[method=post]").count() == 0
        assert page.locator("text=read-only").count() == 1
    before = chat_saver.list_versions("chat-alice-1")
    first = before[-1].checkpoint_id
    for name in ("rollback", "pin", "retention", "delete", "export"):
        response = page.request.post(
            read_only.url + f"action/{name}",
            form={"thread_id": "chat-alice-1", "checkpoint_id": first, "confirmed": "yes"},
        )
        assert response.status == 403, name
    assert chat_saver.list_versions("chat-alice-1") == before


def test_a_running_thread_page_updates_as_checkpoints_arrive(
    writable: tuple[LiveServer, PostgresSaver], watched: Watched
) -> None:
    server, saver = writable
    page = watched.page
    page.goto(server.url + "thread?thread_id=chat-alice-1")
    rows = page.locator("td.cid")
    shown = rows.count()
    from langgraph.types import Command

    graph = build_chat(saver)
    runner = threading.Thread(
        target=graph.invoke,
        args=(Command(resume="yes"), {"configurable": {"thread_id": "chat-alice-1"}}),
    )
    runner.start()
    runner.join()
    # no reload by the test: the page's poller sees the new head and reloads itself
    expect(rows).to_have_count(shown + 1, timeout=15_000)
    expect(page.locator("tr.is-head td.cid a").first).to_have_text(
        saver.list_versions("chat-alice-1", checkpoint_ns="", limit=1)[0].checkpoint_id[-12:]
    )


def test_screenshots_of_every_page(
    browser: Any, chat_saver: PostgresSaver, chat_db: tuple[str, dict[str, str]], tmp_path: Path
) -> None:
    out = Path(os.environ.get("INSPECTOR_SCREENSHOTS") or tmp_path)
    out.mkdir(parents=True, exist_ok=True)
    threads = chat_db[1]
    bob = chat_saver.list_versions("chat-bob-1", checkpoint_ns="")
    alice = chat_saver.list_versions("chat-alice-1", checkpoint_ns="")
    tool_step = next(x for x in alice if x.metadata.get("step") == 2)
    sub = sorted({x.checkpoint_ns for x in chat_saver.list_versions(threads["subgraph"])})[1]
    pages = {
        "threads": "",
        "thread": "thread?thread_id=chat-bob-1",
        "subgraph": f"thread?thread_id={threads['subgraph']}&ns={sub}",
        "checkpoint": f"checkpoint?thread_id=chat-alice-1&checkpoint_id={alice[0].checkpoint_id}",
        "diff": f"diff?thread_id=chat-alice-1&checkpoint_id={tool_step.checkpoint_id}",
        "failed": f"checkpoint?thread_id=chat-carol-1&checkpoint_id="
        f"{chat_saver.list_versions('chat-carol-1', checkpoint_ns='', limit=1)[0].checkpoint_id}",
    }
    import datetime as dt

    from pgcheckpoint import RetentionPolicy

    # pins and a retention of its own show in the list (undone below)
    chat_saver.pin_thread("chat-alice-1")
    policy = RetentionPolicy(keep_last=20, max_age=dt.timedelta(days=30))
    chat_saver.set_thread_retention(threads["subgraph"], policy)
    w = Watched(browser)
    try:
        with LiveServer(create_app(chat_saver, allow_writes=True)) as server:
            for name, path in pages.items():
                w.page.goto(server.url + path.replace("|", "%7C"))
                expect(w.page.locator("main")).to_be_visible()
                w.page.screenshot(path=str(out / f"inspector-{name}.png"), full_page=True)
            w.page.goto(server.url + "thread?thread_id=chat-bob-1")
            w.page.locator("button:text-is('Fork here')").nth(2).click()
            expect(w.page.locator(".confirm")).to_be_visible()
            w.page.screenshot(path=str(out / "inspector-confirm.png"), full_page=True)
        assert bob and not w.errors and not w.dialogs
    finally:
        w.close()
        chat_saver.unpin_thread("chat-alice-1")
        chat_saver.set_thread_retention(threads["subgraph"], None)
    for name in [*pages, "confirm"]:
        assert (out / f"inspector-{name}.png").stat().st_size > 10_000
