"""Fixtures of the importer tests: sources written by the real savers running a real graph."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest
from langgraph.checkpoint.sqlite import SqliteSaver

from graph_fixtures import populate


@pytest.fixture
def sqlite_file(tmp_path: Path) -> tuple[Path, SqliteSaver, list[str]]:
    """A langgraph-checkpoint-sqlite file holding four threads of the test graph, the
    saver that wrote it, and the thread ids."""
    path = tmp_path / "source.sqlite"
    conn = sqlite3.connect(path, check_same_thread=False)
    source = SqliteSaver(conn)
    return path, source, populate(source, 4)
