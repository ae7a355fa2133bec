"""NDJSON export/import: lossless round trip, filters, idempotent import into a live database."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from graph_fixtures import every_tuple, populate, resume
from pgcheckpoint import PostgresSaver, TransferError
from pgcheckpoint.transfer import export_ndjson, import_ndjson


def test_round_trip_is_lossless_and_idempotent(
    saver: PostgresSaver, make_db_url: Any, tmp_path: Path
) -> None:
    ids = populate(saver, 3)
    out = tmp_path / "all.ndjson"
    with out.open("w") as f:
        report = export_ndjson(saver, f)
    lines = out.read_text().splitlines()
    assert json.loads(lines[0])["format"] == "pgcheckpoint.ndjson"
    assert report.threads == 3 and len(lines) == 1 + report.checkpoints
    with PostgresSaver.from_conn_string(make_db_url(True)) as target:
        first = import_ndjson(target, out)
        assert first.verified is True and first.threads == 3 and first.skipped == 0
        again = import_ndjson(target, out)
        assert again.skipped == 3
        assert sum(1 for _ in target.list(None)) == report.checkpoints
        for tid in ids:
            for a, b in zip(every_tuple(saver, tid), every_tuple(target, tid), strict=True):
                assert (a.config, a.checkpoint, a.metadata, a.parent_config) == (
                    b.config,
                    b.checkpoint,
                    b.metadata,
                    b.parent_config,
                )
                assert sorted(a.pending_writes or [], key=lambda w: w[0]) == sorted(
                    b.pending_writes or [], key=lambda w: w[0]
                )
        state = resume(target, "thread-1")
        assert [m.content for m in state["messages"]][-1] == "answer: later"


def test_export_filters(saver: PostgresSaver, tmp_path: Path) -> None:
    populate(saver, 4)
    one = tmp_path / "one.ndjson"
    with one.open("w") as f:
        assert export_ndjson(saver, f, thread_ids=["thread-2"]).threads == 1
    by_user = tmp_path / "u1.ndjson"
    with by_user.open("w") as f:
        report = export_ndjson(saver, f, filter={"user": "u1"})
    assert report.threads == 2
    threads = {json.loads(x)["thread_id"] for x in by_user.read_text().splitlines()[1:]}
    assert threads == {"thread-1", "thread-3"}


def test_import_into_live_database_adds_only_missing(saver: PostgresSaver, tmp_path: Path) -> None:
    populate(saver, 2)
    out = tmp_path / "x.ndjson"
    with out.open("w") as f:
        export_ndjson(saver, f)
    saver.delete_thread("thread-0")
    report = import_ndjson(saver, out)
    assert (report.threads, report.skipped, report.verified) == (2, 1, True)


def test_bad_files(saver: PostgresSaver, tmp_path: Path) -> None:
    bad = tmp_path / "bad.ndjson"
    bad.write_text('{"format": "other"}\n')
    with pytest.raises(TransferError, match="not a pgcheckpoint NDJSON"):
        import_ndjson(saver, bad)
    bad.write_text('{"format": "pgcheckpoint.ndjson", "version": 99}\n')
    with pytest.raises(TransferError, match="version 99"):
        import_ndjson(saver, bad)
    bad.write_text('{"format": "pgcheckpoint.ndjson", "version": 1}\nnot json\n')
    with pytest.raises(TransferError, match="line 2 is not JSON"):
        import_ndjson(saver, bad)
    with pytest.raises(TransferError, match="cannot open"):
        import_ndjson(saver, tmp_path / "missing.ndjson")
    assert saver.list_threads() == []
