"""Health checks, pool statistics and metrics hooks."""

from __future__ import annotations


class HealthSync:
    """Methods of ``PostgresSaver`` for this feature (filled in by its module)."""


class HealthAsync:
    """Methods of ``AsyncPostgresSaver`` for this feature (filled in by its module)."""
