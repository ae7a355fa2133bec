"""What each page shows, gathered from the saver's public API (blocking calls,
run in a worker thread by the routes). Returns plain dicts for the templates.

A value the saver's serde refuses (a type outside the msgpack allowlist, a
corrupt value) never breaks a page: the checkpoint is read again with
:class:`~._views.RawSerde` on a copy of the saver, shown raw, and the refusal
is printed above it.
"""

from __future__ import annotations

import copy
import datetime as dt
from typing import Any

from langchain_core.runnables import RunnableConfig
from langgraph.checkpoint.base import CheckpointTuple

from ..errors import DeserializationError, InvalidInputError
from ..saver import PostgresSaver
from ..threads import ThreadSummary, diff_checkpoints
from . import _views as v

TIMELINE_PAGE = 50


class NotFound(InvalidInputError):
    """The thread or checkpoint asked for does not exist (HTTP 404)."""


def _config(thread_id: str, ns: str, checkpoint_id: str | None = None) -> RunnableConfig:
    conf: dict[str, Any] = {"thread_id": thread_id, "checkpoint_ns": ns}
    if checkpoint_id is not None:
        conf["checkpoint_id"] = checkpoint_id
    return {"configurable": conf}


def raw_saver(saver: PostgresSaver) -> PostgresSaver:
    """A copy of ``saver`` (same connections) that reads values without loading
    any type: the fallback view of values the allowlist refuses."""
    clone = copy.copy(saver)
    clone.serde = v.RawSerde()
    return clone


def read_tuple(saver: PostgresSaver, config: RunnableConfig) -> tuple[CheckpointTuple | None, str]:
    """(the checkpoint, "") or, when its values cannot be loaded, (its raw view,
    why)."""
    try:
        return saver.get_tuple(config), ""
    except DeserializationError as exc:
        return raw_saver(saver).get_tuple(config), str(exc)


def _read_list(
    saver: PostgresSaver, config: RunnableConfig, before: str | None, limit: int
) -> tuple[list[CheckpointTuple], str]:
    before_conf: RunnableConfig | None = (
        None if before is None else {"configurable": {"checkpoint_id": before}}
    )
    try:
        return list(saver.list(config, before=before_conf, limit=limit)), ""
    except DeserializationError as exc:
        raw = raw_saver(saver)
        return list(raw.list(config, before=before_conf, limit=limit)), str(exc)


def threads_page(
    saver: PostgresSaver,
    *,
    prefix: str | None,
    meta: str | None,
    after: tuple[dt.datetime, str] | None,
    limit: int,
) -> dict[str, Any]:
    filter_ = v.parse_meta(meta)
    found = saver.thread_summaries(limit=limit + 1, after=after, prefix=prefix, filter=filter_)
    more = len(found) > limit
    page = found[:limit]
    return {
        "threads": [_summary_view(s) for s in page],
        "next": (page[-1].updated_at.isoformat(), page[-1].thread_id) if more else None,
        "prefix": prefix or "",
        "meta": meta or "",
        "paged": after is not None,
        "limit": limit,
    }


def _summary_view(s: ThreadSummary) -> dict[str, Any]:
    pending = s.interrupt if s.status == "waiting" else s.error if s.status == "failed" else None
    return {
        "s": s,
        "pending": s.problem or (v.summarize(pending) if pending is not None else ""),
        "size": v.human_bytes(s.stored_bytes),
        "retention": _retention_text(s.retention),
    }


def _retention_text(policy: dict[str, Any] | None) -> str:
    if not policy:
        return ""
    parts = []
    if policy.get("keep_last") is not None:
        parts.append(f"keep last {policy['keep_last']}")
    for key, label in (("max_age", "max age"), ("thread_ttl", "ttl")):
        if policy.get(key) is not None:
            parts.append(f"{label} {v.short_duration(float(policy[key]))}")
    if policy.get("keep_interrupted") is False:
        parts.append("interrupted may expire")
    return ", ".join(parts) or "none"


def thread_page(
    saver: PostgresSaver, thread_id: str, ns: str, before: str | None, limit: int
) -> dict[str, Any]:
    summary = saver.thread_summary(thread_id)
    if summary is None:
        raise NotFound(f"thread {thread_id!r} does not exist")
    graph = saver.thread_graph(thread_id)
    namespaces = sorted({x.checkpoint_ns for x in graph})
    timeline = v.layout([x for x in graph if x.checkpoint_ns == ns])
    start = 0
    if before is not None:
        at = timeline.position(before)
        start = 0 if at is None else at + 1
    window = timeline.rows(start, start + limit)
    tuples: list[CheckpointTuple] = []
    refused = ""
    if window:
        before_id = timeline.ordered[start - 1].checkpoint_id if start else None
        tuples, refused = _read_list(saver, _config(thread_id, ns), before_id, limit + 1)
    by_id = {t.config["configurable"]["checkpoint_id"]: t for t in tuples}
    for r in window:  # fork points further down than the window
        parent = r.info.parent_checkpoint_id
        if parent is not None and parent not in by_id:
            found, why = read_tuple(saver, _config(thread_id, ns, parent))
            refused = refused or why
            if found is not None:
                by_id[parent] = found
    entries = []
    for r in window:
        t = by_id.get(r.info.checkpoint_id)
        entries.append(_entry(r, t, by_id))
    return {
        "summary": _summary_view(summary),
        "thread_id": thread_id,
        "ns": ns,
        "namespaces": namespaces,
        "entries": entries,
        "total": len(timeline),
        "start": start,
        "older": window[-1].info.checkpoint_id if start + limit < len(timeline) else None,
        "head": timeline.ordered[0].checkpoint_id if len(timeline) else None,
        "refused": refused,
        "retention": _retention_text(summary.retention),
    }


