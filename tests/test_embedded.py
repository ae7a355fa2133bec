"""Tests of pgcheckpoint.embedded against real embedded PostgreSQL servers.

Each test that starts a server uses its own data directory, so these tests are
independent of the session server in conftest.py.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from pgcheckpoint import embedded
from pgcheckpoint.embedded import EmbeddedPostgres, resolve_dsn, start_embedded
from pgcheckpoint.errors import ConfigurationError, StorageError

# A process that starts (or joins) the server in argv[1], prints its PID and
# holds it until stdin closes.
HOLDER = """
import sys
from pgcheckpoint.embedded import start_embedded
server = start_embedded(sys.argv[1])
print(server.pid, flush=True)
sys.stdin.read()
"""


@pytest.fixture
def data_dir() -> Iterator[Path]:
    """A short, fresh path for a data directory (unix socket paths are length-limited)."""
    root = Path(tempfile.mkdtemp(prefix="pgc-emb-"))
    try:
        yield root / "pgdata"
    finally:
        shutil.rmtree(root, ignore_errors=True)


def select_one(url: str) -> int:
    with psycopg.connect(url) as conn:
        row = conn.execute("SELECT 1").fetchone()
    assert row is not None
    return int(row[0])


def env_without_dsn() -> dict[str, str]:
    return {
        k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "PGCHECKPOINT_TEST_DSN")
    }


def start_holder(path: Path) -> tuple[subprocess.Popen[str], int]:
    proc = subprocess.Popen(
        [sys.executable, "-c", HOLDER, str(path)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        env=env_without_dsn(),
    )
    assert proc.stdout is not None
    line = proc.stdout.readline()
    assert line.strip().isdigit(), f"holder process failed to start a server: {line!r}"
    return proc, int(line)


def test_start_connect_and_stop(data_dir: Path) -> None:
    server = start_embedded(data_dir)
    try:
        assert server.running
        assert server.data_dir == data_dir.resolve()
        assert server.url.startswith("postgresql://postgres@")
        assert select_one(server.url) == 1
        assert select_one(server.url_for("template1")) == 1
    finally:
        server.stop()
    assert not server.running
    with pytest.raises(psycopg.OperationalError):
        select_one(server.url)
    server.stop()  # a second stop is a no-op


def test_context_manager_and_restart(data_dir: Path) -> None:
    with start_embedded(str(data_dir)) as server:
        assert isinstance(server, EmbeddedPostgres)
        with psycopg.connect(server.url, autocommit=True) as conn:
            conn.execute("CREATE TABLE kept (x int)")
            conn.execute("INSERT INTO kept VALUES (42)")
    assert not server.running
    # The data directory survives a stop; starting again serves the same data.
    with start_embedded(data_dir) as again, psycopg.connect(again.url) as conn:
        assert conn.execute("SELECT x FROM kept").fetchone() == (42,)


def test_reuse_in_one_process(data_dir: Path) -> None:
    first = start_embedded(data_dir)
    second = start_embedded(data_dir)
    try:
        assert second.pid == first.pid
        assert second.url == first.url
        first.stop()
        assert second.running, "stopping one handle must not stop a server another uses"
        assert select_one(second.url) == 1
    finally:
        first.stop()
        second.stop()
    assert not second.running


def test_reuse_a_server_started_by_another_process(data_dir: Path) -> None:
    holder, holder_pid = start_holder(data_dir)
    try:
        server = start_embedded(data_dir)
        assert server.pid == holder_pid
        assert select_one(server.url) == 1
    finally:
        holder.communicate("", timeout=30)
    # The other process exited, but this one still holds the server.
    assert server.running
    assert select_one(server.url) == 1
    server.stop()
    assert not server.running


def test_killed_process_does_not_keep_the_server_alive(data_dir: Path) -> None:
    holder, holder_pid = start_holder(data_dir)
    os.kill(holder.pid, signal.SIGKILL)
    holder.wait(timeout=30)
    assert holder.stdin is not None and holder.stdout is not None
    holder.stdin.close()
    holder.stdout.close()

    server = start_embedded(data_dir)
    assert server.pid == holder_pid, "the killed process's server should be reused"
    server.stop()
    assert not server.running


def test_start_again_after_the_server_died(data_dir: Path) -> None:
    first = start_embedded(data_dir)
    os.kill(first.pid, signal.SIGQUIT)  # PostgreSQL's "immediate shutdown", like a crash
    deadline = time.monotonic() + 30
    while first.running and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not first.running
    second = start_embedded(data_dir)
    try:
        assert second.pid != first.pid
        assert select_one(second.url) == 1
    finally:
        first.stop()
        second.stop()
    assert not second.running


def test_resolve_dsn_precedence(monkeypatch: pytest.MonkeyPatch, data_dir: Path) -> None:
    monkeypatch.setenv("DATABASE_URL", "postgresql://from-env/db")
    assert resolve_dsn("postgresql://explicit/db") == "postgresql://explicit/db"
    assert resolve_dsn(embedded_path=data_dir) == "postgresql://from-env/db"
    assert not data_dir.exists(), "no embedded server may start when DATABASE_URL is set"

    monkeypatch.setenv("DATABASE_URL", "")
    assert resolve_dsn("postgresql://explicit/db") == "postgresql://explicit/db"


def test_resolve_dsn_falls_back_to_embedded(data_dir: Path) -> None:
    # In a child process, because the server resolve_dsn starts lives until exit.
    script = (
        "import sys, psycopg\n"
        "from pgcheckpoint.embedded import resolve_dsn\n"
        "url = resolve_dsn(embedded_path=sys.argv[1])\n"
        "print(psycopg.connect(url).execute('SELECT 1').fetchone()[0], url)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script, str(data_dir)],
        capture_output=True,
        text=True,
        env=env_without_dsn(),
        timeout=120,
        check=True,
    )
    one, url = done.stdout.split()
    # Never silently: the fallback says so.
    assert f"using the embedded PostgreSQL in {data_dir}" in done.stderr
    assert one == "1"
    assert str(data_dir.resolve()) in url
    assert (data_dir / "PG_VERSION").exists()
    assert not (data_dir / "postmaster.pid").exists(), "the server should stop at exit"


def test_missing_pgserver_is_a_clear_configuration_error(
    monkeypatch: pytest.MonkeyPatch, data_dir: Path
) -> None:
    monkeypatch.setitem(sys.modules, "pgserver", None)  # makes `import pgserver` fail
    monkeypatch.delenv("DATABASE_URL", raising=False)
    with pytest.raises(ConfigurationError, match=r"pip install 'pgcheckpoint\[embedded\]'"):
        start_embedded(data_dir)
    with pytest.raises(ConfigurationError, match="pgserver"):
        resolve_dsn(embedded_path=data_dir)
    # An explicit DSN or DATABASE_URL needs no embedded extra.
    assert resolve_dsn("postgresql://explicit/db") == "postgresql://explicit/db"
    monkeypatch.setenv("DATABASE_URL", "postgresql://from-env/db")
    assert resolve_dsn() == "postgresql://from-env/db"


def test_missing_platformdirs_is_a_clear_configuration_error(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setitem(sys.modules, "platformdirs", None)
    monkeypatch.setattr(os, "geteuid", lambda: 1000)
    with pytest.raises(ConfigurationError, match=r"pip install 'pgcheckpoint\[embedded\]'"):
        embedded.default_data_dir()


def test_default_data_dir(monkeypatch: pytest.MonkeyPatch) -> None:
    # One per user and project (tests/cli/test_target.py checks the project part).
    monkeypatch.setattr(os, "geteuid", lambda: 0)
    path = embedded.default_data_dir()
    assert path.parent.parent == Path("/var/lib/pgcheckpoint/projects")
    monkeypatch.setattr(os, "geteuid", lambda: 1000)
    path = embedded.default_data_dir()
    assert path.name == "pgdata"
    assert path.parent.parent.name == "projects"
    assert path.parent.parent.parent.name == "pgcheckpoint"


def test_unusable_path_is_a_storage_error(data_dir: Path) -> None:
    data_dir.parent.mkdir(parents=True, exist_ok=True)
    data_dir.write_text("not a directory")
    with pytest.raises(StorageError, match="could not start the embedded PostgreSQL"):
        start_embedded(data_dir)
