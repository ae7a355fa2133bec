"""The rules Citus imposes on our schema and SQL, checked on plain PostgreSQL.

CI has no Citus, so this lint is what keeps the schema distributable by
``thread_id`` (docs/scaling.md). It reads the catalog of a migrated database
(pg_index, pg_constraint, pg_proc) and the text of every named statement in
``sql/queries/`` and of every function of the schema:

1. ``thread_id`` is in every primary key and unique index of the per-thread tables;
2. no foreign key touches them (Citus could only keep one between colocated
   tables, and a key across threads would span shards);
3. every ``ON CONFLICT`` target names ``thread_id``;
4. only IMMUTABLE functions in ``DO UPDATE SET`` (Citus 13: "functions used in
   the DO UPDATE SET clause of INSERTs on distributed tables must be marked
   IMMUTABLE");
5. a per-thread statement pins every reference to a per-thread table to one
   thread: ``thread_id = <parameter>`` or a join on ``thread_id`` to a pinned
   table; no join between two tables that is not on ``thread_id``;
6. every recursive CTE is in a statement pinned to one thread by equality
   (Citus 13: "recursive CTEs are only supported when they contain a filter on
   the distribution column"; ``= ANY (array)`` is not such a filter);
7. a function reading a per-thread table takes the thread id as its first
   argument, ``p_thread_id text`` (distributed by it: the call runs on the
   thread's node), or is listed as multi-thread/cross-thread below.

Where today's SQL breaks a rule, the statement is in ``KNOWN_VIOLATIONS`` with
what Citus says and the shape that would pass. The test fails on a new
violation and on a listed one that is gone, so the list is always what is left.
"""

from __future__ import annotations

import re
from collections.abc import Iterator

import psycopg
import pytest

from pgcheckpoint._queries import Queries, _raw_statements

TABLES = ("threads", "checkpoints", "blobs", "chunks", "writes")
THREAD_PARAM = re.compile(r"%\((thread_id|source|target)\)s")
# What names one thread in a function body: its argument, or a loop over an array of them.
FUNCTION_PIN = r"\b(?:p_thread_id|v_thread)\b"

# Every statement of queries.sql, by how many threads it touches.
PER_THREAD = {
    # One thread, named by a scalar parameter: must route to one shard.
    "put_checkpoint", "put_head", "put_head_new", "put_writes_upsert", "put_writes_insert",
    # More writes than PUT_WRITES_ROWS on plain PostgreSQL: one thread, INSERT ...
    # SELECT FROM unnest (on Citus inside pgcheckpoint_put_writes, put_writes_function).
    "put_writes_upsert_arrays", "put_writes_insert_arrays",
    "delta_history", "fetch_chunks", "fetch_value_chunks", "delete_thread", "thread_exists",
    "latest_id",
    "thread_stats", "checkpoint_at_time", "list_versions", "lock_thread", "prune_thread",
    "put_function", "put_writes_function",
    "delete_checkpoint", "import_writes", "import_lock_thread", "import_checkpoint",
    "import_blobs", "import_chunks", "rows_checkpoints", "rows_blobs", "rows_chunk_hashes",
    "rows_writes", "verify_checkpoints", "verify_blobs", "verify_writes",
    "retention_set_thread", "retention_get_thread", "retention_pin_thread",
    "retention_pin_checkpoint", "copy_thread", "thread_graph",
    # read_checkpoints with where_thread: get_tuple and list(config) (assembled below).
    "read_checkpoints[where_thread]", "read_checkpoints[where_thread,single]",
}  # fmt: skip
MULTI_THREAD = {
    # A list of threads (thread_id = ANY (...)): one task per shard holding one of them.
    "lock_threads", "delete_threads", "gc", "delete_runs",
}  # fmt: skip
CROSS_THREAD = {
    # Every shard, by design: list(None), list_threads, delete_for_runs, sweeper, reports.
    "read_checkpoints", "threads_list", "threads_of_runs", "sweep",
    "storage_tables", "storage_threads", "storage_thread_count", "thread_summaries",
    "export_counts",
    # No table of ours: the server, pg_cron, advisory locks.
    "health_probe", "cron_installed", "cron_schedule", "cron_unschedule",
    "vacuum_permissions",
    "export_snapshot",
    # setup(), the migration runner and optimize(): DDL and catalog reads, run on the
    # coordinator (sql/queries/migrations.sql, distribution.sql, maintenance.sql).
    "migrations_applied", "relation_exists", "schema_exists", "migrations_compat_column",
    "may_migrate", "create_schema", "create_migrations_table", "migration_record",
    "migrations_newer", "migrations_details", "migrations_has_compat", "migrate_lock",
    "unlock_all", "begin", "commit", "rollback", "routines_state", "routine_comment",
    "routines_overloaded",
    "has_citus", "citus_table_state", "citus_function_state", "citus_distribute",
    "citus_truncate_local", "citus_reference", "citus_route_function",
    "citus_register_function", "count_rows", "vacuum", "vacuum_full",
    # The roles (roles.py, sql/queries/roles.sql) and health_check's security probe:
    # catalog reads and GRANTs, run by an administrator, no table rows.
    *(n for n in _raw_statements() if n.startswith(("role_", "roles_state_"))),
    "security_probe",
}  # fmt: skip
# Pieces assembled into other statements (checked as part of those).
FRAGMENTS = {n for n in _raw_statements() if n.startswith(("where_", "tree_node_"))} | {
    "put_chunks", "put_blobs", "put_writes_row",
}  # fmt: skip

