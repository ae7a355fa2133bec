"""`pgcheckpoint export` / `import ndjson` run as the real command: backups that prove
themselves, failures that leave nothing behind, honest skipped counts."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

from _cli_run import Run, as_json
from graph_fixtures import TICKET_ALLOW, populate, populate_tickets
from pgcheckpoint import PostgresSaver


def _populated(db_url: str) -> int:
    with PostgresSaver.from_conn_string(db_url) as saver:
        saver.setup()
        populate(saver, 3)
        populate_tickets(saver.with_allowlist(TICKET_ALLOW), "tickets")
        reader = saver.with_allowlist(TICKET_ALLOW)
        return sum(1 for _ in reader.list(None))


def _threads(run_cli: Run, dsn: str) -> list[str]:
    return sorted(
        t["thread_id"] for t in as_json(run_cli("threads", "list", "--json", "--dsn", dsn))
    )


def test_export_of_an_unknown_thread_fails_and_leaves_no_file(
    run_cli: Run, db_url: str, tmp_path: Path
) -> None:
    _populated(db_url)
    out = tmp_path / "backup.ndjson"
    done = run_cli("export", "--thread", "does-not-exist", "-o", str(out), check=False)
    assert done.returncode != 0 and "does-not-exist" in done.stderr
    assert list(tmp_path.iterdir()) == []
    to_stdout = run_cli("export", "--thread", "does-not-exist", check=False)
    assert to_stdout.returncode != 0 and to_stdout.stdout == ""


def test_cut_backups_are_refused_unless_partial_and_reruns_report_skipped(
    run_cli: Run, db_url: str, make_db_url: Any, tmp_path: Path
) -> None:
    total = _populated(db_url)
    out = tmp_path / "backup.ndjson"
    exported = as_json(run_cli("export", "-o", str(out), "--json"))
    assert exported["threads"] == 4 and exported["checkpoints"] == total
    lines = out.read_text().splitlines()
    assert json.loads(lines[-1])["sha256"] == exported["sha256"]

    cut = tmp_path / "cut.ndjson"
    keep = len(lines) // 2
    with cut.open("w") as f:
        subprocess.run(["head", "-n", str(keep), str(out)], stdout=f, check=True)
    header_only = tmp_path / "header.ndjson"
    header_only.write_text(lines[0] + "\n")
    target = make_db_url(True)
    for bad in (cut, header_only):
        refused = run_cli("import", "ndjson", str(bad), "--dsn", target, check=False)
        assert refused.returncode != 0 and "no trailer" in refused.stderr
        assert _threads(run_cli, target) == []

    partial = as_json(run_cli("import", "ndjson", str(cut), "--partial", "--json", "--dsn", target))
    whole = [json.loads(x)["thread_id"] for x in lines[1:keep] if '"thread_end"' in x]
    assert partial["threads"] == len(whole) > 0 and _threads(run_cli, target) == sorted(whole)
    assert partial["left_out"] and all(
        "ignored" in x or "incomplete" in x for x in partial["left_out"]
    )

    first = as_json(run_cli("import", "ndjson", str(out), "--json", "--dsn", target))
    assert first["checkpoints"] + first["skipped_checkpoints"] == total
    again = as_json(run_cli("import", "ndjson", str(out), "--json", "--dsn", target))
    assert (again["checkpoints"], again["writes"], again["skipped"]) == (0, 0, 4)
    assert again["skipped_checkpoints"] == total
    text = run_cli("import", "ndjson", str(out), "--dsn", target).stdout
    assert "skipped_checkpoints" in text
