"""The savers' methods of the other colour: the only code that differs by colour per method.

``PostgresSaver`` (sync) also answers LangGraph's ``a*`` contract methods by
running its sync ones on a worker thread (:class:`ThreadBridges`);
``AsyncPostgresSaver`` also answers the sync ones by handing the coroutine to
the event loop it was made in (:class:`LoopBridges`), as the official savers
do. Everything else each saver does is in :mod:`pgcheckpoint.aio`, from which
:mod:`pgcheckpoint.saver` is generated; tools/async_to_sync.py maps
``LoopBridges`` to ``ThreadBridges``.

A bridge is the same few lines for every method, so each is made by one factory
from LangGraph's own declaration of the method it stands for
(``BaseCheckpointSaver.put`` for ``aput``...): the parameters are not written
again, mypy checks them through the ``ParamSpec``, and ``inspect.signature`` and
``help()`` show the contract's signature.
"""

from __future__ import annotations

import asyncio
import functools
import inspect
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine, Iterator
from typing import TYPE_CHECKING, Any, Concatenate, ParamSpec, TypeVar

from langgraph.checkpoint.base import BaseCheckpointSaver, CheckpointTuple
from typing_extensions import Unpack

from ._core import SaverCore
from .errors import ConfigurationError
from .options import SaverOptions

if TYPE_CHECKING:
    from ._runner import SyncRunner
    from ._runner_async import AsyncRunner

T = TypeVar("T")
P = ParamSpec("P")

_Contract = BaseCheckpointSaver[Any]


def _named(bridge: Any, name: str, doc: str, declared: Callable[..., Any]) -> None:
    """Give ``bridge`` its name, docstring and the signature LangGraph declares for
    that name (the parameters of ``declared``, its own colour's return type)."""
    bridge.__name__ = name
    bridge.__qualname__ = name
    bridge.__doc__ = doc
    bridge.__signature__ = inspect.signature(getattr(_Contract, name))
    assert inspect.signature(declared).parameters == bridge.__signature__.parameters


def _listing(saver: SaverCore, declared: inspect.Signature, args: Any, kwargs: Any) -> Any:
    """The page-by-page listing for a ``list``/``alist`` call, its arguments bound as
    LangGraph declares them (defaults filled in)."""
    bound = declared.bind(saver, *args, **kwargs)
    bound.apply_defaults()
    given = bound.arguments
    return saver._lister(given["config"], given["filter"], given["before"], given["limit"])


def _on_thread(
    declared: Callable[Concatenate[Any, P], T],
) -> Callable[Concatenate[ThreadBridges, P], Coroutine[Any, Any, T]]:
    """``a<name>``: the sync method ``declared`` names, run on a worker thread."""
    name = declared.__name__

    async def bridge(self: ThreadBridges, /, *args: P.args, **kwargs: P.kwargs) -> T:
        result: T = await asyncio.to_thread(getattr(self, name), *args, **kwargs)
        return result

    _named(bridge, f"a{name}", f":meth:`{name}` on a worker thread.", declared)
    return bridge


def _pages_on_thread(
    declared: Callable[Concatenate[Any, P], Iterator[CheckpointTuple]],
) -> Callable[Concatenate[ThreadBridges, P], AsyncIterator[CheckpointTuple]]:
    """``alist``: each page of the listing fetched on a worker thread."""
    signature = inspect.signature(declared)

    async def bridge(
        self: ThreadBridges, /, *args: P.args, **kwargs: P.kwargs
    ) -> AsyncIterator[CheckpointTuple]:
        lister = _listing(self, signature, args, kwargs)
        while (plan := lister.next_plan()) is not None:
            for item in await asyncio.to_thread(self.runner.run, plan):
                yield item

    name = declared.__name__
    _named(bridge, f"a{name}", f":meth:`{name}`, a page at a time on a worker thread.", declared)
    return bridge


