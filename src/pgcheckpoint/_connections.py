"""Connections: what the runners know about a connection source, and its failures.

The I/O-free half of connection handling, shared by both runners
(:mod:`pgcheckpoint._runner_async` and its generated twin :mod:`pgcheckpoint._runner`):
the source types, the translation of driver errors into pgcheckpoint's
(:func:`translate`, the one place that does it), which errors break a
connection (:func:`breaks_connection`), and the conninfo of a plain connection
that may stand in for a pooled one while the pool recovers (:func:`direct_args`).
:mod:`pgcheckpoint._runner_base` says how a runner uses them.
"""

from __future__ import annotations

import contextlib
import math
import re
from typing import Any

import psycopg
from psycopg_pool import AsyncConnectionPool, ConnectionPool, PoolClosed

from ._conninfo import mask
from .errors import (
    ConcurrentUpdateError,
    MissingParentError,
    SchemaError,
    StorageError,
    TransientStorageError,
)
from .retry import connection_lost, is_transient

SyncSource = psycopg.Connection[Any] | ConnectionPool[Any]
AsyncSource = psycopg.AsyncConnection[Any] | AsyncConnectionPool[Any]


FORK_GUARD_STATE = "PGC01"
MISSING_PARENT_STATE = "PGC02"
UNDEFINED_FUNCTION_STATE = "42883"
# The function PostgreSQL names in "function <schema>.pgcheckpoint_x(<types>) does
# not exist": one of ours that the schema lacks.
_OUR_FUNCTION = re.compile(r"function (\S*pgcheckpoint_\w+)\(")


def translate(
    exc: BaseException, operation: str, secrets: tuple[str, ...] = ()
) -> BaseException:
    """The pgcheckpoint error for a driver error (others are returned unchanged);
    ``secrets`` are masked in its message."""
    if not isinstance(exc, psycopg.Error):
        return exc
    if exc.sqlstate in (FORK_GUARD_STATE, MISSING_PARENT_STATE):
        # Raised by put_checkpoint's one-writer-per-thread check (migration 0006),
        # whose message already says what happened and what to do.
        message = exc.diag.message_primary or str(exc)
        if exc.sqlstate == MISSING_PARENT_STATE:
            return MissingParentError(message)
        return ConcurrentUpdateError(message)
    state = f" [SQLSTATE {exc.sqlstate}]" if exc.sqlstate else ""
    text = mask(str(exc).strip() or type(exc).__name__, secrets)
    message = f"{operation} failed{state}: {text}"
    missing = (
        _OUR_FUNCTION.match(exc.diag.message_primary or "")
        if exc.sqlstate == UNDEFINED_FUNCTION_STATE
        else None
    )
    if missing:
        # A schema older than this release (a rolling upgrade: new code on a
        # database that setup() has not upgraded yet, e.g. a Citus schema
        # without pgcheckpoint_put).
        return SchemaError(
            f"{operation} failed: the database has no function {missing.group(1)}, which "
            "this release of pgcheckpoint calls; run setup() (or `pgcheckpoint setup`) "
            f"with this release to upgrade the schema ({text})"
        )
    if isinstance(exc, PoolClosed):
        return StorageError(f"{message} (open the pool before using the saver)")
    if is_transient(exc):
        return TransientStorageError(message)
    return StorageError(message)


class ConnectFailed(Exception):
    """A connection attempt of the runner's own failed with ``cause`` (nothing was sent)."""

    def __init__(self, cause: psycopg.Error) -> None:
        super().__init__(str(cause))
        self.cause = cause


def forget_conninfo(exc: BaseException) -> None:
    """Drop the failed connection a driver error keeps: its repr lists the password.
    (psycopg does the same when it pickles an error.)"""
    with contextlib.suppress(AttributeError):
        exc._pgconn = None  # type: ignore[attr-defined]


def source_conninfo(source: Any) -> tuple[str | None, tuple[str, ...]]:
    """The connection string of ``source`` (None if unknown) and passwords given beside it."""
    extra: list[str] = []
    if isinstance(source, ConnectionPool | AsyncConnectionPool):
        kwargs = source.kwargs if isinstance(source.kwargs, dict) else {}
        extra = [str(kwargs[k]) for k in ("password", "sslpassword") if kwargs.get(k)]
        conninfo = source.conninfo if isinstance(source.conninfo, str) else None
        return conninfo, tuple(extra)
    if isinstance(source, psycopg.Connection | psycopg.AsyncConnection):
        password = source.info.password
        return source.info.dsn, (password,) if password else ()
    return None, ()


def breaks_connection(exc: BaseException) -> bool:
    """Whether the connection that raised ``exc`` must not be used again
    (or, for a failed connection attempt, whether to keep probing)."""
    return isinstance(exc, ConnectFailed) or connection_lost(exc)


# How long an attempt waits for the pool once the operation has seen the
# connection fail, before it opens a connection of its own (see _runner_base.py).
RECOVERY_WAIT = 0.2


def direct_args(
    pool: ConnectionPool[Any] | AsyncConnectionPool[Any], timeout: float | None
) -> tuple[str, dict[str, Any], bool] | None:
    """The conninfo and settings of a plain connection like one of ``pool``'s
    (None if they are callables), its connect timeout capped at ``timeout``, and
    whether it can stand in for a pooled one (no ``configure`` callback)."""
    kwargs = pool.kwargs if pool.kwargs is not None else {}
    if not isinstance(pool.conninfo, str) or not isinstance(kwargs, dict):
        return None
    if timeout is not None:
        configured = int(kwargs.get("connect_timeout") or 0) or math.inf
        kwargs = {**kwargs, "connect_timeout": max(1, min(configured, math.ceil(timeout)))}
    return pool.conninfo, kwargs, getattr(pool, "_configure", None) is None


def first_wait(timeout: float | None) -> float:
    """How long a probing attempt waits for the pool before connecting itself."""
    return min(timeout or RECOVERY_WAIT, RECOVERY_WAIT)
