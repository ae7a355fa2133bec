"""Least privilege: the owner, runtime and read-only roles, and the SQL that makes them.

Three roles (docs/security.md):

- the **owner** owns pgcheckpoint's tables and functions and runs ``setup()``
  (the migrations); nothing else should log in as it;
- the **runtime** role is what the application's saver connects as: USAGE on
  the schema, SELECT/INSERT/UPDATE/DELETE on pgcheckpoint's tables (SELECT only
  on ``pgcheckpoint_migrations``), EXECUTE on pgcheckpoint's functions and
  procedures. No CREATE, no DDL, no TRUNCATE: it cannot change the schema;
- the **read-only** role can SELECT pgcheckpoint's tables, for inspection.

``ALTER DEFAULT PRIVILEGES FOR ROLE <owner> IN SCHEMA <schema>`` grants the
same rights on every table and function the owner creates later, so a new
migration run by the owner needs no new grant.

Every statement is a named block of ``sql/queries/roles.sql`` composed with
:mod:`psycopg.sql` (names quoted with ``Identifier``, never formatted by
hand), so any schema or role name works.
:func:`plan_statements` reads the database's state (which roles and objects
already exist) and returns the statements that bring it to the documented
state; running them again changes nothing. Passwords never appear in the
statements that are printed: :func:`apply` sets them, when given, as SCRAM
verifiers computed on the client, so not even the server log sees them.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import psycopg
from psycopg import sql

from ._connections import translate
from ._queries import composed, statement
from .errors import ConfigurationError
from .maintenance import TABLES
from .migrations import TABLE as MIGRATIONS_TABLE
from .migrations import migrations_table_ddl

Conn = psycopg.Connection[Any]
DEFAULT_PREFIX = "pgcheckpoint"
KINDS = ("owner", "runtime", "readonly")
# Environment variables the CLI reads a role's password from (never printed).
PASSWORD_ENV = {
    "owner": "PGCHECKPOINT_OWNER_PASSWORD",
    "runtime": "PGCHECKPOINT_RUNTIME_PASSWORD",
    "readonly": "PGCHECKPOINT_READONLY_PASSWORD",
}
# The runtime role writes these; it only reads the migrations table.
DATA_TABLES = TABLES
RUNTIME_TABLE_RIGHTS = ("SELECT", "INSERT", "UPDATE", "DELETE")


@dataclass(frozen=True, slots=True)
class RoleNames:
    """The names of the three roles."""

    owner: str
    runtime: str
    readonly: str

    @classmethod
    def from_prefix(
        cls,
        prefix: str = DEFAULT_PREFIX,
        *,
        owner: str | None = None,
        runtime: str | None = None,
        readonly: str | None = None,
    ) -> RoleNames:
        """``<prefix>_owner``, ``<prefix>_runtime``, ``<prefix>_readonly`` unless named."""
        names = cls(
            f"{prefix}_owner" if owner is None else owner,
            f"{prefix}_runtime" if runtime is None else runtime,
            f"{prefix}_readonly" if readonly is None else readonly,
        )
        names.check()
        return names

    def as_dict(self) -> dict[str, str]:
        return {"owner": self.owner, "runtime": self.runtime, "readonly": self.readonly}

    def check(self) -> None:
        for kind, name in self.as_dict().items():
            if not name or "\x00" in name or len(name.encode("utf-8")) > 63:
                raise ConfigurationError(
                    f"the {kind} role name must be 1-63 bytes without NUL, got {name!r}"
                )
            if name.lower().startswith("pg_") or name.lower() == "public":
                raise ConfigurationError(f"{name!r} is reserved by PostgreSQL; pick another name")
        if len(set(self.as_dict().values())) != 3:
            raise ConfigurationError("the owner, runtime and read-only roles need three names")


# --- reading the database's state ---------------------------------------------
@dataclass(frozen=True, slots=True)
class DatabaseState:
    """What :func:`plan_statements` needs to know about the database."""

    database: str
    current_user: str
    superuser: bool
    existing_roles: frozenset[str]
    schema_owner: str | None
    tables: Mapping[str, str]  # table -> owner
    routines: Mapping[str, str]  # routine -> owner
    member_of_owner: bool


def read_state(conn: Conn, schema: str, names: RoleNames) -> DatabaseState:
    """Read the roles and pgcheckpoint objects that already exist."""
    params = {
        "names": list(names.as_dict().values()),
        "schema": schema,
        "tables": [*DATA_TABLES, MIGRATIONS_TABLE],
    }
    def q(name: str) -> str:
        return statement(f"roles_state_{name}", schema)

    try:
        me = conn.execute(q("me")).fetchone()
        roles = {str(r[0]) for r in conn.execute(q("roles"), params).fetchall()}
        owner_row = conn.execute(q("schema"), params).fetchone()
        tables = {str(a): str(b) for a, b in conn.execute(q("tables"), params)}
        routines = {str(a): str(b) for a, b in conn.execute(q("routines"), params)}
        member = False
        if names.owner in roles:
            row = conn.execute(q("member"), {"role": names.owner}).fetchone()
            member = bool(row and row[0])
    except psycopg.Error as exc:
        raise translate(exc, "reading roles") from exc
    assert me is not None
    return DatabaseState(
        database=str(me[1]),
        current_user=str(me[0]),
        superuser=bool(me[2]),
        existing_roles=frozenset(roles),
        schema_owner=str(owner_row[0]) if owner_row else None,
        tables=tables,
        routines=routines,
        member_of_owner=member,
    )


# --- the statements --------------------------------------------------------------
def plan_statements(
    schema: str, names: RoleNames, state: DatabaseState
) -> list[tuple[str, sql.Composed]]:
    """The named statements that give ``schema`` the three roles, for this database state
    (their text: the ``role_*`` blocks of sql/queries/roles.sql).

    Idempotent: statements for what already exists are left out or harmless
    (GRANT/REVOKE of rights already held or absent). Role passwords are not here.
    """
    roles = {kind: sql.Identifier(name) for kind, name in names.as_dict().items()}
    # Fixed keywords of this module, never from input.
    rights = sql.SQL(", ").join(sql.SQL(r) for r in RUNTIME_TABLE_RIGHTS)
    out: list[tuple[str, sql.Composed]] = []

    def add(step: str, block: str, **objects: str) -> None:
        parts = {key: sql.Identifier(value) for key, value in objects.items()}
        out.append((step, composed(f"role_{block}", schema, rights=rights, **roles, **parts)))

    for kind, role in names.as_dict().items():
        if role not in state.existing_roles:
            add(f"create_{kind}", "create", role=role)
    if not state.superuser and not state.member_of_owner:
        add("admin_member_of_owner", "admin_member_of_owner")
    add("connect", "connect", db=state.database)
    if state.schema_owner is None:
        add("create_schema", "create_schema")
    elif state.schema_owner != names.owner:
        add("owner_schema", "owner_schema")
    tables = dict(state.tables)
    if MIGRATIONS_TABLE not in tables:
        # setup()'s own bootstrap statement, run here so that the table exists
        # before the default privileges: the runtime role must only read it.
        out.append(("create_migrations_table", migrations_table_ddl(schema)))
        tables[MIGRATIONS_TABLE] = state.current_user
    for table, current_owner in sorted(tables.items()):
        if current_owner != names.owner:
            add(f"own_{table}", "own_table", table=table)
    for routine, current_owner in state.routines.items():
        if current_owner != names.owner:
            add(f"own_{routine}", "own_routine", routine=routine)
    for kind in ("runtime", "readonly"):
        add(f"usage_{kind}", "usage", role=names.as_dict()[kind])
    for table in sorted(tables):
        if table == MIGRATIONS_TABLE:
            add("migrations_read", "migrations_read", table=table)
            add("migrations_no_write", "migrations_no_write", table=table)
        else:
            add(f"runtime_{table}", "runtime_table", table=table)
            add(f"readonly_{table}", "readonly_table", table=table)
    for routine in state.routines:
        add(f"execute_{routine}", "execute", routine=routine)
    for step in ("runtime_tables", "runtime_sequences", "runtime_routines", "readonly_tables"):
        add(f"default_{step}", f"default_{step}")
    return out


def render(statements: list[tuple[str, sql.Composed]], conn: Conn | None = None) -> str:
    """The statements as one script a DBA can review and run (no passwords in it)."""
    lines = ["BEGIN;"]
    for name, text in statements:
        lines.append(f"-- {name}")
        lines.append(text.as_string(conn) + ";")
    lines.append("COMMIT;")
    return "\n".join(lines) + "\n"


def password_statement(conn: Conn, role: str, password: str) -> sql.Composed:
    """``ALTER ROLE ... PASSWORD`` with the SCRAM verifier computed here (as psql's
    ``\\password`` does): the password itself never reaches the server or its log."""
    try:
        verifier = conn.pgconn.encrypt_password(
            password.encode("utf-8"), role.encode("utf-8"), b"scram-sha-256"
        )
    except psycopg.Error as exc:
        raise ConfigurationError(f"cannot hash the password of role {role!r}") from exc
    return composed(
        "role_password", "public", role=sql.Identifier(role),
        verifier=sql.Literal(verifier.decode("ascii")),
    )


def apply(
    conn: Conn,
    schema: str,
    names: RoleNames,
    passwords: Mapping[str, str] | None = None,
) -> list[str]:
    """Create or complete the three roles in one transaction; returns the statement names run.

    ``passwords`` maps ``owner``/``runtime``/``readonly`` to a password to set.
    """
    state = read_state(conn, schema, names)
    statements = plan_statements(schema, names, state)
    done: list[str] = []
    step = ""
    try:
        with conn.transaction():
            for step, text in statements:
                conn.execute(text)
                done.append(step)
            for kind, password in (passwords or {}).items():
                step = f"password_{kind}"
                conn.execute(password_statement(conn, names.as_dict()[kind], password))
                done.append(step)
    except psycopg.Error as exc:
        raise translate(exc, f"creating roles (statement {step})") from exc
    return done


# --- what health_check() asks ------------------------------------------------------
SECURITY_PROBE = statement("security_probe", "public")  # names no schema object
