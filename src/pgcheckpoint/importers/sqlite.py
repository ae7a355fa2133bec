"""Import from a ``langgraph-checkpoint-sqlite`` database file.

The file is read with the standard ``sqlite3`` module, read-only: its
``checkpoints`` and ``writes`` tables map to ours column for column. The
``checkpoint`` column holds ``serde.dumps_typed`` bytes (type in ``type``),
``metadata`` JSON bytes, and writes their typed bytes. A SQLite checkpoint
holds all its channel values in one serialized object, so, unlike the NDJSON
and official imports, this one decodes values with the saver's own serde
(strict allowlist included) to split them into pgcheckpoint's rows; a thread
holding a type the allowlist refuses is refused until the type is allowed
(``saver.with_allowlist``). The SQL here is SQLite's dialect, so its named
statements (``STATEMENTS``) live with the reader rather than in ``queries.sql``
(which holds PostgreSQL statements).

:func:`import_sqlite` imports into a ``PostgresSaver``, :func:`aimport_sqlite` into
an ``AsyncPostgresSaver`` (reading the file in a worker thread); one job
(``jobs.py``) does both.
"""

from __future__ import annotations

import json
import os
import sqlite3
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

from langgraph.checkpoint.base import Checkpoint
from langgraph.checkpoint.serde.base import SerializerProtocol

from .. import codec
from ..errors import PgCheckpointError, TransferError
from .common import ImportOptions, ImportReport, SourceCheckpoint, SourceWrite, source_job
from .jobs import arun_job, run_job

if TYPE_CHECKING:
    from typing_extensions import Unpack

    from ..aio import AsyncPostgresSaver
    from ..saver import PostgresSaver

__all__ = ["STATEMENTS", "SqliteSource", "aimport_sqlite", "import_sqlite"]

# Every statement the reader runs on a SqliteSaver file, by name.
STATEMENTS = {
    "tables": "SELECT name FROM sqlite_master",
    "writes_columns": "PRAGMA table_info(writes)",
    "thread_ids": "SELECT DISTINCT thread_id FROM checkpoints ORDER BY thread_id",
    "checkpoints": (
        "SELECT checkpoint_ns, checkpoint_id, parent_checkpoint_id, type, checkpoint, metadata "
        "FROM checkpoints WHERE thread_id = ? ORDER BY checkpoint_id, checkpoint_ns"
    ),
    "writes": (
        "SELECT checkpoint_ns, checkpoint_id, task_id, task_path, idx, channel, type, value "
        "FROM writes WHERE thread_id = ? ORDER BY checkpoint_ns, checkpoint_id, task_id, idx"
    ),
    # Files written before task_path existed have no such column.
    "writes_without_task_path": (
        "SELECT checkpoint_ns, checkpoint_id, task_id, '', idx, channel, type, value "
        "FROM writes WHERE thread_id = ? ORDER BY checkpoint_ns, checkpoint_id, task_id, idx"
    ),
}


# writes.idx is a PostgreSQL integer.
_INT4 = -(2**31)


class SqliteSource:
    """A SqliteSaver database file, opened read-only. Its calls may come from any one
    thread at a time (an async import makes them from worker threads)."""

    def __init__(self, path: str | os.PathLike[str], serde: SerializerProtocol) -> None:
        file = Path(path)
        if not file.is_file():
            raise TransferError(f"SQLite database {str(file)!r} does not exist")
        self.name = f"sqlite:{file}"
        self.serde = serde
        try:
            self.conn = sqlite3.connect(
                f"{file.resolve().as_uri()}?mode=ro", uri=True, check_same_thread=False
            )
            tables = {r[0] for r in self.conn.execute(STATEMENTS["tables"])}
            if not {"checkpoints", "writes"} <= tables:
                raise TransferError(
                    f"{str(file)!r} is not a langgraph-checkpoint-sqlite database "
                    "(no checkpoints/writes tables)"
                )
            columns = {r[1] for r in self.conn.execute(STATEMENTS["writes_columns"])}
        except sqlite3.Error as exc:
            raise TransferError(f"cannot read SQLite database {str(file)!r}: {exc}") from exc
        self._writes_sql = STATEMENTS[
            "writes" if "task_path" in columns else "writes_without_task_path"
        ]

    def close(self) -> None:
        self.conn.close()

    def thread_ids(self) -> list[str]:
        try:
            return [str(r[0]) for r in self.conn.execute(STATEMENTS["thread_ids"])]
        except sqlite3.Error as exc:
            raise TransferError(f"cannot read {self.name}: {exc}") from exc

    def _loads(self, type_: str | None, data: bytes | None, where: str) -> Any:
        return codec.loads(self.serde, type_ or "empty", data, where)

    def load_thread(self, thread_id: str) -> list[SourceCheckpoint]:
        try:
            return self._load_thread(thread_id)
        except PgCheckpointError:
            raise
        except (sqlite3.Error, ValueError, TypeError, KeyError, RecursionError) as exc:
            # A tampered file: JSON that is not JSON (or too deep), idx not a number, ...
            raise TransferError(
                f"{self.name}: thread {thread_id!r} has a malformed row: "
                f"{type(exc).__name__}: {exc}"
            ) from exc

    def _load_thread(self, thread_id: str) -> list[SourceCheckpoint]:
        writes: dict[tuple[str, str], list[SourceWrite]] = {}
        for ns, cid, task, path, idx, channel, type_, value in self.conn.execute(
            self._writes_sql, (thread_id,)
        ):
            where = f"write to {channel!r} of checkpoint {cid}"
            if isinstance(idx, bool) or not isinstance(idx, int) or not _INT4 <= idx < -_INT4:
                raise TransferError(
                    f"{self.name}: thread {thread_id!r} {where}: idx {idx!r} is not a "
                    "32-bit integer"
                )
            writes.setdefault((ns, cid), []).append(
                SourceWrite(task, channel, self._loads(type_, value, where), idx, path or "")
            )
        out: list[SourceCheckpoint] = []
        for ns, cid, parent, type_, data, meta in self.conn.execute(
            STATEMENTS["checkpoints"], (thread_id,)
        ):
            checkpoint = self._loads(type_, data, f"checkpoint {cid}")
            metadata = json.loads(meta) if meta is not None else {}
            out.append(
                SourceCheckpoint(
                    thread_id,
                    ns,
                    cid,
                    parent,
                    cast(Checkpoint, checkpoint),
                    metadata,
                    writes.get((ns, cid), []),
                )
            )
        return out


def import_sqlite(
    saver: PostgresSaver, path: str | os.PathLike[str], **options: Unpack[ImportOptions]
) -> ImportReport:
    """Import a SqliteSaver file into ``saver``; resumable and verified (see ``common``).
    ``options``: :class:`~pgcheckpoint.importers.common.ImportOptions`.

    Example::

        with PostgresSaver.from_conn_string(url) as saver:
            saver.setup()
            report = import_sqlite(saver, "checkpoints.sqlite")
            assert report.verified
    """
    return run_job(saver, source_job(saver, partial(SqliteSource, path, saver.serde), options))


async def aimport_sqlite(
    saver: AsyncPostgresSaver, path: str | os.PathLike[str], **options: Unpack[ImportOptions]
) -> ImportReport:
    """:func:`import_sqlite` into an ``AsyncPostgresSaver`` (the file is read in a worker
    thread).

    Example::

        report = await aimport_sqlite(saver, "checkpoints.sqlite")
    """
    open_source = partial(SqliteSource, path, saver.serde)
    return await arun_job(saver, source_job(saver, open_source, options))
