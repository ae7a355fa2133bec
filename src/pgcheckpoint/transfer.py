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
importers' guarded write (:mod:`pgcheckpoint.importers.write`): never replacing
a stored row, identical rows skipped, verified before commit.

Reading is :class:`pgcheckpoint.importers.ndjson.NdjsonSource`. Export writes
a file through a temporary file renamed on success, so a failed export leaves
no file that looks like a backup; an unknown thread id fails before anything
is written.

Each function takes a ``PostgresSaver``; its ``a``-prefixed twin
(:func:`aexport_file`, :func:`aexport_ndjson`, :func:`aimport_ndjson`) takes an
``AsyncPostgresSaver`` and does the file I/O in a worker thread. Both run the
same job (:mod:`pgcheckpoint.importers.jobs`).
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import json
import os
import tempfile
from collections.abc import Callable, Iterable, Mapping
from dataclasses import asdict, dataclass
from functools import partial
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any, TextIO, TypedDict

from . import codec
from ._core import SaverCore
from ._plans import Plan, PlanGen, Query, fetch_all
from .errors import InvalidInputError, TransferError
from .importers.common import ImportOptions, ImportReport, ThreadResult, source_job
from .importers.jobs import Blocking, Job, arun_job, run_job
from .importers.ndjson import FORMAT, VERSION, NdjsonSource
from .importers.rows import (
    StoredThread,
    refs_of,
    thread_from_rows,
    unpack_blob,
    unpack_value,
)
from .sealed_rows import open_stored
from .threads import list_threads_plan

if TYPE_CHECKING:
    from typing_extensions import Unpack

    from .aio import AsyncPostgresSaver
    from .saver import PostgresSaver

__all__ = [
    "FORMAT",
    "VERSION",
    "ExportOptions",
    "ExportReport",
    "NdjsonImportOptions",
    "NdjsonSource",
    "aexport_file",
    "aexport_ndjson",
    "aimport_ndjson",
    "export_file",
    "export_ndjson",
    "import_ndjson",
]


@dataclass(slots=True)
class ExportReport:
    """What an export wrote."""

    threads: int = 0
    checkpoints: int = 0
    values: int = 0
    writes: int = 0
    sha256: str = ""

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def _b64(data: bytes | None) -> str | None:
    return None if data is None else base64.b64encode(data).decode("ascii")


def _line(obj: Mapping[str, Any]) -> bytes:
    return (json.dumps(obj, ensure_ascii=False, separators=(",", ":")) + "\n").encode("utf-8")


# --- export -------------------------------------------------------------------


def _selected(
    core: SaverCore, thread_ids: Iterable[str] | None, filter: Mapping[str, Any] | None
) -> Job[list[tuple[str, int]]]:
    """(thread id, checkpoints) of every thread to export, in export order; one cheap
    query (or the list_threads pages) before anything is written, for the total."""
    counts = core.queries["export_counts"]
    if thread_ids is not None:
        ids = list(dict.fromkeys(codec.text_id(t, "thread_id") for t in thread_ids))
        rows = yield fetch_all("export_counts", counts, {"thread_ids": ids})
        found = {str(r[0]): int(r[1]) for r in rows}
        missing = [t for t in ids if t not in found]
        if missing:
            raise TransferError(
                f"cannot export: no checkpoints for thread(s) {', '.join(map(repr, missing))}"
            )
        return [(t, found[t]) for t in ids]
    if filter is None:
        rows = yield fetch_all("export_counts", counts, {"thread_ids": None})
        return [(str(r[0]), int(r[1])) for r in rows]
    out: list[tuple[str, int]] = []
    after = None
    while True:
        page = yield list_threads_plan(core, limit=500, after=after, filter=filter)
        out.extend((t.thread_id, t.checkpoints) for t in page)
        if len(page) < 500:
            return out
        after = page[-1]


