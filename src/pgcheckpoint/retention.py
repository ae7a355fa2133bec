"""Retention policies and the arithmetic behind them (pure, no I/O).

A :class:`RetentionPolicy` bounds how much history a thread keeps. The saver
holds a default one (``retention=``, or the short forms ``max_versions=``,
``max_age=``, ``retention_days=``); a thread may carry its own
(``set_thread_retention``), stored as JSON in ``threads.retention``
(:meth:`RetentionPolicy.to_json`). The sweep itself runs in the database
(migration ``0004_sweep.sql``): it reads that JSON, so pg_cron can run it too.

Environment variables are read here only, in :meth:`RetentionPolicy.from_env`
and :func:`sweeper_settings_from_env`, which the ``from_env()`` edges call.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import dataclass, fields
from datetime import timedelta
from typing import Any

from .errors import ConfigurationError, InvalidInputError, InvalidPolicyError

# The name of the pg_cron job `schedule_cleanup` makes (here, not in sweeper.py, so that
# the CLI can show it as a default without importing LangGraph).
DEFAULT_CRON_JOB = "pgcheckpoint-sweep"

ENV_RETENTION_DAYS = "CHECKPOINT_RETENTION_DAYS"
ENV_MAX_VERSIONS = "CHECKPOINT_MAX_VERSIONS"
ENV_AUTO_CLEANUP = "CHECKPOINT_AUTO_CLEANUP"
ENV_CLEANUP_INTERVAL = "CHECKPOINT_CLEANUP_INTERVAL"

DEFAULT_CLEANUP_INTERVAL = 3600.0
DEFAULT_BATCH_SIZE = 100
# Writes whose checkpoint does not exist are only removed once this old: with
# durability="async" LangGraph may save a superstep's writes a moment before
# the checkpoint they belong to.
DEFAULT_ORPHAN_GRACE = timedelta(hours=1)

# Bounds of a policy, so that whatever is stored, the sweep can compute it:
# keep_last is a PostgreSQL integer, and now() - max_age / thread_ttl must stay a
# timestamptz (which starts in 4713 BC). A thousand years is far above any
# real retention; None, not a huge value, means "no limit".
MAX_KEEP_LAST = 2**31 - 1
MAX_DURATION = timedelta(days=365_250)

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off", ""}


def _check_duration(value: Any, name: str) -> None:
    if value is None:
        return
    if not isinstance(value, timedelta):
        raise InvalidPolicyError(f"{name} must be a datetime.timedelta or None, got {value!r}")
    if value <= timedelta(0):
        raise InvalidPolicyError(f"{name} must be positive, got {value}")
    if value > MAX_DURATION:
        raise InvalidPolicyError(
            f"{name} must be at most {MAX_DURATION.days} days (1000 years), got {value}; "
            "use None for no limit"
        )


@dataclass(frozen=True, slots=True)
class RetentionPolicy:
    """How much history the sweeper keeps.

    Each limit that is set removes what it excludes; a checkpoint survives only
    if it is within every limit. Whatever the limits, the sweeper keeps the
    newest checkpoint of the root namespace and of every subgraph namespace a
    kept root checkpoint can still show or resume (so a thread can always
    resume), every pinned checkpoint, and every ancestor that a kept
    checkpoint's DeltaChannels need to be rebuilt (docs/retention.md).

    Attributes:
        keep_last: keep the newest N checkpoints of each thread and namespace.
        max_age: remove checkpoints older than this (by their ``ts``).
        thread_ttl: remove a whole thread once it has not been written for
            this long (by ``threads.updated_at``).
        keep_interrupted: with ``thread_ttl``, never expire a thread that is
            paused on an interrupt (its newest checkpoint has pending
            ``__interrupt__`` writes) and so still waits for a human.
    """

    keep_last: int | None = None
    max_age: timedelta | None = None
    thread_ttl: timedelta | None = None
    keep_interrupted: bool = True

    def __post_init__(self) -> None:
        self._check()

    def _check(self) -> None:
        n = self.keep_last
        if n is not None and (isinstance(n, bool) or not isinstance(n, int) or n < 1):
            raise InvalidPolicyError(
                f"keep_last must be an int >= 1 or None, got {n!r} "
                "(the newest checkpoint of a thread is always kept)"
            )
        if n is not None and n > MAX_KEEP_LAST:
            raise InvalidPolicyError(
                f"keep_last must be at most {MAX_KEEP_LAST} (a PostgreSQL integer), got {n}; "
                "use None for no limit"
            )
        _check_duration(self.max_age, "max_age")
        _check_duration(self.thread_ttl, "thread_ttl")
        if not isinstance(self.keep_interrupted, bool):
            raise InvalidPolicyError(
                f"keep_interrupted must be a bool, got {self.keep_interrupted!r}"
            )

    @property
    def is_noop(self) -> bool:
        """True when the policy removes nothing."""
        return self.keep_last is None and self.max_age is None and self.thread_ttl is None

    @classmethod
    def from_settings(
        cls,
        *,
        retention: RetentionPolicy | None = None,
        max_versions: int | None = None,
        max_age: timedelta | None = None,
        retention_days: float | None = None,
    ) -> RetentionPolicy:
        """The policy of a saver's keyword arguments (``retention=`` or the short forms)."""
        short = (max_versions, max_age, retention_days)
        if retention is not None:
            if not isinstance(retention, RetentionPolicy):
                raise ConfigurationError(
                    f"retention must be a RetentionPolicy, got {type(retention).__name__}"
                )
            if any(v is not None for v in short):
                raise ConfigurationError(
                    "give either retention=RetentionPolicy(...) or max_versions/max_age/"
                    "retention_days, not both"
                )
            return retention
        if max_age is not None and retention_days is not None:
            raise ConfigurationError("give max_age or retention_days, not both")
        if retention_days is not None:
            if isinstance(retention_days, bool) or not isinstance(retention_days, int | float):
                raise ConfigurationError(
                    f"retention_days must be a number, got {retention_days!r}"
                )
            if not 0 < retention_days <= MAX_DURATION.days:  # also refuses NaN
                raise InvalidPolicyError(
                    f"retention_days must be positive and at most {MAX_DURATION.days}, "
                    f"got {retention_days}"
                )
            max_age = timedelta(days=retention_days)
        return cls(keep_last=max_versions, max_age=max_age)

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> RetentionPolicy:
        """The policy of ``CHECKPOINT_RETENTION_DAYS`` and ``CHECKPOINT_MAX_VERSIONS``."""
        env = os.environ if environ is None else environ
        days = _env_number(env, ENV_RETENTION_DAYS, float)
        versions = _env_number(env, ENV_MAX_VERSIONS, int)
        return cls.from_settings(
            max_versions=int(versions) if versions is not None else None, retention_days=days
        )

    # --- stored form (threads.retention) -----------------------------------
    def to_json(self) -> str:
        """The JSON stored in ``threads.retention`` (durations in seconds)."""
        self._check()  # again: a frozen dataclass can still be changed by force
        return json.dumps(
            {
                "keep_last": self.keep_last,
                "max_age": _seconds(self.max_age),
                "thread_ttl": _seconds(self.thread_ttl),
                "keep_interrupted": self.keep_interrupted,
            },
            sort_keys=True,
        )

    @classmethod
    def from_json(cls, data: Any) -> RetentionPolicy:
        """Read :meth:`to_json`'s form back (a dict as psycopg returns jsonb, or text)."""
        if isinstance(data, str | bytes):
            try:
                data = json.loads(data)
            except (ValueError, RecursionError) as exc:
                raise InvalidInputError(f"a stored retention policy is not JSON: {exc}") from exc
        if not isinstance(data, Mapping):
            raise InvalidInputError(f"a stored retention policy must be an object, got {data!r}")
        known = {f.name for f in fields(cls)}
        unknown = set(data) - known
        if unknown:
            raise InvalidInputError(f"unknown retention policy keys: {sorted(unknown)}")
        return cls(
            keep_last=data.get("keep_last"),
            max_age=_duration(data.get("max_age"), "max_age"),
            thread_ttl=_duration(data.get("thread_ttl"), "thread_ttl"),
            keep_interrupted=bool(data.get("keep_interrupted", True)),
        )


