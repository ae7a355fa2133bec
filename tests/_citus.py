"""Test databases on a Citus cluster (docs/scaling.md).

When the test server is a Citus coordinator (the ``citus`` extension is in its
``postgres`` database), every test database must exist on the coordinator and
on each worker under the same name: Citus connects to a worker's database of
the coordinator's database name. :class:`CitusDatabases` does what
``conftest.Databases`` does, on every node.

Cloning is what keeps a test cheap (~1 s on three nodes, against ~6 s for a
database made from scratch with ``CREATE EXTENSION citus`` and the node list).
A clone copies the template's Citus metadata and its shards node by node, so
the clone is a consistent cluster database of its own. PostgreSQL refuses to
clone a database anyone is connected to, and Citus keeps a maintenance daemon
and cached connections in each of its databases, so a template is first closed
to connections (``ALLOW_CONNECTIONS false``) and its sessions ended.
"""

from __future__ import annotations

import contextlib
import time
import uuid

import psycopg
from psycopg import sql
from psycopg.conninfo import conninfo_to_dict, make_conninfo

DB_PREFIX = "pgc_test_"
STALE_AFTER_SECONDS = 3 * 3600
CITUS_DSN_ENV = "PGCHECKPOINT_CITUS_DSN"


def _with_database(dsn: str, dbname: str) -> str:
    return make_conninfo(dsn, dbname=dbname)


def citus_workers(server_url: str) -> list[tuple[str, int]] | None:
    """The active workers of the coordinator at ``server_url``; None when it is no
    Citus coordinator (no ``citus`` extension in that database)."""
    with psycopg.connect(server_url, autocommit=True) as conn:
        row = conn.execute("SELECT count(*) FROM pg_extension WHERE extname = 'citus'").fetchone()
        if not row or not row[0]:
            return None
        rows = conn.execute(
            "SELECT node_name, node_port FROM citus_get_active_worker_nodes() ORDER BY 1, 2"
        ).fetchall()
    return [(str(h), int(p)) for h, p in rows]


class CitusDatabases:
    """Creates and drops test databases on the coordinator and every worker."""

    def __init__(self, server_url: str, workers: list[tuple[str, int]]) -> None:
        self.server_url = server_url
        self.workers = workers
        params = conninfo_to_dict(server_url)
        self.coordinator = (str(params.get("host") or "127.0.0.1"), int(params.get("port") or 5432))
        self.node_urls = [server_url] + [
            make_conninfo(server_url, host=h, port=str(p)) for h, p in workers
        ]
        self._base: str | None = None
        self._frozen: set[str] = set()

    def _on_every_node(self, statement: sql.Composable) -> None:
        for url in self.node_urls:
            with psycopg.connect(url, autocommit=True) as conn:
                conn.execute(statement)

    def _freeze(self, name: str) -> None:
        """Close ``name`` to connections on every node so it can be cloned."""
        if name in self._frozen:
            return
        ident = sql.Identifier(name)
        for url in self.node_urls:
            with psycopg.connect(url, autocommit=True) as conn:
                conn.execute(sql.SQL("ALTER DATABASE {} ALLOW_CONNECTIONS false").format(ident))
                conn.execute(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                    "WHERE datname = %s AND pid <> pg_backend_pid()",
                    [name],
                )
        self._frozen.add(name)

    def _base_template(self) -> str:
        """A database with ``citus`` on every node and the workers registered."""
        if self._base is None:
            name = self._new_name()
            self._on_every_node(
                sql.SQL("CREATE DATABASE {} TEMPLATE template0").format(sql.Identifier(name))
            )
            for url in self.node_urls:
                with psycopg.connect(_with_database(url, name), autocommit=True) as conn:
                    conn.execute("CREATE EXTENSION IF NOT EXISTS citus")
            with psycopg.connect(_with_database(self.server_url, name), autocommit=True) as conn:
                conn.execute("SELECT citus_set_coordinator_host(%s, %s)", list(self.coordinator))
                for host, port in self.workers:
                    conn.execute("SELECT citus_add_node(%s, %s)", [host, port])
            self._base = name
        return self._base

    @staticmethod
    def _new_name() -> str:
        return f"{DB_PREFIX}{int(time.time())}_{uuid.uuid4().hex[:12]}"

    def create(self, template: str = "template0") -> str:
        """A database cloned from ``template`` on every node ("template0": one with
        citus and the node list but no pgcheckpoint schema)."""
        if template == "template0":
            template = self._base_template()
        self._freeze(template)
        name = self._new_name()
        self._on_every_node(
            sql.SQL("CREATE DATABASE {} TEMPLATE {}").format(
                sql.Identifier(name), sql.Identifier(template)
            )
        )
        return name

    def drop(self, name: str) -> None:
        # Closed on every node first: the maintenance daemons of the workers'
        # copies connect to each other, and would be back before the drop.
        ident = sql.Identifier(name)
        for url in self.node_urls:
            with psycopg.connect(url, autocommit=True) as conn:
                conn.execute(
                    sql.SQL(
                        "DO $$BEGIN IF EXISTS (SELECT FROM pg_database WHERE datname = {}) THEN "
                        "EXECUTE {}; END IF; END$$"
                    ).format(
                        sql.Literal(name),
                        sql.Literal(
                            sql.SQL("ALTER DATABASE {} ALLOW_CONNECTIONS false")
                            .format(ident)
                            .as_string(conn)
                        ),
                    )
                )
        self._on_every_node(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(ident))
        self._frozen.discard(name)
        if name == self._base:
            self._base = None

    def url(self, name: str) -> str:
        from _dsn import dsn_for_database

        return dsn_for_database(self.server_url, name)

    def close(self) -> None:
        if self._base is not None:
            self.drop(self._base)

    def drop_stale(self) -> None:
        cutoff = time.time() - STALE_AFTER_SECONDS
        for url in self.node_urls:
            with psycopg.connect(url, autocommit=True) as conn:
                rows = conn.execute(
                    "SELECT datname FROM pg_database WHERE datname LIKE %s", [DB_PREFIX + "%"]
                ).fetchall()
                for (name,) in rows:
                    stamp, sep, _ = name[len(DB_PREFIX) :].partition("_")
                    if sep and stamp.isdigit() and int(stamp) < cutoff:
                        with contextlib.suppress(psycopg.Error):
                            self.drop(name)