# Functions of the schema that read per-thread tables without one thread id.
MULTI_THREAD_FUNCTIONS = {
    "pgcheckpoint_delete_threads", "pgcheckpoint_gc", "pgcheckpoint_lock_threads",
    "pgcheckpoint_measure",
    "pgcheckpoint_sweep_batch", "pgcheckpoint_trim", "pgcheckpoint_sweep_threads",
}  # fmt: skip
CROSS_THREAD_FUNCTIONS = {
    "pgcheckpoint_sweep_strays", "pgcheckpoint_sweep", "pgcheckpoint_sweep_page",
}  # fmt: skip

# (rule, statement or function): what Citus 13.2 says, and the shape that passes.
KNOWN_VIOLATIONS: dict[tuple[str, str], str] = {
    # The read of every thread expands reference trees with a recursive query per
    # row naming c.thread_id, which Citus cannot route; it is never sent to Citus:
    # on distributed tables list(None) pages keys (list_keys) and reads each
    # thread with read_checkpoints[where_thread], pinned (listing.Lister;
    # tests/test_citus.py runs a tree value through list(None)). It stays here as
    # the plain-PostgreSQL form.
    ("recursive_cte_one_thread", "read_checkpoints"):
        "cross-thread read expands reference trees recursively (plain PG only)",
}


def _statement_violations(name: str, text: str, pin: str = THREAD_PARAM.pattern) -> set[str]:
    """The rules a statement's text breaks.

    ``pin`` is what names one thread: a scalar parameter in queries.sql; in a
    function body, its ``p_thread_id`` or the loop variable ``v_thread``."""
    found: set[str] = set()
    for target in re.findall(r"ON CONFLICT\s*\(([^)]*)\)", text):
        if "thread_id" not in [c.strip() for c in target.split(",")]:
            found.add("on_conflict_target")
    if "WITH RECURSIVE" in text and not re.search(pin, text):
        found.add("recursive_cte_one_thread")
    if "WITH RECURSIVE" in text and re.search(r"thread_id\s*=\s*ANY", text):
        found.add("recursive_cte_one_thread")
    if "WITH RECURSIVE" in text and _unpinned_references(text, pin):
        found.add("recursive_cte_one_thread")
    return found


def _unpinned_references(text: str, pin: str) -> list[str]:
    """References to a per-thread table not tied to one thread id by equality.

    ``pin`` is the pattern of what pins a thread: a scalar parameter (statements)
    or the function's ``p_thread_id``."""
    out = []
    ref = re.compile(
        r"(INSERT\s+INTO\s+|UPDATE\s+|DELETE\s+FROM\s+|FROM\s+|JOIN\s+|,\s*)"
        # {schema} in queries.sql, public (the lint's database) in function bodies; not
        # an alias, so a column such as `w.writes` is not taken for the table.
        r"(?:\{schema\}|\"?public\"?)\.(" + "|".join(TABLES) + r")\b(?:\s+(?:AS\s+)?(\w+))?",
        re.IGNORECASE,
    )
    keywords = {"where", "on", "set", "using", "values", "select", "group", "order", "limit"}
    for match in ref.finditer(text):
        verb, table, alias = match.group(1).strip().upper(), match.group(2), match.group(3)
        if verb.startswith("INSERT"):
            continue  # the inserted thread id is checked by the ON CONFLICT rule
        if alias is None or alias.lower() in keywords:
            alias = None
            qualified = r"(?<![\w.])"
        else:
            qualified = re.escape(alias) + r"\."
        other = rf"(?:{pin}|\w+\.thread_id)"
        pinned = re.search(rf"{qualified}thread_id\s*=\s*{other}", text) or re.search(
            rf"{other}\s*=\s*{qualified}thread_id", text
        )
        if not pinned:
            out.append(f"{table} {alias or ''}".strip())
    return out


