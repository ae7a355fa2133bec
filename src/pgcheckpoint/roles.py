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

Every statement is built with :mod:`psycopg.sql` (names quoted with
``Identifier``, never formatted by hand), so any schema or role name works.
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
STATE_SQL = {
    "roles": "SELECT rolname FROM pg_catalog.pg_roles WHERE rolname = ANY(%(names)s)",
    "schema": (
        "SELECT pg_catalog.pg_get_userbyid(nspowner) FROM pg_catalog.pg_namespace "
        "WHERE nspname = %(schema)s"
    ),
    "tables": (
        "SELECT c.relname, pg_catalog.pg_get_userbyid(c.relowner) FROM pg_catalog.pg_class c "
        "JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace "
        "WHERE n.nspname = %(schema)s AND c.relkind IN ('r', 'p') AND c.relname = ANY(%(tables)s)"
    ),
    # Our routines are all named pgcheckpoint_*; names are unique (ALTER/GRANT
    # ... ROUTINE without an argument list relies on that, and a second
    # routine of the same name would be a planted overload: GRANT then fails).
    "routines": (
        "SELECT p.proname, pg_catalog.pg_get_userbyid(p.proowner) FROM pg_catalog.pg_proc p "
        "JOIN pg_catalog.pg_namespace n ON n.oid = p.pronamespace "
        "WHERE n.nspname = %(schema)s AND p.proname LIKE 'pgcheckpoint\\_%%' ORDER BY 1"
    ),
    "me": (
        "SELECT current_user, current_database(), "
        "(SELECT rolsuper FROM pg_catalog.pg_roles WHERE rolname = current_user)"
    ),
    "member": "SELECT pg_catalog.pg_has_role(current_user, %(role)s, 'MEMBER')",
}


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
    try:
        me = conn.execute(STATE_SQL["me"]).fetchone()
        roles = {str(r[0]) for r in conn.execute(STATE_SQL["roles"], params).fetchall()}
        owner_row = conn.execute(STATE_SQL["schema"], params).fetchone()
        tables = {str(a): str(b) for a, b in conn.execute(STATE_SQL["tables"], params)}
        routines = {str(a): str(b) for a, b in conn.execute(STATE_SQL["routines"], params)}
        member = False
        if names.owner in roles:
            row = conn.execute(STATE_SQL["member"], {"role": names.owner}).fetchone()
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
def _ident(*parts: str) -> sql.Identifier:
    return sql.Identifier(*parts)


def _rights(rights: tuple[str, ...]) -> sql.Composable:
    # Fixed keywords from this module, never from input.
    return sql.SQL(", ").join(sql.SQL(r) for r in rights)


