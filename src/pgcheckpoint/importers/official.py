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
are only read. The statements are the ``official_*`` blocks of
``queries.sql``, bound to the source schema.

Checkpoints written by savers older than checkpoint format 4 kept pending
sends as writes of the parent; they are imported as stored, without the
official saver's on-read migration.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING

import psycopg

from .. import codec
from .._core import check_schema_name
from .._queries import Queries, quote_schema
from ..errors import TransferError
from .common import ImportReport, ThreadResult, run_import
from .rows import StoredCheckpoint, StoredThread, StoredWrite, Value, pack_blob, pack_value

if TYPE_CHECKING:
    from ..saver import PostgresSaver

__all__ = ["OfficialSource", "import_official"]


class OfficialSource:
    """The official saver's tables, read through one psycopg connection."""

    def __init__(self, dsn: str, target: codec.Codec, *, schema: str = "public") -> None:
        self.schema = check_schema_name(schema)
        self.queries = Queries(self.schema)
        self.codec = target
        self.name = f"official:{self.schema}"
        try:
            self.conn = psycopg.connect(dsn, autocommit=True)
        except psycopg.Error as exc:
            raise TransferError(f"cannot connect to the source database: {exc}") from exc
        table = f"{quote_schema(self.schema)}.checkpoint_blobs"
        row = self.conn.execute("SELECT to_regclass(%s) IS NOT NULL", (table,)).fetchone()
        if not row or not row[0]:
            self.conn.close()
            raise TransferError(
                f"no official langgraph-checkpoint-postgres tables in schema {schema!r} "
                f"({table} not found)"
            )

    def close(self) -> None:
        self.conn.close()

    def thread_ids(self) -> list[str]:
        return [str(r[0]) for r in self.conn.execute(self.queries["official_thread_ids"])]

    def load_thread(self, thread_id: str) -> StoredThread:
        q = self.queries
        params = {"thread_id": thread_id}
        thread = StoredThread(thread_id)
        for ns, channel, version, type_, blob in self.conn.execute(q["official_blobs"], params):
            if type_ == "empty":
                continue
            where = f"thread {thread_id!r} channel {channel!r} version {version!r}"
            value = Value(str(type_), None if blob is None else bytes(blob))
            thread.add_blob(
                (ns, channel, version), pack_blob(self.codec, value, thread.chunks), where
            )
        for ns, cid, task, path, idx, channel, type_, blob in self.conn.execute(
            q["official_writes"], params
        ):
            type_, data = pack_value(
                self.codec, Value(str(type_), None if blob is None else bytes(blob))
            )
            thread.writes[(ns, cid, task, int(idx))] = StoredWrite(channel, type_, data, path or "")
        for ns, cid, parent, data, meta in self.conn.execute(q["official_checkpoints"], params):
            where = f"thread {thread_id!r} checkpoint {cid!r}"
            checkpoint = dict(data)
            values = dict(checkpoint.get("channel_values") or {})
            slots: dict[str, str | None] = dict.fromkeys(values)
            for channel, version in (checkpoint.get("channel_versions") or {}).items():
                if (ns, channel, str(version)) in thread.blobs:
                    slots[channel] = str(version)  # the blob is laid over, as the official read
            checkpoint["channel_values"] = values
            type_, packed = self.codec.pack(
                *codec.dumps(self.codec.serde, checkpoint, where), skeleton=True
            )
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
    saver: PostgresSaver,
    dsn: str,
    *,
    schema: str = "public",
    thread_ids: Iterable[str] | None = None,
    verify: bool = True,
    on_start: Callable[[int], None] | None = None,
    on_thread: Callable[[ThreadResult], None] | None = None,
) -> ImportReport:
    """Import the official saver's tables (at ``dsn``, in ``schema``) into ``saver``.

    Example::

        report = import_official(saver, "postgresql://localhost/old_app")
    """
    source = OfficialSource(dsn, saver.codec, schema=schema)
    try:
        return run_import(
            saver,
            source,
            thread_ids=thread_ids,
            verify=verify,
            on_start=on_start,
            on_thread=on_thread,
        )
    finally:
        source.close()