def _on_loop(
    declared: Callable[Concatenate[Any, P], Awaitable[T]],
) -> Callable[Concatenate[LoopBridges, P], T]:
    """``<name>`` without its ``a``: the coroutine ``declared`` names, run on the
    saver's event loop."""
    name = declared.__name__

    def bridge(self: LoopBridges, /, *args: P.args, **kwargs: P.kwargs) -> T:
        method: Callable[P, Awaitable[T]] = getattr(self, name)
        return self._bridge(functools.partial(method, *args, **kwargs))

    _named(bridge, name[1:], f":meth:`{name}`, run on the saver's event loop.", declared)
    return bridge


def _pages_on_loop(
    declared: Callable[Concatenate[Any, P], AsyncIterator[CheckpointTuple]],
) -> Callable[Concatenate[LoopBridges, P], Iterator[CheckpointTuple]]:
    """``list``: each page of the listing fetched on the saver's event loop."""
    signature = inspect.signature(declared)

    def bridge(
        self: LoopBridges, /, *args: P.args, **kwargs: P.kwargs
    ) -> Iterator[CheckpointTuple]:
        lister = _listing(self, signature, args, kwargs)
        while (plan := lister.next_plan()) is not None:
            yield from self._bridge(functools.partial(self.runner.run, plan))

    doc = f":meth:`{declared.__name__}`, a page at a time on the saver's event loop."
    _named(bridge, declared.__name__[1:], doc, declared)
    return bridge


class ThreadBridges(SaverCore):
    """``PostgresSaver``'s ``a*`` contract methods: each runs its sync twin on a
    worker thread (``asyncio.to_thread``). Async applications should prefer
    :class:`~pgcheckpoint.AsyncPostgresSaver`."""

    runner: SyncRunner

    alist = _pages_on_thread(_Contract.list)


class LoopBridges(SaverCore):
    """``AsyncPostgresSaver``'s sync contract methods: each hands its coroutine to
    the event loop the saver was made in and waits for it, so they work from other
    threads (not from that loop itself: that would deadlock)."""

    runner: AsyncRunner

    def __init__(self, **options: Unpack[SaverOptions]) -> None:
        super().__init__(**options)
        try:
            self.loop: asyncio.AbstractEventLoop | None = asyncio.get_running_loop()
        except RuntimeError:
            self.loop = None

    def _bridge(self, call: Callable[[], Awaitable[T]]) -> T:
        """Run ``call()``'s coroutine on the saver's loop and wait for its result.
        The coroutine is made only once the call is known to be possible, so a
        refused call leaves none behind never awaited (a RuntimeWarning)."""
        loop = self.loop
        if loop is None or loop.is_closed():
            raise ConfigurationError(
                "the sync methods of AsyncPostgresSaver need the event loop it was made in; "
                "use PostgresSaver in sync code"
            )
        try:
            if asyncio.get_running_loop() is loop:
                raise ConfigurationError(
                    "sync call of AsyncPostgresSaver from its own event loop would deadlock; "
                    "await the a* method instead"
                )
        except RuntimeError:
            pass

        async def wrap() -> T:
            return await call()

        return asyncio.run_coroutine_threadsafe(wrap(), loop).result()

    list = _pages_on_loop(_Contract.alist)


# LangGraph's contract methods besides list, by their sync name: each is bridged
# both ways here, so one added to the contract is one name added to this tuple
# (BaseCheckpointSaver declares their types for mypy; _named checks each
# bridge's parameters against the declaration when the module is imported).
CONTRACT = (
    "get_tuple", "put", "put_writes", "delete_thread", "delete_for_runs", "copy_thread",
    "prune", "get_delta_channel_history",
)
for _name in CONTRACT:
    setattr(ThreadBridges, f"a{_name}", _on_thread(getattr(_Contract, _name)))
    setattr(LoopBridges, _name, _on_loop(getattr(_Contract, f"a{_name}")))
del _name