def _seconds(value: timedelta | None) -> float | None:
    return None if value is None else value.total_seconds()


def _duration(value: Any, name: str) -> timedelta | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise InvalidInputError(f"stored {name} must be a number of seconds, got {value!r}")
    if not 0 < value <= MAX_DURATION.total_seconds():
        raise InvalidPolicyError(
            f"stored {name} must be between 0 and {MAX_DURATION.total_seconds():.0f} "
            f"seconds, got {value!r}"
        )
    return timedelta(seconds=value)


def _env_number(env: Mapping[str, str], name: str, kind: type[int] | type[float]) -> float | None:
    raw = env.get(name, "").strip()
    if not raw:
        return None
    try:
        return kind(raw)
    except ValueError as exc:
        raise ConfigurationError(f"{name} must be a number, got {raw!r}") from exc


def env_flag(env: Mapping[str, str], name: str) -> bool:
    """A boolean environment variable (1/true/yes/on or 0/false/no/off)."""
    raw = env.get(name, "").strip().lower()
    if raw in _TRUE:
        return True
    if raw in _FALSE:
        return False
    raise ConfigurationError(f"{name} must be true or false, got {raw!r}")


def sweeper_settings_from_env(environ: Mapping[str, str] | None = None) -> dict[str, Any]:
    """Saver keyword arguments from ``CHECKPOINT_*`` variables (for ``from_env()``)."""
    env = os.environ if environ is None else environ
    settings: dict[str, Any] = {
        "retention": RetentionPolicy.from_env(env),
        "auto_cleanup": env_flag(env, ENV_AUTO_CLEANUP),
    }
    interval = _env_number(env, ENV_CLEANUP_INTERVAL, float)
    if interval is not None:
        settings["cleanup_interval"] = interval
    # from_env() also reads the keyring ($PGCHECKPOINT_KEYS; docs/encryption.md).
    from .keyring import Keyring

    keyring = Keyring.from_env(env)
    if keyring is not None:
        settings["encryption"] = keyring
    return settings


