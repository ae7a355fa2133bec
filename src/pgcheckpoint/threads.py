"""The thread API: listing threads, history, time travel by timestamp, rollback.

Every operation is a plan built by a function of this module from the saver's
core (:class:`~pgcheckpoint._core.SaverCore`); the savers' methods
(``list_threads``, ``rollback``... in :mod:`pgcheckpoint.aio` and the
generated :mod:`pgcheckpoint.saver`) run them.

Decisions recorded here:

* ``rollback`` never rewrites history. It writes a *new* checkpoint, a copy of
  the chosen one's state with a fresh id, whose parent is the current head, so
  it becomes the head; its metadata says ``source="fork"`` and names the
  checkpoint it restores (``rollback_of``) and the head it replaced
  (``rolled_back_from``). Channel versions are kept, so the copy references the
  stored values and writes no blob. Pending writes are not copied: resuming
  re-runs the tasks that followed the restored state.
* ``delete_checkpoint`` deletes leaves only (checkpoints no other checkpoint
  names as parent). Reparenting children would silently change what their
  DeltaChannels rebuild, so a checkpoint with children is refused; delete the
  children first or use ``rollback``. Deleting the head makes its parent the
  head again ("undo the last step").
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import partial
from typing import Any, Literal, cast

from langchain_core.runnables import RunnableConfig
from langgraph.checkpoint.base import Checkpoint, CheckpointMetadata, CheckpointTuple
from langgraph.checkpoint.base.id import uuid6

from . import codec, encryption
from ._core import SaverCore
from ._plans import Plan, PlanGen, Query, Rows, fetch_decoded
from .errors import ConcurrentUpdateError, DeserializationError, InvalidInputError

__all__ = [
    "ChannelDiff",
    "CheckpointNode",
    "ThreadInfo",
    "ThreadStats",
    "ThreadSummary",
    "VersionInfo",
    "diff_checkpoints",
]

MAX_PAGE = 10_000


@dataclass(frozen=True, slots=True)
class ThreadInfo:
    """One thread in :meth:`list_threads`: its size, time span and latest metadata."""

    thread_id: str
    checkpoints: int
    first_at: dt.datetime
    last_at: dt.datetime
    metadata: dict[str, Any]


@dataclass(frozen=True, slots=True)
class ThreadStats:
    """What one thread holds (:meth:`thread_stats`); ``stored_bytes`` is after compression."""

    thread_id: str
    checkpoints: int
    namespaces: int
    writes: int
    blobs: int
    chunks: int
    stored_bytes: int
    first_at: dt.datetime | None
    last_at: dt.datetime | None
    head_checkpoint_id: str | None


@dataclass(frozen=True, slots=True)
class VersionInfo:
    """One checkpoint of a thread's history, without its state (:meth:`list_versions`)."""

    thread_id: str
    checkpoint_ns: str
    checkpoint_id: str
    parent_checkpoint_id: str | None
    created_at: dt.datetime
    metadata: dict[str, Any]
    writes: int
    #: the nodes whose tasks wrote at this checkpoint: what ran next from it, or is
    #: paused there at an interrupt (a task that wrote nothing yet is not listed).
    next: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class ChannelDiff:
    """How one channel differs between two checkpoints (:func:`diff_checkpoints`)."""

    channel: str
    status: Literal["added", "removed", "changed", "unchanged"]
    before: Any = None
    after: Any = None
    added: list[Any] = field(default_factory=list)
    removed: list[Any] = field(default_factory=list)


def encrypted_under(metadata: Mapping[str, Any]) -> str | None:
    """The key id when a listing's ``metadata`` is sealed under a key this saver
    does not hold (``{"pgc:kid": <key id>}``, ``Codec.listed_metadata``);
    None when it is the metadata itself."""
    if len(metadata) == 1 and encryption.META_KID in metadata:
        return str(metadata[encryption.META_KID])
    return None


# --- validation -------------------------------------------------------------


def _limit(value: Any, what: str = "limit", *, allow_none: bool = False) -> int | None:
    if value is None and allow_none:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise InvalidInputError(f"{what} must be a non-negative int, got {value!r}")
    return value


def _moment(when: Any) -> dt.datetime:
    if not isinstance(when, dt.datetime):
        raise InvalidInputError(f"when must be a datetime, got {type(when).__name__}")
    if when.tzinfo is None or when.utcoffset() is None:
        raise InvalidInputError(
            f"when must be timezone-aware (e.g. datetime(..., tzinfo=timezone.utc)), got {when}"
        )
    return when


# --- plans ------------------------------------------------------------------