def _rows_plan(core: SaverCore, thread_id: str) -> Plan[StoredThread]:
    """Every row of a thread from one snapshot (the chunks its values reference too)."""
    q = core.queries
    p = {"thread_id": thread_id}

    def make() -> PlanGen[StoredThread]:
        yield Query(q["export_snapshot"], None, prepare=False)
        c = yield Query(q["rows_checkpoints"], p, fetch="all")
        b = yield Query(q["rows_blobs"], p, fetch="all")
        w = yield Query(q["rows_writes"], p, fetch="all")
        thread = thread_from_rows(thread_id, c or [], b or [], w or [])
        refs = refs_of(thread.blobs.values())
        if refs:
            k = yield Query(q["fetch_value_chunks"], {**p, "refs": refs}, fetch="all")
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


class ExportOptions(TypedDict, total=False):
    """What to export (all optional): the given ``thread_ids`` (each must exist), or
    every thread whose latest metadata matches ``filter`` (all when both are None).
    ``on_start(threads, checkpoints)`` gives the totals before the first line,
    ``on_thread(thread_id, checkpoints)`` reports each thread written. Encrypted
    threads are written in clear only with ``decrypt=True`` (docs/encryption.md)."""

    thread_ids: Iterable[str] | None
    filter: Mapping[str, Any] | None
    on_start: Callable[[int, int], None] | None
    on_thread: Callable[[str, int], None] | None
    decrypt: bool


def _write(out: IO[str], lines: list[bytes]) -> None:
    out.write(b"".join(lines).decode("utf-8"))


def export_job(
    core: SaverCore,
    out: IO[str],
    *,
    thread_ids: Iterable[str] | None = None,
    filter: Mapping[str, Any] | None = None,
    on_start: Callable[[int, int], None] | None = None,
    on_thread: Callable[[str, int], None] | None = None,
    decrypt: bool = False,
) -> Job[ExportReport]:
    """The export to ``out`` as a job (``importers/jobs.py``): one snapshot plan per
    thread, its lines written by a blocking step."""
    selected = yield from _selected(core, thread_ids, filter)
    if on_start is not None:
        on_start(len(selected), sum(n for _, n in selected))
    header = {
        "format": FORMAT,
        "version": VERSION,
        "exported_at": dt.datetime.now(dt.timezone.utc).isoformat(),
    }
    pending = [_line(header)]
    digest = hashlib.sha256(pending[0])
    lines = 1
    report = ExportReport()
    threads: dict[str, dict[str, int]] = {}
    for tid, _ in selected:
        thread = yield _rows_plan(core, tid)
        if not thread.checkpoints:
            continue  # deleted since it was counted
        thread = open_stored(core.encryption, thread, decrypt=decrypt)
        thread_lines, counts = _thread_lines(thread)
        for data in thread_lines:
            digest.update(data)
        lines += len(thread_lines)
        yield Blocking(partial(_write, out, [*pending, *thread_lines]))
        pending = []
        threads[tid] = counts
        report.threads += 1
        report.checkpoints += counts["checkpoints"]
        report.values += counts["values"]
        report.writes += counts["writes"]
        if on_thread is not None:
            on_thread(tid, counts["checkpoints"])
    report.sha256 = digest.hexdigest()
    trailer = {
        "kind": "trailer",
        "format": FORMAT,
        "version": VERSION,
        "threads": threads,
        "lines": lines,
        "sha256": report.sha256,
    }
    yield Blocking(partial(_write, out, [*pending, _line(trailer)]))
    return report


def export_ndjson(
    saver: PostgresSaver, out: TextIO, **options: Unpack[ExportOptions]
) -> ExportReport:
    """Write threads to ``out`` as NDJSON (module doc); ``options`` are
    :class:`ExportOptions`.

    Prefer :func:`export_file`, which leaves no file behind when the export fails.

    Example::

        with open("backup.ndjson", "w") as f:
            export_ndjson(saver, f, filter={"user": "alice"})
    """
    return run_job(saver, export_job(saver, out, **options))


async def aexport_ndjson(
    saver: AsyncPostgresSaver, out: TextIO, **options: Unpack[ExportOptions]
) -> ExportReport:
    """:func:`export_ndjson` from an ``AsyncPostgresSaver`` (``out`` is written in a
    worker thread)."""
    return await arun_job(saver, export_job(saver, out, **options))


