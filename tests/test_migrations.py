"""Migrations: the schema they build, concurrency, odd schema names, idempotence, refusals."""

from __future__ import annotations

import re
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

import psycopg
import pytest
from langgraph.checkpoint.base import empty_checkpoint
from psycopg import sql

from pgcheckpoint import MigrationError, PostgresSaver, SchemaError
from pgcheckpoint.migrations import all_migrations

SCHEMA_DOC = Path(__file__).resolve().parent.parent / "docs" / "schema.md"
T, B, J, TS, BOOL, ARR = "text", "bytea", "jsonb", "timestamp with time zone", "boolean", "ARRAY"

# table -> [(column, type, nullable, default)], in column order.
EXPECTED_COLUMNS: dict[str, list[tuple[str, str, bool, str | None]]] = {
    "threads": [("thread_id", T, False, None), ("created_at", TS, False, "now()"),
                ("updated_at", TS, False, "now()"), ("retention", J, True, None),
                ("pinned", BOOL, False, "false")],
    "checkpoints": [("thread_id", T, False, None), ("checkpoint_ns", T, False, "''::text"),
                    ("checkpoint_id", T, False, None), ("parent_checkpoint_id", T, True, None),
                    ("type", T, False, None), ("checkpoint", B, False, None),
                    ("metadata", J, False, "'{}'::jsonb"), ("created_at", TS, False, "now()"),
                    ("channels", ARR, False, "'{}'::text[]"),
                    ("versions", ARR, False, "'{}'::text[]"), ("pinned", BOOL, False, "false")],
    "blobs": [("thread_id", T, False, None), ("checkpoint_ns", T, False, "''::text"),
              ("channel", T, False, None), ("version", T, False, None), ("type", T, False, None),
              ("value", B, True, None), ("chunk_refs", B, True, None)],
    "chunks": [("thread_id", T, False, None), ("hash", B, False, None),
               ("compressed", BOOL, False, None), ("data", B, False, None)],
    "writes": [("thread_id", T, False, None), ("checkpoint_ns", T, False, "''::text"),
               ("checkpoint_id", T, False, None), ("task_id", T, False, None),
               ("idx", "integer", False, None), ("channel", T, False, None),
               ("type", T, False, None), ("value", B, True, None),
               ("task_path", T, False, "''::text"), ("created_at", TS, False, "now()")],
    "pgcheckpoint_migrations": [("version", "integer", False, None), ("name", T, False, None),
                                ("checksum", T, False, None), ("applied_at", TS, False, "now()"),
                                ("compatible_with", "integer", True, None)],
}
# index -> definition with the schema name removed.
EXPECTED_INDEXES = {
    "threads_pkey": "UNIQUE INDEX threads_pkey ON threads USING btree (thread_id)",
    "threads_updated_idx": (
        "INDEX threads_updated_idx ON threads USING btree "
        '(updated_at DESC, thread_id COLLATE "C" DESC)'
    ),
    "checkpoints_pkey": "UNIQUE INDEX checkpoints_pkey ON checkpoints USING btree "
                        "(thread_id, checkpoint_ns, checkpoint_id)",
    "checkpoints_thread_id_idx": "INDEX checkpoints_thread_id_idx ON checkpoints USING btree "
                                 "(thread_id, checkpoint_id)",
    "checkpoints_run_id_idx": "INDEX checkpoints_run_id_idx ON checkpoints USING btree "
                              "(((metadata ->> 'run_id'::text))) WHERE (metadata ? 'run_id'::text)",
    "blobs_pkey": "UNIQUE INDEX blobs_pkey ON blobs USING btree "
                  "(thread_id, checkpoint_ns, channel, version)",
    "chunks_pkey": "UNIQUE INDEX chunks_pkey ON chunks USING btree (thread_id, hash)",
    "writes_pkey": "UNIQUE INDEX writes_pkey ON writes USING btree "
                   "(thread_id, checkpoint_ns, checkpoint_id, task_id, idx)",
    "pgcheckpoint_migrations_pkey": "UNIQUE INDEX pgcheckpoint_migrations_pkey ON "
                                    "pgcheckpoint_migrations USING btree (version)",
}
# Functions ('f') and procedures ('p') of the schema.
EXPECTED_ROUTINES = {
    ("pgcheckpoint_fork_guard", "f"), ("pgcheckpoint_put_guard", "f"),
    ("pgcheckpoint_delete_threads", "f"),
    ("pgcheckpoint_gc", "f"), ("pgcheckpoint_measure", "f"), ("pgcheckpoint_sweep_batch", "f"),
    ("pgcheckpoint_sweep_strays", "f"), ("pgcheckpoint_sweep_lock_key", "f"),
    ("pgcheckpoint_sweep", "p"), ("pgcheckpoint_trim", "f"), ("pgcheckpoint_lock_threads", "f"),
}
# Already-compressed bytes: no pglz (STORAGE EXTERNAL, 'e').
EXTERNAL = {("checkpoints", "checkpoint"), ("blobs", "value"), ("chunks", "data"),
            ("writes", "value")}


