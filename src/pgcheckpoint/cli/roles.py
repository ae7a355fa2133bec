"""``roles create``: the owner, runtime and read-only roles of docs/security.md.

A thin skin over :mod:`pgcheckpoint.roles`: it connects as an administrator
(a superuser, or a role with CREATEROLE), reads which roles and objects exist
and either prints the SQL (``--print-sql``) or runs it in one transaction.
Passwords come only from environment variables and are never printed.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

import click

from ._app import common_options, emit, handle_errors

if TYPE_CHECKING:
    from rich.console import Console


@click.group()
def roles() -> None:
    """Least-privilege roles: an owner that runs setup, a runtime role, a read-only role.

    \b
    Example:
        pgcheckpoint roles create --schema agents --print-sql > roles.sql
    """


@roles.command()
@common_options
@click.option(
    "--prefix",
    default=None,
    help="Names the roles <prefix>_owner, <prefix>_runtime and <prefix>_readonly "
    "[default: pgcheckpoint].",
)
@click.option("--owner", default=None, help="Name of the owner role (runs setup).")
@click.option("--runtime", default=None, help="Name of the runtime role (the application).")
@click.option("--readonly", default=None, help="Name of the read-only role (inspection).")
@click.option("--print-sql", is_flag=True, help="Print the SQL instead of running it.")
@handle_errors
def create(
    dsn: str | None,
    schema: str,
    as_json: bool,
    prefix: str | None,
    owner: str | None,
    runtime: str | None,
    readonly: str | None,
    print_sql: bool,
) -> None:
    """Create (or complete) the three roles and their grants on --schema; idempotent.

    Connect as a superuser or a role with CREATEROLE. Passwords are read from
    $PGCHECKPOINT_OWNER_PASSWORD, $PGCHECKPOINT_RUNTIME_PASSWORD and
    $PGCHECKPOINT_READONLY_PASSWORD when set (sent as SCRAM verifiers, never
    printed); otherwise the roles have no password until the DBA sets one
    (psql: \\password NAME). Then run `pgcheckpoint setup` as the owner and the
    application as the runtime role.

    \b
    Example:
        pgcheckpoint roles create --schema agents --print-sql
        PGCHECKPOINT_RUNTIME_PASSWORD=... pgcheckpoint roles create --schema agents
    """
    # Imported here, not at module level: `pgcheckpoint --help` loads no driver.
    import psycopg
    from rich.markup import escape

    from .. import roles as roles_lib
    from .._connections import translate
    from .._conninfo import secrets_of
    from ..embedded import resolve_dsn

    names = roles_lib.RoleNames.from_prefix(
        prefix or roles_lib.DEFAULT_PREFIX, owner=owner, runtime=runtime, readonly=readonly
    )
    passwords = {
        kind: os.environ[var] for kind, var in roles_lib.PASSWORD_ENV.items() if os.environ.get(var)
    }
    conninfo = resolve_dsn(dsn)
    secrets = (*secrets_of(conninfo), *passwords.values())
    try:
        with psycopg.connect(conninfo, autocommit=True) as conn:
            if print_sql:
                state = roles_lib.read_state(conn, schema, names)
                text = roles_lib.render(roles_lib.plan_statements(schema, names, state), conn)
                click.echo(text, nl=False)
                return
            done = roles_lib.apply(conn, schema, names, passwords)
    except psycopg.Error as exc:
        # Not chained: libpq's own message may quote the password.
        raise translate(exc, "roles create", secrets) from None

    def render(out: Console) -> None:
        for kind, name in names.as_dict().items():
            out.print(f"{kind:9s} {escape(name)}")
        out.print(f"[green]{len(done)} statement(s) run[/] on schema {escape(repr(schema))}")
        missing = [k for k in roles_lib.KINDS if k not in passwords]
        if missing:
            out.print(
                "no password set for: "
                + ", ".join(missing)
                + " (set one with psql's \\password, or the PGCHECKPOINT_*_PASSWORD variables)"
            )

    emit(
        as_json,
        {
            "schema": schema,
            "roles": names.as_dict(),
            "statements": done,
            "passwords_set": sorted(passwords),
        },
        render,
    )


def register(group: click.Group) -> None:
    group.add_command(roles)
