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
        self._select_cache: dict[tuple[str, ...], str] = {}

    def __getitem__(self, name: str) -> str:
        return self._sql[name]

    def get_checkpoint(self, by_id: bool) -> str:
        """``get_checkpoint`` for the newest checkpoint, or for one by ``checkpoint_id``."""
        fragment = self._sql["where_id"] if by_id else self._sql["where_all"]
        return self._sql["get_checkpoint"].replace("{where}", fragment)

    def select_checkpoints(self, where: Iterable[str]) -> str:
        """``select_checkpoints`` with its WHERE made of the named ``where_*`` fragments."""
        key = tuple(where) or ("where_all",)
        text = self._select_cache.get(key)
        if text is None:
            clause = " AND ".join(self._sql[name] for name in key)
            text = self._sql["select_checkpoints"].replace("{where}", clause)
            self._select_cache[key] = text
        return text
