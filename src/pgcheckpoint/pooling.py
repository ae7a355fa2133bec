"""Connection pool settings for ``from_conn_string`` (no I/O).

The official saver's ``from_conn_string`` holds one connection and never
replaces it; ours builds a psycopg_pool pool, whose broken connections are
replaced, with TCP keepalives and connect/statement timeouts so that no call
can hang forever on a dead peer.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from .errors import ConfigurationError


@dataclass(frozen=True, slots=True)
class PoolSettings:
    """Sizes, lifetimes and timeouts of the pool ``from_conn_string`` builds.

    Attributes:
        min_size / max_size: connections kept open / at most.
        max_lifetime: seconds after which a connection is replaced.
        max_idle: seconds an unused connection above ``min_size`` is kept.
        timeout: seconds a caller waits for a free connection.
        connect_timeout: seconds to establish a connection.
        statement_timeout: milliseconds a statement may run (0: no limit).
        keepalives_idle: seconds of silence before TCP keepalive probes.
        prepared_statements: use server-side prepared statements; switch off
            for PgBouncer in transaction mode.
    """

    min_size: int = 1
    max_size: int = 10
    max_lifetime: float = 3600.0
    max_idle: float = 600.0
    timeout: float = 30.0
    connect_timeout: int = 10
    statement_timeout: int = 0
    keepalives_idle: int = 30
    prepared_statements: bool = True

    def __post_init__(self) -> None:
        if self.min_size < 0 or self.max_size < max(1, self.min_size):
            raise ConfigurationError(
                f"pool sizes must satisfy 0 <= min_size <= max_size and max_size >= 1, "
                f"got min_size={self.min_size}, max_size={self.max_size}"
            )

    def connection_kwargs(self) -> dict[str, Any]:
        """Keyword arguments of every pooled connection."""
        kwargs: dict[str, Any] = {
            "autocommit": True,
            "connect_timeout": self.connect_timeout,
            "keepalives": 1,
            "keepalives_idle": self.keepalives_idle,
            "keepalives_interval": 10,
            "keepalives_count": 3,
            "prepare_threshold": 5 if self.prepared_statements else None,
        }
        if self.statement_timeout:
            kwargs["options"] = f"-c statement_timeout={int(self.statement_timeout)}"
        return kwargs

    def pool_kwargs(self) -> dict[str, Any]:
        return {
            "min_size": self.min_size,
            "max_size": self.max_size,
            "max_lifetime": self.max_lifetime,
            "max_idle": self.max_idle,
            "timeout": self.timeout,
            "kwargs": self.connection_kwargs(),
        }
