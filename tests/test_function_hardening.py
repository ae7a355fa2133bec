"""Issue 12, findings 1 and 2, and the sweep's bad-policy rule, attacked for real.

A low-privilege role that may CREATE in the saver's schema (here ``public``, the
default) plants objects that would run with a superuser's rights if our
functions resolved names through a search_path: an overload of a built-in with
a better-matching signature (``hashtextextended(text, integer)``, which the
sweep lock key used to reach), a shadowing ``now()``, and an operator. Then a
superuser sweeps through the library and the procedure. The planted code would
make the attacker SUPERUSER and copy stored values into the attacker's table;
none of it may run. Each hole has its own assertion.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import psycopg
import pytest
from psycopg import sql as pgsql

from pgcheckpoint import PostgresSaver, RetentionPolicy
from pgcheckpoint.errors import InvalidPolicyError
from test_retention import counts, ids, run
from test_retention import sql as query

ATTACKER = "pgc_attacker"

# Every planted function records that it ran and tries to escalate.
TRAP = """
CREATE TABLE public.loot (what text);
CREATE FUNCTION public.hashtextextended(text, integer) RETURNS bigint
LANGUAGE plpgsql AS $$ BEGIN
  INSERT INTO public.loot VALUES ('hashtextextended');
  EXECUTE 'ALTER ROLE pgc_attacker SUPERUSER';
  RETURN 42; END $$;
CREATE FUNCTION public.now() RETURNS timestamptz
LANGUAGE plpgsql AS $$ BEGIN
  INSERT INTO public.loot VALUES ('now');
  EXECUTE 'ALTER ROLE pgc_attacker SUPERUSER';
  RETURN pg_catalog.now(); END $$;
CREATE FUNCTION public.pg_column_size(bytea) RETURNS integer
LANGUAGE plpgsql AS $$ BEGIN
  INSERT INTO public.loot VALUES ('pg_column_size');
  RETURN 0; END $$;
CREATE FUNCTION public.cardinality(text[]) RETURNS integer
LANGUAGE plpgsql AS $$ BEGIN
  INSERT INTO public.loot VALUES ('cardinality');
  RETURN pg_catalog.cardinality($1); END $$;
CREATE FUNCTION public.trap_lt(bigint, integer) RETURNS boolean
LANGUAGE plpgsql AS $$ BEGIN
  INSERT INTO public.loot VALUES ('operator <');
  RETURN $1 OPERATOR(pg_catalog.<) $2; END $$;
CREATE OPERATOR public.< (LEFTARG = bigint, RIGHTARG = integer, FUNCTION = public.trap_lt);
CREATE FUNCTION public.format(text, text, text, integer, interval) RETURNS text
LANGUAGE plpgsql AS $$ BEGIN
  INSERT INTO public.loot VALUES ('format');
  RETURN 'SELECT 1'; END $$;
CREATE FUNCTION public.pg_table_size(oid) RETURNS bigint
LANGUAGE plpgsql AS $$ BEGIN
  INSERT INTO public.loot VALUES ('pg_table_size');
  RETURN 0; END $$;
"""


@pytest.fixture
def attacker(db_url: str) -> Iterator[str]:
    """The attacker's objects planted in public, by a role with only CREATE there."""
    with psycopg.connect(db_url, autocommit=True) as conn:
        conn.execute(f"DROP ROLE IF EXISTS {ATTACKER}")
        conn.execute(f"CREATE ROLE {ATTACKER} LOGIN")
        conn.execute(f"GRANT CREATE, USAGE ON SCHEMA public TO {ATTACKER}")
        conn.execute(f"SET ROLE {ATTACKER}")
        conn.execute(TRAP)
        conn.execute("GRANT INSERT ON public.loot TO PUBLIC")
        conn.execute("RESET ROLE")
    try:
        yield db_url
    finally:
        with psycopg.connect(db_url, autocommit=True) as conn:
            conn.execute(f"DROP OWNED BY {ATTACKER}")
            conn.execute(f"DROP ROLE {ATTACKER}")


def _loot(url: str) -> list[Any]:
    return [r[0] for r in query(url, "SELECT what FROM public.loot")]