def _do_update_functions(text: str) -> set[str]:
    names: set[str] = set()
    for clause in re.findall(r"DO UPDATE SET(.*?)(?:RETURNING|\)\s*,|\)\s*$|;|$)", text, re.S):
        names.update(n.lower() for n in re.findall(r"([a-zA-Z_][\w.]*)\s*\(", clause))
    return names


@pytest.fixture(scope="module")
def catalog(databases: object, template_db: str) -> Iterator[psycopg.Connection[object]]:
    """A connection to the session's migrated template database (read only)."""
    url = databases.url(template_db)  # type: ignore[attr-defined]
    with psycopg.connect(url, autocommit=True) as conn:
        yield conn


def test_every_statement_is_classified() -> None:
    names = set(_raw_statements()) - FRAGMENTS
    classified = {n.split("[")[0] for n in PER_THREAD} | MULTI_THREAD | CROSS_THREAD
    assert names - classified == set(), "classify the new statement(s) in this test"
    assert classified - names == set(), "statement(s) gone from queries.sql"


def test_thread_id_in_every_unique_index_and_no_foreign_key(
    catalog: psycopg.Connection[object],
) -> None:
    rows = catalog.execute(
        "SELECT c.relname::text, i.indexrelid::regclass::text, "
        "       array_agg(a.attname::text ORDER BY k.n) "
        "FROM pg_index i JOIN pg_class c ON c.oid = i.indrelid "
        "JOIN pg_namespace s ON s.oid = c.relnamespace "
        "CROSS JOIN LATERAL unnest(i.indkey) WITH ORDINALITY AS k(attnum, n) "
        "LEFT JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum = k.attnum "
        "WHERE s.nspname = 'public' AND c.relname = ANY (%s) AND i.indisunique "
        "GROUP BY 1, 2",
        [list(TABLES)],
    ).fetchall()
    assert {r[0] for r in rows} == set(TABLES), rows  # each has its primary key
    for table, index, columns in rows:
        assert "thread_id" in columns, f"unique index {index} of {table} lacks thread_id"
    foreign = catalog.execute(
        "SELECT conname::text FROM pg_constraint WHERE contype = 'f' "
        "AND (conrelid = ANY (%(t)s::regclass[]) OR confrelid = ANY (%(t)s::regclass[]))",
        {"t": [f"public.{t}" for t in TABLES]},
    ).fetchall()
    assert foreign == []


