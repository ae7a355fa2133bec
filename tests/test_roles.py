"""Least privilege (docs/security.md): the owner, runtime and read-only roles, for real.

Every test makes its three roles with unique names (roles are cluster-wide and
other test sessions may run at once), connects as them and drops them after.
The runtime role runs the conformance suite, a real graph (interrupt, resume,
history), the sweeper (library and ``CALL pgcheckpoint_sweep``) and an NDJSON
import, and is shown unable to create, alter, drop or truncate anything.
"""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
from click.testing import CliRunner
from langgraph.checkpoint.conformance import checkpointer_test, validate
from langgraph.checkpoint.conformance.capabilities import ALL_CAPABILITIES
from langgraph.checkpoint.serde.jsonplus import JsonPlusSerializer
from langgraph.types import Command
from psycopg import sql
from psycopg.conninfo import make_conninfo

from graph_fixtures import build_graph, populate
from pgcheckpoint import AsyncPostgresSaver, PostgresSaver, RetentionPolicy
from pgcheckpoint.cli import cli as pgcheckpoint_cli
from pgcheckpoint.errors import ConfigurationError, PgCheckpointError, SchemaError, StorageError
from pgcheckpoint.roles import RoleNames, apply, plan_statements, read_state, render
from pgcheckpoint.transfer import export_file, import_ndjson

ODD = 'My "Odd" Schema'


def as_role(url: str, role: str) -> str:
    """``url`` logging in as ``role`` (the test servers trust local connections)."""
    return make_conninfo(url, user=role)


@contextlib.contextmanager
def three_roles(admin_url: str) -> Iterator[RoleNames]:
    """Unique role names for this test; everything they own or were granted is
    dropped with them afterwards."""
    names = RoleNames.from_prefix(f"pgc_t_{uuid.uuid4().hex[:10]}")
    try:
        yield names
    finally:
        with psycopg.connect(admin_url, autocommit=True) as conn:
            # One role at a time: DROP OWNED BY with several roles sharing one
            # default ACL fails on PostgreSQL 15 ("could not find tuple for default ACL").
            for name in (names.readonly, names.runtime, names.owner):
                if conn.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", [name]).fetchone():
                    conn.execute(sql.SQL("DROP OWNED BY {} CASCADE").format(sql.Identifier(name)))
                    conn.execute(sql.SQL("DROP ROLE {}").format(sql.Identifier(name)))


@pytest.fixture
def roles_on(db_url: str) -> Iterator[RoleNames]:
    """The three roles on this test's migrated database (schema public, made by the
    superuser: ``roles create`` hands pgcheckpoint's objects to the owner)."""
    with three_roles(db_url) as names:
        with psycopg.connect(db_url, autocommit=True) as conn:
            apply(conn, "public", names)
        yield names


@pytest.fixture
def odd_schema(empty_db_url: str) -> Iterator[tuple[str, RoleNames]]:
    """A fresh database: roles created first, then setup() by the owner into ``ODD``."""
    with three_roles(empty_db_url) as names:
        with psycopg.connect(empty_db_url, autocommit=True) as conn:
            apply(conn, ODD, names)
        with PostgresSaver.from_conn_string(as_role(empty_db_url, names.owner), schema=ODD) as s:
            assert s.setup() is None
            assert s.migration_status()
        yield empty_db_url, names


def sqlstate_of(url: str, statement: sql.Composable | str) -> str | None:
    """Run one statement on its own connection; the SQLSTATE it failed with (None: ran)."""
    with psycopg.connect(url, autocommit=True) as conn:
        try:
            conn.execute(statement)
        except psycopg.Error as exc:
            return exc.sqlstate
    return None


# --- the owner's setup and the runtime's no-op setup ------------------------------------
def test_owner_sets_up_a_hostile_schema_the_runtime_uses_it(
    odd_schema: tuple[str, RoleNames],
) -> None:
    url, names = odd_schema
    runtime = as_role(url, names.runtime)
    with PostgresSaver.from_conn_string(runtime, schema=ODD) as saver:
        saver.setup()  # up to date: reads the migrations table, nothing more
        graph = build_graph(saver)
        config: Any = {"configurable": {"thread_id": "t1"}}
        graph.invoke({"messages": [("user", "hi")], "count": 0}, config)
        assert graph.get_state(config).next == ("ask",)
        graph.invoke(Command(resume="yes"), config)
        assert graph.get_state(config).next == ()
        assert len(list(graph.get_state_history(config))) >= 5
    with psycopg.connect(url) as conn:
        owners = conn.execute(
            "SELECT DISTINCT pg_get_userbyid(relowner) FROM pg_class c JOIN pg_namespace n "
            "ON n.oid = c.relnamespace WHERE n.nspname = %s AND relkind = 'r'",
            [ODD],
        ).fetchall()
    assert owners == [(names.owner,)]


