"""Export and import threads as NDJSON: one JSON object per line, lossless.

The first line is a header::

    {"format": "pgcheckpoint.ndjson", "version": 1, "exported_at": "..."}

then one line per checkpoint, each thread's lines together and oldest first::

    {"thread_id": "t1", "checkpoint_ns": "", "checkpoint_id": "1ef...",
     "parent_checkpoint_id": "1ef..." | null, "created_at": "2025-...+00:00",
     "metadata": {...},
     "checkpoint": {"type": "msgpack", "data": "<base64>"},
     "writes": [{"task_id": "...", "task_path": "...", "idx": 0, "channel": "messages",
                 "type": "msgpack", "data": "<base64>"}]}

Values are the serde's typed bytes (``dumps_typed``), never pgcheckpoint's
storage format (no compression, no chunks), so a file is portable between
settings and versions. Importing goes through the importers' per-thread,
one-transaction, skip-if-present path (:mod:`pgcheckpoint.importers.common`):
it works on an empty or a live database and never duplicates.
"""

from __future__ import annotations

import base64
import datetime as dt
import json
import os
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO, cast

from langgraph.checkpoint.base import Checkpoint

from . import codec
from ._plans import fetch_all
from .errors import InvalidInputError, PgCheckpointError, TransferError
from .importers.common import (
    ImportReport,
    SourceCheckpoint,
    SourceWrite,
    ThreadResult,
    run_import,
)

if TYPE_CHECKING:
    from .saver import PostgresSaver

__all__ = ["FORMAT", "VERSION", "ExportReport", "export_ndjson", "import_ndjson"]

FORMAT = "pgcheckpoint.ndjson"
VERSION = 1


@dataclass(slots=True)
class ExportReport:
    """What an export wrote."""

    threads: int = 0
    checkpoints: int = 0
    writes: int = 0

    def as_dict(self) -> dict[str, int]:
        return {"threads": self.threads, "checkpoints": self.checkpoints, "writes": self.writes}


def _b64(data: bytes | None) -> str:
    return base64.b64encode(data or b"").decode("ascii")


def _unb64(text: Any, where: str) -> bytes:
    if not isinstance(text, str):
        raise TransferError(f"{where}: expected base64 text")
    try:
        return base64.b64decode(text, validate=True)
    except ValueError as exc:
        raise TransferError(f"{where}: invalid base64: {exc}") from exc


# --- export -------------------------------------------------------------------


def _selected_threads(
    saver: PostgresSaver, thread_ids: Iterable[str] | None, filter: Mapping[str, Any] | None
) -> Iterator[str]:
    if thread_ids is not None:
        for tid in thread_ids:
            yield codec.text_id(tid, "thread_id")
        return
    after = None
    while True:
        page = saver.list_threads(limit=500, after=after, filter=filter)
        yield from (t.thread_id for t in page)
        if len(page) < 500:
            return
        after = page[-1]


def _thread_lines(saver: PostgresSaver, thread_id: str) -> list[dict[str, Any]]:
    versions = {(v.checkpoint_ns, v.checkpoint_id): v for v in saver.list_versions(thread_id)}
    rows = saver._runner.run(
        fetch_all("export_writes", saver.queries["export_writes"], {"thread_id": thread_id})
    )
    writes: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for ns, cid, task, path, idx, channel, type_, value in rows:
        where = f"write to {channel!r} of {cid}"
        plain_type, data = codec.dumps(saver.serde, saver.codec.unpack(type_, value, where), where)
        writes.setdefault((ns, cid), []).append(
            {
                "task_id": task,
                "task_path": path,
                "idx": idx,
                "channel": channel,
                "type": plain_type,
                "data": _b64(data),
            }
        )
    lines = []
    for t in saver.list({"configurable": {"thread_id": thread_id}}):
        conf = t.config["configurable"]
        key = (conf["checkpoint_ns"], conf["checkpoint_id"])
        info = versions[key]
        type_, data = codec.dumps(saver.serde, t.checkpoint, f"checkpoint {key[1]}")
        lines.append(
            {
                "thread_id": thread_id,
                "checkpoint_ns": key[0],
                "checkpoint_id": key[1],
                "parent_checkpoint_id": info.parent_checkpoint_id,
                "created_at": info.created_at.isoformat(),
                "metadata": dict(t.metadata),
                "checkpoint": {"type": type_, "data": _b64(data)},
                "writes": writes.get(key, []),
            }
        )
    lines.sort(key=lambda d: (d["checkpoint_id"], d["checkpoint_ns"]))
    return lines


