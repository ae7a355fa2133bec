"""Throwaway PostgreSQL clusters for fault-injection tests.

Each :class:`Cluster` lives in its own temporary directory, listens on a free
port on 127.0.0.1 only, and is stopped (by its own ``pg_ctl``/PID) and deleted
by the test that made it; nothing else on the machine is touched. initdb
refuses to run as root, so when the tests run as root every command runs as
the ``postgres`` user through ``runuser``. ``initdb`` runs once per session:
later clusters are copies of that first one (a copy takes milliseconds).
"""

from __future__ import annotations

import atexit
import contextlib
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import psycopg

BIN = Path(os.environ.get("PGCHECKPOINT_PG_BIN", "/usr/lib/postgresql/15/bin"))
_TEMPLATE: Path | None = None


def available() -> bool:
    """Whether the PostgreSQL server tools are installed here."""
    return (BIN / "initdb").exists() and (BIN / "pg_ctl").exists()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def _as_owner() -> list[str]:
    return ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []


def _run(*args: str, check: bool = True, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*_as_owner(), *args], check=check, capture_output=True, text=True, timeout=timeout
    )


def _own(path: Path) -> None:
    if os.geteuid() == 0:
        shutil.chown(path, "postgres", "postgres")


def _template() -> Path:
    global _TEMPLATE
    if _TEMPLATE is None:
        root = Path(tempfile.mkdtemp(prefix="pgc-tpl-"))
        _own(root)
        atexit.register(shutil.rmtree, root, ignore_errors=True)
        data = root / "data"
        _run(str(BIN / "initdb"), "-D", str(data), "-U", "postgres", "-A", "trust", "--no-sync")
        _TEMPLATE = data
    return _TEMPLATE


class Cluster:
    """One PostgreSQL server in a temporary directory on ``127.0.0.1:port``."""

    def __init__(self, root: Path, port: int) -> None:
        self.root = root
        self.data = root / "data"
        self.port = port
        self.log = root / "server.log"

    @classmethod
    def create(cls, **settings: str) -> Cluster:
        """A new, stopped cluster: a copy of the session's initdb, with ``settings``."""
        root = Path(tempfile.mkdtemp(prefix="pgc-fault-"))
        _own(root)
        cluster = cls(root, free_port())
        _run("cp", "-a", str(_template()), str(cluster.data))
        conf = {
            "listen_addresses": "'127.0.0.1'",
            "port": str(cluster.port),
            "unix_socket_directories": f"'{root}'",
            "wal_level": "replica",
            "max_wal_senders": "5",
            "hot_standby": "on",
            "fsync": "on",
            "synchronous_commit": "on",
            "max_connections": "60",
            "shared_buffers": "32MB",
            **{k: v for k, v in settings.items()},
        }
        cluster.configure(conf)
        with open(cluster.data / "pg_hba.conf", "a") as hba:
            hba.write("host replication all 127.0.0.1/32 trust\n")
        return cluster

    def configure(self, settings: dict[str, str]) -> None:
        lines = "".join(f"{k} = {v}\n" for k, v in settings.items())
        _run("sh", "-c", f"cat >> {self.data}/postgresql.auto.conf <<'EOF'\n{lines}EOF")

    def url(self, dbname: str = "postgres") -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/{dbname}"

    def start(self, wait: bool = True) -> None:
        args = ["-w"] if wait else ["-W"]
        _run(str(BIN / "pg_ctl"), "-D", str(self.data), "-l", str(self.log), *args, "start")

    def stop(self, mode: str = "fast") -> None:
        """``fast`` or ``immediate`` (a crash: no shutdown checkpoint)."""
        _run(str(BIN / "pg_ctl"), "-D", str(self.data), "-m", mode, "-w", "stop", check=False)

    def kill9(self) -> None:
        """SIGKILL the postmaster (its children exit when they notice)."""
        pid = self.pid()
        if pid:
            os.kill(pid, signal.SIGKILL)

    def pid(self) -> int | None:
        try:
            return int((self.data / "postmaster.pid").read_text().split()[0])
        except (OSError, ValueError, IndexError):
            return None

    def running(self) -> bool:
        return (
            _run(str(BIN / "pg_ctl"), "-D", str(self.data), "status", check=False).returncode == 0
        )

    def promote(self) -> None:
        _run(str(BIN / "pg_ctl"), "-D", str(self.data), "-w", "promote")

    def standby(self, *, synchronous: bool = True) -> Cluster:
        """A streaming standby of this (running) cluster, made with pg_basebackup."""
        root = Path(tempfile.mkdtemp(prefix="pgc-standby-"))
        _own(root)
        standby = Cluster(root, free_port())
        _run(
            str(BIN / "pg_basebackup"),
            "-h",
            "127.0.0.1",
            "-p",
            str(self.port),
            "-U",
            "postgres",
            "-D",
            str(standby.data),
            "-X",
            "stream",
            "-R",
            "-c",
            "fast",
            timeout=120,
        )
        standby.configure(
            {
                "port": str(standby.port),
                "unix_socket_directories": f"'{root}'",
                "primary_conninfo": (
                    f"'host=127.0.0.1 port={self.port} user=postgres application_name=standby1'"
                ),
            }
        )
        standby.start()
        if synchronous:
            self.configure({"synchronous_standby_names": "'standby1'"})
            _run(str(BIN / "pg_ctl"), "-D", str(self.data), "reload")
            self.wait_sync()
        return standby

    def wait_sync(self, timeout: float = 30) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with psycopg.connect(self.url(), autocommit=True) as conn:
                row = conn.execute(
                    "SELECT count(*) FROM pg_stat_replication WHERE sync_state = 'sync'"
                ).fetchone()
                if row and row[0]:
                    return
            time.sleep(0.1)
        raise TimeoutError("the standby never became synchronous")

    def destroy(self) -> None:
        self.stop("immediate")
        shutil.rmtree(self.root, ignore_errors=True)