def _all_violations(catalog: psycopg.Connection[object]) -> dict[tuple[str, str], str]:
    found: dict[tuple[str, str], str] = {}
    statements = dict(_raw_statements())
    statements["put_checkpoint"] = (
        statements["put_checkpoint"]
        .replace("{put_chunks}", statements["put_chunks"])
        .replace("{put_blobs}", statements["put_blobs"])
    )
    for name in ("put_writes_insert", "put_writes_upsert"):
        statements[name] = Queries("public").put_writes(upsert=name.endswith("upsert"), rows=2)
    statements["read_checkpoints[where_thread]"] = Queries("public").read_checkpoints(
        ["where_thread"]
    )
    # get_tuple's variant: its tree walk probes nodes (read.sql: tree_node_probe).
    statements["read_checkpoints[where_thread,single]"] = Queries("public").read_checkpoints(
        ["where_thread"], single=True
    )
    # part_tree_walk's thread is filled in by Queries.
    statements["fetch_value_chunks"] = Queries("public")["fetch_value_chunks"]
    volatile = {
        str(name): str(v)
        for name, v in catalog.execute(
            "SELECT DISTINCT ON (proname) proname::text, provolatile::text FROM pg_proc "
            "ORDER BY proname, provolatile DESC"
        ).fetchall()
    }
    for name, text in statements.items():
        if name in FRAGMENTS:
            continue
        for rule in _statement_violations(name, text):
            found[(rule, name)] = text
        for fn in _do_update_functions(text):
            if volatile.get(fn.rsplit(".", 1)[-1], "i") != "i":
                found[("immutable_do_update", name)] = fn
        if name in PER_THREAD:
            if not THREAD_PARAM.search(text):
                found[("one_thread_equality", name)] = text
            loose = _unpinned_references(text, r"%\(\w+\)s")
            if loose:
                found[("one_thread_equality", name)] = ", ".join(loose)
    functions = catalog.execute(
        "SELECT p.proname::text, coalesce(p.proargnames[1], ''), "
        "       coalesce(format_type(p.proargtypes[0], NULL), ''), p.prosrc "
        "FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace "
        "WHERE n.nspname = 'public' AND p.proname LIKE 'pgcheckpoint%'"
    ).fetchall()
    for fname, arg, argtype, body in functions:
        body = str(body)
        if not re.search(r"\.(" + "|".join(TABLES) + r")\b", body):
            continue
        for rule in _statement_violations(str(fname), body, FUNCTION_PIN):
            found[(rule, str(fname))] = body
        if fname in MULTI_THREAD_FUNCTIONS or fname in CROSS_THREAD_FUNCTIONS:
            continue
        if (arg, argtype) != ("p_thread_id", "text"):
            found[("thread_id_argument", str(fname))] = f"first argument {arg} {argtype}"
        loose = _unpinned_references(body, r"p_thread_id")
        if loose:
            found[("one_thread_equality", str(fname))] = ", ".join(loose)
    return found


def test_schema_and_statements_follow_the_citus_rules(
    catalog: psycopg.Connection[object],
) -> None:
    found = _all_violations(catalog)
    new = sorted(set(found) - set(KNOWN_VIOLATIONS))
    fixed = sorted(set(KNOWN_VIOLATIONS) - set(found))
    assert not new, "new Citus rule violation(s):\n" + "\n".join(
        f"  {rule} in {name}: {' '.join(found[(rule, name)].split())[:200]}" for rule, name in new
    )
    assert not fixed, f"fixed, remove from KNOWN_VIOLATIONS: {fixed}"


def test_lint_catches_what_it_checks() -> None:
    """The checks themselves fail on statements that break each rule."""
    assert _statement_violations(
        "x", "INSERT INTO {schema}.blobs (a) VALUES (1) ON CONFLICT (checkpoint_ns) DO NOTHING"
    ) == {"on_conflict_target"}
    assert "recursive_cte_one_thread" in _statement_violations(
        "x",
        "WITH RECURSIVE w AS (SELECT 1 FROM {schema}.checkpoints WHERE thread_id = ANY (%(a)s))",
    )
    assert "recursive_cte_one_thread" in _statement_violations(
        "f",
        "WITH RECURSIVE w AS (SELECT 1 FROM {schema}.checkpoints c WHERE c.thread_id = v_thread "
        "UNION SELECT 1 FROM w JOIN {schema}.checkpoints p ON p.checkpoint_id = w.id)",
        FUNCTION_PIN,
    )
    assert _statement_violations(
        "f",
        "WITH RECURSIVE w AS (SELECT 1 FROM {schema}.checkpoints c WHERE c.thread_id = v_thread "
        "UNION SELECT 1 FROM w JOIN {schema}.checkpoints p ON p.thread_id = v_thread)",
        FUNCTION_PIN,
    ) == set()
    assert _unpinned_references(
        "SELECT 1 FROM {schema}.checkpoints c JOIN {schema}.writes w ON w.checkpoint_id = "
        "c.checkpoint_id WHERE c.thread_id = %(thread_id)s",
        r"%\(\w+\)s",
    ) == ["writes w"]
    assert _unpinned_references(
        "SELECT 1 FROM {schema}.checkpoints WHERE metadata ? 'x'", r"%\(\w+\)s"
    ) == ["checkpoints"]
    assert (
        _unpinned_references(
            "SELECT c.metadata, w.writes FROM {schema}.checkpoints c WHERE c.thread_id = %(t)s",
            r"%\(\w+\)s",
        )
        == []
    )
    assert _do_update_functions("ON CONFLICT (thread_id) DO UPDATE SET updated_at = now()") == {
        "now"
    }