def export_ndjson(
    saver: PostgresSaver,
    out: TextIO,
    *,
    thread_ids: Iterable[str] | None = None,
    filter: Mapping[str, Any] | None = None,
    on_thread: Callable[[str, int], None] | None = None,
) -> ExportReport:
    """Write threads to ``out`` as NDJSON: the given ``thread_ids``, or every thread
    whose latest metadata matches ``filter`` (all threads when both are None).

    Example::

        with open("backup.ndjson", "w") as f:
            export_ndjson(saver, f, filter={"user": "alice"})
    """
    header = {
        "format": FORMAT,
        "version": VERSION,
        "exported_at": dt.datetime.now(dt.timezone.utc).isoformat(),
    }
    out.write(json.dumps(header) + "\n")
    report = ExportReport()
    for tid in _selected_threads(saver, thread_ids, filter):
        lines = _thread_lines(saver, tid)
        for line in lines:
            out.write(json.dumps(line, ensure_ascii=False, separators=(",", ":")) + "\n")
        report.threads += int(bool(lines))
        report.checkpoints += len(lines)
        report.writes += sum(len(d["writes"]) for d in lines)
        if on_thread is not None:
            on_thread(tid, len(lines))
    return report


# --- import -------------------------------------------------------------------


class NdjsonSource:
    """An NDJSON export file, indexed by thread (line offsets only) so threads load one by one."""

    def __init__(self, path: str | os.PathLike[str], saver: PostgresSaver) -> None:
        self.path = Path(path)
        self.name = f"ndjson:{self.path}"
        self.saver = saver
        self._offsets: dict[str, list[int]] = {}
        try:
            self._file = self.path.open("rb")
        except OSError as exc:
            raise TransferError(f"cannot open {str(self.path)!r}: {exc}") from exc
        self._index()

    def _index(self) -> None:
        first = self._file.readline()
        try:
            header = json.loads(first)
        except ValueError as exc:
            raise TransferError(f"{self.path}: line 1 is not JSON: {exc}") from exc
        if not isinstance(header, dict) or header.get("format") != FORMAT:
            raise TransferError(f"{self.path}: not a pgcheckpoint NDJSON export (bad header)")
        if header.get("version") != VERSION:
            raise TransferError(
                f"{self.path}: export format version {header.get('version')!r} is not "
                f"supported (this pgcheckpoint reads version {VERSION})"
            )
        number = 1
        while True:
            offset = self._file.tell()
            line = self._file.readline()
            if not line:
                break
            number += 1
            if not line.strip():
                continue
            tid = self._parse(line, number).get("thread_id")
            if not isinstance(tid, str):
                raise TransferError(f"{self.path}: line {number} has no thread_id")
            self._offsets.setdefault(tid, []).append(offset)

    def _parse(self, line: bytes, number: int | str) -> dict[str, Any]:
        try:
            data = json.loads(line)
        except ValueError as exc:
            raise TransferError(f"{self.path}: line {number} is not JSON: {exc}") from exc
        if not isinstance(data, dict):
            raise TransferError(f"{self.path}: line {number} is not a JSON object")
        return data

    def close(self) -> None:
        self._file.close()

    def thread_ids(self) -> list[str]:
        return list(self._offsets)

    def _loads(self, item: Any, where: str) -> Any:
        if not isinstance(item, dict):
            raise TransferError(f"{where}: expected {{'type', 'data'}}")
        return codec.loads(
            self.saver.serde, str(item.get("type")), _unb64(item.get("data"), where), where
        )

    def load_thread(self, thread_id: str) -> list[SourceCheckpoint]:
        out = []
        for offset in self._offsets.get(thread_id, []):
            self._file.seek(offset)
            d = self._parse(self._file.readline(), f"at byte {offset}")
            cid = str(d.get("checkpoint_id"))
            try:
                writes = [
                    SourceWrite(
                        w["task_id"],
                        w["channel"],
                        self._loads(w, f"write to {w['channel']!r} of {cid}"),
                        int(w["idx"]),
                        w.get("task_path") or "",
                    )
                    for w in d.get("writes") or []
                ]
                out.append(
                    SourceCheckpoint(
                        thread_id,
                        str(d.get("checkpoint_ns") or ""),
                        cid,
                        d.get("parent_checkpoint_id"),
                        cast(Checkpoint, self._loads(d.get("checkpoint"), f"checkpoint {cid}")),
                        dict(d.get("metadata") or {}),
                        writes,
                    )
                )
            except (KeyError, TypeError, ValueError) as exc:
                if isinstance(exc, PgCheckpointError):
                    raise
                raise TransferError(f"{self.path}: checkpoint {cid} is malformed: {exc}") from exc
        return out


def import_ndjson(
    saver: PostgresSaver,
    path: str | os.PathLike[str],
    *,
    verify: bool = True,
    on_start: Callable[[int], None] | None = None,
    on_thread: Callable[[ThreadResult], None] | None = None,
) -> ImportReport:
    """Import an NDJSON export into ``saver``; threads already present are skipped.

    Example::

        report = import_ndjson(saver, "backup.ndjson")
    """
    if not isinstance(path, str | os.PathLike):
        raise InvalidInputError(f"path must be a file path, got {type(path).__name__}")
    source = NdjsonSource(path, saver)
    try:
        return run_import(saver, source, verify=verify, on_start=on_start, on_thread=on_thread)
    finally:
        source.close()
