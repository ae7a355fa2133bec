"""The exceptions pgcheckpoint raises.

Every error the library raises derives from :class:`PgCheckpointError`, so an
application can catch one type. Errors about bad input also derive from
:class:`ValueError` (or :class:`TypeError`) so code written against the
official saver, which raised builtins, keeps working.

Driver errors are translated in exactly one place,
:func:`pgcheckpoint._connections.translate`, and re-raised ``from`` the original.
"""

from __future__ import annotations


class PgCheckpointError(Exception):
    """Root of every exception raised by pgcheckpoint."""


class ConfigurationError(PgCheckpointError, ValueError):
    """A setting, connection string or constructor argument is invalid."""


class InvalidInputError(PgCheckpointError, ValueError):
    """A config, checkpoint, metadata or write given to the saver is invalid.

    Raised before anything is sent to the database, so the database is unchanged.
    """


class InvalidPolicyError(ConfigurationError, InvalidInputError):
    """A retention policy is malformed or beyond its documented bounds.

    Both a :class:`ConfigurationError` (a policy is configuration) and an
    :class:`InvalidInputError` (``set_thread_retention`` refuses it before
    anything is written).
    """


class CodecError(PgCheckpointError):
    """A value could not be encoded or decoded."""


class SerializationError(CodecError, TypeError):
    """A value could not be serialized by the saver's serde."""


class DeserializationError(CodecError):
    """A stored value could not be read back."""


class IntegrityError(DeserializationError):
    """A stored value fails its integrity check: a chunk whose content does not match
    its address, or a zstd frame whose content checksum does not match.

    The value was altered (or damaged) after it was written; pgcheckpoint raises
    rather than return it as state. See docs/security.md.
    """


class BlockedTypeError(DeserializationError):
    """A stored value names a type that the msgpack allowlist does not permit.

    pgcheckpoint refuses to load it rather than hand back a half-decoded value.
    Add the type to the graph's state schema or pass it to
    ``saver.with_allowlist([...])`` to allow it.
    """

    def __init__(self, blocked: list[str], where: str) -> None:
        self.blocked = blocked
        self.where = where
        names = ", ".join(blocked)
        super().__init__(
            f"refusing to load {where}: it contains type(s) not in the msgpack "
            f"allowlist: {names}. Allow them with saver.with_allowlist("
            f"[{', '.join(repr(tuple(b.rsplit('.', 1))) for b in blocked)}])"
        )


class SchemaError(PgCheckpointError):
    """The database schema is missing, newer than this library, or was altered."""


class MigrationError(SchemaError):
    """A migration failed or a recorded migration's checksum does not match."""


class StorageError(PgCheckpointError):
    """The database refused or failed an operation."""


class TransientStorageError(StorageError):
    """A storage error that may succeed when retried (connection loss, failover,
    serialization failure, deadlock, server shutting down)."""


class RetryExhaustedError(TransientStorageError):
    """An operation kept failing with transient errors until its retry deadline."""

    def __init__(self, operation: str, attempts: int, elapsed: float, last: BaseException) -> None:
        self.operation = operation
        self.attempts = attempts
        self.elapsed = elapsed
        self.last = last
        super().__init__(
            f"{operation} failed after {attempts} attempt(s) over {elapsed:.2f}s "
            f"of transient errors; last error: {type(last).__name__}: {last}"
        )


class ConcurrentUpdateError(StorageError):
    """Another writer changed the thread at the same time; see docs/concurrency.md."""


class TransferError(PgCheckpointError):
    """An import, export or migration from another saver could not be completed."""


class ImportConflictError(TransferError):
    """A row to import exists in the target with a different content.

    An import never replaces a stored row; the error names the thread and checkpoint,
    and nothing of that thread (or, when found before writing, of the import) is written.
    """


__all__ = [
    "BlockedTypeError",
    "CodecError",
    "ConcurrentUpdateError",
    "ConfigurationError",
    "DeserializationError",
    "ImportConflictError",
    "IntegrityError",
    "InvalidInputError",
    "InvalidPolicyError",
    "MigrationError",
    "PgCheckpointError",
    "RetryExhaustedError",
    "SchemaError",
    "SerializationError",
    "StorageError",
    "TransferError",
    "TransientStorageError",
]
