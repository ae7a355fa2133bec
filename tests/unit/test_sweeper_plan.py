"""The sweep plan (``sweeper.sweep_plan``) driven with canned rows: its transaction
framing, paging, dry run and lock, with no database."""

from __future__ import annotations

from datetime import timedelta

import pytest

from _plan_driver import Driver, drive
from pgcheckpoint._core import SaverCore
from pgcheckpoint.errors import InvalidInputError
from pgcheckpoint.retention import RetentionPolicy
from pgcheckpoint.sweeper import sweep_plan

POLICY = RetentionPolicy(keep_last=2)


def _batch(scanned: int, **removed: tuple[int, int]) -> list[tuple[object, ...]]:
    """A ``sweep_batch`` result: (table, rows, bytes) per table and the 'scanned' row."""
    rows: list[tuple[object, ...]] = [(t, n, b) for t, (n, b) in removed.items()]
    return [*rows, ("scanned", scanned, 0)]


def _script(pages: list[list[str]], batches: list[list[tuple[object, ...]]]) -> dict[str, object]:
    return {
        "sweep_lock": [[(True,)]],
        "retention_page": [[(t,) for t in page] for page in pages] + [[]],
        "sweep_batch": batches,
        "sweep_strays": [[(0, 0)]],
    }


def test_each_page_is_one_batch_in_its_own_transaction() -> None:
    core = SaverCore()
    plan = sweep_plan(core, POLICY, batch_size=2, orphan_grace=timedelta(minutes=5))
    script = _script(
        [["a", "b"], ["c"]],
        [
            _batch(2, checkpoints=(3, 300), blobs=(1, 40)),
            _batch(1, threads=(1, 8), writes=(2, 16)),
        ],
    )
    report, d = drive(plan, script)
    assert d.issued_names == [
        "sweep_lock",
        "retention_page", "BEGIN", "sweep_batch", "COMMIT",
        "retention_page", "BEGIN", "sweep_batch", "COMMIT",
        "retention_page",
        "BEGIN", "sweep_strays", "COMMIT",
    ]  # fmt: skip
    # Keyset paging: each page starts after the last thread of the one before.
    assert d.params_of("retention_page") == [
        {"after": "", "limit": 2},
        {"after": "b", "limit": 2},
        {"after": "c", "limit": 2},
    ]
    batches = d.params_of("sweep_batch")
    assert [b["thread_ids"] for b in batches if b] == [["a", "b"], ["c"]]
    assert all(b and b["policy"] == POLICY.to_json() for b in batches)
    assert all(b and b["orphan_grace"] == timedelta(minutes=5) for b in batches)
    assert (report.checkpoints_deleted, report.threads_deleted, report.blobs_deleted) == (3, 1, 1)
    assert report.writes_deleted == 2 and report.bytes_freed == 300 + 40 + 8 + 16
    assert (report.threads_scanned, report.batches) == (3, 2)
    assert not report.dry_run and not report.skipped
    assert d.unused() == {}
    # The advisory lock is a session lock: the plan runs outside a runner's
    # transaction and always releases it, however it ends.
    assert plan.own_transactions
    assert plan.cleanup is not None and "pg_advisory_unlock_all" in plan.cleanup.sql


def test_a_dry_run_rolls_back_every_transaction_it_opens() -> None:
    plan = sweep_plan(SaverCore(), POLICY, dry_run=True, batch_size=10)
    script = _script([["a"]], [_batch(1, checkpoints=(4, 100))])
    report, d = drive(plan, script)
    assert "COMMIT" not in d.issued_names
    assert d.issued_names.count("BEGIN") == d.issued_names.count("ROLLBACK") == 2
    # Same statements as the real run, so the report says what it would remove.
    assert report.dry_run and report.checkpoints_deleted == 4 and report.bytes_freed == 100


def test_the_sweep_skips_when_another_process_holds_the_lock() -> None:
    report, d = drive(sweep_plan(SaverCore(), POLICY), {"sweep_lock": [[(False,)]]})
    assert report.skipped and report.threads_scanned == 0
    assert d.issued_names == ["sweep_lock"]  # nothing read, nothing removed


def test_stray_writes_are_removed_in_bounded_deletes_until_one_comes_short() -> None:
    from pgcheckpoint.sweeper import _STRAY_LIMIT

    script = _script([], [])
    script["sweep_strays"] = [[(_STRAY_LIMIT, 1000)], [(_STRAY_LIMIT, 1000)], [(7, 70)]]
    report, d = drive(sweep_plan(SaverCore(), POLICY), script)
    assert d.issued_names == [
        "sweep_lock", "retention_page", "BEGIN",
        "sweep_strays", "sweep_strays", "sweep_strays", "COMMIT",
    ]  # fmt: skip
    assert all(p and p["limit"] == _STRAY_LIMIT for p in d.params_of("sweep_strays"))
    assert report.writes_deleted == 2 * _STRAY_LIMIT + 7 and report.bytes_freed == 2070
    assert report.batches == 0


def test_a_failed_batch_ends_the_plan_there() -> None:
    """A statement that fails inside a batch propagates; the runner then rolls back the
    open transaction and runs the cleanup (``own_transactions``)."""
    script = _script([["a"]], [])
    script["sweep_batch"] = [RuntimeError("batch failed")]
    driver = Driver(script)
    with pytest.raises(RuntimeError, match="batch failed"):
        driver.run(sweep_plan(SaverCore(), POLICY))
    assert driver.issued_names == ["sweep_lock", "retention_page", "BEGIN", "sweep_batch"]


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
