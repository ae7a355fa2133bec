"""The CLI run as a user would, on real data, checked on its output."""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

import psycopg
from langgraph.checkpoint.sqlite import SqliteSaver

from _cli_run import Run, as_json
from graph_fixtures import populate


def _sqlite_source(tmp_path: Path, threads: int = 3) -> Path:
    path = tmp_path / "source.sqlite"
    populate(SqliteSaver(sqlite3.connect(path, check_same_thread=False)), threads)
    return path


def test_session(run_cli: Run, tmp_path: Path, make_db_url: Any) -> None:
    assert "up to date" in run_cli("setup").stdout
    source = _sqlite_source(tmp_path)
    report = as_json(run_cli("import", "sqlite", str(source), "--json"))
    assert report["threads"] == 3 and report["verified"] is True

    listed = as_json(run_cli("threads", "list", "--json"))
    assert {t["thread_id"] for t in listed} == {"thread-0", "thread-1", "thread-2"}
    table = run_cli("threads", "list").stdout
    assert "thread-1" in table and "checkpoints" in table
    filtered = as_json(run_cli("threads", "list", "--filter", '{"user": "u1"}', "--json"))
    assert [t["thread_id"] for t in filtered] == ["thread-1"]

    stats = as_json(run_cli("threads", "stats", "thread-0", "--json"))
    with sqlite3.connect(source) as src:
        (in_source,) = src.execute(
            "SELECT count(*) FROM checkpoints WHERE thread_id = 'thread-0'"
        ).fetchone()
    # stats and list agree with each other and with what the source held for that thread.
    assert in_source > 1
    assert stats["checkpoints"] == in_source
    assert next(t["checkpoints"] for t in listed if t["thread_id"] == "thread-0") == in_source
    assert "recent checkpoints" in run_cli("threads", "show", "thread-0").stdout

    history = as_json(run_cli("history", "thread-0", "--ns", "", "--json"))
    oldest_with_messages, newest = history[-2]["checkpoint_id"], history[0]["checkpoint_id"]
    assert "answer: yes" in run_cli("show", "thread-0").stdout
    state = as_json(run_cli("show", "thread-0", oldest_with_messages, "--json"))
    assert [m["content"] for m in state["values"]["messages"]] == ["hello 0"]

    diff = as_json(run_cli("diff", "thread-0", oldest_with_messages, newest, "--json"))
    messages = next(d for d in diff if d["channel"] == "messages")
    assert messages["added"][-1]["content"] == "answer: yes" and messages["removed"] == []
    assert (
        "+ HumanMessage: answer: yes"
        in run_cli("diff", "thread-0", oldest_with_messages, newest).stdout
    )

    new = as_json(run_cli("rollback", "thread-0", oldest_with_messages, "--json"))
    head = as_json(run_cli("history", "thread-0", "--ns", "", "--limit", "1", "--json"))[0]
    assert head["checkpoint_id"] == new["configurable"]["checkpoint_id"]
    assert head["metadata"]["rollback_of"] == oldest_with_messages

    out = tmp_path / "all.ndjson"
    run_cli("export", "-o", str(out))
    other = make_db_url(True)
    copied = as_json(run_cli("import", "ndjson", str(out), "--json", "--dsn", other))
    assert copied["threads"] == 3 and copied["verified"] is True

    run_cli("delete", "thread-2", "--yes")
    assert "thread-2" not in run_cli("threads", "list").stdout
    run_cli("delete", "thread-0", "--checkpoint", head["checkpoint_id"], "--yes")
    refused = run_cli(
        "delete", "thread-0", "--checkpoint", oldest_with_messages, "--yes", check=False
    )
    assert refused.returncode == 1 and "only a leaf can be deleted" in refused.stderr


def test_import_official_and_env_vars(run_cli: Run, make_db_url: Any, db_url: str) -> None:
    from langgraph.checkpoint.postgres import PostgresSaver as OfficialSaver

    source = make_db_url(False)
    with psycopg.connect(source, autocommit=True) as conn:
        official = OfficialSaver(conn)  # type: ignore[arg-type]
        official.setup()
        populate(official, 2)
    # PGCHECKPOINT_DSN wins over DATABASE_URL.
    done = run_cli(
        "import",
        "official",
        source,
        "--json",
        env={"PGCHECKPOINT_DSN": db_url, "DATABASE_URL": "postgresql://nowhere/x"},
    )
    assert as_json(done)["threads"] == 2
    # Auto env vars: PGCHECKPOINT_<COMMAND>_<OPTION>.
    limited = run_cli("threads", "list", "--json", env={"PGCHECKPOINT_THREADS_LIST_LIMIT": "1"})
    assert len(as_json(limited)) == 1


def test_migrate(run_cli: Run, make_db_url: Any) -> None:
    status = as_json(run_cli("migrate", "status", "--json"))
    assert status and all(m["applied"] for m in status)
    empty = make_db_url(False)
    sql = run_cli("migrate", "apply", "--print-sql", "--dsn", empty).stdout
    assert "CREATE TABLE" in sql and "BEGIN;" in sql
    pending = as_json(run_cli("migrate", "status", "--json", "--dsn", empty))
    assert not any(m["applied"] for m in pending)
    applied = as_json(run_cli("migrate", "apply", "--json", "--dsn", empty))
    assert applied["applied"] == [m["version"] for m in pending]


def test_errors_are_one_line_messages(run_cli: Run, tmp_path: Path) -> None:
    missing = run_cli("show", "nope", check=False)
    assert missing.returncode == 1
    assert "Error: InvalidInputError: thread 'nope' has no checkpoints\n" in missing.stderr
    assert "Traceback" not in missing.stderr
    bad = run_cli("threads", "list", "--filter", "[1]", check=False)
    assert bad.returncode == 2 and "must be a JSON object" in bad.stderr
    not_sqlite = tmp_path / "x.sqlite"
    not_sqlite.write_text("hello")
    broken = run_cli("import", "sqlite", str(not_sqlite), check=False)
    assert broken.returncode == 1 and "TransferError" in broken.stderr