def plan_statements(
    schema: str, names: RoleNames, state: DatabaseState
) -> list[tuple[str, sql.Composed]]:
    """The named statements that give ``schema`` the three roles, for this database state.

    Idempotent: statements for what already exists are left out or harmless
    (GRANT/REVOKE of rights already held or absent). Role passwords are not here.
    """
    owner, runtime, readonly = _ident(names.owner), _ident(names.runtime), _ident(names.readonly)
    s = _ident(schema)
    out: list[tuple[str, sql.Composed]] = []

    def add(name: str, template: str, **kw: sql.Composable) -> None:
        out.append((name, sql.SQL(template).format(**kw)))

    for kind, role in names.as_dict().items():
        if role not in state.existing_roles:
            add(
                f"create_{kind}",
                "CREATE ROLE {role} LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION",
                role=_ident(role),
            )
    if not state.superuser and not state.member_of_owner:
        # ALTER DEFAULT PRIVILEGES FOR ROLE and ALTER ... OWNER TO need it.
        add("admin_member_of_owner", "GRANT {owner} TO CURRENT_USER", owner=owner)
    add(
        "connect",
        "GRANT CONNECT ON DATABASE {db} TO {owner}, {runtime}, {readonly}",
        db=_ident(state.database),
        owner=owner,
        runtime=runtime,
        readonly=readonly,
    )
    if state.schema_owner is None:
        add("create_schema", "CREATE SCHEMA {s} AUTHORIZATION {owner}", s=s, owner=owner)
    elif state.schema_owner != names.owner:
        # An existing schema (public, say) is not taken over: the owner may
        # create in it and owns pgcheckpoint's objects only.
        add("owner_schema", "GRANT USAGE, CREATE ON SCHEMA {s} TO {owner}", s=s, owner=owner)
    tables = dict(state.tables)
    if MIGRATIONS_TABLE not in tables:
        # setup()'s own bootstrap statement, run here so that the table exists
        # before the default privileges: the runtime role must only read it.
        out.append(("create_migrations_table", migrations_table_ddl(schema)))
        tables[MIGRATIONS_TABLE] = state.current_user
    for template, objects in (
        ("ALTER TABLE {x} OWNER TO {owner}", sorted(tables.items())),
        ("ALTER ROUTINE {x} OWNER TO {owner}", list(state.routines.items())),
    ):
        for name, current_owner in objects:
            if current_owner != names.owner:
                add(f"own_{name}", template, x=_ident(schema, name), owner=owner)
    for kind, grantee in (("runtime", runtime), ("readonly", readonly)):
        add(f"usage_{kind}", "GRANT USAGE ON SCHEMA {s} TO {role}", s=s, role=grantee)
    for table in sorted(tables):
        t = _ident(schema, table)
        if table == MIGRATIONS_TABLE:
            # setup() by the runtime role reads it (and does nothing more).
            add(
                "migrations_read",
                "GRANT SELECT ON {t} TO {runtime}, {readonly}",
                t=t,
                runtime=runtime,
                readonly=readonly,
            )
            add(
                "migrations_no_write",
                "REVOKE INSERT, UPDATE, DELETE, TRUNCATE, REFERENCES, TRIGGER ON {t} "
                "FROM {runtime}",
                t=t,
                runtime=runtime,
            )
            continue
        add(
            f"runtime_{table}",
            "GRANT {rights} ON {t} TO {runtime}",
            rights=_rights(RUNTIME_TABLE_RIGHTS),
            t=t,
            runtime=runtime,
        )
        add(f"readonly_{table}", "GRANT SELECT ON {t} TO {readonly}", t=t, readonly=readonly)
    for routine in state.routines:
        add(
            f"execute_{routine}",
            "GRANT EXECUTE ON ROUTINE {r} TO {runtime}",
            r=_ident(schema, routine),
            runtime=runtime,
        )
    default = "ALTER DEFAULT PRIVILEGES FOR ROLE {owner} IN SCHEMA {s} "
    add(
        "default_runtime_tables",
        default + "GRANT {rights} ON TABLES TO {runtime}",
        owner=owner,
        s=s,
        rights=_rights(RUNTIME_TABLE_RIGHTS),
        runtime=runtime,
    )
    add(
        "default_runtime_sequences",
        default + "GRANT USAGE, SELECT ON SEQUENCES TO {runtime}",
        owner=owner,
        s=s,
        runtime=runtime,
    )
    add(
        "default_runtime_routines",
        default + "GRANT EXECUTE ON ROUTINES TO {runtime}",
        owner=owner,
        s=s,
        runtime=runtime,
    )
    add(
        "default_readonly_tables",
        default + "GRANT SELECT ON TABLES TO {readonly}",
        owner=owner,
        s=s,
        readonly=readonly,
    )
    return out


def render(statements: list[tuple[str, sql.Composed]], conn: Conn | None = None) -> str:
    """The statements as one script a DBA can review and run (no passwords in it)."""
    lines = ["BEGIN;"]
    for name, statement in statements:
        lines.append(f"-- {name}")
        lines.append(statement.as_string(conn) + ";")
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
    return sql.SQL("ALTER ROLE {} PASSWORD {}").format(
        _ident(role), sql.Literal(verifier.decode("ascii"))
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
            for step, statement in statements:
                conn.execute(statement)
                done.append(step)
            for kind, password in (passwords or {}).items():
                step = f"password_{kind}"
                conn.execute(password_statement(conn, names.as_dict()[kind], password))
                done.append(step)
    except psycopg.Error as exc:
        raise translate(exc, f"creating roles (statement {step})") from exc
    return done


# --- what health_check() asks ------------------------------------------------------
# The current role, whether it is a superuser, whether it has the rights of the
# owner of pgcheckpoint's checkpoints table, whether it may CREATE in the schema
# (and so plant a table or function there), and the TLS state of this
# connection as the server sees it (pg_stat_ssl: one row per backend, readable
# for one's own backend by any role).
SECURITY_PROBE = (
    "SELECT current_user, r.rolsuper, "
    "(SELECT pg_catalog.pg_has_role(current_user, c.relowner, 'USAGE') "
    " FROM pg_catalog.pg_class c WHERE c.oid = pg_catalog.to_regclass(%(table)s)), "
    "(SELECT pg_catalog.has_schema_privilege(n.oid, 'CREATE') "
    " FROM pg_catalog.pg_namespace n WHERE n.nspname = %(schema)s), "
    "s.ssl, s.version, s.cipher, s.bits "
    "FROM pg_catalog.pg_roles r "
    "LEFT JOIN pg_catalog.pg_stat_ssl s ON s.pid = pg_catalog.pg_backend_pid() "
    "WHERE r.rolname = current_user"
)
