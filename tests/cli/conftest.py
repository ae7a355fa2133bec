"""Helpers to run the pgcheckpoint CLI as a user would: a subprocess with its own environment."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from _cli_run import Run


@pytest.fixture
def run_cli(db_url: str) -> Run:
    """``run_cli("threads", "list", ...)``: ``python -m pgcheckpoint.cli`` on this test's
    database (through DATABASE_URL, as users configure it); ``check`` defaults to True."""

    def run(
        *args: str, check: bool = True, env: dict[str, str] | None = None, input: str | None = None
    ) -> subprocess.CompletedProcess[str]:
        full_env = {**os.environ, "DATABASE_URL": db_url, "COLUMNS": "200"}
        full_env.pop("PGCHECKPOINT_DSN", None)
        full_env.update(env or {})
        done = subprocess.run(
            [sys.executable, "-m", "pgcheckpoint.cli", *args],
            capture_output=True,
            text=True,
            env=full_env,
            input=input,
            timeout=120,
        )
        if check and done.returncode != 0:
            raise AssertionError(
                f"pgcheckpoint {' '.join(args)} exited {done.returncode}:\n"
                f"{done.stdout}\n{done.stderr}"
            )
        return done

    return run
