"""Jobs: imports and exports written once, run on a sync or an async saver.

An import or an export is more than one plan: it reads a source (a SQLite
file, another database, an NDJSON file, another checkpointer) or writes a
file between the plans it runs on the target. It is written as a generator,
a *job*, that yields what it needs done and receives the result:

* a :class:`~pgcheckpoint._plans.Plan`, run on the saver's runner (retried,
  translated, measured like every other operation);
* a :class:`Blocking` call: I/O outside the target database (reading the
  source, writing the file) or work that takes long (decoding and encoding a
  thread).

:func:`run_job` runs a job on a ``PostgresSaver``: it runs each plan and makes
each call in the calling thread. :func:`arun_job` runs it on an
``AsyncPostgresSaver``: it awaits each plan and makes each call in a worker
thread (``asyncio.to_thread``), so a long import never blocks the event loop.
A failed step is raised inside the job where it yielded it, so the job's own
``finally`` and ``except`` blocks see it (a cancelled task too).
The public ``import_*`` / ``export_*`` functions and their ``a``-prefixed
twins are each one line around the same job.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Generator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Generic, TypeVar, cast

from .._plans import Plan
from .._runner import SyncRunner
from .._runner_async import AsyncRunner
from ..errors import ConfigurationError

if TYPE_CHECKING:
    from ..aio import AsyncPostgresSaver
    from ..saver import PostgresSaver

__all__ = ["Blocking", "Job", "arun_job", "run_job"]

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class Blocking(Generic[T]):
    """A call a job needs made outside the target database (see the module doc)."""

    call: Callable[[], T]


Step = Plan[Any] | Blocking[Any]
Job = Generator[Step, Any, T]


class _Steps(Generic[T]):
    """A job as it advances: the next step, given what the last one returned or raised."""

    def __init__(self, job: Job[T]) -> None:
        self.job = job
        self.result: Any = None
        self.error: BaseException | None = None
        self.value: T | None = None

    def next(self) -> Step | None:
        """The next step, or None when the job has returned (its value in ``value``)."""
        error, self.error = self.error, None
        try:
            return self.job.throw(error) if error is not None else self.job.send(self.result)
        except StopIteration as stop:
            self.value = stop.value
            return None


R = TypeVar("R", SyncRunner, AsyncRunner)


def _runner(saver: object, colour: type[R]) -> R:
    """The runner of ``saver``, checked to be of the colour the driver needs."""
    # The one place outside the savers that reaches their runner: a job runs its
    # plans the way the saver's own methods do.
    runner = getattr(saver, "runner", None)
    if not isinstance(runner, colour):
        sync = colour is SyncRunner
        raise ConfigurationError(
            f"{type(saver).__name__} is not a{' sync' if sync else 'n async'} pgcheckpoint "
            f"saver: use the function {'with' if sync else 'without'} the a- prefix"
        )
    return runner


def run_job(saver: PostgresSaver, job: Job[T]) -> T:
    """Run ``job`` on a sync saver: plans on its runner, calls in this thread."""
    runner = _runner(saver, SyncRunner)
    steps = _Steps(job)
    while (step := steps.next()) is not None:
        try:
            steps.result = runner.run(step) if isinstance(step, Plan) else step.call()
        except BaseException as exc:
            steps.error = exc
    return cast(T, steps.value)


async def arun_job(saver: AsyncPostgresSaver, job: Job[T]) -> T:
    """Run ``job`` on an async saver: plans awaited, calls in a worker thread."""
    runner = _runner(saver, AsyncRunner)
    steps = _Steps(job)
    while (step := steps.next()) is not None:
        try:
            if isinstance(step, Plan):
                steps.result = await runner.run(step)
            else:
                steps.result = await asyncio.to_thread(step.call)
        except BaseException as exc:
            steps.error = exc
    return cast(T, steps.value)
