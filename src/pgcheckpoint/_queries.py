"""Named SQL statements, loaded once from ``sql/queries/*.sql``.

``sql/queries/`` is the one home of every statement pgcheckpoint runs, one
file per owner (``put``, ``read``, ``delete``, ``threads``, ``transfer``,
``retention``, ``maintenance``, ``migrations``, ``distribution``, ``roles``,
and the ``official`` importer's source tables). A block starts with a
``-- name: NAME`` line and runs to the next one; names are unique across the
files. Blocks named ``where_*``, ``put_chunks``, ``put_blobs`` and
``put_writes_row`` are fragments that ``read_checkpoints``, ``put_checkpoint``
and ``put_writes_*`` are assembled from.
A block named ``part_*`` is text several statements share: each ``{part_*}``
in another block is replaced by it when the files are read, and it is not a
statement of its own.

:class:`Queries` binds the statements to one PostgreSQL schema: ``{schema}``
is replaced by the schema name quoted with :class:`psycopg.sql.Identifier`.
:func:`compose` fills the few statements that name another identifier
(``{table}``, ``{routine}``) or a literal through :mod:`psycopg.sql`. Nothing
else is ever formatted into SQL text.

The schema name is checked once, by :func:`quote_schema`: a name holding
``$`` (it could end a dollar-quoted function body, ``sql/functions/``), ``%``
(psycopg's placeholder mark) or a control character is refused with
``ConfigurationError`` before any statement is built, so every accepted name
works end to end (DDL, function bodies, ``migrate apply --print-sql``, the
pg_cron command).
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from functools import cache
from importlib import resources

from psycopg import sql

from .errors import ConfigurationError

_NAME = re.compile(r"^-- name: ([a-z0-9_]+)\s*$", re.MULTILINE)
_UNSAFE = re.compile(r"[$%\x00-\x1f\x7f]")

# list(None) on Citus, first step: the keys of one page of checkpoints of every
# thread, in read_checkpoints' order, without their values. Each shard sorts and
# limits its own rows and the coordinator merges them (bounded by the page).
# The values are then read thread by thread with the routed read_checkpoints
# (listing.Lister). Kept beside read_checkpoints' assembly because it takes the
# same where_* fragments; to move into queries.sql as a named block.
_LIST_KEYS = """SELECT thread_id, checkpoint_ns, checkpoint_id
FROM {schema}.checkpoints
WHERE {where}
ORDER BY checkpoint_id DESC, thread_id DESC, checkpoint_ns DESC
LIMIT %(limit)s"""


@cache
def _raw_statements() -> dict[str, str]:
    statements: dict[str, str] = {}
    folder = resources.files("pgcheckpoint.sql").joinpath("queries")
    for entry in sorted(folder.iterdir(), key=lambda e: e.name):
        if not entry.name.endswith(".sql"):
            continue
        parts = _NAME.split(entry.read_text("utf-8"))
        # parts = [preamble, name1, body1, name2, body2, ...]
        for name, body in zip(parts[1::2], parts[2::2], strict=True):
            if name in statements:
                raise ValueError(f"statement {name!r} is named twice in sql/queries/")
            lines = [ln for ln in body.strip().splitlines() if not ln.lstrip().startswith("--")]
            statements[name] = "\n".join(lines).strip().rstrip(";")
    shared = {name: statements.pop(name) for name in list(statements) if name.startswith("part_")}
    for name, text in statements.items():
        for part, part_text in shared.items():
            text = text.replace(f"{{{part}}}", part_text)
        if "{part_" in text:
            raise ValueError(f"statement {name!r} names a part that sql/queries/ lacks")
        statements[name] = text
    return statements


def check_schema(schema: str) -> str:
    """``schema`` if it can be used safely everywhere, else ``ConfigurationError``."""
    bad = _UNSAFE.search(schema)
    if bad:
        char = bad.group()
        what = {"$": "'$' (it could end a dollar-quoted function body)",
                "%": "'%' (psycopg's parameter mark)"}.get(char, f"control character {char!r}")
        raise ConfigurationError(
            f"schema name {schema!r} contains {what}; pgcheckpoint refuses such names "
            "before creating anything: choose a name without '$', '%' or control characters"
        )
    return schema


def quote_schema(schema: str) -> str:
    """The schema name as a quoted SQL identifier (refusing unsafe names)."""
    return sql.Identifier(check_schema(schema)).as_string(None)


def statement(name: str, schema: str) -> str:
    """One named statement bound to ``schema``."""
    return _raw_statements()[name].replace("{schema}", quote_schema(schema))


def composed(name: str, schema: str, **parts: sql.Composable) -> sql.Composed:
    """A named statement whose other placeholders (``{table}``, ``{comment}``...) are
    psycopg.sql objects (``Identifier``, ``Literal``)."""
    template = sql.SQL(_raw_statements()[name])
    return template.format(schema=sql.Identifier(check_schema(schema)), **parts)


def compose(name: str, schema: str, **parts: sql.Composable) -> str:
    """:func:`composed` as text."""
    return composed(name, schema, **parts).as_string(None)


def with_literals(name: str, schema: str, params: dict[str, object]) -> str:
    """A named statement with its ``%(name)s`` parameters written as SQL literals
    (psycopg.sql.Literal), for SQL printed rather than run (``--print-sql``)."""
    raw = re.sub(r"%\((\w+)\)s", r"{\1}", _raw_statements()[name])
    template = sql.SQL(raw)
    literals = {key: sql.Literal(value) for key, value in params.items()}
    return template.format(schema=sql.Identifier(check_schema(schema)), **literals).as_string(None)


class Queries:
    """The statements of ``sql/queries/`` bound to one schema."""

    def __init__(self, schema: str) -> None:
        quoted = quote_schema(schema)
        self.schema = schema
        self._sql = {
            name: text.replace("{schema}", quoted) for name, text in _raw_statements().items()
        }
        # part_tree_walk's thread: this statement's parameter (read_checkpoints
        # fills it per variant, below).
        self._sql["fetch_value_chunks"] = self._sql["fetch_value_chunks"].replace(
            "{thread}", "%(thread_id)s"
        )
        self._read_cache: dict[tuple[str, ...], str] = {}
        self._writes: dict[tuple[bool, int], str] = {}
        self._puts = {
            name: self._parts(name) for name in ("put_checkpoint", "put_head", "put_head_new")
        }
        # The whole statements, for callers whose rows may hold anything (batches, imports).
        self._sql["put_checkpoint"] = self._puts["put_checkpoint"][(True, True)]
        self._sql["put_head"] = self._puts["put_head"][(True, True)]
        self._sql["put_head_new"] = self._puts["put_head_new"][(True, True)]

    def _parts(self, name: str) -> dict[tuple[bool, bool], str]:
        template = self._sql[name]
        return {
            (chunks, blobs): template.replace(
                "{put_chunks}", self._sql["put_chunks"] if chunks else ""
            ).replace("{put_blobs}", self._sql["put_blobs"] if blobs else "")
            for chunks in (False, True)
            for blobs in (False, True)
        }

    def put_writes(self, *, upsert: bool, rows: int) -> str:
        """``put_writes_insert`` / ``_upsert`` with ``rows`` VALUES rows (1 to
        PUT_WRITES_ROWS); the parameters of row ``n`` are ``idx<n>``, ``channel<n>``,
        ``type<n>`` and ``value<n>`` (put_writes_params)."""
        key = (upsert, rows)
        text = self._writes.get(key)
        if text is None:
            row = self._sql["put_writes_row"]
            values = ",\n".join(row.replace("{n}", str(n)) for n in range(rows))
            name = "put_writes_upsert" if upsert else "put_writes_insert"
            text = self._sql[name].replace("{rows}", values)
            self._writes[key] = text
        return text

    def put_checkpoint(self, *, chunks: bool, blobs: bool) -> str:
        """``put_checkpoint`` with only the CTEs a put needs: the chunks one when it
        has new chunks, the blobs one when it has new channel values."""
        return self._puts["put_checkpoint"][(chunks, blobs)]

    def put_head(self, *, chunks: bool, blobs: bool) -> str:
        """``put_head`` (the compare-and-set put) with only the CTEs a put needs."""
        return self._puts["put_head"][(chunks, blobs)]

    def put_head_new(self, *, chunks: bool, blobs: bool) -> str:
        """``put_head_new`` (a thread's first checkpoint) with only the CTEs a put needs."""
        return self._puts["put_head_new"][(chunks, blobs)]

    def __getitem__(self, name: str) -> str:
        return self._sql[name]

    def read_checkpoints(self, where: Iterable[str], *, single: bool = False) -> str:
        """``read_checkpoints`` with its WHERE made of the named ``where_*`` fragments,
        limited to one row (``single``) or to the ``limit`` parameter."""
        key = (*(tuple(where) or ("where_all",)), "single" if single else "page")
        text = self._read_cache.get(key)
        if text is None:
            clause = " AND ".join(self._sql[name] for name in key[:-1])
            # One thread: its id pins every table, so Citus routes to one shard.
            thread = "%(thread_id)s" if "where_thread" in key else "c.thread_id"
            text = (
                self._sql["read_checkpoints"]
                .replace("{where}", clause)
                .replace("{limit}", "1" if single else "%(limit)s")
                .replace("{thread}", thread)
            )
            self._read_cache[key] = text
        return text

    def list_keys(self, where: Iterable[str]) -> str:
        """The keys of one page of ``read_checkpoints(where)`` (every thread)."""
        key = (*(tuple(where) or ("where_all",)), "keys")
        text = self._read_cache.get(key)
        if text is None:
            clause = " AND ".join(self._sql[name] for name in key[:-1])
            text = _LIST_KEYS.replace("{schema}", quote_schema(self.schema)).replace(
                "{where}", clause
            )
            self._read_cache[key] = text
        return text