def list_threads_plan(
    core: SaverCore,
    *,
    limit: int = 50,
    offset: int = 0,
    after: ThreadInfo | None = None,
    filter: Mapping[str, Any] | None = None,
) -> Plan[list[ThreadInfo]]:
    """Threads newest first; page with ``offset`` or with ``after`` (the last item seen)."""
    size = _limit(limit)
    if size is not None and size > MAX_PAGE:
        raise InvalidInputError(f"limit must be at most {MAX_PAGE}, got {limit}")
    if after is not None and not isinstance(after, ThreadInfo):
        raise InvalidInputError(f"after must be a ThreadInfo, got {type(after).__name__}")
    params = {
        "limit": size,
        "offset": _limit(offset, "offset"),
        "filters": core.codec.filter_jsons(filter) if filter else None,
        "after_at": after.last_at if after else None,
        "after_id": after.thread_id if after else None,
    }

    def decode(rows: Rows) -> list[ThreadInfo]:
        return [
            ThreadInfo(
                tid, int(n), first, last, core.codec.listed_metadata(meta, tid, ns, cid, parent)
            )
            for tid, n, first, last, meta, ns, cid, parent in rows
        ]

    return fetch_decoded("list_threads", core.queries["threads_list"], params, decode)


def thread_stats_plan(core: SaverCore, thread_id: Any) -> Plan[ThreadStats | None]:
    tid = codec.text_id(thread_id, "thread_id")

    def decode(rows: Rows) -> ThreadStats | None:
        n, ns, writes, blobs, chunks, size, first, last, head = rows[0]
        if not n and not writes:
            return None
        return ThreadStats(
            tid, int(n), int(ns), int(writes), int(blobs), int(chunks), int(size),
            first, last, head,
        )

    return fetch_decoded("thread_stats", core.queries["thread_stats"], {"thread_id": tid}, decode)


def _select_one(core: SaverCore, tid: str, ns: str, cid: str) -> PlanGen[CheckpointTuple | None]:
    sql = core.queries.read_checkpoints(["where_thread", "where_ns", "where_id"], single=True)
    params = {"thread_id": tid, "checkpoint_ns": ns, "checkpoint_id": cid}
    rows = yield Query(sql, params, fetch="all")
    found = codec.decode_rows(core.codec, rows or [])
    return found[0] if found else None


def get_at_time_plan(
    core: SaverCore, thread_id: Any, when: Any, checkpoint_ns: Any = ""
) -> Plan[CheckpointTuple | None]:
    tid = codec.text_id(thread_id, "thread_id")
    ns = codec.text_id(checkpoint_ns, "checkpoint_ns", allow_empty=True)
    moment = _moment(when)
    sql = core.queries["checkpoint_at_time"]

    def make() -> PlanGen[CheckpointTuple | None]:
        rows = yield Query(sql, {"thread_id": tid, "checkpoint_ns": ns, "when": moment}, "all")
        if not rows:
            return None
        return (yield from _select_one(core, tid, ns, rows[0][0]))

    return Plan("get_at_time", make)


def list_versions_plan(
    core: SaverCore, thread_id: Any, *, checkpoint_ns: Any = None, limit: Any = None
) -> Plan[list[VersionInfo]]:
    tid = codec.text_id(thread_id, "thread_id")
    ns = (
        None
        if checkpoint_ns is None
        else codec.text_id(checkpoint_ns, "checkpoint_ns", allow_empty=True)
    )
    params = {"thread_id": tid, "checkpoint_ns": ns, "limit": _limit(limit, allow_none=True)}
    sql = core.queries["list_versions"]

    def make() -> PlanGen[list[VersionInfo]]:
        rows = yield Query(sql, params, fetch="all")
        return [
            VersionInfo(
                tid, r[0], r[1], r[2], r[3], core.codec.read_metadata(r[4], tid, r[0], r[1], r[2]),
                int(r[5]), tuple(r[6] or ()),
            )
            for r in rows or []
        ]

    return Plan("list_versions", make)


def _rollback_metadata(old: CheckpointMetadata, checkpoint_id: str, head_id: str) -> dict[str, Any]:
    meta = {k: v for k, v in dict(old).items() if k not in ("run_id", "writes")}
    meta.update(source="fork", rollback_of=checkpoint_id, rolled_back_from=head_id)
    meta.setdefault("parents", {})
    return meta