def test_runtime_setup_on_a_current_schema_takes_no_lock(
    odd_schema: tuple[str, RoleNames],
) -> None:
    url, names = odd_schema
    with psycopg.connect(as_role(url, names.runtime), autocommit=True) as conn:
        PostgresSaver(conn, schema=ODD).setup()
        locks = conn.execute(
            "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND pid = pg_backend_pid()"
        ).fetchone()
    assert locks == (0,)


def test_runtime_setup_on_an_old_schema_says_run_it_as_owner(
    odd_schema: tuple[str, RoleNames],
) -> None:
    url, names = odd_schema
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(
            sql.SQL("DELETE FROM {} WHERE version = (SELECT max(version) FROM {})").format(
                sql.Identifier(ODD, "pgcheckpoint_migrations"),
                sql.Identifier(ODD, "pgcheckpoint_migrations"),
            )
        )
    runtime = as_role(url, names.runtime)
    with (
        PostgresSaver.from_conn_string(runtime, schema=ODD) as saver,
        pytest.raises(SchemaError, match="as the owner role") as err,
    ):
        saver.setup()
    assert names.runtime in str(err.value)


# --- what the runtime and read-only roles cannot do --------------------------------------
def test_runtime_cannot_create_alter_drop_or_truncate(odd_schema: tuple[str, RoleNames]) -> None:
    url, names = odd_schema
    runtime = as_role(url, names.runtime)
    s = sql.Identifier(ODD)
    t = sql.Identifier(ODD, "checkpoints")
    denied = {
        "create table": sql.SQL("CREATE TABLE {}.planted (x int)").format(s),
        "create function": sql.SQL(
            "CREATE FUNCTION {}.lower(text) RETURNS text LANGUAGE sql AS 'SELECT $1'"
        ).format(s),
        "alter table": sql.SQL("ALTER TABLE {} ADD COLUMN planted int").format(t),
        "drop table": sql.SQL("DROP TABLE {}").format(t),
        "truncate": sql.SQL("TRUNCATE {}").format(t),
        "drop function": sql.SQL("DROP ROUTINE {}").format(sql.Identifier(ODD, "pgcheckpoint_gc")),
        "write migrations": sql.SQL("DELETE FROM {}").format(
            sql.Identifier(ODD, "pgcheckpoint_migrations")
        ),
        "create schema": sql.SQL("CREATE SCHEMA planted"),
    }
    for what, statement in denied.items():
        assert sqlstate_of(runtime, statement) in ("42501", "42809"), what
    # ...while the owner may (the same statement, to show it is privilege that stops it).
    assert sqlstate_of(as_role(url, names.owner), denied["create table"]) is None


def test_readonly_lists_and_reads_but_cannot_write(odd_schema: tuple[str, RoleNames]) -> None:
    url, names = odd_schema
    with PostgresSaver.from_conn_string(as_role(url, names.runtime), schema=ODD) as saver:
        populate(saver, threads=2)
    with PostgresSaver.from_conn_string(as_role(url, names.readonly), schema=ODD) as reader:
        reader.setup()
        tuples = list(reader.list({"configurable": {"thread_id": "thread-0"}}))
        assert tuples
        got = reader.get_tuple(tuples[0].config)
        assert got is not None and got.checkpoint == tuples[0].checkpoint
        with pytest.raises(StorageError, match="42501"):
            reader.delete_thread("thread-0")
        with pytest.raises(StorageError, match="42501"):
            populate(reader, threads=1)
    assert (
        sqlstate_of(
            as_role(url, names.readonly),
            sql.SQL("DELETE FROM {}").format(sql.Identifier(ODD, "blobs")),
        )
        == "42501"
    )


