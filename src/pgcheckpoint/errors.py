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


def _how_to_allow(blocked: list[str]) -> str:
    """How to allow ``blocked`` (``module.Class``; ``module.Class.method()`` for a
    method call, which no allowlist permits)."""
    types = [":".join(b.rsplit(".", 1)) for b in blocked if not b.endswith("()")]
    parts = []
    if types:
        entries = ", ".join(repr(t) for t in types)
        flags = " ".join(f"--allow {t}" for t in types)
        parts.append(
            "To allow a type, import its module before reading and make it a data class "
            "(pydantic model, dataclass, Enum, NamedTuple), or list it: "
            f"PostgresSaver(..., allow=[{entries}]) or saver.with_allowlist(...); "
            f"on the command line {flags} or PGCHECKPOINT_ALLOW."
        )
    if len(types) < len(blocked):
        parts.append(
            "A method call (module.Class.method()) is allowed only for "
            "datetime.datetime.fromisoformat: store a plain datetime instead of a subclass."
        )
    return " ".join(parts) + " See docs/serde.md."


class BlockedTypeError(DeserializationError):
    """A stored value names a type that the allowlist does not permit.

    pgcheckpoint refuses to load it rather than hand back a half-decoded value,
    and constructs nothing. The rule is in ``pgcheckpoint.allowlist`` and
    docs/serde.md.
    """

    def __init__(self, blocked: list[str], where: str) -> None:
        self.blocked = blocked
        self.where = where
        super().__init__(
            f"refusing to load {where}: it names type(s) that may not be rebuilt here: "
            f"{', '.join(blocked)}. " + _how_to_allow(blocked)
        )


class UnreadableTypeError(SerializationError):
    """A value to be written contains a type that reading would refuse.

    Raised before anything is sent, so the database is unchanged: a value that
    could not be read back is never written.
    """

    def __init__(self, refused: list[str], where: str) -> None:
        self.refused = refused
        self.where = where
        super().__init__(
            f"refusing to save {where}: it contains type(s) that could not be read back: "
            f"{', '.join(refused)} (only plain data classes of imported modules and "
            f"allowlisted types are rebuilt on read). " + _how_to_allow(refused)
        )


class SchemaError(PgCheckpointError):
    """The database schema is missing, newer than this library, or was altered."""


class MigrationError(SchemaError):
    """A migration failed or a recorded migration's checksum does not match."""


class StorageError(PgCheckpointError):
    """The database refused or failed an operation."""


class ConnectionFailedError(StorageError):
    """No connection could be made, and retrying would not help: the connection
    string names a role, password, database or TLS setting the server refuses,
    or (before the first successful connection) no server answers at all.

    ``target`` names the database (never the password); the message carries
    the cause, with the password masked. See docs/resilience.md.
    """

    def __init__(self, message: str, *, target: str = "") -> None:
        super().__init__(message)
        self.target = target


class TransientStorageError(StorageError):
    """A storage error that may succeed when retried (connection loss, failover,
    serialization failure, deadlock, server shutting down)."""


class RetryExhaustedError(TransientStorageError):
    """An operation kept failing with transient errors until its retry deadline."""

    def __init__(
        self,
        operation: str,
        attempts: int,
        elapsed: float,
        last: BaseException,
        detail: str | None = None,
    ) -> None:
        self.operation = operation
        self.attempts = attempts
        self.elapsed = elapsed
        self.last = last
        # ``detail``: the last error in words, with any password masked.
        cause = detail if detail is not None else f"{type(last).__name__}: {last}"
        super().__init__(
            f"{operation} failed after {attempts} attempt(s) over {elapsed:.2f}s "
            f"of transient errors; last error: {cause}"
        )


class ConcurrentUpdateError(StorageError):
    """Another writer changed the thread at the same time; see docs/concurrency.md."""


class MissingParentError(ConcurrentUpdateError):
    """A put names a parent checkpoint the database does not have (deleted, pruned,
    or lost by a failover); nothing was written. See docs/concurrency.md."""


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
    "ConnectionFailedError",
    "DeserializationError",
    "ImportConflictError",
    "IntegrityError",
    "InvalidInputError",
    "InvalidPolicyError",
    "MigrationError",
    "MissingParentError",
    "PgCheckpointError",
    "RetryExhaustedError",
    "SchemaError",
    "SerializationError",
    "StorageError",
    "TransferError",
    "TransientStorageError",
]