def rollback_plan(
    core: SaverCore, thread_id: Any, checkpoint_id: Any, checkpoint_ns: Any = ""
) -> Plan[RunnableConfig]:
    """Make ``checkpoint_id``'s state the head again, as a new checkpoint (see module doc)."""
    tid = codec.text_id(thread_id, "thread_id")
    cid = codec.text_id(checkpoint_id, "checkpoint_id")
    ns = codec.text_id(checkpoint_ns, "checkpoint_ns", allow_empty=True)
    q = core.queries

    def make() -> PlanGen[RunnableConfig]:
        # The thread lock orders this with concurrent puts (they upsert the same row).
        yield Query(q["lock_thread"], {"thread_id": tid}, fetch="all")
        old = yield from _select_one(core, tid, ns, cid)
        if old is None:
            raise InvalidInputError(f"thread {tid!r} has no checkpoint {cid!r} in namespace {ns!r}")
        rows = yield Query(q["latest_id"], {"thread_id": tid, "checkpoint_ns": ns}, "all")
        head_id = str((rows or [(cid,)])[0][0])
        new_id = str(uuid6(clock_seq=int(old.metadata.get("step", 0) or 0) + 1))
        if new_id <= head_id:
            raise ConcurrentUpdateError(
                f"cannot roll back thread {tid!r}: its head {head_id} is newer than the clock "
                "(clock skew between writers?)"
            )
        state = dict(cast(Mapping[str, Any], old.checkpoint))
        state.update(id=new_id, ts=dt.datetime.now(dt.timezone.utc).isoformat())
        meta = _rollback_metadata(old.metadata, cid, head_id)
        parent: RunnableConfig = {
            "configurable": {"thread_id": tid, "checkpoint_ns": ns, "checkpoint_id": head_id}
        }
        put = core.put_plan(parent, cast(Checkpoint, state), cast(CheckpointMetadata, meta), {})
        return (yield from put.make())

    return Plan("rollback", make, transaction=True, idempotent=False)


def delete_checkpoint_plan(
    core: SaverCore, thread_id: Any, checkpoint_id: Any, checkpoint_ns: Any = ""
) -> Plan[None]:
    """Delete one leaf checkpoint and its writes, then the values nothing needs any more."""
    tid = codec.text_id(thread_id, "thread_id")
    key = {
        "thread_id": tid,
        "checkpoint_ns": codec.text_id(checkpoint_ns, "checkpoint_ns", allow_empty=True),
        "checkpoint_id": codec.text_id(checkpoint_id, "checkpoint_id"),
    }
    q = core.queries

    def make() -> PlanGen[None]:
        # Lock, check, delete and gc in one call (pgcheckpoint_delete_checkpoint),
        # which deletes nothing when it refuses; on Citus it runs on the thread's node.
        rows = yield Query(q["delete_checkpoint"], key, fetch="all")
        children = int((rows or [(-1,)])[0][0])
        if children < 0:
            raise InvalidInputError(
                f"thread {tid!r} has no checkpoint {key['checkpoint_id']!r} "
                f"in namespace {key['checkpoint_ns']!r}"
            )
        if children:
            raise InvalidInputError(
                f"checkpoint {key['checkpoint_id']!r} has {children} child checkpoint(s); only "
                "a leaf can be deleted (delete its children first, or use rollback)"
            )

    return Plan("delete_checkpoint", make, transaction=True)


# --- thread summaries (the inspector's thread list, issue 15) --------------------

ACTIVE_WINDOW = dt.timedelta(minutes=1)


@dataclass(frozen=True, slots=True)
class ThreadSummary:
    """One thread of :meth:`thread_summaries`: what a list of threads shows about it.

    ``interrupt`` / ``error`` are the value of the first ``__interrupt__`` /
    ``__error__`` write pending on the head (root namespace); ``problem`` says
    why that value could not be read (e.g. a type the allowlist refuses).
    ``status`` is ``failed`` (an error is pending), ``waiting`` (an interrupt
    is), ``active`` (written in the last minute), ``idle``, or ``empty`` (a
    thread row with no checkpoint, e.g. a retention set before the first run).
    """

    thread_id: str
    checkpoints: int
    first_at: dt.datetime | None
    last_at: dt.datetime | None
    updated_at: dt.datetime
    last_write_at: dt.datetime | None
    head_checkpoint_id: str | None
    metadata: dict[str, Any]
    pinned: bool
    retention: dict[str, Any] | None
    stored_bytes: int
    status: Literal["failed", "waiting", "active", "idle", "empty"]
    interrupt: Any = None
    error: Any = None
    problem: str | None = None


def _summary_status(
    checkpoints: int, pending: str | None, active: bool
) -> Literal["failed", "waiting", "active", "idle", "empty"]:
    if not checkpoints:
        return "empty"
    if pending == "__error__":
        return "failed"
    if pending == "__interrupt__":
        return "waiting"
    return "active" if active else "idle"