# --- the sweeper and an import as the runtime role ---------------------------------------
def test_sweeper_and_procedure_run_as_runtime(roles_on: RoleNames, db_url: str) -> None:
    runtime = as_role(db_url, roles_on.runtime)
    policy = RetentionPolicy(keep_last=1)
    with PostgresSaver.from_conn_string(runtime, retention=policy) as saver:
        ids = populate(saver, threads=3)
        before = sum(len(list(saver.list({"configurable": {"thread_id": t}}))) for t in ids)
        report = saver.cleanup_old_checkpoints()
        after = sum(len(list(saver.list({"configurable": {"thread_id": t}}))) for t in ids)
    assert report.checkpoints_deleted > 0 and after < before
    with PostgresSaver.from_conn_string(runtime) as saver:
        populate(saver, threads=1)
    with psycopg.connect(runtime, autocommit=True) as conn:
        conn.execute("CALL public.pgcheckpoint_sweep(%s)", ['{"keep_last": 1}'])
        left = conn.execute(
            "SELECT count(*) FROM checkpoints WHERE thread_id = 'thread-0' AND checkpoint_ns = ''"
        ).fetchone()
    assert left == (1,)


def test_ndjson_import_runs_as_runtime(
    roles_on: RoleNames, db_url: str, make_db_url: Callable[[bool], str], tmp_path: Path
) -> None:
    source = make_db_url(True)
    with PostgresSaver.from_conn_string(source) as saver:
        ids = populate(saver, threads=2)
        export_file(saver, tmp_path / "out.ndjson")
    with PostgresSaver.from_conn_string(as_role(db_url, roles_on.runtime)) as saver:
        report = import_ndjson(saver, tmp_path / "out.ndjson")
        assert report.verified
        for tid in ids:
            assert list(saver.list({"configurable": {"thread_id": tid}}))


# --- the conformance suite as the runtime role ----------------------------------------------
@pytest.mark.parametrize("kind", ["AsyncPostgresSaver", "PostgresSaver"])
async def test_conformance_as_runtime(kind: str, roles_on: RoleNames, db_url: str) -> None:
    url = as_role(db_url, roles_on.runtime)

    async def make() -> Any:
        if kind == "AsyncPostgresSaver":
            async with AsyncPostgresSaver.from_conn_string(url) as s:
                await s.setup()
                yield s
        else:
            with PostgresSaver.from_conn_string(url) as s:
                s.setup()
                yield s

    failures: list[str] = []
    registered = checkpointer_test(name=f"runtime:{kind}")(make)
    report = await validate(registered, capabilities={c.value for c in ALL_CAPABILITIES})
    for cap, result in report.results.items():
        assert result.detected, cap
        if result.tests_failed:
            failures.extend(f"{cap}: {f}" for f in result.failures)
        assert result.tests_passed > 0, cap
    assert not failures, "\n".join(failures)


# --- health_check ----------------------------------------------------------------------------
def test_health_warns_about_superuser_owner_and_serde(roles_on: RoleNames, db_url: str) -> None:
    with PostgresSaver.from_conn_string(as_role(db_url, roles_on.runtime)) as saver:
        report = saver.health_check()
    assert report.ok and report.role == roles_on.runtime
    assert report.superuser is False and report.table_owner is False
    assert not report.warnings, report.warnings

    with PostgresSaver.from_conn_string(as_role(db_url, roles_on.owner)) as saver:
        report = saver.health_check()
    assert report.table_owner is True
    assert any("owns pgcheckpoint's tables" in w for w in report.warnings)

    with PostgresSaver.from_conn_string(db_url) as saver:
        report = saver.health_check()
    assert report.superuser is True
    assert any("superuser" in w for w in report.warnings)

    # A runtime role given CREATE on the schema (the planting risk of issue 12.1).
    with psycopg.connect(db_url, autocommit=True) as conn:
        conn.execute(
            sql.SQL("GRANT CREATE ON SCHEMA public TO {}").format(sql.Identifier(roles_on.runtime))
        )
    with PostgresSaver.from_conn_string(as_role(db_url, roles_on.runtime)) as saver:
        report = saver.health_check()
    assert any("may CREATE in pgcheckpoint's schema" in w for w in report.warnings)
    with psycopg.connect(db_url, autocommit=True) as conn:
        conn.execute(
            sql.SQL("REVOKE CREATE ON SCHEMA public FROM {}").format(
                sql.Identifier(roles_on.runtime)
            )
        )

    permissive = JsonPlusSerializer(allowed_msgpack_modules=True)
    with PostgresSaver.from_conn_string(
        as_role(db_url, roles_on.runtime), serde=permissive
    ) as saver:
        report = saver.health_check()
    assert any("allows every msgpack module" in w for w in report.warnings)

    class Custom(JsonPlusSerializer):
        pass

    with PostgresSaver.from_conn_string(
        as_role(db_url, roles_on.runtime), serde=Custom(allowed_msgpack_modules=None)
    ) as saver:
        report = saver.health_check()
    assert any("not the serializer pgcheckpoint builds" in w for w in report.warnings)
    # The default serde, with an allowlist added, is pgcheckpoint's: no warning.
    with PostgresSaver.from_conn_string(as_role(db_url, roles_on.runtime)) as saver:
        report = saver.with_allowlist([("collections", "OrderedDict")]).health_check()
    assert not report.warnings, report.warnings


