"""Reading an NDJSON export (the format is described in :mod:`pgcheckpoint.transfer`).

:class:`NdjsonSource` reads the whole file once when opened: every line is
parsed, the SHA-256 of the lines is computed and compared with the trailer's,
and the per-thread line counts with the trailer's and each thread's end line,
so a cut, damaged or altered file is refused before anything is written. Only
line offsets are kept; threads are then loaded one at a time, their values
left as the serde wrote them (the first phase's check) or packed for the
target's storage (the write), never deserialized.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import json
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .. import codec
from .._core import SaverCore
from ..errors import InvalidInputError, TransferError
from .rows import (
    StoredBlob,
    StoredCheckpoint,
    StoredThread,
    StoredWrite,
    Value,
    check_thread,
    pack_blob,
    pack_value,
)

__all__ = ["FORMAT", "VERSION", "NdjsonSource"]

FORMAT = "pgcheckpoint.ndjson"
VERSION = 2
KINDS = ("checkpoint", "value", "write")
COUNT_KEYS = {"checkpoint": "checkpoints", "value": "values", "write": "writes"}
# Room for a line's keys and ids around its base64 value (ids, metadata, channel lists).
_LINE_OVERHEAD = 16 * 1024 * 1024


def _unb64(text: Any, where: str) -> bytes | None:
    if text is None:
        return None
    if not isinstance(text, str):
        raise TransferError(f"{where}: expected base64 text")
    try:
        return base64.b64decode(text, validate=True)
    except ValueError as exc:
        raise TransferError(f"{where}: invalid base64: {exc}") from exc


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
        self, path: str | os.PathLike[str], saver: SaverCore, *, partial: bool = False
    ) -> None:
        self.path = Path(path)
        self.name = f"ndjson:{self.path}"
        self.codec = saver.codec
        self.partial = partial
        self.left_out: list[str] = []
        # A line holds one value in base64 (4/3 of its size) and its keys.
        self._max_line = self.codec.compression.max_value_size * 4 // 3 + _LINE_OVERHEAD
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

    def _readline(self, number: int | str) -> bytes:
        """One line, refused when longer than the longest a valid export holds."""
        line = self._file.readline(self._max_line + 1)
        if len(line) > self._max_line:
            raise self._error(
                f"line {number} is longer than {self._max_line} bytes (the base64 of the "
                "largest value the target accepts, CompressionPolicy.max_value_size)"
            )
        return line

    def _parse(self, line: bytes, number: int | str) -> dict[str, Any]:
        try:
            data = json.loads(line)
        except (ValueError, RecursionError) as exc:
            # RecursionError: JSON nested deeper than Python's stack (a crafted line).
            raise self._error(f"line {number} is not JSON: {exc}") from exc
        if not isinstance(data, dict):
            raise self._error(f"line {number} is not a JSON object")
        return data

    def _read_index(self) -> _Index:
        first = self._readline(1)
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
            line = self._readline(number + 1)
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
            elif kind in KINDS:
                if tid in index.ends:
                    raise self._error(f"line {number}: thread {tid!r} continues after its end")
                index.offsets.setdefault(tid, []).append(offset)
                counts = index.counts.setdefault(tid, _Counts())
                name = COUNT_KEYS[kind]
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
            d = self._parse(self._readline(f"at byte {offset}"), f"at byte {offset}")
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
            if len(channels) != len(versions):
                raise TransferError(f"{where}: channels and versions differ in length")
            created = d.get("created_at")
            value = self._value(d, where)
            type_, data = (
                pack_value(self.codec, value) if pack else (value.type, value.data)
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
