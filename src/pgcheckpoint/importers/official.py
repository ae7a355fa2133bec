"""Import from the official ``langgraph-checkpoint-postgres`` tables, without loading values.

Its layout (``langgraph/checkpoint/postgres/base.py``): ``checkpoints`` holds
each checkpoint as JSONB with its primitive channel values (None, str, int,
float, bool) inline and the others left out, ``checkpoint_blobs`` one row per
(channel, version) with the serde's typed bytes (type ``"empty"`` for a
channel with no value), ``checkpoint_writes`` the pending writes as typed
bytes. The official saver reads a checkpoint as its JSONB with the non-empty
blobs of its ``channel_versions`` laid over ``channel_values``.

The import does the same without deserializing a value: blob and write bytes
are carried across as they are (compressed and chunked for pgcheckpoint's
storage, losslessly); the JSONB checkpoint, plain JSON data, is written as
pgcheckpoint's checkpoint bytes with the serde (no custom type can be in it);
``"empty"`` blobs are not carried (pgcheckpoint stores no row for a channel
without a value). So threads holding types the allowlist refuses import too.
The tables may be in the target database or another one, in any schema; they
are only read, through one sync connection (from a worker thread when the
target saver is async: :func:`aimport_official`). The statements, named in
``STATEMENTS``, are about another product's tables, so they live here rather
than in ``queries.sql`` (pgcheckpoint's own statements); ``{schema}`` is the
source schema, quoted with ``psycopg.sql.Identifier``.

Checkpoints written by savers older than checkpoint format 4 kept pending
sends as writes of the parent; they are imported as stored, without the
official saver's on-read migration.
"""

from __future__ import annotations

from functools import partial
from typing import TYPE_CHECKING, LiteralString

import psycopg
from psycopg import sql as pgsql

from .. import codec
from .._core import check_schema_name
from .._queries import quote_schema
from ..errors import TransferError
from .common import ImportOptions, ImportReport, source_job
from .jobs import arun_job, run_job
from .rows import StoredCheckpoint, StoredThread, StoredWrite, Value, pack_blob, pack_value

if TYPE_CHECKING:
    from typing_extensions import Unpack

    from ..aio import AsyncPostgresSaver
    from ..saver import PostgresSaver

__all__ = ["STATEMENTS", "OfficialSource", "aimport_official", "import_official", "statements"]

# Every statement the reader runs on the official saver's tables, by name.
STATEMENTS: dict[str, LiteralString] = {
    "has_tables": "SELECT to_regclass(%(table)s) IS NOT NULL",
    "thread_ids": "SELECT DISTINCT thread_id FROM {schema}.checkpoints ORDER BY thread_id",
    "checkpoints": (
        "SELECT checkpoint_ns, checkpoint_id, parent_checkpoint_id, checkpoint, metadata "
        "FROM {schema}.checkpoints WHERE thread_id = %(thread_id)s "
        "ORDER BY checkpoint_id, checkpoint_ns"
    ),
    "blobs": (
        "SELECT checkpoint_ns, channel, version, type, blob "
        "FROM {schema}.checkpoint_blobs WHERE thread_id = %(thread_id)s"
    ),
    "writes": (
        "SELECT checkpoint_ns, checkpoint_id, task_id, task_path, idx, channel, type, blob "
        "FROM {schema}.checkpoint_writes WHERE thread_id = %(thread_id)s "
        "ORDER BY checkpoint_ns, checkpoint_id, task_path, task_id, idx"
    ),
}


def statements(schema: str) -> dict[str, pgsql.Composed]:
    """:data:`STATEMENTS` bound to the source ``schema``."""
    name = pgsql.Identifier(schema)
    return {key: pgsql.SQL(text).format(schema=name) for key, text in STATEMENTS.items()}


class OfficialSource:
    """The official saver's tables, read through one psycopg connection (used by one
    thread at a time)."""

    def __init__(self, dsn: str, target: codec.Codec, *, schema: str = "public") -> None:
        self.schema = check_schema_name(schema)
        self.statements = statements(self.schema)
        self.codec = target
        self.name = f"official:{self.schema}"
        try:
            self.conn = psycopg.connect(dsn, autocommit=True)
        except psycopg.Error as exc:
            raise TransferError(f"cannot connect to the source database: {exc}") from exc
        table = f"{quote_schema(self.schema)}.checkpoint_blobs"
        row = self.conn.execute(self.statements["has_tables"], {"table": table}).fetchone()
        if not row or not row[0]:
            self.conn.close()
            raise TransferError(
                f"no official langgraph-checkpoint-postgres tables in schema {schema!r} "
                f"({table} not found)"
            )

    def close(self) -> None:
        self.conn.close()

    def thread_ids(self) -> list[str]:
        return [str(r[0]) for r in self.conn.execute(self.statements["thread_ids"])]

    def load_thread(self, thread_id: str) -> StoredThread:
        q = self.statements
        params = {"thread_id": thread_id}
        thread = StoredThread(thread_id)
        for ns, channel, version, type_, blob in self.conn.execute(q["blobs"], params):
            if type_ == "empty":
                continue
            where = f"thread {thread_id!r} channel {channel!r} version {version!r}"
            value = Value(str(type_), None if blob is None else bytes(blob))
            thread.add_blob(
                (ns, channel, version), pack_blob(self.codec, value, thread.chunks), where
            )
        for ns, cid, task, path, idx, channel, type_, blob in self.conn.execute(
            q["writes"], params
        ):
            type_, data = pack_value(
                self.codec, Value(str(type_), None if blob is None else bytes(blob))
            )
            thread.writes[(ns, cid, task, int(idx))] = StoredWrite(channel, type_, data, path or "")
        for ns, cid, parent, data, meta in self.conn.execute(q["checkpoints"], params):
            where = f"thread {thread_id!r} checkpoint {cid!r}"
            checkpoint = dict(data)
            values = dict(checkpoint.get("channel_values") or {})
            slots: dict[str, str | None] = dict.fromkeys(values)
            for channel, version in (checkpoint.get("channel_versions") or {}).items():
                if (ns, channel, str(version)) in thread.blobs:
                    slots[channel] = str(version)  # the blob is laid over, as the official read
            checkpoint["channel_values"] = values
            type_, packed = self.codec.pack(*codec.dumps(self.codec.serde, checkpoint, where))
            thread.checkpoints.append(
                StoredCheckpoint(
                    ns,
                    cid,
                    parent,
                    type_,
                    packed,
                    dict(meta or {}),
                    codec.parse_ts(checkpoint.get("ts")),
                    list(slots),
                    list(slots.values()),
                )
            )
        return thread


def import_official(
    saver: PostgresSaver, dsn: str, *, schema: str = "public", **options: Unpack[ImportOptions]
) -> ImportReport:
    """Import the official saver's tables (at ``dsn``, in ``schema``) into ``saver``.
    ``options``: :class:`~pgcheckpoint.importers.common.ImportOptions`.

    Example::

        report = import_official(saver, "postgresql://localhost/old_app")
    """
    open_source = partial(OfficialSource, dsn, saver.codec, schema=schema)
    return run_job(saver, source_job(saver, open_source, options))


async def aimport_official(
    saver: AsyncPostgresSaver, dsn: str, *, schema: str = "public", **options: Unpack[ImportOptions]
) -> ImportReport:
    """:func:`import_official` into an ``AsyncPostgresSaver`` (the source is read in a
    worker thread).

    Example::

        report = await aimport_official(saver, "postgresql://localhost/old_app")
    """
    open_source = partial(OfficialSource, dsn, saver.codec, schema=schema)
    return await arun_job(saver, source_job(saver, open_source, options))
