"""Retention policies, the sweeper, orphan cleanup and maintenance."""

from __future__ import annotations


class RetentionSync:
    """Methods of ``PostgresSaver`` for this feature (filled in by its module)."""


class RetentionAsync:
    """Methods of ``AsyncPostgresSaver`` for this feature (filled in by its module)."""
