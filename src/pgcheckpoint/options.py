"""The keyword arguments both savers take, declared once.

``PostgresSaver(conn, **options)`` and ``AsyncPostgresSaver(conn, **options)``
accept exactly the keys of :class:`SaverOptions`; ``SaverCore.__init__``
(the one constructor both run) checks them with :func:`check_options`, so the
two cannot drift apart.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterable, Mapping
from datetime import timedelta
from typing import Any, TypedDict

from langgraph.checkpoint.serde.base import SerializerProtocol

from .allowlist import AllowEntry
from .chunking import ChunkingPolicy
from .compression import CompressionPolicy
from .errors import ConfigurationError
from .keyring import Keyring
from .retention import RetentionPolicy
from .retry import RetryPolicy


class SaverOptions(TypedDict, total=False):
    """Keyword arguments of both savers (all optional).

    - ``schema``: PostgreSQL schema holding the tables (default ``"public"``).
    - ``serde``: LangGraph serializer (default: ``JsonPlusSerializer``'s format with
      pgcheckpoint's type rule, ``allowlist.PlainDataSerializer``; docs/serde.md).
    - ``allow``: more types to rebuild on read, as ``"module:Class"``,
      ``("module", "Class")`` or the class itself (docs/serde.md).
    - ``compression`` / ``chunking``: storage policies (docs/retention.md).
    - ``encryption``: a :class:`~pgcheckpoint.Keyring`; every stored value is
      sealed with AES-256-GCM and bound to its row (docs/encryption.md).
      ``allow_plaintext``: also read unencrypted rows (only while a database is
      being encrypted; it warns).
    - ``retry``: retry of transient errors (docs/resilience.md).
    - ``transaction_pooler``: ``True`` behind a transaction-mode pooler such as
      PgBouncer (docs/pgbouncer.md): no server-side prepared statements, no
      pipeline mode, no ``executemany``. ``prepared_statements=False`` is its
      old, deprecated spelling.
    - ``retention`` or the shorthand names ``max_versions``, ``max_age``,
      ``retention_days``; ``auto_cleanup`` and ``cleanup_interval`` run the
      sweeper in the background (docs/retention.md).
    """

    schema: str
    serde: SerializerProtocol | None
    allow: Iterable[AllowEntry]
    compression: CompressionPolicy | None
    chunking: ChunkingPolicy | None
    encryption: Keyring | None
    allow_plaintext: bool
    retry: RetryPolicy | None
    transaction_pooler: bool
    prepared_statements: bool  # deprecated: transaction_pooler=not prepared_statements
    retention: RetentionPolicy | None
    max_versions: int | None
    max_age: timedelta | None
    retention_days: float | None
    auto_cleanup: bool
    cleanup_interval: float | timedelta


_KNOWN = frozenset(SaverOptions.__annotations__)


def check_options(options: Mapping[str, Any]) -> dict[str, Any]:
    """``options`` checked for unknown keys, with deprecated names translated."""
    unknown = sorted(set(options) - _KNOWN)
    if unknown:
        raise ConfigurationError(
            f"unknown saver option(s): {', '.join(unknown)}; known: {', '.join(sorted(_KNOWN))}"
        )
    out = dict(options)
    if "prepared_statements" in out:
        prepared = out.pop("prepared_statements")
        warnings.warn(
            "the saver option prepared_statements is deprecated; pass "
            f"transaction_pooler={not prepared} instead",
            DeprecationWarning,
            stacklevel=4,
        )
        if "transaction_pooler" in out and bool(out["transaction_pooler"]) == bool(prepared):
            raise ConfigurationError(
                "prepared_statements and transaction_pooler disagree; pass transaction_pooler only"
            )
        out["transaction_pooler"] = not prepared
    return out
