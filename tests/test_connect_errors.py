"""Connection failures: sorted by cause, raised at once when retrying cannot help,
retried with their cause when it can, and never showing a password.

The server is a throwaway cluster (tests/_cluster.py) whose role ``app`` must
log in with a SCRAM password, so wrong passwords are real authentication failures.
"""

from __future__ import annotations

import logging
import os
import socket
import subprocess
import sys
import threading
import traceback
from collections.abc import Iterator
from typing import Any
from urllib.parse import quote

import psycopg
import pytest
from psycopg_pool import ConnectionPool

from _cluster import Cluster, available, free_port
from pgcheckpoint import (
    ConfigurationError,
    ConnectionFailedError,
    PostgresSaver,
    RetryExhaustedError,
    TransientStorageError,
)
from pgcheckpoint._conninfo import connect_failure_kind, describe, mask, secrets_of
from pgcheckpoint.metrics import OperationResult, instrument
from pgcheckpoint.pooling import PoolSettings
from pgcheckpoint.retry import RetryPolicy

needs_cluster = pytest.mark.skipif(not available(), reason="PostgreSQL server tools not installed")

# Every character the issue found leaking: '%', ' ', '[', '@'.
SECRET = "S3cr%t p@ss[w0rd"
WRONG = "Wr0ng%secret [x]@y"


class Recorder:
    """A metrics hook that keeps what it is given."""

    def __init__(self) -> None:
        self.results: list[OperationResult] = []
        self.retries: list[str] = []

    def start(self, operation: str) -> Any:
        return operation

    def retry(self, token: Any, operation: str, error: BaseException) -> None:
        self.retries.append(f"{type(error).__name__}: {error}")

    def finish(self, token: Any, result: OperationResult) -> None:
        self.results.append(result)


def _url(port: int, user: str = "app", password: str = SECRET, db: str = "postgres") -> str:
    return f"postgresql://{user}:{quote(password, safe='')}@127.0.0.1:{port}/{db}"


def _no_secret(text: str, *secrets: str) -> None:
    for secret in secrets:
        for form in (secret, quote(secret, safe="")):
            assert form not in text, f"{form!r} appears in: {text}"
        for part in secret.split():
            if len(part) > 3:
                assert part not in text, f"{part!r} appears in: {text}"


def _everything(exc: BaseException) -> str:
    """The exception as a traceback prints it, its cause chain included, and its repr."""
    return "".join(traceback.format_exception(exc)) + repr(exc)


@pytest.fixture(scope="module")
def cluster() -> Iterator[Cluster]:
    if not available():
        pytest.skip("PostgreSQL server tools not installed")
    c = Cluster.create(password_encryption="'scram-sha-256'")
    hba = c.data / "pg_hba.conf"
    hba.write_text(
        "host all app 127.0.0.1/32 scram-sha-256\n" + hba.read_text()
    )
    c.start()
    with psycopg.connect(c.url(), autocommit=True) as conn:
        conn.execute(
            psycopg.sql.SQL("CREATE ROLE app LOGIN SUPERUSER PASSWORD {}").format(
                psycopg.sql.Literal(SECRET)
            )
        )
    try:
        yield c
    finally:
        c.destroy()


