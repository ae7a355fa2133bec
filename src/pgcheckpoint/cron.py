"""pg_cron scheduling of the retention sweep: ``CALL pgcheckpoint_sweep(...)`` on a schedule.

The savers' ``schedule_cleanup`` / ``unschedule_cleanup`` run these plans;
the job runs the same sweep as :mod:`pgcheckpoint.sweeper`, with no Python
(docs/retention.md).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from ._plans import Plan, PlanGen, Query
from .errors import ConfigurationError, InvalidInputError
from .retention import (
    DEFAULT_BATCH_SIZE,
    DEFAULT_CRON_JOB,
    RetentionPolicy,
    check_batch_size,
    check_orphan_grace,
)

if TYPE_CHECKING:
    from ._core import SaverCore


# The shapes pg_cron accepts: five cron fields, a macro such as @hourly, or (pg_cron
# 1.5+) "N seconds". pg_cron parses the fields themselves and refuses bad ones.
_CRON_SHAPE = re.compile(r"^(@[a-z]+|[1-9][0-9]? seconds?|\S+(\s+\S+){4})$")


@dataclass(frozen=True, slots=True)
class CronJob:
    """A pg_cron job made by ``schedule_cleanup``: its id, name, schedule and SQL."""

    job_id: int
    name: str
    schedule: str
    command: str


def _cron_name(name: Any) -> str:
    if not isinstance(name, str) or not name.strip():
        raise InvalidInputError(f"the pg_cron job name must be a non-empty string, got {name!r}")
    return name


def _require_cron(core: SaverCore) -> PlanGen[None]:
    rows = yield Query(core.queries["cron_installed"], None, fetch="all")
    if not rows or not rows[0][0]:
        raise ConfigurationError(
            "pg_cron is not installed in this database: add 'pg_cron' to "
            "shared_preload_libraries, restart PostgreSQL and run CREATE EXTENSION pg_cron "
            "in the database named by cron.database_name (docs/retention.md)"
        )


def schedule_plan(
    core: SaverCore,
    policy: RetentionPolicy,
    schedule: Any,
    *,
    name: Any = DEFAULT_CRON_JOB,
    batch_size: int = DEFAULT_BATCH_SIZE,
    orphan_grace: timedelta | None = None,
) -> Plan[CronJob]:
    """A pg_cron job that runs ``CALL pgcheckpoint_sweep(policy, ...)`` on ``schedule``."""
    if not isinstance(schedule, str) or not _CRON_SHAPE.match(schedule.strip()):
        raise InvalidInputError(
            f"schedule must be a cron expression such as '*/15 * * * *' or '@hourly', "
            f"got {schedule!r}"
        )
    grace = check_orphan_grace(orphan_grace)
    job, when = _cron_name(name), schedule.strip()
    params = {
        "name": job,
        "schedule": when,
        "schema": core.schema,
        "policy": policy.to_json(),
        "batch_size": check_batch_size(batch_size),
        "orphan_grace": grace,
    }

    def make() -> PlanGen[CronJob]:
        yield from _require_cron(core)
        rows = yield Query(core.queries["cron_schedule"], params, fetch="all", prepare=False)
        job_id, command = (rows or [(0, "")])[0]
        return CronJob(int(job_id), job, when, str(command))

    return Plan("schedule_cleanup", make)


def unschedule_plan(core: SaverCore, name: Any = DEFAULT_CRON_JOB) -> Plan[None]:
    job = _cron_name(name)

    def make() -> PlanGen[None]:
        yield from _require_cron(core)
        rows = yield Query(core.queries["cron_unschedule"], {"name": job}, fetch="all",
                           prepare=False)
        if not rows:
            raise InvalidInputError(f"no pg_cron job named {job!r} belongs to this user")

    return Plan("unschedule_cleanup", make)