def _escalated(url: str) -> bool:
    rows = query(url, "SELECT rolsuper FROM pg_roles WHERE rolname = %s", (ATTACKER,))
    return bool(rows[0][0])


def test_sweep_as_superuser_runs_no_planted_code(attacker: str) -> None:
    with PostgresSaver.from_conn_string(attacker, max_versions=1) as saver:
        for t in range(3):
            run(saver, f"t{t}", 2)
        report = saver.cleanup_old_checkpoints()
        assert report.checkpoints_deleted > 0
        saver.prune(["t0"], strategy="keep_latest")
        saver.delete_thread("t1")
        assert ids(saver, "t2")
        assert saver.storage_report().tables  # pg_table_size(oid) is not theirs
        assert saver.list_threads()
    with psycopg.connect(attacker, autocommit=True) as conn:
        # The procedure as psql or pg_cron calls it, with public first on the path.
        conn.execute("SET search_path = public, pg_catalog")
        conn.execute("CALL pgcheckpoint_sweep(%s)", (json.dumps({"keep_last": 1}),))
        conn.execute("SELECT pgcheckpoint_sweep_lock_key()")
    assert _loot(attacker) == []
    assert not _escalated(attacker)


def test_lock_key_is_the_one_of_migration_0004(db_url: str) -> None:
    """Hardening kept the key's value, so a sweeper of an older release and one of
    this release still exclude each other."""
    got = query(db_url, "SELECT pgcheckpoint_sweep_lock_key(), "
                        "hashtextextended('pgcheckpoint.sweep:public', 0)")
    assert got[0][0] == got[0][1]


@pytest.mark.parametrize(
    "stored",
    [
        {"keep_last": 2**31},
        {"keep_last": 1.5},
        {"max_age": 1e300},
        {"thread_ttl": -5},
        {"keep_lats": 3},
        {"keep_interrupted": "no"},
        ["keep_last", 1],
        "keep everything",
    ],
)
def test_a_bad_stored_policy_is_skipped_and_reported(db_url: str, stored: Any) -> None:
    """A thread whose stored policy cannot be applied (written by hand, or by an older
    release) is left as it is and reported; every other thread is swept."""
    with PostgresSaver.from_conn_string(db_url, max_versions=1) as saver:
        for t in ("bad", "good1", "good2"):
            run(saver, t, 2)
        query(db_url, "UPDATE threads SET retention = %s::jsonb WHERE thread_id = 'bad'",
              (json.dumps(stored),))
        before = len(ids(saver, "bad"))
        dry = saver.cleanup_old_checkpoints(dry_run=True)
        report = saver.cleanup_old_checkpoints()
        assert (report.bad_policy, report.bad_policy_threads) == (1, ("bad",))
        assert (dry.bad_policy, dry.bad_policy_threads) == (1, ("bad",))
        assert report.checkpoints_deleted == dry.checkpoints_deleted > 0
        assert len(ids(saver, "bad")) == before
        assert len(ids(saver, "good1")) == len(ids(saver, "good2")) == 1
        # The procedure does the same and says so.
        with psycopg.connect(db_url, autocommit=True) as conn:
            row = conn.execute("CALL pgcheckpoint_sweep(NULL, 1)").fetchone()
        assert row is not None and row[0]["bad_policy_threads"] == ["bad"]
        # Through the library, a bad policy is refused where it is made.
        with pytest.raises(InvalidPolicyError, match=r"keep_last must be at most"):
            saver.set_thread_retention("bad", RetentionPolicy(keep_last=2**31))


def test_caller_policy_is_checked_before_anything(db_url: str) -> None:
    with PostgresSaver.from_conn_string(db_url) as saver:
        run(saver, "t", 2)
    before = counts(db_url)
    with psycopg.connect(db_url, autocommit=True) as conn:
        with pytest.raises(psycopg.errors.InvalidParameterValue, match="keep_last"):
            conn.execute("CALL pgcheckpoint_sweep(%s)", (json.dumps({"keep_last": 0}),))
        # The lock was not kept: another sweep runs.
        row = conn.execute("CALL pgcheckpoint_sweep(NULL)").fetchone()
        assert row is not None and row[0]["skipped"] is False
    assert counts(db_url) == before


