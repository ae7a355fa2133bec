"""The root click group and what every command shares: options, the saver, output, errors.

Commands stay thin: parse options, open a saver with :func:`open_saver`, call
one public library function, hand the result to :func:`emit` (rich for people,
``--json`` for scripts). Library errors become a one-line message and exit code 1.

Every command that opens the database names it on stderr first (user, host,
port, database and schema, never the password), and says so when, with no
connection string given, it uses the embedded PostgreSQL of the project.
"""

from __future__ import annotations

import functools
import importlib
import json
import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any, TypeVar, cast

import click

from ..errors import ConfigurationError, PgCheckpointError
from ._output import jsonable

if TYPE_CHECKING:
    from rich.console import Console

    from ..saver import PostgresSaver

F = TypeVar("F", bound=Callable[..., Any])

CONTEXT_SETTINGS: dict[str, Any] = {"help_option_names": ["-h", "--help"], "max_content_width": 100}

DEFAULT_CONNECT_TIMEOUT = 10
_META_TIMEOUT = "pgcheckpoint.connect_timeout"
_META_TARGET = "pgcheckpoint.target"


@click.group(context_settings=CONTEXT_SETTINGS)
@click.version_option(package_name="pgcheckpoint")
def cli() -> None:
    """pgcheckpoint: inspect, migrate and operate LangGraph checkpoints on PostgreSQL.

    Every command takes --dsn (default: $PGCHECKPOINT_DSN, then $DATABASE_URL, then the
    project's embedded PostgreSQL), --schema, --connect-timeout and --json, and names the
    database it uses on stderr. Other options can be set with
    PGCHECKPOINT_<COMMAND>_<OPTION> environment variables.

    \b
    Example:
        export DATABASE_URL=postgresql://localhost/app
        pgcheckpoint threads list --limit 5
    """


def _remember_timeout(ctx: click.Context, _param: click.Parameter, value: int | None) -> None:
    if value is not None:
        ctx.meta[_META_TIMEOUT] = value


def common_options(func: F) -> F:
    """--dsn, --schema, --connect-timeout, --allow and --json, on every command that talks
    to the database and prints a result."""
    as_json = click.option("--json", "as_json", is_flag=True, help="Print JSON for scripts.")
    return connection_options(as_json(func))


def connection_options(func: F) -> F:
    """--dsn, --schema, --connect-timeout and --allow: what opening the saver needs."""
    options = [
        click.option(
            "--dsn",
            envvar=["PGCHECKPOINT_DSN", "DATABASE_URL"],
            default=None,
            metavar="URL",
            help="PostgreSQL connection string [env: PGCHECKPOINT_DSN, "
            "DATABASE_URL; default: the embedded server].",
        ),
        click.option(
            "--schema",
            envvar="PGCHECKPOINT_SCHEMA",
            default="public",
            show_default=True,
            help="Schema holding pgcheckpoint's tables.",
        ),
        click.option(
            "--connect-timeout",
            type=click.IntRange(min=1),
            default=DEFAULT_CONNECT_TIMEOUT,
            show_default=True,
            envvar="PGCHECKPOINT_CONNECT_TIMEOUT",
            metavar="SECONDS",
            expose_value=False,
            callback=_remember_timeout,
            help="Seconds to wait for the server to accept a connection "
            "[env: PGCHECKPOINT_CONNECT_TIMEOUT].",
        ),
        click.option(
            "--allow",
            envvar="PGCHECKPOINT_ALLOW",
            multiple=True,
            metavar="MODULE:CLASS",
            expose_value=False,
            callback=_remember_allow,
            help="Also rebuild this stored type on read; its module is imported, so its "
            "other data classes load too (repeatable) [env: PGCHECKPOINT_ALLOW, space- or "
            "comma-separated].",
        ),
    ]
    for option in reversed(options):
        func = option(func)
    return func


# SQLSTATEs meaning "the schema holds no pgcheckpoint tables": undefined_table,
# invalid_schema_name, undefined_function.
_MISSING_SCHEMA = frozenset({"42P01", "3F000", "42883"})


def _sqlstate(exc: BaseException) -> str | None:
    """The SQLSTATE of the PostgreSQL error behind ``exc`` (its cause chain), if any."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        state = getattr(current, "sqlstate", None)
        if isinstance(state, str):
            return state
        current = current.__cause__ or current.__context__
    return None


def error_message(exc: PgCheckpointError, schema: str | None) -> str:
    """One line for a library error; a schema without our tables says how to create them
    instead of PostgreSQL's ``relation ... does not exist`` and its caret."""
    if schema is not None and _sqlstate(exc) in _MISSING_SCHEMA:
        return (
            f"SchemaError: schema {schema!r} has no pgcheckpoint tables; "
            f"run `pgcheckpoint setup --schema {schema}` first"
        )
    return f"{type(exc).__name__}: {exc}"


_ALLOW_KEY = "pgcheckpoint.allow"


