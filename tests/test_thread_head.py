"""``threads.head``, the compare-and-set of the one-writer rule (migration 0010, put_head).

``head`` is NULL or the id of the newest root checkpoint: puts keep it, whatever may
move it without knowing where clears it, and a NULL or lagging head never refuses a
legitimate put (the checked statement, put_checkpoint, takes over and sets it again).
A put of a release before 0010 (its statement, replayed here) clears it, so a process
of this release never accepts a put on a head such a process has built on. The rule's
own cases, unchanged, are in tests/test_one_writer.py.

On a Citus coordinator puts go through the delegated pgcheckpoint_put, which
keeps ``head`` NULL and checks with pgcheckpoint_put_check (docs/scaling.md): the
tests of ``head`` itself need plain PostgreSQL (fixture ``plain_postgres``); the
lock test runs on both.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import psycopg
import pytest
from langgraph.checkpoint.base import empty_checkpoint

from _faultgraph import config, counter_graph, start_input
from pgcheckpoint import ConcurrentUpdateError, MissingParentError, PostgresSaver


def _head(db_url: str, thread: str) -> str | None:
    with psycopg.connect(db_url, autocommit=True) as conn:
        row = conn.execute("SELECT head FROM threads WHERE thread_id = %s", (thread,)).fetchone()
    assert row is not None
    return row[0]


def _newest(db_url: str, thread: str) -> str:
    with psycopg.connect(db_url, autocommit=True) as conn:
        row = conn.execute("SELECT max(checkpoint_id) FROM checkpoints "
                           "WHERE thread_id = %s AND checkpoint_ns = ''", (thread,)).fetchone()
    assert row is not None and row[0] is not None
    return str(row[0])


def _on_citus(db_url: str) -> bool:
    with psycopg.connect(db_url, autocommit=True) as conn:
        row = conn.execute("SELECT EXISTS (SELECT 1 FROM pg_extension WHERE extname = 'citus')")
        found = row.fetchone()
    return bool(found and found[0])


@pytest.fixture
def plain_postgres(db_url: str) -> None:
    if _on_citus(db_url):
        pytest.skip(
            "these tests drive put_head, which runs on plain PostgreSQL only "
            "(Citus puts go through pgcheckpoint_put)"
        )


def _set_head(db_url: str, thread: str, head: str | None) -> None:
    with psycopg.connect(db_url, autocommit=True) as conn:
        conn.execute("UPDATE threads SET head = %s WHERE thread_id = %s", (head, thread))


@contextmanager
def _puts_sent() -> Iterator[list[str]]:
    """The put statements (put_head, put_checkpoint) the sync saver sends meanwhile."""
    sent: list[str] = []
    original = psycopg.Cursor.execute

    def spy(self: Any, query: Any, params: Any = None, **kw: Any) -> Any:
        if isinstance(query, str) and query.lstrip().startswith("WITH t AS"):
            sent.append("put_checkpoint" if "pgcheckpoint_put_check(" in query else "put_head")
        return original(self, query, params, **kw)

    psycopg.Cursor.execute = spy  # type: ignore[method-assign]
    try:
        yield sent
    finally:
        psycopg.Cursor.execute = original  # type: ignore[method-assign]


def _thread(saver: PostgresSaver, steps: int = 3) -> str:
    thread = f"head-{uuid.uuid4().hex[:8]}"
    counter_graph(saver, delay=0).invoke(start_input(steps), config(thread))
    return thread


def test_puts_keep_head_and_a_run_step_is_one_statement(
    saver: PostgresSaver, db_url: str, plain_postgres: None
) -> None:
    thread = _thread(saver)
    assert _head(db_url, thread) == _newest(db_url, thread)
    with _puts_sent() as sent:
        counter_graph(saver, delay=0).invoke({"target": 5}, config(thread))
    # Every step of the run extends the head it read or saved: the compare-and-set
    # alone, never the checked statement.
    assert sent and set(sent) == {"put_head"}
    assert _head(db_url, thread) == _newest(db_url, thread)
    # A subgraph namespace's checkpoint leaves the root's head where it was.
    before = _head(db_url, thread)
    sub = {"configurable": {"thread_id": thread, "checkpoint_ns": "sub:1"}}
    saver.put(sub, empty_checkpoint(), {"source": "input", "step": -1}, {})
    assert _head(db_url, thread) == before


@pytest.mark.parametrize(("age", "moves"), [("5 seconds", False), ("1 minute", True),
                                           ("-1 hour", True)])
def test_a_run_moves_updated_at_only_once_it_is_10_seconds_old(
    saver: PostgresSaver, db_url: str, plain_postgres: None, age: str, moves: bool
) -> None:
    """put_head leaves a recent ``updated_at`` as it is, so the update of the thread
    row changes no indexed column and is HOT; an older one, or one ahead of the
    server's clock, is set to now."""
    thread = _thread(saver)
    with psycopg.connect(db_url, autocommit=True) as conn:
        row = conn.execute(
            "UPDATE threads SET updated_at = now() - %s::interval WHERE thread_id = %s "
            "RETURNING updated_at, now()", (age, thread)).fetchone()
        assert row is not None
        before, started = row
        with _puts_sent() as sent:
            counter_graph(saver, delay=0).invoke({"target": 5}, config(thread))
        assert sent and set(sent) == {"put_head"}
        after = conn.execute("SELECT updated_at FROM threads WHERE thread_id = %s",
                             (thread,)).fetchone()
    assert after is not None
    if moves:
        assert after[0] != before and after[0] >= started
    else:
        assert after[0] == before
    assert _head(db_url, thread) == _newest(db_url, thread)