def thread_summaries_plan(
    core: SaverCore,
    *,
    limit: int = 50,
    after: tuple[dt.datetime, str] | None = None,
    prefix: str | None = None,
    filter: Mapping[str, Any] | None = None,
    thread_id: str | None = None,
) -> Plan[list[ThreadSummary]]:
    """Threads most recently written first; page with ``after=(updated_at, thread_id)``
    of the last summary seen."""
    size = _limit(limit)
    if size is not None and size > MAX_PAGE:
        raise InvalidInputError(f"limit must be at most {MAX_PAGE}, got {limit}")
    if after is not None:
        if not (isinstance(after, tuple) and len(after) == 2):
            raise InvalidInputError("after must be a (updated_at, thread_id) tuple")
        _moment(after[0])
        codec.text_id(after[1], "after thread_id")
    if prefix is not None and (not isinstance(prefix, str) or "\x00" in prefix):
        raise InvalidInputError(f"prefix must be a string without NUL, got {prefix!r}")
    params = {
        "limit": size,
        "prefix": prefix or None,
        "thread_id": None if thread_id is None else codec.text_id(thread_id, "thread_id"),
        "filters": core.codec.filter_jsons(filter) if filter else None,
        "after_at": after[0] if after else None,
        "after_id": after[1] if after else None,
    }
    sql = core.queries["thread_summaries"]

    def make() -> PlanGen[list[ThreadSummary]]:
        rows = yield Query(sql, params, fetch="all")
        out = []
        for (tid, updated, pinned, retention, n, first, last, head, parent, meta, task,
             channel, type_, value, last_write, size_, now) in rows or []:
            pending: Any = None
            problem = None
            if channel is not None:
                aad_of = partial(encryption.write_aad, tid, "", head, task, channel)
                try:
                    pending = core.codec.open_value(
                        type_, value, aad_of, f"the {channel} write of checkpoint {head!r}"
                    )
                except DeserializationError as exc:
                    problem = str(exc)
            latest = max(t for t in (updated, last_write) if t is not None)
            out.append(
                ThreadSummary(
                    tid,
                    int(n),
                    first,
                    last,
                    updated,
                    last_write,
                    head,
                    core.codec.listed_metadata(meta, tid, "", head, parent),
                    bool(pinned),
                    dict(retention) if retention else None,
                    int(size_),
                    _summary_status(int(n), channel, now - latest <= ACTIVE_WINDOW),
                    interrupt=pending if channel == "__interrupt__" else None,
                    error=pending if channel == "__error__" else None,
                    problem=problem,
                )
            )
        return out

    return Plan("thread_summaries", make)


@dataclass(frozen=True, slots=True)
class CheckpointNode:
    """One checkpoint of :meth:`thread_graph`: where it sits in the history, no more."""

    checkpoint_ns: str
    checkpoint_id: str
    parent_checkpoint_id: str | None
    created_at: dt.datetime


def thread_graph_plan(core: SaverCore, thread_id: Any) -> Plan[list[CheckpointNode]]:
    tid = codec.text_id(thread_id, "thread_id")
    sql = core.queries["thread_graph"]

    def make() -> PlanGen[list[CheckpointNode]]:
        rows = yield Query(sql, {"thread_id": tid}, fetch="all")
        return [CheckpointNode(r[0], r[1], r[2], r[3]) for r in rows or []]

    return Plan("thread_graph", make)


# --- diff (pure) -------------------------------------------------------------


def _list_diff(before: list[Any], after: list[Any]) -> tuple[list[Any], list[Any]]:
    added = [x for x in after if x not in before]
    removed = [x for x in before if x not in after]
    return added, removed


def diff_checkpoints(before: Checkpoint, after: Checkpoint) -> list[ChannelDiff]:
    """Per channel, what changed from ``before`` to ``after``; lists (such as
    ``messages``) report the items added and removed."""
    a = dict(before.get("channel_values") or {})
    b = dict(after.get("channel_values") or {})
    out: list[ChannelDiff] = []
    for channel in sorted(set(a) | set(b)):
        if channel not in a:
            out.append(ChannelDiff(channel, "added", after=b[channel]))
        elif channel not in b:
            out.append(ChannelDiff(channel, "removed", before=a[channel]))
        elif a[channel] == b[channel]:
            out.append(ChannelDiff(channel, "unchanged", a[channel], b[channel]))
        elif isinstance(a[channel], list) and isinstance(b[channel], list):
            added, removed = _list_diff(a[channel], b[channel])
            out.append(ChannelDiff(channel, "changed", a[channel], b[channel], added, removed))
        else:
            out.append(ChannelDiff(channel, "changed", a[channel], b[channel]))
    return out