# --- the SQL: printed, reviewable, re-runnable --------------------------------------------
def test_print_sql_is_what_a_dba_runs(empty_db_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    secret = "s3cr%t pass@[word]"
    monkeypatch.setenv("PGCHECKPOINT_RUNTIME_PASSWORD", secret)
    with three_roles(empty_db_url) as names:
        args = [
            "roles",
            "create",
            "--dsn",
            empty_db_url,
            "--schema",
            ODD,
            "--owner",
            names.owner,
            "--runtime",
            names.runtime,
            "--readonly",
            names.readonly,
        ]
        result = CliRunner().invoke(pgcheckpoint_cli, [*args, "--print-sql"])
        assert result.exit_code == 0, result.output
        text = result.output
        assert secret not in text and "PASSWORD" not in text
        assert '"My ""Odd"" Schema"' in text
        assert "ALTER DEFAULT PRIVILEGES FOR ROLE" in text
        with psycopg.connect(empty_db_url, autocommit=True) as conn:
            conn.execute(text.encode())
        with PostgresSaver.from_conn_string(as_role(empty_db_url, names.owner), schema=ODD) as s:
            s.setup()
        with PostgresSaver.from_conn_string(as_role(empty_db_url, names.runtime), schema=ODD) as s:
            populate(s, threads=1)
        # Run for real (now idempotent: the roles exist); the password is set, never shown.
        result = CliRunner().invoke(pgcheckpoint_cli, [*args, "--json"])
        assert result.exit_code == 0, result.output
        assert secret not in result.output
        assert "password_runtime" in result.output
        with psycopg.connect(empty_db_url) as conn:
            row = conn.execute(
                "SELECT rolpassword FROM pg_authid WHERE rolname = %s", [names.runtime]
            ).fetchone()
            state = read_state(conn, ODD, names)
        assert row is not None and str(row[0]).startswith("SCRAM-SHA-256$")
        # A second plan creates nothing and changes no owner.
        again = [n for n, _ in plan_statements(ODD, names, state)]
        assert not [n for n in again if n.startswith(("create_", "own_"))], again
        assert "BEGIN;" in render(plan_statements(ODD, names, state), None)


def test_roles_create_never_prints_a_password(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PGCHECKPOINT_OWNER_PASSWORD", "owner-Secret-9")
    for dsn, secret in [
        ("postgresql://admin:pa%zz@127.0.0.1:1/app", "pa%zz"),
        ("host=127.0.0.1 port=1 user=admin password=Hunter2Secret dbname=app", "Hunter2Secret"),
    ]:
        result = CliRunner().invoke(pgcheckpoint_cli, ["roles", "create", "--dsn", dsn])
        assert result.exit_code == 1, result.output
        assert secret not in result.output and "owner-Secret-9" not in result.output
        assert "Error" in result.output


@pytest.mark.parametrize(
    "kw",
    [{"owner": "pg_mine"}, {"runtime": ""}, {"readonly": "x" * 64}, {"owner": "a", "runtime": "a"}],
)
def test_bad_role_names_are_refused(kw: dict[str, str]) -> None:
    with pytest.raises(ConfigurationError):
        RoleNames.from_prefix("app", **kw)
    assert issubclass(ConfigurationError, PgCheckpointError)


def test_role_statements_are_named_blocks_of_roles_sql() -> None:
    """roles.py writes no SQL of its own: every statement it runs or prints is a
    named block of sql/queries/roles.sql, composed with psycopg.sql."""
    import inspect
    import re

    from pgcheckpoint import roles

    source = inspect.getsource(roles)
    inline = re.findall(r"[\"'](?:GRANT|REVOKE|ALTER|CREATE|SELECT) [^\"']*", source)
    assert inline == []
    state = roles.DatabaseState("db", "admin", False, frozenset(), None, {}, {}, False)
    script = render(plan_statements(ODD, RoleNames.from_prefix(), state), None)
    assert 'GRANT USAGE ON SCHEMA "My ""Odd"" Schema" TO "pgcheckpoint_runtime";' in script