def _entry(
    row: v.Row, t: CheckpointTuple | None, by_id: dict[str, CheckpointTuple]
) -> dict[str, Any]:
    meta: dict[str, Any] = dict(t.metadata) if t is not None else {}
    out: dict[str, Any] = {
        "row": row,
        "id": row.info.checkpoint_id,
        "time": v.when(row.info.created_at),
        "step": meta.get("step"),
        "source": meta.get("source"),
        "restores": meta.get("rollback_of"),
        "ran": [],
        "next": [],
        "interrupts": [],
        "errors": [],
        "writes": [],
    }
    if t is not None:
        parent = by_id.get(row.info.parent_checkpoint_id or "")
        cp: Any = t.checkpoint
        out["ran"] = v.ran_nodes(cp, parent.checkpoint if parent else None)
        out["next"] = v.next_nodes(cp)
        pend = v.pending_view(t.pending_writes or [])
        out["interrupts"] = [v.summarize(i) for i in pend["interrupts"]]
        out["errors"] = [v.summarize(e) for e in pend["errors"]]
        out["writes"] = [f"{w['channel']}: {v.summarize(w['value'], 60)}" for w in pend["writes"]]
    return out


def checkpoint_page(saver: PostgresSaver, thread_id: str, ns: str, cid: str) -> dict[str, Any]:
    t, refused = read_tuple(saver, _config(thread_id, ns, cid))
    if t is None:
        raise NotFound(f"thread {thread_id!r} has no checkpoint {cid!r} in namespace {ns!r}")
    parent_id = t.parent_config["configurable"]["checkpoint_id"] if t.parent_config else None
    parent = read_tuple(saver, _config(thread_id, ns, parent_id))[0] if parent_id else None
    cp: Any = t.checkpoint
    values = dict(cp.get("channel_values") or {})
    channels = []
    for name in sorted(values):
        channels.append(
            {
                "name": name,
                "view": v.channel_view(values[name]),
                "size": _serialized_size(saver, values[name]) if not refused else None,
            }
        )
    pend = v.pending_view(t.pending_writes or [])
    return {
        "thread_id": thread_id,
        "ns": ns,
        "id": cid,
        "parent_id": parent_id,
        "refused": refused,
        "channels": channels,
        "metadata": v.tree(dict(t.metadata)),
        "meta": dict(t.metadata),
        "created": cp.get("ts"),
        "ran": v.ran_nodes(cp, parent.checkpoint if parent else None),
        "next": v.next_nodes(cp),
        "interrupts": [v.tree(i) for i in pend["interrupts"]],
        "errors": [v.tree(e) for e in pend["errors"]],
        "writes": [
            {"task": w["task"], "channel": w["channel"], "view": v.channel_view(w["value"])}
            for w in pend["writes"]
        ],
        "versions": v.tree(cp.get("channel_versions") or {}),
    }


def _serialized_size(saver: PostgresSaver, value: Any) -> int | None:
    try:
        return len(saver.serde.dumps_typed(value)[1])
    except Exception:  # a value that cannot be dumped again just shows no size
        return None


def diff_page(
    saver: PostgresSaver, thread_id: str, ns: str, cid: str, against: str | None
) -> dict[str, Any]:
    after, refused = read_tuple(saver, _config(thread_id, ns, cid))
    if after is None:
        raise NotFound(f"thread {thread_id!r} has no checkpoint {cid!r} in namespace {ns!r}")
    if against is None and after.parent_config is not None:
        against = after.parent_config["configurable"]["checkpoint_id"]
    before = None
    if against is not None:
        before, why = read_tuple(saver, _config(thread_id, ns, against))
        refused = refused or why
        if before is None:
            raise NotFound(
                f"thread {thread_id!r} has no checkpoint {against!r} in namespace {ns!r}"
            )
    empty: Any = {"channel_values": {}}
    diffs = diff_checkpoints(before.checkpoint if before else empty, after.checkpoint)
    changes = []
    for d in diffs:
        if d.status == "unchanged":
            continue
        item: dict[str, Any] = {"channel": d.channel, "status": d.status}
        if d.status == "added":
            item["after"] = v.channel_view(d.after)
        elif d.status == "removed":
            item["before"] = v.channel_view(d.before)
        elif isinstance(d.before, list) and isinstance(d.after, list):
            item["list"] = True
            item["added"] = v.channel_view(d.added) if d.added else None
            item["removed"] = v.channel_view(d.removed) if d.removed else None
        else:
            item["before"] = v.channel_view(d.before)
            item["after"] = v.channel_view(d.after)
        changes.append(item)
    # the 200 newest to choose from (a 10,000-checkpoint thread's whole graph would
    # cost more than the diff); the one compared with is kept in the list
    versions = saver.list_versions(thread_id, checkpoint_ns=ns, limit=200)
    choices = [(x.checkpoint_id, v.when(x.created_at), x.metadata.get("step")) for x in versions]
    if against is not None and all(c[0] != against for c in choices) and before is not None:
        choices.append((against, str(before.checkpoint.get("ts", "")), before.metadata.get("step")))
    return {
        "thread_id": thread_id,
        "ns": ns,
        "id": cid,
        "against": against,
        "refused": refused,
        "changes": changes,
        "unchanged": [d.channel for d in diffs if d.status == "unchanged"],
        "choices": choices,
    }


def head(saver: PostgresSaver, thread_id: str, ns: str) -> dict[str, Any]:
    latest = saver.list_versions(thread_id, checkpoint_ns=ns, limit=1)
    return {"head": latest[0].checkpoint_id if latest else None}
