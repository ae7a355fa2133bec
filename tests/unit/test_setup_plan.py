"""``setup()``'s plan (``migrations.setup_plan``) driven with canned rows: the lock-free
fast path, the locked path and its second look, with no database."""

from __future__ import annotations

from typing import Any

import pytest

from _plan_driver import Driver, drive
from pgcheckpoint import routines
from pgcheckpoint._queries import statement
from pgcheckpoint.errors import MigrationError, SchemaError
from pgcheckpoint.migrations import all_migrations, latest_version, lock_key, setup_plan

SCHEMA = "app"
# The runner's named statements (sql/queries/migrations.sql), by a short name.
ALIASES = {
    "relation_exists": "exists", "migrations_applied": "applied", "migrate_lock": "lock",
    "has_citus": "has_citus", "schema_exists": "schema_exists", "may_migrate": "may_migrate",
    "create_schema": "schema", "create_migrations_table": "table",
    "migrations_compat_column": "compat_column", "migration_record": "record",
    "migrations_newer": "newer", "migrations_details": "details",
    "migrations_has_compat": "has_compat", "routines_state": "routines",
    "routines_overloaded": "overloaded",
}  # fmt: skip
# routines_state of a schema whose functions are this release's (nothing to apply).
CURRENT = [(r.name, r.record) for r in routines.all_routines()]


def _names(schema: str = SCHEMA) -> dict[str, str]:
    """The migration runner's statements and the Citus probe, by name."""
    names = {statement(name, schema): alias for name, alias in ALIASES.items()}
    for m in all_migrations():
        names[m.render(schema)] = f"migration {m.version}"
        for each in m.statements(schema):
            names[each] = f"migration {m.version}"
    return names


def _applied(upto: int | None = None) -> list[tuple[Any, ...]]:
    """The ``applied`` rows of a database migrated up to ``upto`` (all by default)."""
    return [(m.version, m.checksum) for m in all_migrations() if upto is None or m.version <= upto]


def test_an_up_to_date_schema_returns_without_the_lock() -> None:
    plan = setup_plan(SCHEMA, distributed=False)
    script = {"exists": [[(True,)]], "applied": [_applied()], "routines": [CURRENT]}
    done, d = drive(plan, script, names=_names())
    assert done == []
    assert d.issued_names == ["exists", "applied", "routines"]  # reads: cheap at every start
    assert d.params_of("exists") == [{"table": '"app".pgcheckpoint_migrations'}]


def test_auto_distribution_asks_for_citus_then_returns_without_the_lock() -> None:
    script = {"exists": [[(True,)]], "applied": [_applied()], "routines": [CURRENT],
              "has_citus": [[(False,)]]}
    done, d = drive(setup_plan(SCHEMA), script, names=_names())
    assert done == [] and d.issued_names == ["exists", "applied", "routines", "has_citus"]


def test_a_fresh_database_is_migrated_under_the_lock_one_transaction_per_file() -> None:
    script = {
        "exists": [[(False,)], [(False,)], [(False,)]],  # fast path, ours, a foreign table
        "lock": [[(None,)]],
        "schema_exists": [[(False,)]],
        "applied": [[]],
        "routines": [CURRENT],
    }
    done, d = drive(setup_plan(SCHEMA, distributed=False), script, names=_names())
    assert done == [m.version for m in all_migrations()] and done[-1] == latest_version()
    names = d.issued_names
    assert names[:5] == ["exists", "lock", "exists", "exists", "schema_exists"]
    assert d.params_of("lock") == [{"key": lock_key(SCHEMA)}]
    # Nothing is created before the lock is held.
    first_ddl = names.index("schema")
    assert names.index("lock") < first_ddl
    assert names[first_ddl : first_ddl + 4] == ["schema", "table", "compat_column", "applied"]
    recorded = [p for p in d.params_of("record") if p is not None]
    assert [r["version"] for r in recorded] == done
    assert [r["checksum"] for r in recorded] == [m.checksum for m in all_migrations()]
    # Each transactional file runs between BEGIN and COMMIT with its version row;
    # a no-transaction file runs statement by statement and then records itself.
    for m in all_migrations():
        at = names.index(f"migration {m.version}")
        record_at = names.index("record", at)
        if m.transactional:
            assert names[at - 1] == "BEGIN" and names[at + 1 : at + 3] == ["record", "COMMIT"]
        else:
            assert "BEGIN" not in names[at:record_at] and "COMMIT" not in names[at:record_at]


