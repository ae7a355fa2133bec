"""Named SQL statements, loaded once from ``sql/queries.sql``.

``queries.sql`` is the one home of every runtime statement. A block starts with
a ``-- name: NAME`` line and runs to the next one. :class:`Queries` binds the
statements to one PostgreSQL schema: ``{schema}`` is replaced by the schema
name quoted with :class:`psycopg.sql.Identifier`; nothing else is ever
formatted into SQL text.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from functools import cache
from importlib import resources

from psycopg import sql

_NAME = re.compile(r"^-- name: ([a-z0-9_]+)\s*$", re.MULTILINE)

# list(None) on Citus, first step: the keys of one page of checkpoints of every
# thread, in read_checkpoints' order, without their values. Each shard sorts and
# limits its own rows and the coordinator merges them (bounded by the page).
# The values are then read thread by thread with the routed read_checkpoints
# (_core._Lister). Kept beside read_checkpoints' assembly because it takes the
# same where_* fragments; to move into queries.sql as a named block.
_LIST_KEYS = """SELECT thread_id, checkpoint_ns, checkpoint_id
FROM {schema}.checkpoints
WHERE {where}
ORDER BY checkpoint_id DESC, thread_id DESC, checkpoint_ns DESC
LIMIT %(limit)s"""


@cache
def _raw_statements() -> dict[str, str]:
    text = resources.files("pgcheckpoint.sql").joinpath("queries.sql").read_text("utf-8")
    parts = _NAME.split(text)
    # parts = [preamble, name1, body1, name2, body2, ...]
    statements: dict[str, str] = {}
    for name, body in zip(parts[1::2], parts[2::2], strict=True):
        lines = [ln for ln in body.strip().splitlines() if not ln.lstrip().startswith("--")]
        statements[name] = "\n".join(lines).strip().rstrip(";")
    return statements


def quote_schema(schema: str) -> str:
    """The schema name as a quoted SQL identifier."""
    return sql.Identifier(schema).as_string(None)


class Queries:
    """The statements of ``queries.sql`` bound to one schema."""

    def __init__(self, schema: str) -> None:
        quoted = quote_schema(schema)
        self.schema = schema
        self._sql = {
            name: text.replace("{schema}", quoted) for name, text in _raw_statements().items()
        }
        self._read_cache: dict[tuple[str, ...], str] = {}
        template = self._sql["put_checkpoint"]
        self._puts = {
            (chunks, blobs): template.replace(
                "{put_chunks}", self._sql["put_chunks"] if chunks else ""
            ).replace("{put_blobs}", self._sql["put_blobs"] if blobs else "")
            for chunks in (False, True)
            for blobs in (False, True)
        }
        # The whole statement, for callers whose rows may hold anything (batches, imports).
        self._sql["put_checkpoint"] = self._puts[(True, True)]

    def put_checkpoint(self, *, chunks: bool, blobs: bool) -> str:
        """``put_checkpoint`` with only the CTEs a put needs: the chunks one when it
        has new chunks, the blobs one when it has new channel values."""
        return self._puts[(chunks, blobs)]

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