def test_lock_is_released_when_the_stray_step_fails(db_url: str) -> None:
    """The procedure releases the sweep lock on every path out, the stray step's
    errors included (it did not before)."""
    with psycopg.connect(db_url, autocommit=True) as conn:
        conn.execute("INSERT INTO writes (thread_id, checkpoint_id, task_id, idx, channel, type, "
                     "value, created_at) VALUES ('gone', '1', 't', 0, 'c', 'bytes', 'x', "
                     "now() - interval '2 hours')")
        # Make the stray delete fail: a trigger refuses deletes from writes.
        conn.execute("CREATE FUNCTION refuse() RETURNS trigger LANGUAGE plpgsql AS "
                     "$$ BEGIN RAISE EXCEPTION 'refused'; END $$")
        conn.execute("CREATE TRIGGER refuse BEFORE DELETE ON writes FOR EACH ROW "
                     "EXECUTE FUNCTION refuse()")
        with pytest.raises(psycopg.errors.RaiseException, match="refused"):
            conn.execute("CALL pgcheckpoint_sweep(NULL)")
        held = conn.execute(
            "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND pid = pg_backend_pid()"
        ).fetchone()
        assert held == (0,)
        conn.execute("DROP TRIGGER refuse ON writes")
        row = conn.execute("CALL pgcheckpoint_sweep(NULL)").fetchone()
        assert row is not None and row[0]["writes"] == 1


def test_old_release_calls_keep_working_after_upgrade(db_url: str) -> None:
    """What a process of the release before 0009 runs (its sweeper's statements and a
    pg_cron job it made) works unchanged against this release's functions."""
    with PostgresSaver.from_conn_string(db_url) as saver:
        for t in ("a", "b"):
            run(saver, t, 3)
        with psycopg.connect(db_url, autocommit=True) as conn:
            got = conn.execute("SELECT pg_try_advisory_lock(pgcheckpoint_sweep_lock_key())")
            assert got.fetchone() == (True,)
            rows = conn.execute(
                "SELECT tbl, n, bytes FROM pgcheckpoint_sweep_batch(%s::text[], %s::jsonb, "
                "%s::interval)", (["a", "b"], json.dumps({"keep_last": 2}), "1 hour")).fetchall()
            got_rows = {r[0]: r[1] for r in rows}
            assert set(got_rows) == {"threads", "checkpoints", "blobs", "chunks", "writes",
                                     "scanned"}
            assert got_rows["scanned"] == 2 and got_rows["checkpoints"] > 0
            strays = conn.execute("SELECT n, bytes FROM pgcheckpoint_sweep_strays("
                                  "'1 hour'::interval, 10000)").fetchall()
            assert strays == [(0, 0)]
            conn.execute("SELECT pg_advisory_unlock_all()")
            # The command an older schedule_cleanup gave pg_cron (three arguments).
            conn.execute(pgsql.SQL("CALL {}.pgcheckpoint_sweep(%s::jsonb, %s, %s::interval)")
                         .format(pgsql.Identifier("public")),
                         (json.dumps({"keep_last": 1}), 100, "1 hour"))
        assert len(ids(saver, "a")) == 1


def test_cli_cleanup_reports_bad_policy_threads(db_url: str) -> None:
    from click.testing import CliRunner

    from pgcheckpoint.cli import cli as pgcheckpoint_cli

    with PostgresSaver.from_conn_string(db_url) as saver:
        run(saver, "odd[red]", 2)
    query(db_url, "UPDATE threads SET retention = '{\"keep_last\": 0}'::jsonb")
    env = {"DATABASE_URL": db_url}
    shown = CliRunner().invoke(pgcheckpoint_cli, ["cleanup", "--keep-last", "1"], env=env)
    assert shown.exit_code == 0, shown.output
    assert "skipped 1 thread(s) whose stored retention policy is invalid" in shown.output
    assert "'odd[red]'" in shown.output  # database text is never rich markup
    as_json = CliRunner().invoke(pgcheckpoint_cli, ["cleanup", "--json"], env=env)
    assert as_json.exit_code == 0, as_json.output
    data = json.loads(as_json.stdout)
    assert (data["bad_policy"], data["bad_policy_threads"]) == (1, ["odd[red]"])