def _strip(text: str, prefixes: tuple[str, ...]) -> str:
    for p in prefixes:
        text = text.replace(p, "")
    return text


def describe(url: str, schema: str = "public") -> dict[str, Any]:
    """Tables, columns, indexes, constraints and storage of ``schema`` as plain data."""
    with psycopg.connect(url, autocommit=True) as conn:
        cols: dict[str, list[tuple[str, str, bool, str | None]]] = {}
        for t, c, typ, nullable, default in conn.execute(
            "SELECT table_name, column_name, data_type, is_nullable = 'YES', column_default "
            "FROM information_schema.columns WHERE table_schema = %s "
            "ORDER BY table_name, ordinal_position", (schema,)):
            cols.setdefault(t, []).append((c, typ, nullable, default))
        # pg_indexes quotes the schema only when it needs quoting.
        prefixes = (sql.Identifier(schema).as_string(conn) + ".", schema + ".")
        idx = {name: _strip(re.sub(r"^CREATE ", "", d), prefixes) for name, d in conn.execute(
            "SELECT indexname, indexdef FROM pg_indexes WHERE schemaname = %s", (schema,))}
        cons = sorted(conn.execute(
            "SELECT conrelid::regclass::text, contype FROM pg_constraint c "
            "JOIN pg_namespace n ON n.oid = c.connamespace WHERE n.nspname = %s", (schema,)))
        external = {(r[0], r[1]) for r in conn.execute(
            "SELECT c.relname, a.attname FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid "
            "JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = %s "
            "AND c.relkind = 'r' AND a.attnum > 0 AND a.attstorage = 'e'", (schema,))}
        routines = {(r[0], r[1]) for r in conn.execute(
            "SELECT p.proname, p.prokind FROM pg_proc p "
            "JOIN pg_namespace n ON n.oid = p.pronamespace WHERE n.nspname = %s", (schema,))}
    return {"columns": cols, "indexes": idx, "constraints": cons, "external": external,
            "routines": routines}


def _setup(url: str, schema: str = "public") -> None:
    with psycopg.connect(url, autocommit=True) as conn:
        PostgresSaver(conn, schema=schema).setup()


def test_fresh_schema_equals_documented_schema(empty_db_url: str) -> None:
    _setup(empty_db_url)
    got = describe(empty_db_url)
    assert got["columns"] == EXPECTED_COLUMNS
    assert got["indexes"] == EXPECTED_INDEXES
    assert got["external"] == EXTERNAL
    assert got["routines"] == EXPECTED_ROUTINES
    # Primary keys only: in particular no foreign key from writes (tests/test_write_order.py).
    assert {kind for _, kind in got["constraints"]} == {"p"}
    doc = SCHEMA_DOC.read_text("utf-8")
    for name in [*EXPECTED_COLUMNS, *EXPECTED_INDEXES]:
        assert f"`{name}`" in doc, f"docs/schema.md does not document {name}"
    for name, _ in EXPECTED_ROUTINES:
        assert f"`{name}(" in doc, f"docs/schema.md does not document {name}()"
    for m in all_migrations():
        assert f"{m.version:04d}_{m.name}.sql" in doc


def _applied(url: str, schema: str = "public") -> list[tuple[Any, ...]]:
    with psycopg.connect(url, autocommit=True) as conn:
        q = sql.SQL("SELECT version, name, checksum, applied_at FROM {}.pgcheckpoint_migrations "
                    "ORDER BY version").format(sql.Identifier(schema))
        return [tuple(r) for r in conn.execute(q)]


def test_ten_concurrent_setups_in_threads(empty_db_url: str) -> None:
    errors: list[BaseException] = []
    barrier = threading.Barrier(10)

    def run() -> None:
        try:
            with psycopg.connect(empty_db_url, autocommit=True) as conn:
                saver = PostgresSaver(conn)
                barrier.wait()
                saver.setup()
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=run) for _ in range(10)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert [r[0] for r in _applied(empty_db_url)] == [m.version for m in all_migrations()]
    assert describe(empty_db_url)["indexes"] == EXPECTED_INDEXES


SETUP_SCRIPT = """
import sys, time, psycopg
from pgcheckpoint import PostgresSaver
url, schema, start = sys.argv[1], sys.argv[2], float(sys.argv[3])
with psycopg.connect(url, autocommit=True) as conn:
    saver = PostgresSaver(conn, schema=schema)
    time.sleep(max(0.0, start - time.time()))
    saver.setup()
print("ok")
"""