def _fails(url: str, **options: Any) -> tuple[BaseException, Recorder, str]:
    """Run setup() on ``url``; the error, the hook's record and the log text."""
    recorder = Recorder()
    handler_records: list[logging.LogRecord] = []

    class Keep(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            handler_records.append(record)

    keep = Keep(level=logging.DEBUG)
    loggers = [logging.getLogger(n) for n in ("psycopg", "psycopg.pool", "pgcheckpoint")]
    levels = [lg.level for lg in loggers]
    for lg in loggers:
        lg.addHandler(keep)
        lg.setLevel(logging.DEBUG)
    try:
        with (
            pytest.raises(Exception) as info,
            PostgresSaver.from_conn_string(url, **options) as saver,
        ):
            instrument(saver, recorder)
            saver.setup()
    finally:
        for lg, level in zip(loggers, levels, strict=True):
            lg.removeHandler(keep)
            lg.setLevel(level)
    logs = "\n".join(
        keep.format(r)
        + ("\n" + "".join(traceback.format_exception(*r.exc_info)) if r.exc_info else "")
        for r in handler_records
    )
    return info.value, recorder, logs


@needs_cluster
def test_wrong_password_is_raised_at_once_and_masked(cluster: Cluster) -> None:
    exc, recorder, logs = _fails(_url(cluster.port, password=WRONG))
    assert isinstance(exc, ConnectionFailedError)
    assert not isinstance(exc, TransientStorageError)
    assert "password authentication failed" in str(exc)
    assert 'database "postgres" on 127.0.0.1:' in str(exc) and exc.target
    assert [r.attempts for r in recorder.results] == [1] and recorder.retries == []
    _no_secret(_everything(exc) + logs, WRONG)


@needs_cluster
def test_unknown_role_and_missing_database_are_raised_at_once(cluster: Cluster) -> None:
    role, recorder, _ = _fails(_url(cluster.port, user="nobody"))
    assert isinstance(role, ConnectionFailedError) and 'role "nobody"' in str(role)
    assert [r.attempts for r in recorder.results] == [1]
    missing, recorder, logs = _fails(_url(cluster.port, db="nosuchdb"))
    assert isinstance(missing, ConnectionFailedError)
    assert 'database "nosuchdb" does not exist' in str(missing)
    assert [r.attempts for r in recorder.results] == [1]
    _no_secret(_everything(role) + _everything(missing) + logs, SECRET)


@needs_cluster
def test_refused_tls_is_raised_at_once(cluster: Cluster) -> None:
    exc, recorder, _ = _fails(_url(cluster.port) + "?sslmode=require")
    assert isinstance(exc, ConnectionFailedError) and "SSL" in str(exc)
    assert [r.attempts for r in recorder.results] == [1]


def test_closed_port_at_start_is_raised_at_once() -> None:
    exc, recorder, logs = _fails(_url(free_port()))
    assert isinstance(exc, ConnectionFailedError)
    assert "Connection refused" in str(exc) and "wait_for_server" in str(exc)
    assert [r.attempts for r in recorder.results] == [1]
    _no_secret(_everything(exc) + logs, SECRET)


@pytest.mark.parametrize(
    "url",
    [
        "postgresql://app:pa%zzS3cret@127.0.0.1:5432/db",  # bad percent-encoding
        "postgresql://app:S3cr3t Qzx9@127.0.0.1:5432/db",  # a space
        "host=127.0.0.1 user=app password=S3cr3t Qzx9 Wvu8",  # unquoted spaces
        "postgresql://app:S3cr3t@Qzx9@127.0.0.1:5432/db",  # an unencoded '@'
        "postgresql://app:S3cr3tQzx9@[::1/db",  # a broken IPv6 host
    ],
)
def test_unparseable_dsn_is_a_configuration_error_without_the_password(url: str) -> None:
    exc, _, logs = _fails(url)
    assert isinstance(exc, ConfigurationError)
    assert "connection string" in str(exc)
    _no_secret(_everything(exc) + logs, "S3cr3t", "Qzx9", "Wvu8", "pa%zzS3cret")


def test_a_pool_with_an_unparseable_dsn_is_refused_at_construction() -> None:
    pool = ConnectionPool("postgresql://app:pa%zzS3cret@127.0.0.1/db", open=False)
    with pytest.raises(ConfigurationError) as info:
        PostgresSaver(pool)
    _no_secret(_everything(info.value), "pa%zzS3cret")


@needs_cluster
def test_server_that_goes_away_is_retried_and_the_cause_kept(cluster: Cluster) -> None:
    recorder = Recorder()
    url = _url(cluster.port)
    policy = RetryPolicy(deadline=1.5, max_delay=0.2)
    try:
        with PostgresSaver.from_conn_string(url, retry=policy) as saver:
            saver.setup()
            instrument(saver, recorder)
            cluster.stop("immediate")
            with pytest.raises(RetryExhaustedError) as info:
                saver.migration_status()
            # Its own timeout, not the pool's 30 s (a regression shows as a hang).
            report = saver.health_check(timeout=1)
    finally:
        cluster.start()
    text = str(info.value)
    assert "could not connect to" in text and "Connection refused" in text
    assert "couldn't get a connection" not in text
    status = next(r for r in recorder.results if r.operation == "migration status")
    assert status.attempts > 1 and recorder.retries
    assert not report.ok and report.error
    _no_secret(_everything(info.value) + "\n".join(recorder.retries) + repr(report), SECRET)


@needs_cluster
def test_wait_for_server_waits_for_one_that_is_starting(cluster: Cluster) -> None:
    other = Cluster.create()
    starter = threading.Timer(0.5, other.start)
    try:
        starter.start()
        policy = RetryPolicy(wait_for_server=60, deadline=60)
        with PostgresSaver.from_conn_string(other.url(), retry=policy) as saver:
            assert saver.migration_status() == {}
    finally:
        starter.join()
        other.destroy()


@needs_cluster
def test_health_check_is_masked_and_logs_once_per_change(
    cluster: Cluster, caplog: pytest.LogCaptureFixture
) -> None:
    url = _url(cluster.port, password=WRONG)
    with (
        caplog.at_level(logging.DEBUG),
        PostgresSaver.from_conn_string(url, pool=PoolSettings(min_size=0)) as saver,
    ):
        reports = [saver.health_check(timeout=2) for _ in range(3)]
    assert all(not r.ok for r in reports)
    assert "password authentication failed" in (reports[0].error or "")
    unreachable = [r for r in caplog.records if "database unreachable" in r.getMessage()]
    assert len(unreachable) == 1
    _no_secret(repr(reports) + caplog.text, WRONG)


# --- the pure parts ------------------------------------------------------------


@pytest.mark.parametrize(
    ("conninfo", "secret"),
    [
        ("postgresql://u:pa%25ss@h/db", "pa%ss"),
        ("postgresql://u:p@ss@h/db", "p@ss"),
        ("postgresql://u@h/db?password=x%20y&sslmode=disable", "x y"),
        ("host=h password='a b\\'c' user=u", "a b'c"),
        ("host=h password=a b c", "a b c"),
    ],
)
def test_secrets_of(conninfo: str, secret: str) -> None:
    assert secret in secrets_of(conninfo)
    assert secret not in mask(f"text {secret} text", secrets_of(conninfo))


def test_mask_hides_quoted_fragments_of_a_secret() -> None:
    secrets = secrets_of("host=h password=a bcd e")
    assert mask('missing "=" after "bcd" in string', secrets) == (
        'missing "=" after "***" in string'
    )


def test_describe_names_the_target_without_the_password() -> None:
    text = describe("postgresql://app:hunter2@db1:5433,db2/app?sslmode=require")
    assert text == 'database "app" on db1:5433,db2:5432 as user "app"'
    assert describe("not a dsn=") == "an invalid connection string"
    # A password that equals a name is masked there too.
    assert describe("postgresql://admin:admin@h/db") == 'database "db" on h:5432 as user "***"'


def test_failure_kinds_of_real_errors() -> None:
    def error(url: str) -> psycopg.Error:
        try:
            psycopg.connect(url, connect_timeout=2).close()
        except psycopg.Error as exc:
            return exc
        raise AssertionError("connected")

    assert connect_failure_kind(error(_url(free_port()))) == "unreachable"
    assert connect_failure_kind(error("postgresql://u:pa%zz@h/db")) == "config"


# --- the CLI, run as a user would -------------------------------------------------


def _cli(*args: str, input: str | None = None) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k not in ("PGCHECKPOINT_DSN", "DATABASE_URL")}
    return subprocess.run(
        [sys.executable, "-m", "pgcheckpoint.cli", *args],
        capture_output=True,
        text=True,
        env={**env, "COLUMNS": "200"},
        input=input,
        timeout=120,
    )


