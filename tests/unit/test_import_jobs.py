"""The job drivers (``importers/jobs.py``) with no database: jobs that only make blocking
calls, run by ``run_job`` and ``arun_job`` on savers whose pools are never opened."""

from __future__ import annotations

import threading
from collections.abc import AsyncIterator, Iterator

import pytest
from psycopg_pool import AsyncConnectionPool, ConnectionPool

from pgcheckpoint import AsyncPostgresSaver, PostgresSaver
from pgcheckpoint.errors import TransferError
from pgcheckpoint.importers.common import ImportOptions, source_job
from pgcheckpoint.importers.jobs import Blocking, Job, arun_job, run_job
from pgcheckpoint.importers.rows import StoredThread

# Nothing listens there; the pools below are never opened, so nothing connects.
NOWHERE = "postgresql://nobody@127.0.0.1:1/nothing"


@pytest.fixture
def sync_saver() -> Iterator[PostgresSaver]:
    pool: ConnectionPool = ConnectionPool(NOWHERE, open=False)
    yield PostgresSaver(pool)
    pool.close()


@pytest.fixture
async def async_saver() -> AsyncIterator[AsyncPostgresSaver]:
    pool: AsyncConnectionPool = AsyncConnectionPool(NOWHERE, open=False)
    yield AsyncPostgresSaver(pool)
    await pool.close()


def _failing() -> int:
    raise OSError("disk gone")


def _job(seen: list[str]) -> Job[list[object]]:
    """Two calls: the second fails, and the job sees the error where it yielded it."""
    out: list[object] = [(yield Blocking(threading.current_thread))]
    try:
        yield Blocking(_failing)
    except OSError as exc:
        out.append(str(exc))
    finally:
        seen.append("finally")
    return out


def test_run_job_makes_each_call_here_and_raises_failures_inside_the_job(
    sync_saver: PostgresSaver,
) -> None:
    seen: list[str] = []
    thread, error = run_job(sync_saver, _job(seen))
    assert thread is threading.current_thread()
    assert error == "disk gone" and seen == ["finally"]


async def test_arun_job_makes_each_call_in_a_worker_thread(
    async_saver: AsyncPostgresSaver,
) -> None:
    seen: list[str] = []
    thread, error = await arun_job(async_saver, _job(seen))
    assert thread is not threading.current_thread()
    assert error == "disk gone" and seen == ["finally"]


class _Broken:
    """A source whose thread list cannot be read."""

    name = "broken"

    def __init__(self) -> None:
        self.closed = False

    def thread_ids(self) -> list[str]:
        raise ValueError("unreadable")

    def load_thread(self, thread_id: str) -> StoredThread:
        raise AssertionError("never loaded")

    def close(self) -> None:
        self.closed = True


def test_a_source_is_closed_when_the_import_fails(sync_saver: PostgresSaver) -> None:
    source = _Broken()
    with pytest.raises(TransferError, match="cannot list the threads of broken: unreadable"):
        run_job(sync_saver, source_job(sync_saver, lambda: source, ImportOptions()))
    assert source.closed


async def test_a_source_is_closed_when_the_async_import_fails(
    async_saver: AsyncPostgresSaver,
) -> None:
    source = _Broken()
    with pytest.raises(TransferError, match="unreadable"):
        await arun_job(async_saver, source_job(async_saver, lambda: source, ImportOptions()))
    assert source.closed
