"""health_check(), pool_stats(), pool settings, and running behind PgBouncer."""

from __future__ import annotations

import logging
import uuid
from collections.abc import Iterator
from dataclasses import replace

import psycopg
import pytest

from _cluster import PGBOUNCER, Cluster, PgBouncer, available, free_port, migrated_cluster
from _faultgraph import batch_item, check_history, config, counter_graph, start_input
from _proxy import Proxy
from pgcheckpoint import (
    AsyncPostgresSaver,
    ConfigurationError,
    PoolSettings,
    PostgresSaver,
)
from pgcheckpoint.migrations import latest_version

needs_cluster = pytest.mark.skipif(not available(), reason="PostgreSQL server tools not installed")


def test_health_check_ok(saver: PostgresSaver) -> None:
    report = saver.health_check()
    assert report.ok and report.error is None
    assert report.server_version_num is not None and report.server_version_num >= 120000
    assert report.schema_version == report.latest_schema_version == latest_version()
    assert report.schema_current and report.in_recovery is False
    assert 0 < report.latency_seconds < 5


async def test_async_health_check(asaver: AsyncPostgresSaver) -> None:
    report = await asaver.ahealth_check()
    assert report.ok and report.schema_current
    stats = asaver.pool_stats()
    assert stats["kind"] == "pool" and stats["pool_max"] >= 1


def test_schema_not_set_up(empty_db_url: str) -> None:
    with PostgresSaver.from_conn_string(empty_db_url) as saver:
        report = saver.health_check()
    assert not report.ok and report.schema_version is None
    assert any("setup()" in w for w in report.warnings)


def test_unreachable_database_reports_instead_of_raising() -> None:
    url = f"postgresql://postgres@127.0.0.1:{free_port()}/postgres"
    settings = PoolSettings(min_size=0, timeout=1, connect_timeout=1)
    with PostgresSaver.from_conn_string(url, pool=settings) as saver:
        report = saver.health_check()
    assert not report.ok and report.error and report.latency_seconds < 5


def test_durability_warning(db_url: str, caplog: pytest.LogCaptureFixture) -> None:
    with psycopg.connect(db_url, autocommit=True, options="-c synchronous_commit=off") as conn:
        saver = PostgresSaver(conn)
        with caplog.at_level(logging.WARNING, logger="pgcheckpoint"):
            report = saver.health_check()
        stats = saver.pool_stats()
    assert report.ok and report.durable is False and report.synchronous_commit == "off"
    assert any("synchronous_commit=off" in w for w in report.warnings)
    assert "synchronous_commit=off" in caplog.text
    assert stats["kind"] == "connection" and stats["status"] == "OK"


@needs_cluster
def test_fsync_off_is_reported(caplog: pytest.LogCaptureFixture) -> None:
    cluster = Cluster.create(fsync="off")
    cluster.start()
    try:
        with PostgresSaver.from_conn_string(cluster.url()) as saver:
            saver.setup()
            with caplog.at_level(logging.WARNING, logger="pgcheckpoint"):
                report = saver.health_check()
    finally:
        cluster.destroy()
    assert report.fsync is False and report.durable is False
    assert "fsync=off" in caplog.text


def test_proxy_is_detected(db_url: str, pg_server_url: str) -> None:
    server = psycopg.conninfo.conninfo_to_dict(pg_server_url)
    if str(server.get("host") or "").startswith("/"):
        # The embedded server listens on a unix socket; the proxy forwards TCP.
        pytest.skip("the TCP proxy needs a server reached over TCP (runs in the 5432 pass)")
    port = server.get("port") or "5432"
    proxy = Proxy(int(port))
    try:
        dbname = psycopg.conninfo.conninfo_to_dict(db_url)["dbname"]
        with PostgresSaver.from_conn_string(proxy.url(str(dbname))) as saver:
            assert saver.health_check().behind_proxy is True
        with PostgresSaver.from_conn_string(db_url) as saver:
            assert saver.health_check().behind_proxy is False
    finally:
        proxy.close()


