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
from pgcheckpoint import migrations as mig
from pgcheckpoint import routines as rt
from pgcheckpoint.migrations import all_migrations
from pgcheckpoint.routines import all_routines

SCHEMA_DOC = Path(__file__).resolve().parent.parent / "docs" / "schema.md"
T, B, J, TS, BOOL, ARR = "text", "bytea", "jsonb", "timestamp with time zone", "boolean", "ARRAY"

# table -> [(column, type, nullable, default)], in column order.
EXPECTED_COLUMNS: dict[str, list[tuple[str, str, bool, str | None]]] = {
    "threads": [("thread_id", T, False, None), ("created_at", TS, False, "now()"),
                ("updated_at", TS, False, "now()"), ("retention", J, True, None),
                ("pinned", BOOL, False, "false"), ("head", T, True, None)],
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
# Functions ('f') and procedures ('p') of the schema: one per file of sql/functions.
EXPECTED_ROUTINES = {(r.name, "p" if r.name == "pgcheckpoint_sweep" else "f")
                     for r in all_routines()}
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
        # Signature, result, body, settings and comment of every routine, with
        # the schema name taken out (so two schemas compare).
        quoted = sql.Identifier(schema).as_string(conn)
        definitions = {r[0]: tuple(_strip(str(v), (quoted, schema)) if v is not None else None
                                   for v in r[1:]) for r in conn.execute(
            "SELECT p.proname, pg_get_function_identity_arguments(p.oid), "
            "pg_get_function_result(p.oid), p.prosrc, array_to_string(p.proconfig, ';'), "
            "p.provolatile, (SELECT l.lanname FROM pg_language l WHERE l.oid = p.prolang), "
            "obj_description(p.oid, 'pg_proc'), "
            "pg_get_functiondef(p.oid) "
            "FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace "
            "WHERE n.nspname = %s", (schema,))}
    return {"columns": cols, "indexes": idx, "constraints": cons, "external": external,
            "routines": routines, "definitions": definitions}


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


# --- SQL functions: one current definition each (sql/functions) ---------------

_BODY = re.compile(r"\bAS (\$[a-z_]*\$)(.*?)\1", re.S)


def _file_body(routine: rt.Routine, schema: str) -> str:
    match = _BODY.search(routine.render(schema))
    assert match, f"sql/functions/{routine.name}.sql has no $tag$ body"
    return match[2]


def test_routines_equal_their_files(empty_db_url: str) -> None:
    """Every routine's body in the database is its file's text; every function pins
    search_path; the record comment names the file's revision and checksum."""
    _setup(empty_db_url)
    got = describe(empty_db_url)["definitions"]
    assert set(got) == {r.name for r in all_routines()}
    for r in all_routines():
        _args, _result, body, config, _volatile, _lang, comment, _ = got[r.name]
        assert body == _strip(_file_body(r, "public"), ('"public"', "public")), r.name
        assert comment == r.record, r.name
        if r.name == "pgcheckpoint_sweep":
            assert config is None  # a procedure that commits cannot SET
        elif r.name == "pgcheckpoint_sweep_lock_key":
            assert config == "search_path=, pg_catalog, pg_temp"  # its own schema first
        else:
            assert config == "search_path=pg_catalog, pg_temp", r.name


def test_procedure_names_everything_with_its_schema() -> None:
    """The procedure runs with the caller's search_path, so it must not leave a
    function, operator or type to be found through it."""
    body = _file_body(next(r for r in all_routines() if r.name == "pgcheckpoint_sweep"), "s")
    code = "\n".join(ln.split("--")[0] for ln in body.splitlines())
    code = re.sub(r"'[^']*'", "''", code)  # literals
    code = re.sub(r"\b(ERRCODE|MESSAGE) = ", "", code)  # RAISE's options, not operators
    calls = re.findall(r"([a-z_.\"]+)\s*\(", code)
    for call in calls:
        assert call.startswith(('pg_catalog.', '"s".')) or call in {"IF", "ELSE"}, call
    for op in re.findall(r"\s(<=|>=|<>|<|>|\+|-|\|\||=)\s", code):
        pytest.fail(f"unqualified operator {op!r} in pgcheckpoint_sweep")
    assert "OPERATOR(pg_catalog.<)" in code


def _as_release(last: int) -> Any:
    """A patch context: the library as the release whose newest migration is ``last``
    (releases up to 0008 defined functions only in migrations: no sql/functions)."""
    mp = pytest.MonkeyPatch()
    shipped = mig.all_migrations()
    mp.setattr(mig, "all_migrations", lambda: shipped[:last])
    if last < 9:
        mp.setattr(rt, "all_routines", lambda: ())
    return mp


def test_migrated_step_by_step_equals_fresh_equals_files(empty_db_url: str, tmp_path: Path) -> None:
    """Each release's setup in turn (0001, then 0002, ...), then this one, gives the
    schema a fresh setup gives: tables, indexes, and every routine's signature,
    result, body, settings and record."""
    with psycopg.connect(empty_db_url, autocommit=True) as conn:
        conn.execute("CREATE SCHEMA stepwise")
    released = {}
    for last in range(1, len(all_migrations())):
        mp = _as_release(last)
        try:
            _setup(empty_db_url, "stepwise")
        finally:
            mp.undo()
        released[last] = describe(empty_db_url, "stepwise")["definitions"]
    _setup(empty_db_url, "stepwise")
    _setup(empty_db_url, "fresh")
    stepwise, fresh = describe(empty_db_url, "stepwise"), describe(empty_db_url, "fresh")
    assert stepwise["definitions"] == fresh["definitions"]
    for key in ("columns", "indexes", "external", "routines"):
        assert stepwise[key] == fresh[key], key
    # An old process keeps calling what it called: every function of each release
    # since 0008 is still there with its arguments and result (in 0009 the procedure
    # gained an INOUT report with a default; a CALL with the old arguments still
    # resolves).
    for last in range(8, len(all_migrations())):
        for name, (args, result, *_) in released[last].items():
            if name == "pgcheckpoint_sweep" and last == 8:
                assert fresh["definitions"][name][0].startswith(args + ", ")
            else:
                assert fresh["definitions"][name][:2] == (args, result), (last, name)


def test_changed_routine_is_reapplied_and_newer_one_left(db_url: str) -> None:
    """setup() re-applies a routine whose recorded checksum differs (a file changed in
    this release) and leaves one a newer release recorded with a higher revision."""
    with psycopg.connect(db_url, autocommit=True) as conn:
        conn.execute("COMMENT ON FUNCTION pgcheckpoint_gc(text[]) IS "
                     "'pgcheckpoint revision 1 sha256 " + "0" * 64 + "'")
        conn.execute("CREATE OR REPLACE FUNCTION pgcheckpoint_measure(p_thread_ids text[]) "
                     "RETURNS TABLE (tbl text, n bigint, bytes bigint) LANGUAGE sql "
                     "SET search_path = pg_catalog, pg_temp "
                     "AS $$ SELECT 'newer'::text, 0::bigint, 0::bigint $$")
        conn.execute("COMMENT ON FUNCTION pgcheckpoint_measure(text[]) IS "
                     "'pgcheckpoint revision 99 sha256 " + "1" * 64 + "'")
    _setup(db_url)
    got = describe(db_url)["definitions"]
    gc = next(r for r in all_routines() if r.name == "pgcheckpoint_gc")
    assert got["pgcheckpoint_gc"][6] == gc.record
    assert "'newer'" in got["pgcheckpoint_measure"][2]


def test_every_routine_file_declares_a_revision_and_one_routine() -> None:
    for r in all_routines():
        text = r.render("s")
        assert len(re.findall(r"^CREATE OR REPLACE (FUNCTION|PROCEDURE)", text, re.M)) == 1
        assert f'"s".{r.name}(' in text
        for placeholder in rt.constants():
            assert placeholder not in text


@pytest.mark.parametrize("schema", ["a$b", "x$pgcheckpoint_trim$y", "50%", "tab\there"])
def test_unsafe_schema_names_are_refused_before_anything(empty_db_url: str, schema: str) -> None:
    from pgcheckpoint import ConfigurationError
    from pgcheckpoint.migrations import render_pending

    with psycopg.connect(empty_db_url, autocommit=True) as conn:
        with pytest.raises(ConfigurationError, match=r"schema name .* contains"):
            PostgresSaver(conn, schema=schema)
        with pytest.raises(ConfigurationError, match=r"schema name .* contains"):
            render_pending(schema, {})
        created = conn.execute("SELECT count(*) FROM pg_namespace WHERE nspname = %s",
                               (schema,)).fetchone()
    assert created == (0,)


def test_print_sql_for_an_odd_schema_runs_as_is(empty_db_url: str) -> None:
    """`migrate apply --print-sql` output for a name with quotes, a semicolon, a
    backslash and a psql variable: run through psql, it builds exactly the schema
    setup() builds and nothing else."""
    import shutil

    from pgcheckpoint.migrations import render_pending

    psql = shutil.which("psql")
    if psql is None:
        pytest.skip("needs psql")
    schema = "x\"; DROP TABLE t; -- \\ :v 'q'"
    with psycopg.connect(empty_db_url, autocommit=True) as conn:
        conn.execute("CREATE TABLE t (i int)")
    done = subprocess.run([psql, "-v", "ON_ERROR_STOP=1", "-q", empty_db_url],
                          input=render_pending(schema, {}), text=True, capture_output=True,
                          timeout=120)
    assert done.returncode == 0, done.stderr
    with psycopg.connect(empty_db_url, autocommit=True) as conn:
        assert conn.execute("SELECT to_regclass('public.t') IS NOT NULL").fetchone() == (True,)
    _setup(empty_db_url)  # nothing left to do there, and public gets its own
    got, fresh = describe(empty_db_url, schema), describe(empty_db_url, "public")
    # Signature, result and body (the lock key's SET clause spells the name its own way).
    assert {k: v[:3] for k, v in got["definitions"].items()} == {
        k: v[:3] for k, v in fresh["definitions"].items()}
    assert got["routines"] == EXPECTED_ROUTINES


def test_a_changed_signature_is_refused_with_the_database_unchanged(db_url: str) -> None:
    """A function file whose arguments changed would leave two routines of one name
    (CREATE OR REPLACE makes an overload): setup() refuses and rolls back."""
    gc = next(r for r in all_routines() if r.name == "pgcheckpoint_gc")
    text = gc.text.replace("p_thread_ids text[]) RETURNS void",
                           "p_thread_ids text[], p_extra integer) RETURNS void", 1)
    assert text != gc.text
    changed = rt.Routine(gc.name, gc.revision + 1, text)
    others = tuple(r for r in all_routines() if r.name != gc.name)
    before = describe(db_url)["definitions"]
    mp = pytest.MonkeyPatch()
    mp.setattr(rt, "all_routines", lambda: (*others, changed))
    try:
        with pytest.raises(MigrationError, match=r"two routines of one name: pgcheckpoint_gc"):
            _setup(db_url)
    finally:
        mp.undo()
    assert describe(db_url)["definitions"] == before
