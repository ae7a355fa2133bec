"""Fixtures of the inspector's tests: one database written by real graphs per
module, the app over it, and (for browser tests) a live server and Chromium."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

pytest.importorskip("starlette", reason="the inspector needs the 'ui' extra")

from _chat import populate_chats

from graph_fixtures import populate
from pgcheckpoint import PostgresSaver


@pytest.fixture(scope="module")
def chat_db(databases: Any, template_db: str) -> Iterator[tuple[str, dict[str, str]]]:
    """A database with the chat threads (tests/inspector/_chat.py) and the
    subgraph threads of tests/graph_fixtures.py."""
    name = databases.create(template=template_db)
    try:
        url = databases.url(name)
        with PostgresSaver.from_conn_string(url) as saver:
            threads = populate_chats(saver)
            threads["subgraph"] = populate(saver, threads=1)[0]
        yield url, threads
    finally:
        databases.drop(name)


@pytest.fixture(scope="module")
def chat_saver(chat_db: tuple[str, dict[str, str]]) -> Iterator[PostgresSaver]:
    with PostgresSaver.from_conn_string(chat_db[0]) as saver:
        yield saver