def check_interval(value: Any) -> float:
    """A cleanup interval in seconds (a number or a timedelta), validated."""
    if isinstance(value, timedelta):
        value = value.total_seconds()
    if isinstance(value, bool) or not isinstance(value, int | float) or value <= 0:
        raise ConfigurationError(f"cleanup_interval must be a positive number, got {value!r}")
    return float(value)


def check_orphan_grace(value: Any) -> timedelta:
    """The orphan grace period (``None``: the default of one hour), validated."""
    if value is None:
        return DEFAULT_ORPHAN_GRACE
    if not isinstance(value, timedelta) or value < timedelta(0):
        raise InvalidInputError(f"orphan_grace must be a timedelta >= 0, got {value!r}")
    return value


def check_batch_size(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise InvalidInputError(f"batch_size must be an int >= 1, got {value!r}")
    return value


@dataclass(frozen=True, slots=True)
class SweepReport:
    """What one sweep removed (or, for a dry run, would remove).

    ``bytes_freed`` is the stored size of the removed rows (``pg_column_size``
    of their columns): the space the next VACUUM makes reusable. It does not
    shrink the files on disk until ``optimize(full=True)``.
    ``skipped`` is True when another process was already sweeping this schema.
    """

    checkpoints_deleted: int = 0
    threads_deleted: int = 0
    blobs_deleted: int = 0
    chunks_deleted: int = 0
    writes_deleted: int = 0
    bytes_freed: int = 0
    dry_run: bool = False
    skipped: bool = False
    threads_scanned: int = 0
    batches: int = 0

    def counts(self) -> dict[str, int]:
        """The removal counters, for comparing a dry run with a real one."""
        return {
            "checkpoints_deleted": self.checkpoints_deleted,
            "threads_deleted": self.threads_deleted,
            "blobs_deleted": self.blobs_deleted,
            "chunks_deleted": self.chunks_deleted,
            "writes_deleted": self.writes_deleted,
            "bytes_freed": self.bytes_freed,
        }
