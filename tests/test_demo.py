"""The demo (examples/demo.py) runs end to end against the test database."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

DEMO = Path(__file__).resolve().parent.parent / "examples" / "demo.py"


def test_demo_crashes_resumes_and_forks(db_url: str) -> None:
    env = {k: v for k, v in os.environ.items() if k != "PGCHECKPOINT_TEST_DSN"}
    env["DATABASE_URL"] = db_url
    result = subprocess.run(
        [sys.executable, str(DEMO), "--steps", "6", "--kill-after", "2", "--step-seconds", "0.2"],
        capture_output=True,
        text=True,
        env=env,
        timeout=180,
    )
    out = result.stdout
    assert result.returncode == 0, f"demo failed:\n{out}\n{result.stderr}"
    assert "Using DATABASE_URL" in out
    assert "Killed the agent process" in out and "with SIGKILL" in out
    assert "exit status -9" in out
    assert "The agent resumed and finished: 6/6 steps" in out
    assert "The forked run finished with 4/4 steps" in out
    assert "Change of plan: stop after 4 steps." in out
    assert "Both branches are kept" in out
    # the demo ends by running the real CLI on the thread it made
    assert "$ pgcheckpoint history demo-" in out and "$ pgcheckpoint show demo-" in out
    assert "created (UTC)" in out and "next" in out and "HumanMessage" in out
