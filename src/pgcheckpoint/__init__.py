"""pgcheckpoint: a fast, durable, operable LangGraph checkpointer on PostgreSQL.

Swap ``from langgraph.checkpoint.postgres import PostgresSaver`` for
``from pgcheckpoint import PostgresSaver`` (and ``AsyncPostgresSaver``).
"""

from .aio import AsyncPostgresSaver
from .chunking import ChunkingPolicy
from .compression import CompressionPolicy
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
from .pooling import PoolSettings
from .retention import RetentionPolicy, SweepReport
from .retry import RetryPolicy
from .saver import PostgresSaver
from .sweeper import CronJob

__version__ = "0.1.0"

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
