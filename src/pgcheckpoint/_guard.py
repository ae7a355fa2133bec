"""One writer per thread: the fork guard's bookkeeping (no I/O).

Two writers that run the same thread at once both read its latest checkpoint
P and both write a child of P: the thread's history forks and one of the runs
is silently lost. pgcheckpoint refuses the second child instead. The rule
(docs/concurrency.md gives the reasoning and the cases) is about what the
writer believed when it chose the parent of its put:

* **head**: the parent is what this saver returned as the namespace's latest
  checkpoint (``get_tuple`` without a ``checkpoint_id``: the id comes back as
  a :class:`HeadId`), or a checkpoint this saver saved itself and nobody has
  built on through it yet (the next step of a run), or, for a put with no
  parent, a namespace this saver read as empty. The put is a compare-and-set
  on the head: it is refused with :class:`~pgcheckpoint.errors.ConcurrentUpdateError`
  unless the parent is still the newest checkpoint of its (thread, namespace)
  (or the namespace is still empty).
* **exists**: the parent was chosen (``get_tuple`` with a ``checkpoint_id``,
  ``list`` and every ``parent_config``, whose ids come back as
  :class:`AddressedId`; a ``fork`` checkpoint; any other put naming a
  parent). The put may fork, but its parent must exist, or it is refused with
  :class:`~pgcheckpoint.errors.MissingParentError`.
* a put with no parent into a namespace this saver did not read as empty is
  not checked (a first checkpoint written directly).

A 'head' put in the root namespace is ``put_head``: a compare-and-set of
``threads.head`` (migration 0010) in the statement's upsert of the thread row,
which takes that row's lock, so two racing writers are serialised by the lock
and the second one compares with the head the first one committed. Every other
put, and a 'head' put whose compare-and-set wrote nothing (the head moved, or
is not known), runs ``put_checkpoint``, whose check
(``pgcheckpoint_put_check``) runs under the same lock with a snapshot of its
own and raises the precise error. A put stays one autocommitted statement, two
when refused.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from langchain_core.runnables import RunnableConfig
    from langgraph.checkpoint.base import CheckpointTuple

# The `guard` parameter of put_checkpoint (see pgcheckpoint_put_check).
HEAD = "head"
EXISTS = "exists"

# How many checkpoints of its own, and empty namespaces it read, a saver
# remembers. A run needs one entry per namespace it is writing (the entry of
# its last put); a forgotten entry only turns a "head" check into an "exists"
# one. 10,000 entries are about 3 MB.
MEMORY_SIZE = 10_000


class ReadId(str):
    """A checkpoint id as a read returned it; it behaves exactly as the plain id.

    Comparisons with another ``str`` subclass defer to that subclass first, as
    they would for a plain ``str`` (Python tries a right operand's reflected
    method first only when its type subclasses the left one's): LangGraph's
    tests compare configs with matchers such as ``AnyStr``.
    """

    __slots__ = ()

    def __eq__(self, other: object) -> bool:
        if type(other) is not str and isinstance(other, str) and not isinstance(other, ReadId):
            return NotImplemented
        return str.__eq__(self, other)

    def __ne__(self, other: object) -> bool:
        if type(other) is not str and isinstance(other, str) and not isinstance(other, ReadId):
            return NotImplemented
        return str.__ne__(self, other)

    __hash__ = str.__hash__


class HeadId(ReadId):
    """A checkpoint id ``get_tuple`` returned as its namespace's latest checkpoint.

    The type only tells a later ``put`` that names it as parent that the
    writer believed it was extending the head. LangGraph hands the id back
    untouched in the config of the run's first put.
    """

    __slots__ = ()


class AddressedId(ReadId):
    """A checkpoint id returned by a read that chose it (see :func:`tag_read`)."""

    __slots__ = ()


def tag_read(tup: CheckpointTuple, head: bool) -> CheckpointTuple:
    """Mark the ids of a checkpoint read with the kind of read that found them.

    ``head``: a ``get_tuple`` without ``checkpoint_id``. Every other read (an
    addressed ``get_tuple``, ``list``) and every ``parent_config`` chose a
    checkpoint, so a put naming it may fork (its parent only has to exist).
    """
    conf = tup.config["configurable"]
    conf["checkpoint_id"] = (HeadId if head else AddressedId)(conf["checkpoint_id"])
    if tup.parent_config is not None:
        pconf = tup.parent_config["configurable"]
        pconf["checkpoint_id"] = AddressedId(pconf["checkpoint_id"])
    return tup


class GuardMemory:
    """What one saver knows about the parents of its coming puts (bounded, thread-safe).

    ``own``: checkpoints this saver saved that no put of its own has yet named
    as parent. ``empty``: (thread, namespace) pairs a head read found empty and
    no read has found non-empty since.
    """

    def __init__(self, size: int = MEMORY_SIZE) -> None:
        self.size = size
        self._own: OrderedDict[tuple[str, str, str], None] = OrderedDict()
        self._empty: OrderedDict[tuple[str, str], None] = OrderedDict()
        self._lock = threading.Lock()

    def _remember(self, table: OrderedDict[Any, None], key: Any) -> None:
        table[key] = None
        table.move_to_end(key)
        while len(table) > self.size:
            table.popitem(last=False)

    def read(self, thread_id: str, checkpoint_ns: str, *, head: bool, found: bool) -> None:
        """Record a ``get_tuple``: a head read that found nothing marks the namespace empty."""
        with self._lock:
            if found:
                self._empty.pop((thread_id, checkpoint_ns), None)
            elif head:
                self._remember(self._empty, (thread_id, checkpoint_ns))

    def saved(self, params: Mapping[str, Any]) -> None:
        """Record a committed put (its parameters)."""
        thread_id, ns = params["thread_id"], params["checkpoint_ns"]
        with self._lock:
            parent = params["parent_checkpoint_id"]
            if parent is not None:
                self._own.pop((thread_id, ns, parent), None)
            self._remember(self._own, (thread_id, ns, params["checkpoint_id"]))

    def mode(
        self, params: Mapping[str, Any], parent: Any, metadata: Mapping[str, Any]
    ) -> str | None:
        """The check a put gets: HEAD, EXISTS or None (see the module doc).

        ``parent`` is the config's ``checkpoint_id`` as given (a :class:`HeadId`
        or :class:`AddressedId` keeps its type), ``params`` the encoded put.
        """
        thread_id, ns = params["thread_id"], params["checkpoint_ns"]
        deliberate = metadata.get("source") == "fork"
        with self._lock:
            if parent is None:
                known_empty = (thread_id, ns) in self._empty
                return HEAD if known_empty and not deliberate else None
            if deliberate or isinstance(parent, AddressedId):
                return EXISTS
            if isinstance(parent, HeadId) or (thread_id, ns, str(parent)) in self._own:
                return HEAD
            return EXISTS


def guard_put(
    memory: GuardMemory,
    config: RunnableConfig,
    params: dict[str, Any],
    metadata: Mapping[str, Any],
) -> None:
    """Set ``params["guard"]`` for a put of ``config`` (already validated and encoded)."""
    parent = config["configurable"].get("checkpoint_id")
    params["guard"] = memory.mode(params, parent, metadata)
    if params["parent_checkpoint_id"] is not None:
        # The plain id: HeadId/AddressedId only carry the writer's belief here.
        params["parent_checkpoint_id"] = str(params["parent_checkpoint_id"])
