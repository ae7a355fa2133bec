"""Export and import threads as NDJSON that proves itself (format version 2).

A file is one JSON object per line (UTF-8, ``\\n`` after every line)::

    {"format": "pgcheckpoint.ndjson", "version": 2, "exported_at": "<ISO 8601>"}
    ... each thread's lines together: its checkpoints (oldest first), its
        channel values, its pending writes, then its end line ...
    {"kind": "trailer", "threads": {...}, "lines": N, "sha256": "<hex>"}

Lines of a thread (values are the serde's bytes, base64, never decoded)::

    {"kind": "checkpoint", "thread_id", "checkpoint_ns", "checkpoint_id",
     "parent_checkpoint_id": str | null, "created_at": ISO 8601 | null,
     "metadata": {...}, "channels": [str], "versions": [str | null],
     "type": "msgpack", "data": "<base64>"}
    {"kind": "value", "thread_id", "checkpoint_ns", "channel", "version",
     "type", "data": "<base64>" | null}
    {"kind": "write", "thread_id", "checkpoint_ns", "checkpoint_id", "task_id",
     "task_path", "idx", "channel", "type", "data": "<base64>" | null}
    {"kind": "thread_end", "thread_id", "checkpoints": n, "values": n, "writes": n}

A checkpoint line carries the checkpoint without its large channel values:
``channels[i]`` is held inline in ``data`` when ``versions[i]`` is null, else by
the value line of that (checkpoint_ns, channel, version). ``type``/``data`` are
exactly what the serde wrote (pgcheckpoint's compression and chunking undone,
losslessly), so a thread whose values the allowlist would refuse exports and
imports all the same, and a file does not depend on the storage settings.

The trailer is the last line. ``threads`` maps every thread id to its
``{"checkpoints", "values", "writes"}`` line counts, ``lines`` counts the lines
before the trailer (header included) and ``sha256`` is the SHA-256 of those
lines' exact bytes, newlines included.

Import refuses, before writing anything, a file without a valid trailer (cut
short, or left by a failed export), with a digest or a count that does not
match, with a thread whose lines are not together, or with lines after the
trailer. ``partial=True`` accepts a file without a trailer: it imports the
threads whose end line is present and whose counts match, and reports the
others in ``ImportReport.left_out``. Each thread's rows then go through the
importers' guarded write (:mod:`pgcheckpoint.importers.common`): never replacing
a stored row, identical rows skipped, verified before commit.

Export writes a file through a temporary file renamed on success, so a failed
export leaves no file that looks like a backup; an unknown thread id fails
before anything is written.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import json
import os
import tempfile
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

from . import codec
from ._plans import Plan, PlanGen, Query, fetch_all
from .errors import InvalidInputError, TransferError
from .importers.common import ImportReport, ThreadResult, run_import
from .importers.rows import (
    StoredBlob,
    StoredCheckpoint,
    StoredThread,
    StoredWrite,
    Value,
    check_thread,
    chunk_refs_of,
    pack_blob,
    pack_value,
    thread_from_rows,
    unpack_blob,
    unpack_value,
)

if TYPE_CHECKING:
    from .saver import PostgresSaver

__all__ = [
    "FORMAT",
    "VERSION",
    "ExportReport",
    "NdjsonSource",
    "export_file",
    "export_ndjson",
    "import_ndjson",
]

FORMAT = "pgcheckpoint.ndjson"
VERSION = 2
_KINDS = ("checkpoint", "value", "write")
_COUNT_KEYS = {"checkpoint": "checkpoints", "value": "values", "write": "writes"}


@dataclass(slots=True)
class ExportReport:
    """What an export wrote."""

    threads: int = 0
    checkpoints: int = 0
    values: int = 0
    writes: int = 0
    sha256: str = ""

    def as_dict(self) -> dict[str, Any]:
        return {
            "threads": self.threads,
            "checkpoints": self.checkpoints,
            "values": self.values,
            "writes": self.writes,
            "sha256": self.sha256,
        }


def _b64(data: bytes | None) -> str | None:
    return None if data is None else base64.b64encode(data).decode("ascii")


def _unb64(text: Any, where: str) -> bytes | None:
    if text is None:
        return None
    if not isinstance(text, str):
        raise TransferError(f"{where}: expected base64 text")
    try:
        return base64.b64decode(text, validate=True)
    except ValueError as exc:
        raise TransferError(f"{where}: invalid base64: {exc}") from exc


def _line(obj: Mapping[str, Any]) -> bytes:
    return (json.dumps(obj, ensure_ascii=False, separators=(",", ":")) + "\n").encode("utf-8")


# --- export -------------------------------------------------------------------


def _selected(
    saver: PostgresSaver, thread_ids: Iterable[str] | None, filter: Mapping[str, Any] | None
) -> list[tuple[str, int]]:
    """(thread id, checkpoints) of every thread to export, in export order; one cheap
    query (or the list_threads pages) before anything is written, for the total."""
    if thread_ids is not None:
        ids = list(dict.fromkeys(codec.text_id(t, "thread_id") for t in thread_ids))
        rows = saver._runner.run(
            fetch_all("export_counts", saver.queries["export_counts"], {"thread_ids": ids})
        )
        counts = {str(r[0]): int(r[1]) for r in rows}
        missing = [t for t in ids if t not in counts]
        if missing:
            raise TransferError(
                f"cannot export: no checkpoints for thread(s) {', '.join(map(repr, missing))}"
            )
        return [(t, counts[t]) for t in ids]
    if filter is None:
        rows = saver._runner.run(
            fetch_all("export_counts", saver.queries["export_counts"], {"thread_ids": None})
        )
        return [(str(r[0]), int(r[1])) for r in rows]
    out: list[tuple[str, int]] = []
    after = None
    while True:
        page = saver.list_threads(limit=500, after=after, filter=filter)
        out.extend((t.thread_id, t.checkpoints) for t in page)
        if len(page) < 500:
            return out
        after = page[-1]


def _rows_plan(saver: PostgresSaver, thread_id: str) -> Plan[StoredThread]:
    """Every row of a thread from one snapshot (the chunks its values reference too)."""
    q = saver.queries
    p = {"thread_id": thread_id}

    def make() -> PlanGen[StoredThread]:
        yield Query(q["export_snapshot"], None, prepare=False)
        c = yield Query(q["rows_checkpoints"], p, fetch="all")
        b = yield Query(q["rows_blobs"], p, fetch="all")
        w = yield Query(q["rows_writes"], p, fetch="all")
        thread = thread_from_rows(thread_id, c or [], b or [], w or [])
        hashes = chunk_refs_of(thread.blobs.values())
        if hashes:
            k = yield Query(q["fetch_chunks"], {**p, "hashes": hashes}, fetch="all")
            for h, compressed, data in k or []:
                thread.chunks[bytes(h)] = (bool(compressed), bytes(data))
        return thread

    return Plan("export_thread", make, transaction=True)


def _thread_lines(thread: StoredThread) -> tuple[list[bytes], dict[str, int]]:
    tid = thread.thread_id
    lines: list[bytes] = []
    for cp in thread.checkpoints:
        where = f"thread {tid!r} checkpoint {cp.checkpoint_id!r}"
        value = unpack_value(cp.type, cp.data, where)
        lines.append(
            _line(
                {
                    "kind": "checkpoint",
                    "thread_id": tid,
                    "checkpoint_ns": cp.checkpoint_ns,
                    "checkpoint_id": cp.checkpoint_id,
                    "parent_checkpoint_id": cp.parent_checkpoint_id,
                    "created_at": cp.created_at.isoformat() if cp.created_at else None,
                    "metadata": cp.metadata,
                    "channels": cp.channels,
                    "versions": cp.versions,
                    "type": value.type,
                    "data": _b64(value.data),
                }
            )
        )
    for (ns, channel, version), blob in thread.blobs.items():
        where = f"thread {tid!r} channel {channel!r} version {version!r}"
        value = unpack_blob(blob, thread.chunks, where)
        lines.append(
            _line(
                {
                    "kind": "value",
                    "thread_id": tid,
                    "checkpoint_ns": ns,
                    "channel": channel,
                    "version": version,
                    "type": value.type,
                    "data": _b64(value.data),
                }
            )
        )
    for (ns, cid, task, idx), write in thread.writes.items():
        value = unpack_value(write.type, write.value, f"thread {tid!r} write to {write.channel!r}")
        lines.append(
            _line(
                {
                    "kind": "write",
                    "thread_id": tid,
                    "checkpoint_ns": ns,
                    "checkpoint_id": cid,
                    "task_id": task,
                    "task_path": write.task_path,
                    "idx": idx,
                    "channel": write.channel,
                    "type": value.type,
                    "data": _b64(value.data),
                }
            )
        )
    counts = {
        "checkpoints": len(thread.checkpoints),
        "values": len(thread.blobs),
        "writes": len(thread.writes),
    }
    lines.append(_line({"kind": "thread_end", "thread_id": tid, **counts}))
    return lines, counts


def export_ndjson(
    saver: PostgresSaver,
    out: TextIO,
    *,
    thread_ids: Iterable[str] | None = None,
    filter: Mapping[str, Any] | None = None,
    on_start: Callable[[int, int], None] | None = None,
    on_thread: Callable[[str, int], None] | None = None,
) -> ExportReport:
    """Write threads to ``out`` as NDJSON (module doc): the given ``thread_ids`` (each must
    exist), or every thread whose latest metadata matches ``filter`` (all when both are
    None). ``on_start(threads, checkpoints)`` gives the totals before the first line.

    Prefer :func:`export_file`, which leaves no file behind when the export fails.

    Example::

        with open("backup.ndjson", "w") as f:
            export_ndjson(saver, f, filter={"user": "alice"})
    """
    selected = _selected(saver, thread_ids, filter)
    if on_start is not None:
        on_start(len(selected), sum(n for _, n in selected))
    digest = hashlib.sha256()
    lines = 0

    def write(data: bytes) -> None:
        nonlocal lines
        digest.update(data)
        lines += 1
        out.write(data.decode("utf-8"))

    write(
        _line(
            {
                "format": FORMAT,
                "version": VERSION,
                "exported_at": dt.datetime.now(dt.timezone.utc).isoformat(),
            }
        )
    )
    report = ExportReport()
    threads: dict[str, dict[str, int]] = {}
    for tid, _ in selected:
        thread = saver._runner.run(_rows_plan(saver, tid))
        if not thread.checkpoints:
            continue  # deleted since it was counted
        thread_lines, counts = _thread_lines(thread)
        for data in thread_lines:
            write(data)
        threads[tid] = counts
        report.threads += 1
        report.checkpoints += counts["checkpoints"]
        report.values += counts["values"]
        report.writes += counts["writes"]
        if on_thread is not None:
            on_thread(tid, counts["checkpoints"])
    report.sha256 = digest.hexdigest()
    out.write(
        _line(
            {
                "kind": "trailer",
                "format": FORMAT,
                "version": VERSION,
                "threads": threads,
                "lines": lines,
                "sha256": report.sha256,
            }
        ).decode("utf-8")
    )
    return report


def export_file(
    saver: PostgresSaver,
    path: str | os.PathLike[str],
    *,
    thread_ids: Iterable[str] | None = None,
    filter: Mapping[str, Any] | None = None,
    on_start: Callable[[int, int], None] | None = None,
    on_thread: Callable[[str, int], None] | None = None,
) -> ExportReport:
    """:func:`export_ndjson` into ``path``, through a temporary file in the same directory
    renamed over ``path`` only once the trailer is written: a failed export leaves no file.

    Example::

        export_file(saver, "backup.ndjson")
    """
    target = Path(path)
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".part", dir=target.parent)
    except OSError as exc:
        raise TransferError(f"cannot write in {str(target.parent)!r}: {exc}") from exc
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="\n") as out:
            report = export_ndjson(
                saver,
                out,
                thread_ids=thread_ids,
                filter=filter,
                on_start=on_start,
                on_thread=on_thread,
            )
            out.flush()
            os.fsync(out.fileno())
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return report


# --- import -------------------------------------------------------------------


@dataclass(slots=True)
class _Counts:
    checkpoints: int = 0
    values: int = 0
    writes: int = 0

    def as_dict(self) -> dict[str, int]:
        return {"checkpoints": self.checkpoints, "values": self.values, "writes": self.writes}


@dataclass(slots=True)
class _Index:
    offsets: dict[str, list[int]] = field(default_factory=dict)
    counts: dict[str, _Counts] = field(default_factory=dict)
    ends: dict[str, dict[str, Any]] = field(default_factory=dict)
    trailer: dict[str, Any] | None = None
    digest: str = ""
    lines: int = 0
    cut_line: int | None = None


class NdjsonSource:
    """An export file, checked whole and indexed by thread (line offsets only) when opened,
    so threads then load one by one."""

    def __init__(
        self, path: str | os.PathLike[str], saver: PostgresSaver, *, partial: bool = False
    ) -> None:
        self.path = Path(path)
        self.name = f"ndjson:{self.path}"
        self.codec = saver.codec
        self.partial = partial
        self.left_out: list[str] = []
        try:
            self._file = self.path.open("rb")
        except OSError as exc:
            raise TransferError(f"cannot open {str(self.path)!r}: {exc}") from exc
        try:
            self._index = self._read_index()
            self._whole = self._check(self._index)
        except BaseException:
            self._file.close()
            raise

    def _error(self, text: str) -> TransferError:
        return TransferError(f"{self.path}: {text}")

    def _parse(self, line: bytes, number: int | str) -> dict[str, Any]:
        try:
            data = json.loads(line)
        except ValueError as exc:
            raise self._error(f"line {number} is not JSON: {exc}") from exc
        if not isinstance(data, dict):
            raise self._error(f"line {number} is not a JSON object")
        return data

    def _read_index(self) -> _Index:
        first = self._file.readline()
        header = self._parse(first, 1)
        if header.get("format") != FORMAT:
            raise self._error("not a pgcheckpoint NDJSON export (bad header)")
        if header.get("version") != VERSION:
            raise self._error(
                f"export format version {header.get('version')!r} is not supported (this "
                f"pgcheckpoint reads version {VERSION}; version 1 files came from an export "
                "that decoded values: re-export them with the release that wrote them)"
            )
        index = _Index()
        digest = hashlib.sha256(first)
        number = 1
        current: str | None = None
        while True:
            offset = self._file.tell()
            line = self._file.readline()
            if not line:
                break
            number += 1
            if index.trailer is not None:
                raise self._error(f"line {number} comes after the trailer")
            if not line.endswith(b"\n"):
                index.cut_line = number  # the last line, cut short
                break
            d = self._parse(line, number)
            kind = d.get("kind")
            if kind == "trailer":
                index.trailer, index.digest, index.lines = d, digest.hexdigest(), number - 1
                continue
            digest.update(line)
            tid = d.get("thread_id")
            if not isinstance(tid, str):
                raise self._error(f"line {number} has no thread_id")
            if tid != current and (tid in index.offsets or tid in index.ends):
                raise self._error(f"line {number}: the lines of thread {tid!r} are not together")
            current = tid
            if kind == "thread_end":
                index.ends[tid] = d
                index.offsets.setdefault(tid, [])
                current = None
            elif kind in _KINDS:
                if tid in index.ends:
                    raise self._error(f"line {number}: thread {tid!r} continues after its end")
                index.offsets.setdefault(tid, []).append(offset)
                counts = index.counts.setdefault(tid, _Counts())
                name = _COUNT_KEYS[kind]
                setattr(counts, name, getattr(counts, name) + 1)
            else:
                raise self._error(f"line {number} has an unknown kind {kind!r}")
        return index

    def _check(self, index: _Index) -> list[str]:
        """The threads to import; raises when the file does not prove itself."""
        whole: list[str] = []
        for tid in index.offsets:
            end = index.ends.get(tid)
            counts = index.counts.get(tid, _Counts()).as_dict()
            ok = end is not None and {k: end.get(k) for k in counts} == counts
            if ok:
                whole.append(tid)
            elif end is not None:
                raise self._error(
                    f"thread {tid!r} has {counts} lines but its end line says "
                    f"{ {k: end.get(k) for k in counts} }"
                )
            else:
                self.left_out.append(
                    f"thread {tid!r}: incomplete ({counts['checkpoints']} checkpoint line(s) "
                    "read, no end line), not imported"
                )
        trailer = index.trailer
        if index.cut_line is not None:
            self.left_out.append(f"line {index.cut_line}: cut short, ignored")
        if trailer is None or index.cut_line is not None:
            if not self.partial:
                raise self._error(
                    "has no trailer: the file is incomplete (cut short, or left by an export "
                    "that failed); refusing to import it. To import its complete threads "
                    "only, use partial=True (CLI: --partial)"
                )
            return whole
        if trailer.get("sha256") != index.digest:
            raise self._error(
                "its SHA-256 does not match the trailer's: the file was altered or damaged"
            )
        if trailer.get("lines") != index.lines:
            raise self._error(
                f"the trailer counts {trailer.get('lines')!r} lines, the file has {index.lines}"
            )
        listed = trailer.get("threads")
        found = {tid: index.counts.get(tid, _Counts()).as_dict() for tid in index.offsets}
        if listed != found:
            raise self._error("the threads or line counts in the trailer do not match the file")
        if self.left_out:
            raise self._error("; ".join(self.left_out))
        return whole

    def close(self) -> None:
        self._file.close()

    def thread_ids(self) -> list[str]:
        return list(self._whole)

    def _value(self, d: Mapping[str, Any], where: str) -> Value:
        type_ = d.get("type")
        if not isinstance(type_, str) or not type_:
            raise TransferError(f"{where}: no type")
        return Value(type_, _unb64(d.get("data"), where))

    def check_thread(self, thread_id: str) -> None:
        """The first phase's check of a thread the target does not hold: its lines parsed
        and checked, its values left as the serde wrote them (not packed)."""
        check_thread(self.codec, self._load(thread_id, pack=False))

    def load_thread(self, thread_id: str) -> StoredThread:
        return self._load(thread_id, pack=True)

    def _load(self, thread_id: str, *, pack: bool) -> StoredThread:
        thread = StoredThread(thread_id)
        for offset in self._index.offsets.get(thread_id, []):
            self._file.seek(offset)
            d = self._parse(self._file.readline(), f"at byte {offset}")
            where = f"{self.path}: thread {thread_id!r} line at byte {offset}"
            try:
                self._add(thread, d, where, pack)
            except (KeyError, TypeError, ValueError) as exc:
                if isinstance(exc, TransferError | InvalidInputError):
                    raise
                raise TransferError(f"{where} is malformed: {type(exc).__name__}: {exc}") from exc
        return thread

    def _add(self, thread: StoredThread, d: dict[str, Any], where: str, pack: bool) -> None:
        kind = d["kind"]
        ns = codec.text_id(d.get("checkpoint_ns") or "", "checkpoint_ns", allow_empty=True)
        if kind == "checkpoint":
            cid = codec.text_id(d["checkpoint_id"], "checkpoint_id")
            parent = d.get("parent_checkpoint_id")
            meta, channels, versions = d.get("metadata"), d["channels"], d["versions"]
            if (
                not isinstance(meta, dict)
                or not isinstance(channels, list)
                or not isinstance(versions, list)
            ):
                raise TransferError(f"{where}: metadata, channels or versions malformed")
            created = d.get("created_at")
            value = self._value(d, where)
            type_, data = (
                pack_value(self.codec, value, skeleton=True) if pack else (value.type, value.data)
            )
            thread.checkpoints.append(
                StoredCheckpoint(
                    ns,
                    cid,
                    None if parent is None else codec.text_id(parent, "parent"),
                    type_,
                    data or b"",
                    meta,
                    dt.datetime.fromisoformat(created) if created is not None else None,
                    [codec.text_id(c, "channel") for c in channels],
                    [None if v is None else codec.text_id(v, "version") for v in versions],
                )
            )
        elif kind == "value":
            key = (
                ns,
                codec.text_id(d["channel"], "channel"),
                codec.text_id(d["version"], "version"),
            )
            value = self._value(d, where)
            blob = (
                pack_blob(self.codec, value, thread.chunks)
                if pack
                else StoredBlob(value.type, value.data, None)
            )
            thread.add_blob(key, blob, where)
        else:
            idx = d["idx"]
            if not isinstance(idx, int) or isinstance(idx, bool) or not -(2**31) <= idx < 2**31:
                raise TransferError(f"{where}: idx must be a 32-bit integer")
            wkey = (
                ns,
                codec.text_id(d["checkpoint_id"], "checkpoint_id"),
                codec.text_id(d["task_id"], "task_id"),
                idx,
            )
            if wkey in thread.writes:
                raise TransferError(f"{where}: a second write with the same key")
            value = self._value(d, where)
            type_, data = pack_value(self.codec, value) if pack else (value.type, value.data)
            thread.writes[wkey] = StoredWrite(
                codec.text_id(d["channel"], "channel"),
                type_,
                data,
                codec.text_id(d.get("task_path") or "", "task_path", allow_empty=True),
            )


def import_ndjson(
    saver: PostgresSaver,
    path: str | os.PathLike[str],
    *,
    verify: bool = True,
    partial: bool = False,
    on_start: Callable[[int], None] | None = None,
    on_thread: Callable[[ThreadResult], None] | None = None,
) -> ImportReport:
    """Import an NDJSON export into ``saver`` (see the module doc for what is refused).

    Rows already stored identically are skipped; a row stored with a different
    content raises :class:`~pgcheckpoint.errors.ImportConflictError`.

    Example::

        report = import_ndjson(saver, "backup.ndjson")
    """
    if not isinstance(path, str | os.PathLike):
        raise InvalidInputError(f"path must be a file path, got {type(path).__name__}")
    source = NdjsonSource(path, saver, partial=partial)
    try:
        report = run_import(
            saver, source, verify=verify, check_all=True, on_start=on_start, on_thread=on_thread
        )
    finally:
        source.close()
    report.left_out = list(source.left_out)
    return report
