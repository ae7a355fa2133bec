"""The sweep plan (``sweeper.sweep_plan``) driven with canned rows, with no database.

The plan is one CALL of the procedure ``pgcheckpoint_sweep`` (the one driver,
sql/functions/): its parameters, the report it reads back, and that it runs in
autocommit mode and always releases the session lock."""

from __future__ import annotations

from datetime import timedelta

import pytest

from _plan_driver import drive
from pgcheckpoint._core import SaverCore
from pgcheckpoint.errors import InvalidInputError
from pgcheckpoint.retention import RetentionPolicy
from pgcheckpoint.sweeper import sweep_plan

POLICY = RetentionPolicy(keep_last=2)
REPORT = {
    "dry_run": False, "skipped": False, "threads_scanned": 3, "batches": 2, "threads": 1,
    "checkpoints": 3, "blobs": 1, "chunks": 0, "writes": 2, "bytes_freed": 364,
    "bad_policy": 1, "bad_policy_threads": ["odd"],
}  # fmt: skip


def test_the_sweep_is_one_call_of_the_procedure() -> None:
    plan = sweep_plan(SaverCore(), POLICY, batch_size=2, orphan_grace=timedelta(minutes=5))
    report, d = drive(plan, {"sweep": [[(REPORT,)]]})
    assert d.issued_names == ["sweep"]
    assert d.params_of("sweep") == [{
        "policy": POLICY.to_json(), "batch_size": 2,
        "orphan_grace": timedelta(minutes=5), "dry_run": False,
    }]  # fmt: skip
    assert (report.checkpoints_deleted, report.threads_deleted, report.blobs_deleted) == (3, 1, 1)
    assert report.writes_deleted == 2 and report.bytes_freed == 364
    assert (report.threads_scanned, report.batches) == (3, 2)
    assert (report.bad_policy, report.bad_policy_threads) == (1, ("odd",))
    assert not report.dry_run and not report.skipped
    # The procedure commits per page: the plan runs outside a runner's transaction
    # and always releases the session lock, however it ends.
    assert plan.own_transactions
    assert plan.cleanup is not None and "pg_advisory_unlock_all" in plan.cleanup.sql


def test_a_dry_run_and_a_skipped_sweep_are_what_the_procedure_says() -> None:
    report, d = drive(sweep_plan(SaverCore(), POLICY, dry_run=True),
                      {"sweep": [[({**REPORT, "dry_run": True, "skipped": True},)]]})
    assert d.params_of("sweep")[0]["dry_run"] is True  # type: ignore[index]
    assert report.dry_run and report.skipped


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"batch_size": 0}, "batch_size"),
        ({"batch_size": True}, "batch_size"),
        ({"orphan_grace": timedelta(seconds=-1)}, "orphan_grace"),
        ({"dry_run": "yes"}, "dry_run"),
    ],
)
def test_bad_arguments_are_refused_before_any_statement(
    kwargs: dict[str, object], message: str
) -> None:
    with pytest.raises(InvalidInputError, match=message):
        sweep_plan(SaverCore(), POLICY, **kwargs)  # type: ignore[arg-type]
