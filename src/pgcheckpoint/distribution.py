"""Distributing the schema on Citus (docs/scaling.md).

On a database where the ``citus`` extension is installed, ``setup()`` ends by
making the schema a distributed one:

* the five per-thread tables are hash-distributed on ``thread_id`` in one
  colocation group of their own (``threads`` first, the others colocated with
  it), so every row of a thread lives in one shard group on one node and a
  statement filtered on one thread id runs on that node alone;
* the migrations bookkeeping becomes a reference table (a copy on every node);
* every function of the schema is registered with Citus, so a later
  ``CREATE OR REPLACE`` reaches the workers; a function whose first argument is
  ``p_thread_id text`` is distributed by that argument and colocated with the
  tables, so a call is delegated to the node holding the thread; the ones the
  saver calls inside its transactions (``FORCE_DELEGATED``: put and
  put_writes on Citus, prune, delete_checkpoint, rollback's lock) carry
  ``force_delegation``, without which Citus runs a call in a transaction block
  on the coordinator.

Each step first reads Citus's catalog (``pg_dist_partition``, ``pg_dist_object``)
and runs only what is missing, so re-running is a no-op. Tables that already
hold rows (a single-node database moved to Citus) are copied into their
shards by ``create_distributed_table`` and the local copy is then truncated.

Object names reach Citus's functions as bound parameters (``regclass`` and
``regprocedure`` text built from the quoted schema), never as SQL text; the
statements are named ones (``sql/queries/distribution.sql``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from psycopg import sql

from ._plans import PlanGen, Query
from ._queries import quote_schema, statement
from .errors import ConfigurationError, SchemaError

Distributed = bool | Literal["auto"]

# The per-thread tables, the anchor of the colocation group first.
TABLES = ("threads", "checkpoints", "blobs", "chunks", "writes")
ANCHOR = "threads"
DISTRIBUTION_COLUMN = "thread_id"
REFERENCE_TABLES = ("pgcheckpoint_migrations",)
# A schema function whose first argument has this name (and type text) carries
# one thread id: Citus delegates its calls to the node holding that thread.
THREAD_ARGUMENT = "p_thread_id"
# Functions of one thread called on their own by the saver, also inside its
# transactions (put, put_writes, prune, delete_checkpoint, rollback): distributed with
# force_delegation, so Citus sends each call whole to the thread's node even in
# a transaction block. Each touches only rows of p_thread_id (Citus checks it on
# the worker). The other thread-id functions (the put guard, the sweep's) are
# called from inside other statements or functions, where delegation does not
# apply, and keep the plain distribution.
FORCE_DELEGATED = (
    "pgcheckpoint_delete_checkpoint", "pgcheckpoint_lock_thread", "pgcheckpoint_prune_thread",
    "pgcheckpoint_put", "pgcheckpoint_put_writes",
)  # fmt: skip

NO_CITUS = (
    "setup(distributed=True): the citus extension is not installed in this database; "
    "run CREATE EXTENSION citus on the Citus coordinator first (docs/scaling.md)"
)
# Whether the citus extension is installed (the named statement; it names no
# schema object, so any schema binds it).
HAS_CITUS = statement("has_citus", "public")


def check_option(value: object) -> Distributed:
    """``setup(distributed=...)``: True, False or "auto"; anything else is refused."""
    if value is True or value is False or value == "auto":
        return value
    raise ConfigurationError(f'distributed must be True, False or "auto", got {value!r}')


def qualified(schema: str, name: str) -> str:
    """``schema.name`` with the schema quoted, as text for a ``regclass`` parameter."""
    return f"{quote_schema(schema)}.{name}"


@dataclass(frozen=True, slots=True)
class FunctionState:
    """One function of the schema as Citus sees it."""

    signature: str
    routed: bool  # its first argument is p_thread_id text
    registered: bool
    distribution_argument: int | None
    colocation_id: int | None
    force_delegation: bool
    delegated: bool  # should be force-delegated (FORCE_DELEGATED)


def distribute_steps(schema: str, distributed: Distributed) -> PlanGen[list[str]]:
    """The statements that distribute ``schema`` (what is not done yet); returns what
    was done, one line each. Run in autocommit mode (Citus commits each step)."""
    if distributed is False:
        return []
    def q(name: str) -> str:
        return statement(name, schema)

    rows = yield Query(q("has_citus"), None, fetch="all", prepare=False)
    if not (rows and rows[0][0]):
        if distributed is True:
            raise SchemaError(NO_CITUS)
        return []
    done: list[str] = []
    names = [qualified(schema, t) for t in (*TABLES, *REFERENCE_TABLES)]
    rows = yield Query(q("citus_table_state"), {"tables": names}, fetch="all", prepare=False)
    state = {str(name): (kind, column) for name, kind, column, _ in rows or []}
    anchor = qualified(schema, ANCHOR)
    for table in TABLES:
        name = qualified(schema, table)
        kind, column = state[name]
        if kind == "h":
            if column != DISTRIBUTION_COLUMN:
                raise SchemaError(
                    f"table {name} is distributed on {column!r}, not on "
                    f"{DISTRIBUTION_COLUMN!r}; pgcheckpoint needs every per-thread table "
                    "distributed on thread_id (see docs/scaling.md)"
                )
            continue
        if kind is not None:
            raise SchemaError(
                f"table {name} is a Citus table of another kind ({kind!r}); pgcheckpoint "
                "needs it hash-distributed on thread_id (see docs/scaling.md)"
            )
        colocate_with = "none" if table == ANCHOR else anchor
        params = {"table": name, "column": DISTRIBUTION_COLUMN, "colocate_with": colocate_with}
        yield Query(q("citus_distribute"), params, fetch="all", prepare=False)
        yield Query(q("citus_truncate_local"), {"table": name}, fetch="all", prepare=False)
        done.append(f"distributed {name} on {DISTRIBUTION_COLUMN}")
    for table in REFERENCE_TABLES:
        name = qualified(schema, table)
        if state[name][0] is None:
            yield Query(q("citus_reference"), {"table": name}, fetch="all", prepare=False)
            done.append(f"made {name} a reference table")
    rows = yield Query(
        q("citus_function_state"),
        {"schema": schema, "thread_argument": THREAD_ARGUMENT, "delegated": list(FORCE_DELEGATED)},
        fetch="all",
        prepare=False,
    )
    for function in (FunctionState(*row) for row in rows or []):
        if function.routed and (
            function.distribution_argument != 0
            or function.force_delegation != function.delegated
        ):
            route: dict[str, object] = {
                "function": function.signature,
                "colocate_with": anchor,
                "force_delegation": function.delegated,
            }
            yield Query(q("citus_route_function"), route, fetch="all", prepare=False)
            how = " (force_delegation)" if function.delegated else ""
            done.append(f"distributed {function.signature} by its thread id{how}")
        elif not function.routed and not function.registered:
            yield Query(
                q("citus_register_function"), {"function": function.signature}, fetch="all",
                prepare=False,
            )
            done.append(f"propagated {function.signature} to the workers")
    return done


# `pgcheckpoint migrate apply --print-sql --distributed`: the same steps as
# distribute_steps, as SQL a DBA runs on the coordinator after the migrations.
# Each statement checks Citus's catalog itself, so running the text again (or
# after setup() distributed some of it) changes nothing.
_PRINT_DISTRIBUTE = (
    "SELECT pg_catalog.create_distributed_table({table}::regclass, {column}, "
    "colocate_with => {colocate_with})\n"
    "WHERE NOT EXISTS (SELECT 1 FROM pg_catalog.pg_dist_partition "
    "WHERE logicalrelid = {table}::regclass);\n"
    "SELECT pg_catalog.truncate_local_data_after_distributing_table({table}::regclass);"
)
_PRINT_REFERENCE = (
    "SELECT pg_catalog.create_reference_table({table}::regclass)\n"
    "WHERE NOT EXISTS (SELECT 1 FROM pg_catalog.pg_dist_partition "
    "WHERE logicalrelid = {table}::regclass);"
)
# The schema's functions, chosen by the rule of _FUNCTION_STATE: routed by their
# thread id when the first argument is p_thread_id text, else only registered.
_PRINT_FUNCTIONS = (
    "SELECT pg_catalog.create_distributed_function(p.oid::pg_catalog.regprocedure, '$1', "
    "colocate_with => {anchor}, force_delegation => p.proname = ANY ({delegated}::text[]))\n"
    "FROM pg_catalog.pg_proc p JOIN pg_catalog.pg_namespace n ON n.oid = p.pronamespace\n"
    "LEFT JOIN pg_catalog.pg_dist_object o\n"
    "       ON o.classid = 'pg_catalog.pg_proc'::pg_catalog.regclass AND o.objid = p.oid\n"
    "WHERE n.nspname = {schema} AND p.pronargs > 0\n"
    "  AND p.proargtypes[0] = 'pg_catalog.text'::pg_catalog.regtype\n"
    "  AND (p.proargnames)[1] = {argument}\n"
    "  AND (o.distribution_argument_index IS DISTINCT FROM 0\n"
    "       OR coalesce(o.force_delegation, false)\n"
    "          IS DISTINCT FROM (p.proname = ANY ({delegated}::text[])));\n"
    "SELECT pg_catalog.create_distributed_function(p.oid::pg_catalog.regprocedure)\n"
    "FROM pg_catalog.pg_proc p JOIN pg_catalog.pg_namespace n ON n.oid = p.pronamespace\n"
    "WHERE n.nspname = {schema}\n"
    "  AND NOT (p.pronargs > 0 AND p.proargtypes[0] = 'pg_catalog.text'::pg_catalog.regtype\n"
    "           AND coalesce((p.proargnames)[1] = {argument}, false))\n"
    "  AND NOT EXISTS (SELECT 1 FROM pg_catalog.pg_dist_object o\n"
    "                  WHERE o.classid = 'pg_catalog.pg_proc'::pg_catalog.regclass\n"
    "                    AND o.objid = p.oid);"
)


def render_sql(schema: str) -> str:
    """What ``setup()`` does on Citus, as idempotent SQL for the coordinator
    (names quoted as SQL literals, never spliced in by hand)."""

    def text(template: str, **values: object) -> str:
        literals = {k: sql.Literal(v) for k, v in values.items()}
        return sql.SQL(template).format(**literals).as_string(None)

    anchor = qualified(schema, ANCHOR)
    out = [
        "-- Citus (docs/scaling.md): on the coordinator, after the migrations above;",
        "-- each statement skips what is already distributed.",
    ]
    for table in TABLES:
        colocate_with = "none" if table == ANCHOR else anchor
        out.append(
            text(
                _PRINT_DISTRIBUTE,
                table=qualified(schema, table),
                column=DISTRIBUTION_COLUMN,
                colocate_with=colocate_with,
            )
        )
    for table in REFERENCE_TABLES:
        out.append(text(_PRINT_REFERENCE, table=qualified(schema, table)))
    out.append(
        text(
            _PRINT_FUNCTIONS,
            anchor=anchor,
            schema=schema,
            argument=THREAD_ARGUMENT,
            delegated=list(FORCE_DELEGATED),
        )
    )
    return "\n".join(out) + "\n"