def _remember_allow(ctx: click.Context, _param: click.Parameter, value: tuple[str, ...]) -> None:
    """Keep --allow for :func:`open_saver`, so commands need no parameter of their own."""
    entries = [e for v in value for e in v.replace(",", " ").split()]
    if not entries:
        return
    from ..allowlist import parse_allow  # LangGraph's serde: only when --allow is given

    try:
        modules = sorted({module for module, _ in parse_allow(entries)})
    except ConfigurationError as exc:
        raise click.BadParameter(str(exc), ctx=ctx, param_hint="--allow") from exc
    # Imported now, as the application would have: the data classes of these modules
    # (the types nested in the listed ones) then load too (docs/serde.md).
    for module in modules:
        try:
            importlib.import_module(module)
        except Exception as exc:
            raise click.BadParameter(
                f"cannot import module {module!r}: {type(exc).__name__}: {exc}",
                ctx=ctx,
                param_hint="--allow",
            ) from exc
    ctx.meta[_ALLOW_KEY] = entries


def handle_errors(func: F) -> F:
    """Library errors as a clean message (exit code 1) instead of a traceback.

    With ``--json`` every error of the command (library or CLI) is one JSON object on
    the last line of stderr, ``{"error": {"type": ..., "message": ...}}``, and the exit
    status is 1;
    stdout stays empty. Usage errors (a bad option) are reported by click before the
    command runs, as text, with exit status 2.
    """

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        schema = kwargs.get("schema")
        try:
            return func(*args, **kwargs)
        except PgCheckpointError as exc:
            message = error_message(exc, schema if isinstance(schema, str) else None)
            if kwargs.get("as_json"):
                kind, _, text = message.partition(": ")
                _json_error(kind, text)
            raise click.ClickException(message) from exc
        except click.ClickException as exc:
            if kwargs.get("as_json"):
                _json_error(type(exc).__name__, exc.format_message())
            raise

    return cast(F, wrapper)


def _json_error(kind: str, message: str) -> None:
    click.echo(json.dumps({"error": {"type": kind, "message": message}}), err=True)
    raise click.exceptions.Exit(1)


def _say(text: str) -> None:
    click.echo(f"pgcheckpoint: {text}", err=True)


@contextmanager
def open_saver(dsn: str | None, schema: str) -> Iterator[PostgresSaver]:
    """A saver for one command, after naming its database on stderr (``dsn`` None:
    the project's embedded server, after saying so), with the command's ``--allow``
    types added to its allowlist and the keyring of ``$PGCHECKPOINT_KEYS``, if set.

    The saver (and with it LangGraph, pydantic and psycopg) is imported here, when a
    command runs, so that ``pgcheckpoint --help`` starts in a fraction of the time."""
    from .._conninfo import check, describe
    from ..embedded import default_data_dir, project_root, start_embedded
    from ..keyring import Keyring
    from ..pooling import PoolSettings
    from ..saver import PostgresSaver

    ctx = click.get_current_context()
    if not dsn:
        _say(
            "no --dsn, PGCHECKPOINT_DSN or DATABASE_URL given: using the embedded "
            f"PostgreSQL of project {project_root()} (data in {default_data_dir()})"
        )
        dsn = start_embedded().url
    check(dsn)
    target = f'{describe(dsn)}, schema "{schema}"'
    ctx.meta[_META_TARGET] = target
    _say(target)
    settings = PoolSettings(
        min_size=1,
        connect_timeout=int(ctx.meta.get(_META_TIMEOUT, DEFAULT_CONNECT_TIMEOUT)),
    )
    allow = ctx.meta.get(_ALLOW_KEY, [])
    keyring = Keyring.from_env()  # $PGCHECKPOINT_KEYS: never an option (shell history)
    with PostgresSaver.from_conn_string(
        dsn, pool=settings, schema=schema, allow=allow, encryption=keyring
    ) as saver:
        yield saver


def current_target() -> str:
    """The database (and schema) :func:`open_saver` opened for this command."""
    return str(click.get_current_context().meta.get(_META_TARGET, "the database"))


def console(*, stderr: bool = False) -> Console:
    """A rich console. Not a terminal (pipes, logs) and no $COLUMNS: 120 columns, where
    rich's default of 80 would fold the checkpoint ids (tables fold, they never cut)."""
    from rich.console import Console

    out = Console(stderr=stderr)
    if not out.is_terminal and "COLUMNS" not in os.environ:
        out = Console(stderr=stderr, width=120)
    return out


def emit(as_json: bool, data: Any, render: Callable[[Console], None]) -> None:
    """JSON on stdout with --json, else the rich rendering."""
    if as_json:
        click.echo(json.dumps(jsonable(data), indent=2, ensure_ascii=False))
    else:
        render(console())


def parse_filter(text: str | None) -> dict[str, Any] | None:
    """A --filter option: a JSON object matched against metadata."""
    if text is None:
        return None
    try:
        value = json.loads(text)
    except ValueError as exc:
        raise click.BadParameter(f"not JSON: {exc}", param_hint="--filter") from exc
    if not isinstance(value, dict):
        raise click.BadParameter("must be a JSON object", param_hint="--filter")
    return value