@needs_cluster
def test_cli_wrong_password_names_the_database_and_hides_the_password(cluster: Cluster) -> None:
    done = _cli("setup", "--dsn", _url(cluster.port, password=WRONG))
    assert done.returncode == 1
    assert "ConnectionFailedError" in done.stderr
    assert "password authentication failed" in done.stderr
    assert f'database "postgres" on 127.0.0.1:{cluster.port} as user "app"' in done.stderr
    assert "Traceback" not in done.stderr
    _no_secret(done.stdout + done.stderr, WRONG)


@needs_cluster
def test_cli_with_the_right_password_shows_it_nowhere(cluster: Cluster) -> None:
    url = _url(cluster.port)
    for args in (("setup",), ("threads", "list"), ("migrate", "status"), ("size",)):
        done = _cli(*args, "--dsn", url)
        assert done.returncode == 0, done.stderr
        assert f'on 127.0.0.1:{cluster.port} as user "app", schema "public"' in done.stderr
        _no_secret(done.stdout + done.stderr, SECRET)


@pytest.mark.parametrize(
    "url",
    [
        "postgresql://app:pa%zzS3cret@127.0.0.1:5432/db",
        "host=127.0.0.1 user=app password=S3cr3t Qzx9 Wvu8",
        f"postgresql://app:S3cr3t%25Qzx9@127.0.0.1:{free_port()}/db",
    ],
)
def test_cli_connection_errors_are_one_line_without_the_password(url: str) -> None:
    done = _cli("threads", "list", "--dsn", url, "--connect-timeout", "2")
    assert done.returncode == 1
    errors = [line for line in done.stderr.splitlines() if line.startswith("Error: ")]
    assert len(errors) == 1 and "Traceback" not in done.stderr
    assert "error connecting in" not in done.stderr  # psycopg_pool's per-attempt noise
    _no_secret(done.stdout + done.stderr, "S3cr3t", "Qzx9", "Wvu8", "pa%zzS3cret")