def test_pool_settings_from_env_names_and_env() -> None:
    seed = PoolSettings.from_env_names(
        max_connections=7, min_connections=2, max_lifetime_secs=60, idle_timeout_secs=30
    )
    assert (seed.max_size, seed.min_size, seed.max_lifetime, seed.max_idle) == (7, 2, 60, 30)
    with pytest.warns(DeprecationWarning, match="from_env_names"):
        assert PoolSettings.from_seed(max_connections=7, min_connections=2) == replace(
            seed, max_lifetime=3600.0, max_idle=600.0
        )
    env = {
        "CHECKPOINT_MAX_CONNECTIONS": "12",
        "CHECKPOINT_MIN_CONNECTIONS": "3",
        "CHECKPOINT_IDLE_TIMEOUT_SECS": "15.5",
        "CHECKPOINT_PREPARED_STATEMENTS": "false",
        "CHECKPOINT_STATEMENT_TIMEOUT_MS": "5000",
    }
    got = PoolSettings.from_env(env, base=seed)
    assert (got.max_size, got.min_size, got.max_idle) == (12, 3, 15.5)
    assert got.prepared_statements is False and got.max_lifetime == 60
    assert got.connection_kwargs()["options"] == "-c statement_timeout=5000"
    assert got.connection_kwargs()["prepare_threshold"] is None
    with pytest.raises(ConfigurationError, match="CHECKPOINT_MAX_CONNECTIONS"):
        PoolSettings.from_env({"CHECKPOINT_MAX_CONNECTIONS": "many"})
    with pytest.raises(ConfigurationError):
        PoolSettings.from_env({"CHECKPOINT_MAX_CONNECTIONS": "0"})


def test_statement_timeout_applies(db_url: str) -> None:
    settings = PoolSettings(statement_timeout=200)
    with (
        PostgresSaver.from_conn_string(db_url, pool=settings) as s,
        s.runner.connection() as conn,
    ):
        row = conn.execute("SHOW statement_timeout").fetchone()
    assert row is not None and row[0] == "200ms"


def test_check_on_checkout(db_url: str) -> None:
    settings = PoolSettings(check_on_checkout=True, min_size=1, max_size=1)
    with PostgresSaver.from_conn_string(db_url, pool=settings) as saver:
        counter_graph(saver, delay=0).invoke(start_input(2), config("checked"))
        assert saver.pool_stats()["pool_max"] == 1


# --- PgBouncer -----------------------------------------------------------------
@pytest.fixture(scope="module")
def bouncer() -> Iterator[tuple[Cluster, PgBouncer]]:
    if not available() or not PGBOUNCER.exists():
        pytest.skip("PostgreSQL server tools or pgbouncer not installed")
    with migrated_cluster() as cluster:
        bouncer = PgBouncer(cluster)
        try:
            yield cluster, bouncer
        finally:
            bouncer.stop()


@pytest.mark.parametrize("prepared", [False, True])
def test_pgbouncer_transaction_mode(
    bouncer: tuple[Cluster, PgBouncer], prepared: bool, caplog: pytest.LogCaptureFixture
) -> None:
    """With prepared_statements=False it just works; left on, the runner notices
    the lost prepared statements, switches them off with a warning, and goes on."""
    _, pgb = bouncer
    thread_id = f"pgb-{prepared}-{uuid.uuid4().hex[:6]}"
    settings = PoolSettings(min_size=4, max_size=4, prepared_statements=prepared)
    with (
        caplog.at_level(logging.WARNING, logger="pgcheckpoint"),
        PostgresSaver.from_conn_string(pgb.url(), pool=settings) as saver,
    ):
        counter_graph(saver, delay=0).invoke(start_input(40), config(thread_id))
        check_history(saver, thread_id, 40)
        items = [batch_item(f"{thread_id}-{i}") for i in range(20)]
        for _ in range(3):  # executemany must not prepare either
            saved = saver.batch_save_checkpoints(items)
        assert saver.get_tuple(saved[7]) is not None
        report = saver.health_check()
    assert report.ok and report.behind_proxy is True
    # Four client connections preparing the same statement names on two
    # server connections collide at once (42P05 / 26000).
    assert ("Prepared statements are now off" in caplog.text) is prepared
