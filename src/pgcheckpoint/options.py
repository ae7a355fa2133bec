"""The keyword arguments both savers take, declared once.

``PostgresSaver(conn, **options)`` and ``AsyncPostgresSaver(conn, **options)``
accept exactly the keys of :class:`SaverOptions`; :func:`configure` applies
them, so the two constructors cannot drift apart.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import timedelta
from typing import TYPE_CHECKING, Any, TypedDict

from langgraph.checkpoint.serde.base import SerializerProtocol

from .allowlist import AllowEntry
from .chunking import ChunkingPolicy
from .compression import CompressionPolicy
from .errors import ConfigurationError
from .keyring import Keyring
from .retention import DEFAULT_CLEANUP_INTERVAL, RetentionPolicy
from .retry import RetryPolicy

if TYPE_CHECKING:
    from .sweeper import _RetentionBase


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
    - ``prepared_statements``: ``False`` behind PgBouncer in transaction mode.
    - ``retention`` or the seed names ``max_versions``, ``max_age``,
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
    prepared_statements: bool
    retention: RetentionPolicy | None
    max_versions: int | None
    max_age: timedelta | None
    retention_days: float | None
    auto_cleanup: bool
    cleanup_interval: float | timedelta


_KNOWN = frozenset(SaverOptions.__annotations__)


def configure(saver: _RetentionBase, options: dict[str, Any]) -> tuple[RetryPolicy, bool]:
    """Apply ``options`` to a new saver; returns what its runner needs (retry, prepared)."""
    unknown = sorted(set(options) - _KNOWN)
    if unknown:
        raise ConfigurationError(
            f"unknown saver option(s): {', '.join(unknown)}; known: {', '.join(sorted(_KNOWN))}"
        )
    from ._core import SaverCore

    SaverCore.__init__(
        saver,  # type: ignore[arg-type]
        schema=options.get("schema", "public"),
        serde=options.get("serde"),
        allow=options.get("allow", ()),
        compression=options.get("compression"),
        chunking=options.get("chunking"),
        encryption=options.get("encryption"),
        allow_plaintext=options.get("allow_plaintext", False),
    )
    saver._init_retention(
        retention=options.get("retention"),
        max_versions=options.get("max_versions"),
        max_age=options.get("max_age"),
        retention_days=options.get("retention_days"),
        auto_cleanup=options.get("auto_cleanup", False),
        cleanup_interval=options.get("cleanup_interval", DEFAULT_CLEANUP_INTERVAL),
    )
    return options.get("retry") or RetryPolicy(), options.get("prepared_statements", True)