def _temp_beside(target: Path) -> tuple[int, str]:
    try:
        return tempfile.mkstemp(prefix=f".{target.name}.", suffix=".part", dir=target.parent)
    except OSError as exc:
        raise TransferError(f"cannot write in {str(target.parent)!r}: {exc}") from exc


def _fsync(out: IO[str]) -> None:
    out.flush()
    os.fsync(out.fileno())


def export_file_job(
    core: SaverCore, path: str | os.PathLike[str], options: ExportOptions
) -> Job[ExportReport]:
    """:func:`export_job` into ``path``, through a temporary file in the same directory
    renamed over ``path`` only once the trailer is written: a failed export leaves no
    file."""
    target = Path(path)
    fd, tmp = yield Blocking(partial(_temp_beside, target))
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="\n") as out:
            report = yield from export_job(core, out, **options)
            yield Blocking(partial(_fsync, out))
        yield Blocking(partial(os.replace, tmp, target))
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return report


def export_file(
    saver: PostgresSaver, path: str | os.PathLike[str], **options: Unpack[ExportOptions]
) -> ExportReport:
    """:func:`export_ndjson` into ``path``, through a temporary file in the same directory
    renamed over ``path`` only once the trailer is written: a failed export leaves no file.

    Example::

        export_file(saver, "backup.ndjson")
    """
    return run_job(saver, export_file_job(saver, path, options))


async def aexport_file(
    saver: AsyncPostgresSaver, path: str | os.PathLike[str], **options: Unpack[ExportOptions]
) -> ExportReport:
    """:func:`export_file` from an ``AsyncPostgresSaver``; the file is written in a
    worker thread, and renamed over ``path`` once whole (``await aexport_file(saver,
    "backup.ndjson")``)."""
    return await arun_job(saver, export_file_job(saver, path, options))


class NdjsonImportOptions(TypedDict, total=False):
    """What :func:`import_ndjson` takes besides the file (all optional): ``verify`` and
    the progress callbacks as for every importer
    (:class:`~pgcheckpoint.importers.common.ImportOptions`), and ``partial`` (module
    doc)."""

    verify: bool
    partial: bool
    on_start: Callable[[int], None] | None
    on_thread: Callable[[ThreadResult], None] | None


def import_ndjson_job(
    core: SaverCore, path: str | os.PathLike[str], options: NdjsonImportOptions
) -> Job[ImportReport]:
    """The import of an NDJSON export as a job: the whole file is checked before
    anything is written (``check_all``)."""
    if not isinstance(path, str | os.PathLike):
        raise InvalidInputError(f"path must be a file path, got {type(path).__name__}")
    rest = ImportOptions(
        verify=options.get("verify", True),
        on_start=options.get("on_start"),
        on_thread=options.get("on_thread"),
    )
    open_source = partial(NdjsonSource, path, core, partial=options.get("partial", False))
    return (yield from source_job(core, open_source, rest, check_all=True))


def import_ndjson(
    saver: PostgresSaver, path: str | os.PathLike[str], **options: Unpack[NdjsonImportOptions]
) -> ImportReport:
    """Import an NDJSON export into ``saver`` (see the module doc for what is refused);
    ``options`` are :class:`NdjsonImportOptions`.

    Rows already stored identically are skipped; a row stored with a different
    content raises :class:`~pgcheckpoint.errors.ImportConflictError`.

    Example::

        report = import_ndjson(saver, "backup.ndjson")
    """
    return run_job(saver, import_ndjson_job(saver, path, options))


async def aimport_ndjson(
    saver: AsyncPostgresSaver, path: str | os.PathLike[str], **options: Unpack[NdjsonImportOptions]
) -> ImportReport:
    """:func:`import_ndjson` into an ``AsyncPostgresSaver`` (the file is read in a
    worker thread).

    Example::

        report = await aimport_ndjson(saver, "backup.ndjson")
    """
    return await arun_job(saver, import_ndjson_job(saver, path, options))
