"""Import from the official ``langgraph-checkpoint-postgres`` tables.

Its layout (``langgraph/checkpoint/postgres/base.py``): ``checkpoints`` holds
each checkpoint as JSONB with small primitive channel values inline and the
others replaced by their version, ``checkpoint_blobs`` one row per (channel,
version) with the serde's typed bytes (type ``"empty"`` for an empty channel),
``checkpoint_writes`` the pending writes as typed bytes. The tables may be in
the target database or another one, in any schema; they are only read. The
statements are the ``official_*`` blocks of ``queries.sql``, bound to the
source schema.

Checkpoints written by savers older than checkpoint format 4 kept pending
sends as writes of the parent; they are imported as stored, without the
official saver's on-read migration.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any, cast

import psycopg
from langgraph.checkpoint.base import Checkpoint
from langgraph.checkpoint.serde.base import SerializerProtocol

from .. import codec
from .._core import check_schema_name
from .._queries import Queries, quote_schema
from ..errors import TransferError
from .common import ImportReport, SourceCheckpoint, SourceWrite, ThreadResult, run_import

if TYPE_CHECKING:
    from ..saver import PostgresSaver

__all__ = ["OfficialSource", "import_official"]


class OfficialSource:
    """The official saver's tables, read through one psycopg connection."""

    def __init__(self, dsn: str, serde: SerializerProtocol, *, schema: str = "public") -> None:
        self.schema = check_schema_name(schema)
        self.queries = Queries(self.schema)
        self.serde = serde
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

    def _loads(self, type_: str | None, data: bytes | None, where: str) -> Any:
        return codec.loads(self.serde, type_ or "empty", data, where)

    def load_thread(self, thread_id: str) -> list[SourceCheckpoint]:
        q = self.queries
        params = {"thread_id": thread_id}
        blobs: dict[tuple[str, str, str], tuple[str, bytes | None]] = {
            (ns, ch, ver): (t, b)
            for ns, ch, ver, t, b in self.conn.execute(q["official_blobs"], params)
        }
        writes: dict[tuple[str, str], list[SourceWrite]] = {}
        for ns, cid, task, path, idx, channel, type_, blob in self.conn.execute(
            q["official_writes"], params
        ):
            value = self._loads(type_, blob, f"write to {channel!r} of {cid}")
            writes.setdefault((ns, cid), []).append(
                SourceWrite(task, channel, value, int(idx), path or "")
            )
        out: list[SourceCheckpoint] = []
        for ns, cid, parent, data, meta in self.conn.execute(q["official_checkpoints"], params):
            checkpoint = dict(data)
            values = dict(checkpoint.get("channel_values") or {})
            for channel, version in (checkpoint.get("channel_versions") or {}).items():
                found = blobs.get((ns, channel, str(version)))
                if found is not None and found[0] != "empty":
                    values[channel] = self._loads(
                        found[0], found[1], f"channel {channel!r} of {cid}"
                    )
            checkpoint["channel_values"] = values
            out.append(
                SourceCheckpoint(
                    thread_id,
                    ns,
                    cid,
                    parent,
                    cast(Checkpoint, checkpoint),
                    dict(meta or {}),
                    writes.get((ns, cid), []),
                )
            )
        return out


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
    source = OfficialSource(dsn, saver.serde, schema=schema)
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