def test_setup_sends_its_own_transactions_and_always_releases_the_lock() -> None:
    plan = setup_plan(SCHEMA, distributed=False)
    assert plan.own_transactions  # some files cannot run inside a transaction
    assert plan.cleanup is not None and "pg_advisory_unlock_all" in plan.cleanup.sql


def test_the_locked_path_looks_again_and_applies_nothing_another_process_applied() -> None:
    """Two processes both see a migration missing; the second to get the lock finds it
    applied by the first and applies nothing."""
    behind = latest_version() - 1
    script = {
        "exists": [[(True,)], [(True,)]],
        "applied": [_applied(upto=behind), _applied()],
        "may_migrate": [[(True, "owner")]],
        "lock": [[(None,)]],
        "schema_exists": [[(True,)]],
        "routines": [CURRENT, CURRENT],
    }
    done, d = drive(setup_plan(SCHEMA, distributed=False), script, names=_names())
    assert done == []
    assert "lock" in d.issued_names and "record" not in d.issued_names
    assert not [n for n in d.issued_names if n.startswith("migration ")]


def test_a_role_that_cannot_migrate_is_told_so_before_the_lock() -> None:
    script = {
        "exists": [[(True,)]],
        "applied": [_applied(upto=latest_version() - 1)],
        "may_migrate": [[(False, "app_runtime")]],
        "routines": [CURRENT],
    }
    driver = Driver(script, names=_names())
    with pytest.raises(SchemaError, match="role 'app_runtime' does not own"):
        driver.run(setup_plan(SCHEMA, distributed=False))
    assert driver.issued_names == ["exists", "applied", "routines", "may_migrate"]


def test_a_changed_function_is_applied_under_the_lock_in_one_transaction() -> None:
    """Only the function whose record differs is re-applied, then recorded, all in one
    transaction after the migrations."""
    stale = [(n, "pgcheckpoint revision 1 sha256 " + "0" * 64 if n == "pgcheckpoint_gc" else c)
             for n, c in CURRENT]
    script = {
        "exists": [[(True,)], [(True,)]],
        "applied": [_applied(), _applied()],
        "routines": [stale, stale],
        "may_migrate": [[(True, "owner")]],
        "lock": [[(None,)]],
        "schema_exists": [[(True,)]],
        "overloaded": [[]],
    }
    gc = next(r for r in routines.all_routines() if r.name == "pgcheckpoint_gc")
    names = {**_names(), gc.render(SCHEMA): "gc", gc.comment_statement(SCHEMA): "gc comment"}
    done, d = drive(setup_plan(SCHEMA, distributed=False), script, names=names)
    assert done == []
    tail = d.issued_names[d.issued_names.index("lock"):]
    assert tail[-5:] == ["BEGIN", "gc", "overloaded", "gc comment", "COMMIT"]


def test_a_foreign_checkpoints_table_is_refused_before_anything_is_created() -> None:
    script = {"exists": [[(False,)], [(False,)], [(True,)]], "lock": [[(None,)]]}
    driver = Driver(script, names=_names())
    with pytest.raises(SchemaError, match="langgraph-checkpoint-postgres"):
        driver.run(setup_plan(SCHEMA, distributed=False))
    assert driver.issued_names == ["exists", "lock", "exists", "exists"]
    assert driver.params_of("exists")[-1] == {"table": '"app".checkpoints'}


def test_a_migration_applied_with_another_text_stops_setup() -> None:
    rows = _applied()
    rows[0] = (rows[0][0], "0" * 64)
    driver = Driver({"exists": [[(True,)]], "applied": [rows]}, names=_names())
    with pytest.raises(MigrationError, match="different text"):
        driver.run(setup_plan(SCHEMA, distributed=False))
    assert "lock" not in driver.issued_names


def test_distributed_true_without_citus_is_refused_before_any_migration() -> None:
    driver = Driver({"has_citus": [[(False,)]]}, names=_names())
    with pytest.raises(SchemaError, match="citus extension is not installed"):
        driver.run(setup_plan(SCHEMA, distributed=True))
    assert driver.issued_names == ["has_citus"]