@pytest.mark.parametrize("head", ["cleared", "lagging"])
def test_an_unknown_or_lagging_head_never_refuses_a_put(
    saver: PostgresSaver, db_url: str, plain_postgres: None, head: str
) -> None:
    thread = _thread(saver)
    oldest = min(t.checkpoint["id"] for t in saver.list(config(thread)))
    _set_head(db_url, thread, None if head == "cleared" else oldest)
    with _puts_sent() as sent:
        counter_graph(saver, delay=0).invoke({"target": 5}, config(thread))
    # The first put falls back to the checked statement, which sets head again;
    # the rest are compare-and-sets.
    assert sent[:3] == ["put_head", "put_checkpoint", "put_head"]
    assert sent.count("put_checkpoint") == 1
    assert _head(db_url, thread) == _newest(db_url, thread)


def test_a_forgotten_head_write_is_refused_with_the_precise_error(
    saver: PostgresSaver, db_url: str, plain_postgres: None
) -> None:
    """A refused compare-and-set writes nothing; the checked statement names the cause."""
    thread = _thread(saver, 2)
    stale = saver.get_tuple(config(thread))
    assert stale is not None
    counter_graph(saver, delay=0).invoke({"target": 4}, config(thread))
    head = _head(db_url, thread)
    with pytest.raises(ConcurrentUpdateError, match="no longer the thread's latest"):
        saver.put(stale.config, empty_checkpoint(), {"source": "update", "step": 9}, {})
    assert _head(db_url, thread) == head == _newest(db_url, thread)


def test_deleting_the_head_clears_it(
    saver: PostgresSaver, db_url: str, plain_postgres: None
) -> None:
    thread = _thread(saver)
    latest = saver.get_tuple(config(thread))
    assert latest is not None
    saver.delete_checkpoint(thread, latest.checkpoint["id"])  # under lock_threads
    assert _head(db_url, thread) is None
    with pytest.raises(MissingParentError, match="does not exist"):
        saver.put(latest.config, empty_checkpoint(), {"source": "loop", "step": 9}, {})
    assert _head(db_url, thread) is None
    counter_graph(saver, delay=0).invoke({"target": 5}, config(thread))  # resumes
    assert _head(db_url, thread) == _newest(db_url, thread)


def test_a_run_on_a_deleted_thread_stops(saver: PostgresSaver, db_url: str) -> None:
    """A thread deleted under a running run: the run's next put names a parent that
    is gone; it is refused, and the thread is not started again."""
    thread = _thread(saver)
    latest = saver.get_tuple(config(thread))
    assert latest is not None
    saver.delete_thread(thread)
    with pytest.raises(MissingParentError, match="does not exist"):
        saver.put(latest.config, empty_checkpoint(), {"source": "loop", "step": 9}, {})
    with psycopg.connect(db_url, autocommit=True) as conn:
        row = conn.execute("SELECT count(*) FROM checkpoints WHERE thread_id = %s",
                           (thread,)).fetchone()
    assert row == (0,)


# The put statement of releases 0008 and 0009, reduced to what touches `threads` and
# the guard; the checkpoint it writes is a copy of its parent under a new id.
_OLD_PUT = """
WITH t AS (
    INSERT INTO threads AS th (thread_id, updated_at) VALUES (%(thread)s, now())
    ON CONFLICT (thread_id) DO UPDATE SET updated_at = EXCLUDED.updated_at
    RETURNING th.thread_id
), g AS (
    SELECT pgcheckpoint_put_guard(t.thread_id, '', %(parent)s, %(id)s, 'head') AS ok FROM t
)
INSERT INTO checkpoints (thread_id, checkpoint_ns, checkpoint_id, parent_checkpoint_id,
                         type, checkpoint, metadata, created_at, channels, versions)
SELECT t.thread_id, '', %(id)s, %(parent)s, c.type, c.checkpoint, c.metadata, now(),
       c.channels, c.versions
FROM t, g, checkpoints c
WHERE c.thread_id = %(thread)s AND c.checkpoint_ns = '' AND c.checkpoint_id = %(parent)s
"""


