"""list(): the state of one call as it pages through the results.

A :class:`Lister` hands out one plan per page (``LIST_PAGE_SIZE`` checkpoints),
so a list of a huge thread streams instead of loading every state at once. On
Citus a list of every thread reads the page's keys first, then each thread of
the page with the routed read of one thread (:meth:`Lister._page_by_keys`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from langgraph.checkpoint.base import CheckpointTuple

from . import codec
from ._guard import tag_read
from ._plans import Plan, PlanGen, Query, Rows

if TYPE_CHECKING:
    from ._core import SaverCore

# list() reads this many checkpoints per round trip, so a list of a huge thread
# streams instead of loading every state at once.
LIST_PAGE_SIZE = 200

Key = tuple[str, str, str]  # (thread_id, checkpoint_ns, checkpoint_id)


@dataclass(slots=True)
class Lister:
    """The state of one list() call as it pages through the results."""

    core: SaverCore
    params: dict[str, Any]
    where: list[str]
    remaining: int | None
    in_ns: bool
    after: tuple[str, str, str] | None = None
    done: bool = False

    def next_plan(self) -> Plan[list[CheckpointTuple]] | None:
        if self.done or self.remaining == 0:
            return None
        size = LIST_PAGE_SIZE if self.remaining is None else min(self.remaining, LIST_PAGE_SIZE)
        params = dict(self.params, limit=size)
        where = list(self.where)
        if self.after is not None:
            cid, thread_id, ns = self.after
            where.append("where_page_in_ns" if self.in_ns else "where_page")
            params.update(page_id=cid, page_thread=thread_id, page_ns=ns)
        core = self.core
        every_thread = "where_thread" not in where

        def make() -> PlanGen[list[CheckpointTuple]]:
            # A list of every thread on Citus reads keys first (_page_by_keys).
            if every_thread and (yield from core.citus()):
                keys, rows = yield from self._page_by_keys(where, params)
            else:
                rows = (
                    yield Query(core.queries.read_checkpoints(where), params, fetch="all")
                ) or []
                keys = [(str(r[0]), str(r[1]), str(r[2])) for r in rows]
            page = [tag_read(t, False) for t in codec.decode_rows(core.codec, rows)]
            self._advance(keys, size)
            return page

        return Plan("list", make)

    def _page_by_keys(
        self, where: list[str], params: dict[str, Any]
    ) -> PlanGen[tuple[list[Key], Rows]]:
        """One page of every thread, as Citus can plan it: the page's keys (one task
        per shard, merged on the coordinator), then each thread's rows with the
        read of one thread, which Citus routes to the thread's shard.

        read_checkpoints over every thread joins its per-value laterals on
        c.thread_id through the LIMITed subquery, and Citus 13.2 refuses that
        plan ("plan should not reference subplan's variable")."""
        queries = self.core.queries
        rows = yield Query(queries.list_keys(where), params, fetch="all")
        keys = [(str(t), str(ns), str(cid)) for t, ns, cid in rows or []]
        by_thread: dict[str, list[Key]] = {}
        for key in keys:
            by_thread.setdefault(key[0], []).append(key)
        read = queries.read_checkpoints([*where, "where_thread"])
        found: dict[Key, tuple[Any, ...]] = {}
        for thread_id, wanted in by_thread.items():
            # The thread's keys are its first rows under the same filter and
            # cursor; a checkpoint put since the key read can come first, so the
            # read widens once when one of the keys is missing.
            limit = len(wanted)
            for _ in range(2):
                got = yield Query(read, dict(params, thread_id=thread_id, limit=limit), fetch="all")
                for row in got or []:
                    found[(str(row[0]), str(row[1]), str(row[2]))] = row
                if all(k in found for k in wanted) or len(got or []) < limit:
                    break
                limit += LIST_PAGE_SIZE
        # A key whose row is gone was deleted in between: left out, as a read
        # that came a moment later would.
        return keys, [found[k] for k in keys if k in found]

    def _advance(self, keys: list[Key], size: int) -> None:
        if self.remaining is not None:
            self.remaining -= len(keys)
        if len(keys) < size:
            self.done = True
        elif keys:
            thread_id, ns, cid = keys[-1]
            self.after = (cid, thread_id, ns)
