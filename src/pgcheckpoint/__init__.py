"""pgcheckpoint: a fast, durable, operable LangGraph checkpointer on PostgreSQL.

Swap ``from langgraph.checkpoint.postgres import PostgresSaver`` for
``from pgcheckpoint import PostgresSaver`` (and ``AsyncPostgresSaver``).
"""

from typing import TYPE_CHECKING, Any

from .errors import (
    BlockedTypeError,
    CodecError,
    ConcurrentUpdateError,
    ConfigurationError,
    ConnectionFailedError,
    DeserializationError,
    ImportConflictError,
    IntegrityError,
    InvalidInputError,
    MigrationError,
    MissingParentError,
    PgCheckpointError,
    RetryExhaustedError,
    SchemaError,
    SerializationError,
    StorageError,
    TransferError,
    TransientStorageError,
)

if TYPE_CHECKING:
    from .aio import AsyncPostgresSaver
    from .chunking import ChunkingPolicy
    from .compression import CompressionPolicy
    from .cron import CronJob
    from .keyring import Keyring
    from .pooling import PoolSettings
    from .retention import RetentionPolicy, SweepReport
    from .retry import RetryPolicy
    from .saver import PostgresSaver

__version__ = "0.1.0"

# The savers pull in LangGraph, langchain_core, pydantic and psycopg (~0.9 s);
# they are imported on first use (PEP 562) so that `import pgcheckpoint.errors`
# and the CLI's `--help` stay fast. `from pgcheckpoint import PostgresSaver`
# works as before.
_LAZY: dict[str, str] = {
    "AsyncPostgresSaver": "aio",
    "ChunkingPolicy": "chunking",
    "CompressionPolicy": "compression",
    "CronJob": "cron",
    "Keyring": "keyring",
    "PoolSettings": "pooling",
    "PostgresSaver": "saver",
    "RetentionPolicy": "retention",
    "RetryPolicy": "retry",
    "SweepReport": "retention",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    import importlib

    value = getattr(importlib.import_module(f"{__name__}.{module}"), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))


__all__ = [
    "AsyncPostgresSaver",
    "BlockedTypeError",
    "ChunkingPolicy",
    "CodecError",
    "CompressionPolicy",
    "ConcurrentUpdateError",
    "ConfigurationError",
    "ConnectionFailedError",
    "CronJob",
    "DeserializationError",
    "ImportConflictError",
    "IntegrityError",
    "InvalidInputError",
    "Keyring",
    "MigrationError",
    "MissingParentError",
    "PgCheckpointError",
    "PoolSettings",
    "PostgresSaver",
    "RetentionPolicy",
    "RetryExhaustedError",
    "RetryPolicy",
    "SchemaError",
    "SerializationError",
    "StorageError",
    "SweepReport",
    "TransferError",
    "TransientStorageError",
]
