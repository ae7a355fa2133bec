"""Connection pool settings for ``from_conn_string`` (no I/O).

The official saver's ``from_conn_string`` holds one connection and never
replaces it; ours builds a psycopg_pool pool, whose broken connections are
replaced, with TCP keepalives and connect/statement timeouts so that no call
can hang forever on a dead peer.

The names of the environment variables (``CHECKPOINT_MAX_CONNECTIONS`` ...),
lower-cased, map onto the fields: ``max_connections`` -> ``max_size``,
``min_connections`` -> ``min_size``, ``max_lifetime_secs`` -> ``max_lifetime``,
``idle_timeout_secs`` -> ``max_idle`` (:meth:`PoolSettings.from_env_names`).
Environment variables are read only by :meth:`PoolSettings.from_env`, which
applications and the CLI call at their edge.
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping
from dataclasses import dataclass, fields, replace
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
            for PgBouncer in transaction mode (docs/pgbouncer.md).
        check_on_checkout: test each connection with an empty query before
            handing it out (one extra round trip; catches connections a
            firewall dropped while idle before a statement is sent on them).
        reconnect_timeout: seconds the pool keeps trying to reconnect in the
            background before reporting failure.
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
    check_on_checkout: bool = False
    reconnect_timeout: float = 300.0

    def __post_init__(self) -> None:
        if self.min_size < 0 or self.max_size < max(1, self.min_size):
            raise ConfigurationError(
                f"pool sizes must satisfy 0 <= min_size <= max_size and max_size >= 1, "
                f"got min_size={self.min_size}, max_size={self.max_size}"
            )

    @classmethod
    def from_env_names(
        cls,
        *,
        max_connections: int = 10,
        min_connections: int = 1,
        max_lifetime_secs: float = 3600.0,
        idle_timeout_secs: float = 600.0,
        **other: Any,
    ) -> PoolSettings:
        """Settings from the environment variables' names, lower-cased and without
        ``CHECKPOINT_`` (other fields by their own name)."""
        return cls(
            max_size=max_connections,
            min_size=min_connections,
            max_lifetime=max_lifetime_secs,
            max_idle=idle_timeout_secs,
            **other,
        )

    @classmethod
    def from_seed(cls, **names: Any) -> PoolSettings:
        """Deprecated: the old name of :meth:`from_env_names`."""
        warnings.warn(
            "PoolSettings.from_seed is deprecated; use PoolSettings.from_env_names",
            DeprecationWarning,
            stacklevel=2,
        )
        return cls.from_env_names(**names)

    @classmethod
    def from_env(cls, environ: Mapping[str, str], base: PoolSettings | None = None) -> PoolSettings:
        """``base`` (default settings) overridden by ``CHECKPOINT_*`` variables of ``environ``.

        ``CHECKPOINT_MAX_CONNECTIONS``, ``CHECKPOINT_MIN_CONNECTIONS``,
        ``CHECKPOINT_MAX_LIFETIME_SECS``, ``CHECKPOINT_IDLE_TIMEOUT_SECS``,
        ``CHECKPOINT_CONNECT_TIMEOUT``, ``CHECKPOINT_STATEMENT_TIMEOUT_MS``,
        ``CHECKPOINT_POOL_TIMEOUT``, ``CHECKPOINT_PREPARED_STATEMENTS`` (true/false).
        Pass ``os.environ``; nothing else in the library reads the environment.
        """
        names = {
            "CHECKPOINT_MAX_CONNECTIONS": "max_size",
            "CHECKPOINT_MIN_CONNECTIONS": "min_size",
            "CHECKPOINT_MAX_LIFETIME_SECS": "max_lifetime",
            "CHECKPOINT_IDLE_TIMEOUT_SECS": "max_idle",
            "CHECKPOINT_CONNECT_TIMEOUT": "connect_timeout",
            "CHECKPOINT_STATEMENT_TIMEOUT_MS": "statement_timeout",
            "CHECKPOINT_POOL_TIMEOUT": "timeout",
            "CHECKPOINT_PREPARED_STATEMENTS": "prepared_statements",
        }
        types = {f.name: f.type for f in fields(cls)}
        changes: dict[str, Any] = {}
        for var, name in names.items():
            raw = environ.get(var)
            if raw is None or raw.strip() == "":
                continue
            kind = str(types[name])
            try:
                if kind == "bool":
                    if raw.strip().lower() not in ("1", "0", "true", "false", "yes", "no"):
                        raise ValueError(raw)
                    changes[name] = raw.strip().lower() in ("1", "true", "yes")
                elif kind == "int":
                    changes[name] = int(raw)
                else:
                    changes[name] = float(raw)
            except ValueError as exc:
                raise ConfigurationError(f"{var}={raw!r} is not a valid {kind}") from exc
        return replace(base or cls(), **changes)

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
        """Keyword arguments of the pool (a sync ``ConnectionPool``)."""
        out: dict[str, Any] = {
            "min_size": self.min_size,
            "max_size": self.max_size,
            "max_lifetime": self.max_lifetime,
            "max_idle": self.max_idle,
            "timeout": self.timeout,
            "reconnect_timeout": self.reconnect_timeout,
            "kwargs": self.connection_kwargs(),
        }
        if self.check_on_checkout:
            from psycopg_pool import ConnectionPool

            # check_connection is a static method valid for both pool kinds'
            # sync connections; the async pool has its own.
            out["check"] = ConnectionPool.check_connection
        return out

    def async_pool_kwargs(self) -> dict[str, Any]:
        """``pool_kwargs`` for an ``AsyncConnectionPool``."""
        out = self.pool_kwargs()
        if self.check_on_checkout:
            from psycopg_pool import AsyncConnectionPool

            out["check"] = AsyncConnectionPool.check_connection
        return out
