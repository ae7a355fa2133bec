"""The thread API: listing threads, history, time travel by timestamp, rollback."""

from __future__ import annotations


class ThreadsSync:
    """Methods of ``PostgresSaver`` for this feature (filled in by its module)."""


class ThreadsAsync:
    """Methods of ``AsyncPostgresSaver`` for this feature (filled in by its module)."""