PGBOUNCER = Path(os.environ.get("PGCHECKPOINT_PGBOUNCER", "/usr/sbin/pgbouncer"))


class PgBouncer:
    """A PgBouncer in transaction mode in front of a cluster, on its own free port."""

    def __init__(self, cluster: Cluster, pool_size: int = 2) -> None:
        self.root = Path(tempfile.mkdtemp(prefix="pgc-bouncer-"))
        _own(self.root)
        self.port = free_port()
        self.pidfile = self.root / "pgbouncer.pid"
        ini = self.root / "pgbouncer.ini"
        users = self.root / "users.txt"
        users.write_text('"postgres" ""\n')
        ini.write_text(
            "[databases]\n"
            f"* = host=127.0.0.1 port={cluster.port}\n"
            "[pgbouncer]\n"
            f"listen_addr = 127.0.0.1\nlisten_port = {self.port}\n"
            f"unix_socket_dir = {self.root}\n"
            "auth_type = trust\n"
            f"auth_file = {users}\n"
            "pool_mode = transaction\n"
            f"default_pool_size = {pool_size}\n"
            "ignore_startup_parameters = extra_float_digits,options\n"
            f"logfile = {self.root}/pgbouncer.log\n"
            f"pidfile = {self.pidfile}\n"
        )
        for f in (ini, users):
            _own(f)
        _run(str(PGBOUNCER), "-d", str(ini))
        deadline = time.monotonic() + 10
        while True:
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=1):
                    break
            except OSError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.05)

    def url(self, dbname: str = "postgres") -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/{dbname}"

    def stop(self) -> None:
        try:
            pid = int(self.pidfile.read_text().strip())
        except (OSError, ValueError):
            pid = 0
        if pid:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGTERM)
        shutil.rmtree(self.root, ignore_errors=True)


@contextlib.contextmanager
def migrated_cluster() -> Iterator[Cluster]:
    """A started throwaway cluster with pgcheckpoint's schema set up; destroyed on exit."""
    from pgcheckpoint import PostgresSaver

    cluster = Cluster.create()
    cluster.start()
    try:
        with PostgresSaver.from_conn_string(cluster.url()) as saver:
            saver.setup()
        yield cluster
    finally:
        cluster.destroy()