def test_a_put_of_the_previous_release_clears_head(
    saver: PostgresSaver, db_url: str, plain_postgres: None
) -> None:
    thread = _thread(saver, 2)
    read = saver.get_tuple(config(thread))  # this release's process reads the head...
    assert read is not None
    parent = read.checkpoint["id"]
    newer = parent + "1"  # sorts after its prefix in every collation
    with psycopg.connect(db_url, autocommit=True) as conn:  # ...an old process builds on it
        conn.execute(_OLD_PUT, {"thread": thread, "parent": parent, "id": newer})
        with pytest.raises(psycopg.Error) as refused:  # the old rule still holds for it
            conn.execute(_OLD_PUT, {"thread": thread, "parent": parent,
                                    "id": parent + "2"})
        assert refused.value.sqlstate == "PGC01"
    assert _head(db_url, thread) is None
    with pytest.raises(ConcurrentUpdateError, match="no longer the thread's latest"):
        saver.put(read.config, empty_checkpoint(), {"source": "update", "step": 9}, {})
    assert _newest(db_url, thread) == newer
    tip = saver.get_tuple(config(thread))
    assert tip is not None and tip.config["configurable"]["checkpoint_id"] == newer
    saver.put(tip.config, empty_checkpoint(), {"source": "update", "step": 9}, {})
    assert _head(db_url, thread) == _newest(db_url, thread) != newer


def test_a_put_waits_for_garbage_collection_lock(saver: PostgresSaver, db_url: str) -> None:
    """lock_threads (prune, delete_checkpoint, gc) and the put's upsert take the same
    row lock: a put waits for the collector's commit, then checks what it left."""
    thread = _thread(saver)
    latest = saver.get_tuple(config(thread))
    assert latest is not None
    errors: list[BaseException] = []

    def put() -> None:
        try:
            saver.put(latest.config, empty_checkpoint(), {"source": "loop", "step": 9}, {})
        except BaseException as exc:  # reported by the asserts below
            errors.append(exc)

    with psycopg.connect(db_url) as gc, psycopg.connect(db_url, autocommit=True) as watch:
        gc.execute("SELECT pgcheckpoint_lock_threads(ARRAY[%s])", (thread,))
        writer = threading.Thread(target=put)
        writer.start()
        waiting = False
        # On Citus the put waits on the thread's worker, inside the delegated
        # pgcheckpoint_put: citus_stat_activity shows the backends of every node.
        citus = _on_citus(db_url)
        activity = "citus_stat_activity" if citus else "pg_stat_activity"
        put_query = "%%pgcheckpoint_put(%%" if citus else "WITH t AS%%"
        for _ in range(600):  # until the put is seen waiting on the row lock
            row = watch.execute(
                f"SELECT count(*) FROM {activity} WHERE wait_event_type = 'Lock' "
                "AND query LIKE %s AND datname = current_database()", (put_query,)).fetchone()
            if row and row[0]:
                waiting = True
                break
            time.sleep(0.05)
        assert waiting, "the put did not wait for the collector's lock"
        assert writer.is_alive()
        gc.commit()
    writer.join()
    assert not errors
    assert _newest(db_url, thread) != latest.checkpoint["id"]
    # lock_threads cleared head; the checked put (or pgcheckpoint_put on Citus) set it again.
    assert _head(db_url, thread) == _newest(db_url, thread)


def test_the_migration_leaves_head_unknown_and_the_next_put_sets_it(
    saver: PostgresSaver, db_url: str, plain_postgres: None
) -> None:
    thread = _thread(saver)
    with psycopg.connect(db_url, autocommit=True) as conn:  # back to the schema of 0009
        conn.execute("ALTER TABLE threads DROP COLUMN head")
        conn.execute("DELETE FROM pgcheckpoint_migrations WHERE version = 10")
    with psycopg.connect(db_url, autocommit=True) as conn:
        PostgresSaver(conn).setup()
    assert _head(db_url, thread) is None
    with _puts_sent() as sent:
        counter_graph(saver, delay=0).invoke({"target": 5}, config(thread))
    assert sent.count("put_checkpoint") == 1
    assert _head(db_url, thread) == _newest(db_url, thread)