@pytest.mark.parametrize("schema", ["public", 'My "Odd" Schema'])
def test_ten_concurrent_setups_in_processes(empty_db_url: str, schema: str) -> None:
    import time

    start = str(time.time() + 1.5)  # every process calls setup() at the same moment
    procs = [subprocess.Popen([sys.executable, "-c", SETUP_SCRIPT, empty_db_url, schema, start],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for _ in range(10)]
    results = [p.communicate(timeout=120) for p in procs]
    for p, (out, err) in zip(procs, results, strict=True):
        assert p.returncode == 0 and out.strip() == "ok", err
    assert [r[0] for r in _applied(empty_db_url, schema)] == [m.version for m in all_migrations()]


def test_odd_schema_name_end_to_end(empty_db_url: str) -> None:
    schema = 'My "Odd" Schema'
    with PostgresSaver.from_conn_string(empty_db_url, schema=schema) as s:
        s.setup()
        cp = empty_checkpoint()
        cp["channel_values"] = {"v": list(range(5000))}
        cp["channel_versions"] = {"v": "1"}
        saved = s.put({"configurable": {"thread_id": "t", "checkpoint_ns": ""}}, cp, {}, {"v": "1"})
        s.put_writes(saved, [("v", 1)], "task")
        got = s.get_tuple(saved)
        assert got is not None and got.checkpoint["channel_values"]["v"] == list(range(5000))
        assert [t.checkpoint["id"] for t in s.list(None)] == [cp["id"]]
        s.copy_thread("t", "u")
        s.prune(["t"], strategy="keep_latest")
        assert s.cleanup_old_checkpoints().threads_scanned == 2
        s.delete_thread("u")
    with psycopg.connect(empty_db_url, autocommit=True) as conn:
        conn.execute(sql.SQL("CALL {}.pgcheckpoint_sweep(%s)").format(sql.Identifier(schema)),
                     ('{"keep_last": 1}',))
    got_desc = describe(empty_db_url, schema)
    assert set(got_desc["columns"]) == set(EXPECTED_COLUMNS)
    assert got_desc["routines"] == EXPECTED_ROUTINES
    assert "threads" not in describe(empty_db_url, "public")["columns"]


def test_setup_again_is_a_no_op(db_url: str) -> None:
    before = _applied(db_url)
    with psycopg.connect(db_url, autocommit=True) as conn:
        # Any DDL from now on fails the statement that issues it.
        conn.execute("CREATE FUNCTION no_ddl() RETURNS event_trigger LANGUAGE plpgsql AS "
                     "$$ BEGIN RAISE EXCEPTION 'DDL attempted: %', tg_tag; END $$")
        conn.execute("CREATE EVENT TRIGGER no_ddl ON ddl_command_start EXECUTE FUNCTION no_ddl()")
    try:
        for _ in range(3):
            _setup(db_url)
        with PostgresSaver.from_conn_string(db_url) as s:
            s.setup()
            assert set(s.migration_status()) == {m.version for m in all_migrations()}
    finally:
        with psycopg.connect(db_url, autocommit=True) as conn:
            conn.execute("DROP EVENT TRIGGER no_ddl")
    assert _applied(db_url) == before


def test_changed_checksum_raises_migration_error(db_url: str) -> None:
    with psycopg.connect(db_url, autocommit=True) as conn:
        conn.execute("UPDATE pgcheckpoint_migrations SET checksum = 'edited' WHERE version = 1")
    with pytest.raises(MigrationError, match=r"migration 1 \(initial\) was applied with a "
                                             r"different text"):
        _setup(db_url)


def test_newer_database_raises_schema_error(db_url: str) -> None:
    with psycopg.connect(db_url, autocommit=True) as conn:
        conn.execute("INSERT INTO pgcheckpoint_migrations (version, name, checksum) "
                     "VALUES (999, 'from_the_future', 'x')")
    with pytest.raises(SchemaError, match=r"newer than this pgcheckpoint .* 999 \(from_the_future, "
                                          "declares no compatibility") as e:
        _setup(db_url)
    assert not isinstance(e.value, MigrationError)


def test_official_tables_in_the_same_schema_are_refused(empty_db_url: str) -> None:
    """A schema that already holds langgraph-checkpoint-postgres's tables is left alone."""
    from langgraph.checkpoint.postgres import PostgresSaver as OfficialSaver

    with psycopg.connect(empty_db_url, autocommit=True) as conn:
        OfficialSaver(conn).setup()  # type: ignore[arg-type]
    before = describe(empty_db_url)
    with (
        PostgresSaver.from_conn_string(empty_db_url) as saver,
        pytest.raises(SchemaError, match=r"already has a table named checkpoints.*schema="),
    ):
        saver.setup()
    assert describe(empty_db_url) == before
    # In a schema of its own, pgcheckpoint sets up next to the official tables.
    with PostgresSaver.from_conn_string(empty_db_url, schema="pgcheckpoint") as saver:
        saver.setup()
        assert saver.migration_status()
