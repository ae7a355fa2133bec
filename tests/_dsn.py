"""Test-server URLs, shared by conftest.py and the Citus helper (a module of its own, so
nothing imports ``conftest`` by name: with two conftest.py files that name is ambiguous)."""

from __future__ import annotations

from urllib.parse import urlsplit, urlunsplit

from psycopg.conninfo import make_conninfo


def dsn_for_database(dsn: str, dbname: str) -> str:
    """``dsn`` pointed at database ``dbname`` (a URL stays a URL)."""
    if dsn.startswith(("postgresql://", "postgres://")):
        parts = urlsplit(dsn)
        return urlunsplit(parts._replace(path="/" + dbname))
    return make_conninfo(dsn, dbname=dbname)
