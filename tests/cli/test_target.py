"""Every command says which database it works on; the embedded one only after saying so."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from _cli_run import Run
from pgcheckpoint import embedded


def test_commands_name_the_database_and_schema(run_cli: Run, db_url: str) -> None:
    db = urlsplit(db_url).path.lstrip("/")
    for args in (("threads", "list"), ("migrate", "status"), ("cleanup", "--dry-run")):
        done = run_cli(*args, "--json")
        assert f'pgcheckpoint: database "{db}" on ' in done.stderr
        assert 'schema "public"' in done.stderr


def test_delete_confirmation_names_the_database(run_cli: Run, db_url: str) -> None:
    db = urlsplit(db_url).path.lstrip("/")
    done = run_cli("delete", "some-thread", check=False, input="n\n")
    assert done.returncode == 1  # declined
    assert f'Delete thread \'some-thread\' from database "{db}" on ' in done.stdout
    assert 'schema "public"?' in done.stdout


def test_data_dir_is_per_project_and_per_user(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    one, two = tmp_path / "one", tmp_path / "two"
    for project in (one, two):
        (project / "src" / "pkg").mkdir(parents=True)
        (project / "pyproject.toml").write_text("[project]\nname='x'\n")
    assert embedded.project_root(one / "src" / "pkg") == one.resolve()
    assert embedded.default_data_dir(one / "src") == embedded.default_data_dir(one)
    assert embedded.default_data_dir(one) != embedded.default_data_dir(two)
    monkeypatch.setattr(os, "geteuid", lambda: 0)
    root_dir = embedded.default_data_dir(one)
    assert root_dir.parent.parent == Path("/var/lib/pgcheckpoint/projects")
    assert root_dir.parent.name.startswith("one-") and root_dir.name == "pgdata"
    monkeypatch.setattr(os, "geteuid", lambda: 1000)
    user_dir = embedded.default_data_dir(one)
    assert user_dir.parent.parent.name == "projects" and user_dir.parent.name.startswith("one-")
    assert "/var/lib" not in str(user_dir)


def test_embedded_server_is_announced(tmp_path: Path) -> None:
    project = tmp_path / "proj"
    project.mkdir()
    (project / "pyproject.toml").write_text("[project]\nname='proj'\n")
    env = {k: v for k, v in os.environ.items() if k not in ("PGCHECKPOINT_DSN", "DATABASE_URL")}
    data_dir = embedded.default_data_dir(project)
    try:
        done = subprocess.run(
            [sys.executable, "-m", "pgcheckpoint.cli", "migrate", "status", "--json"],
            capture_output=True,
            text=True,
            cwd=project,
            env=env,
            timeout=300,
        )
        assert done.returncode == 0, done.stderr
        assert "using the embedded PostgreSQL of project" in done.stderr
        assert str(project.resolve()) in done.stderr and str(data_dir) in done.stderr
        assert (data_dir / "PG_VERSION").exists()
    finally:
        shutil.rmtree(data_dir.parent, ignore_errors=True)
