"""Health checks and pool statistics for both savers.

``health_check()`` (``ahealth_check()`` on the async saver) never raises: it
answers a :class:`HealthReport` whose ``ok`` is false, with the error, when the
database cannot be reached. It makes one attempt (no retries) bounded by its
own ``timeout`` (default :data:`HEALTH_TIMEOUT` seconds, not the pool's 30 s),
so a probe of a load balancer sees an outage as it happens. Problems are
logged once when they appear (and once when they clear), not on every probe.
It also checks the settings that decide whether an acknowledged checkpoint
survives a crash and warns when they do not (``fsync=off``,
``synchronous_commit=off``, ``full_page_writes=off``): such a server
acknowledges writes it may lose.
It also reports whether the connection is encrypted (TLS, from ``pg_stat_ssl``)
and warns when the saver runs as a superuser or as the owner of its tables, or
with a serde that may load types outside the msgpack allowlist
(docs/security.md).
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from typing import Any

import psycopg
from langgraph.checkpoint.serde.jsonplus import JsonPlusSerializer
from psycopg.conninfo import conninfo_to_dict
from psycopg_pool import AsyncConnectionPool, ConnectionPool

from ._conninfo import mask
from ._plans import Plan, PlanGen, Query
from ._queries import Queries, quote_schema
from .allowlist import PlainDataSerializer
from .migrations import Newer, latest_version, read_newer, status_plan
from .retry import RetryPolicy
from .roles import SECURITY_PROBE
from .routines import RoutineState, read_states

logger = logging.getLogger("pgcheckpoint")

# Seconds one health check may take, connecting included.
HEALTH_TIMEOUT = 5.0


def one_attempt(timeout: float) -> RetryPolicy:
    """The retry policy of a health check: one attempt, bounded by ``timeout``."""
    return RetryPolicy(enabled=False, deadline=timeout)


@dataclass(frozen=True, slots=True)
class HealthReport:
    """The answer of ``health_check()``.

    Attributes:
        ok: the database answered and the schema is usable (applied and not
            newer than this library).
        latency_seconds: round trips of the check, wall time.
        server_version / server_version_num: e.g. ``"15.14 (Debian...)"`` / 150014.
        schema_version / latest_schema_version: newest applied migration / the
            newest this library ships (``schema_current`` when equal).
        in_recovery: connected to a standby (read-only).
        durable: fsync, synchronous_commit and full_page_writes are all on.
        warnings: what is wrong, in words (also logged at WARNING).
        behind_proxy: the server's port differs from the port dialled (a
            pooler such as PgBouncer or a proxy is in between); ``None``
            when unknown (unix socket).
        role: the role the saver runs as (``current_user``).
        superuser / table_owner: that role is a superuser / has the rights of
            the owner of pgcheckpoint's tables (both warned about: the saver
            should run as the runtime role of docs/security.md).
        ssl: the connection is encrypted with TLS, as the server sees it (behind
            a pooler: the pooler's connection to the server).
        ssl_protocol / ssl_cipher / ssl_bits: e.g. ``"TLSv1.3"``,
            ``"TLS_AES_256_GCM_SHA384"``, 256 (``None`` without TLS).
        error: why the check failed, when ``ok`` is false.
        stale_functions: the SQL functions whose definition in the database is
            not this release's (missing, older revision, changed; each also a
            warning): ``setup()`` applies them. The old definitions keep working
            meanwhile (docs/migrations.md).
    """

    ok: bool
    latency_seconds: float
    server_version: str | None = None
    server_version_num: int | None = None
    schema_version: int | None = None
    latest_schema_version: int = 0
    schema_current: bool = False
    in_recovery: bool | None = None
    durable: bool | None = None
    synchronous_commit: str | None = None
    synchronous_standby_names: str | None = None
    fsync: bool | None = None
    behind_proxy: bool | None = None
    warnings: tuple[str, ...] = ()
    role: str | None = None
    superuser: bool | None = None
    table_owner: bool | None = None
    ssl: bool | None = None
    ssl_protocol: str | None = None
    ssl_cipher: str | None = None
    ssl_bits: int | None = None
    error: str | None = None
    stale_functions: tuple[str, ...] = ()


def durability_warnings(fsync: str, synchronous_commit: str, full_page_writes: str) -> list[str]:
    """Plain-words warnings for settings under which acknowledged checkpoints can be lost."""
    out = []
    if fsync != "on":
        out.append(
            "fsync=off: a crash of the server or its OS can lose or corrupt acknowledged "
            "checkpoints (the whole cluster may need restoring)"
        )
    if synchronous_commit == "off":
        out.append(
            "synchronous_commit=off: checkpoints acknowledged in the last ~0.6 s "
            "(3 x wal_writer_delay) are lost if PostgreSQL crashes"
        )
    if full_page_writes != "on":
        out.append("full_page_writes=off: a crash can leave torn pages in the tables")
    return out


def dialled_ports(source: Any) -> set[int] | None:
    try:
        if isinstance(source, ConnectionPool | AsyncConnectionPool):
            conninfo = source.conninfo
            if not isinstance(conninfo, str):
                return None
            raw = conninfo_to_dict(conninfo).get("port") or "5432"
            return {int(p) for p in str(raw).split(",") if p}
        if isinstance(source, psycopg.Connection | psycopg.AsyncConnection):
            return {int(source.info.port)}
    except (ValueError, psycopg.Error):
        return None
    return None


def serde_warning(serde: Any) -> str | None:
    """A warning when ``serde`` may load types outside the allowlist: it is neither
    the serializer pgcheckpoint builds (``allowlist.PlainDataSerializer``) nor
    LangGraph's ``JsonPlusSerializer`` in strict mode (no ``allowed_msgpack_modules=True``,
    no ``pickle_fallback``)."""
    if serde is None or type(serde) is PlainDataSerializer:
        return None
    if type(serde) is not JsonPlusSerializer:
        return (
            f"the saver's serde is a {type(serde).__module__}.{type(serde).__qualname__}, not "
            "the serializer pgcheckpoint builds: the type allowlist is not enforced by "
            "pgcheckpoint and a forged row may load any type it allows"
        )
    if getattr(serde, "_allowed_msgpack_modules", None) is True:
        return (
            "the saver's serde allows every msgpack module (allowed_msgpack_modules=True): a "
            "forged row may load any type; use the default serde and saver.with_allowlist()"
        )
    if getattr(serde, "pickle_fallback", False):
        return "the saver's serde has pickle_fallback=True: a forged row may run code"
    return None


def security_warnings(
    role: str, superuser: bool, owner: bool | None, may_create: bool | None
) -> list[str]:
    """Warnings when the saver runs with more rights than it needs."""
    if superuser:
        return [
            f"the saver runs as superuser {role!r}: run it as the runtime role "
            "(pgcheckpoint roles create; docs/security.md)"
        ]
    if owner:
        return [
            f"the saver runs as {role!r}, which owns pgcheckpoint's tables (it may alter or drop "
            "them): run setup as the owner and the application as the runtime role "
            "(docs/security.md)"
        ]
    if may_create:
        return [
            f"role {role!r} may CREATE in pgcheckpoint's schema (it could plant a table or "
            "function there): grant it only what `pgcheckpoint roles create` grants the "
            "runtime role (docs/security.md)"
        ]
    return []


Probe = tuple[tuple[Any, ...], dict[int, str], list[Newer], list[RoutineState]]


def health_plan(schema: str, queries: Queries | None = None) -> Plan[Probe]:
    """The probe row (with the security probe's columns after it), the applied
    migrations and the newer ones, and the state of the SQL functions (when the
    schema is set up), in one plan (``queries``: the saver's, else rendered for
    ``schema``)."""
    probe = (queries or Queries(schema))["health_probe"]
    status = status_plan(schema)
    checkpoints = f"{quote_schema(schema)}.checkpoints"

    def make() -> PlanGen[Probe]:
        rows = yield Query(probe, None, fetch="all", prepare=False)
        security = yield Query(
            SECURITY_PROBE, {"table": checkpoints, "schema": schema}, fetch="all", prepare=False
        )
        applied = yield from status.make()
        newer = yield from read_newer(schema, applied)
        functions = (yield from read_states(schema)) if applied else []
        row = (*(rows or [()])[0], *(security or [(None,) * 8])[0])
        return row, applied, newer, functions

    return Plan("health_check", make)


def build_report(
    row: tuple[Any, ...],
    applied: dict[int, str],
    latency: float,
    ports: set[int] | None,
    newer: list[Newer] | None = None,
    serde: Any = None,
    functions: list[RoutineState] | None = None,
) -> HealthReport:
    version, version_num, fsync, sync_commit, fpw, in_recovery, server_port, standbys = row[:8]
    role, superuser, owner, may_create, ssl, ssl_protocol, ssl_cipher, ssl_bits = (
        *row[8:],
        *(None,) * 8,
    )[:8]
    warnings = durability_warnings(fsync, sync_commit, fpw)
    warnings += security_warnings(role, bool(superuser), owner, may_create)
    serde_problem = serde_warning(serde)
    if serde_problem:
        warnings.append(serde_problem)
    current = max(applied) if applied else None
    latest = latest_version()
    if current is None:
        warnings.append("the pgcheckpoint schema is not set up: call setup()")
    elif current < latest:
        warnings.append(f"schema version {current} is older than {latest}: call setup()")
    usable = all(n.usable for n in newer or [])
    if current is not None and current > latest:
        verdict = "declared compatible" if usable else "NOT compatible: upgrade pgcheckpoint"
        warnings.append(
            f"schema version {current} is newer than this pgcheckpoint ({latest}); {verdict}"
        )
    stale = [f for f in functions or [] if f.stale]
    warnings += [f"{f.describe()}: call setup()" for f in stale]
    behind = None if server_port is None or ports is None else int(server_port) not in ports
    return HealthReport(
        ok=current is not None and (current <= latest or usable),
        latency_seconds=latency,
        server_version=version,
        server_version_num=int(version_num),
        schema_version=current,
        latest_schema_version=latest,
        schema_current=current == latest,
        in_recovery=bool(in_recovery),
        durable=not durability_warnings(fsync, sync_commit, fpw),
        synchronous_commit=sync_commit,
        synchronous_standby_names=standbys,
        fsync=fsync == "on",
        behind_proxy=behind,
        warnings=tuple(warnings),
        role=role,
        superuser=None if superuser is None else bool(superuser),
        table_owner=None if owner is None else bool(owner),
        ssl=None if ssl is None else bool(ssl),
        ssl_protocol=ssl_protocol,
        ssl_cipher=ssl_cipher,
        ssl_bits=None if ssl_bits is None else int(ssl_bits),
        stale_functions=tuple(f.name for f in stale),
    )


class HealthLog:
    """Turns a health probe's outcome into a report, and logs what a report says
    only when it differs from the previous one (one per saver)."""

    __slots__ = ("last",)

    def __init__(self) -> None:
        self.last: tuple[str | None, tuple[str, ...]] | None = None

    def passed(self, probe: Probe, started: float, source: Any, serde: Any) -> HealthReport:
        """The report of a probe that answered (``started``: ``time.monotonic()``)."""
        row, applied, newer, functions = probe
        latency = time.monotonic() - started
        ports = dialled_ports(source)
        return self.report(build_report(row, applied, latency, ports, newer, serde, functions))

    def failed(self, exc: BaseException, started: float, secrets: tuple[str, ...]) -> HealthReport:
        """The report of a probe that raised ``exc`` (masked with ``secrets``)."""
        return self.report(
            HealthReport(
                ok=False,
                latency_seconds=time.monotonic() - started,
                latest_schema_version=latest_version(),
                error=mask(f"{type(exc).__name__}: {exc}", secrets),
            )
        )

    def report(self, report: HealthReport) -> HealthReport:
        state = (report.error, report.warnings)
        if state == self.last:
            return report
        previous, self.last = self.last, state
        if report.error is not None:
            logger.warning("pgcheckpoint health: database unreachable: %s", report.error)
        for w in report.warnings:
            logger.warning("pgcheckpoint health: %s", w)
        if previous is not None and previous != (None, ()) and state == (None, ()):
            logger.warning("pgcheckpoint health: healthy again")
        return report


def pool_stats(source: Any) -> dict[str, Any]:
    """psycopg_pool's ``get_stats()`` for a pool; the state of a single connection otherwise."""
    if isinstance(source, ConnectionPool | AsyncConnectionPool):
        stats: dict[str, Any] = {"kind": "pool", "name": source.name}
        stats.update(source.get_stats())
        return stats
    info: dict[str, Any] = {"kind": "connection", "closed": source.closed}
    if not source.closed:
        info.update(
            host=source.info.host,
            port=source.info.port,
            status=source.info.status.name,
            transaction_status=source.info.transaction_status.name,
            backend_pid=source.info.backend_pid,
        )
    return info