def test_cli_connect_timeout_bounds_a_server_that_never_answers() -> None:
    with socket.socket() as silent:  # accepts TCP connections, never speaks
        silent.bind(("127.0.0.1", 0))
        silent.listen(8)
        port = silent.getsockname()[1]
        done = _cli(
            "migrate", "status", "--dsn", f"postgresql://app@127.0.0.1:{port}/db",
            "--connect-timeout", "1",
        )
    assert done.returncode == 1
    assert "ConnectionFailedError" in done.stderr and "timeout" in done.stderr
    assert _cli("migrate", "status", "--connect-timeout", "0").returncode == 2


async def test_async_saver_sorts_connection_failures_too() -> None:
    from pgcheckpoint import AsyncPostgresSaver

    recorder = Recorder()
    with pytest.raises(ConnectionFailedError) as info:
        async with AsyncPostgresSaver.from_conn_string(_url(free_port())) as saver:
            instrument(saver, recorder)
            await saver.setup()
    assert "Connection refused" in str(info.value)
    assert [r.attempts for r in recorder.results] == [1]
    _no_secret(_everything(info.value), SECRET)
    bad_url = "postgresql://a:pa%zz" + "S3cret@h/db"  # (the traceback shows this line)
    with pytest.raises(ConfigurationError) as bad:
        async with AsyncPostgresSaver.from_conn_string(bad_url):
            pass
    _no_secret(_everything(bad.value), "pa%zzS3cret")


@needs_cluster
async def test_async_saver_wrong_password(cluster: Cluster) -> None:
    from pgcheckpoint import AsyncPostgresSaver

    with pytest.raises(ConnectionFailedError) as info:
        async with AsyncPostgresSaver.from_conn_string(_url(cluster.port, password=WRONG)) as s:
            await s.setup()
    assert "password authentication failed" in str(info.value)
    _no_secret(_everything(info.value), WRONG)
    async with AsyncPostgresSaver.from_conn_string(_url(cluster.port)) as saver:
        report = await saver.ahealth_check(timeout=2)
    assert report.error is None and report.latency_seconds > 0


@pytest.mark.parametrize(
    ("message", "kind"),
    [
        ('failed: FATAL:  the database system is starting up', "busy"),
        ('failed: FATAL:  the database system is shutting down', "busy"),
        ('failed: FATAL:  sorry, too many clients already', "busy"),
        ('failed: FATAL:  password authentication failed for user "app"', "config"),
        ('failed: FATAL:  no pg_hba.conf entry for host "10.0.0.1", user "app"', "config"),
        ('failed: FATAL:  permission denied for database "app"', "config"),
        ("failed: server certificate for \"db\" does not match host name \"x\"", "config"),
        ("failed: timeout expired", "unreachable"),
        ("failed: No route to host", "unreachable"),
    ],
)
def test_failure_kinds_by_message(message: str, kind: str) -> None:
    # The texts libpq and PostgreSQL 15 produce; libpq gives them no SQLSTATE.
    assert connect_failure_kind(psycopg.OperationalError(f"connection {message}")) == kind
