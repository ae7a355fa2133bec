"""Metrics and traces: Prometheus scraped over HTTP, OpenTelemetry spans, zero cost off."""

from __future__ import annotations

import subprocess
import sys
import urllib.request
import uuid
from typing import Any

import psycopg
import pytest
from psycopg import errors as pgerr

from _cluster import free_port
from _faultgraph import config, counter_graph, start_input
from pgcheckpoint import AsyncPostgresSaver, PostgresSaver, StorageError
from pgcheckpoint._plans import Plan, PlanGen, Query, execute_plan
from pgcheckpoint.metrics import OpenTelemetryHook, PrometheusHook, instrument

prometheus_client = pytest.importorskip("prometheus_client")

NAMES = (
    "postgres_checkpoint_saves_total",
    "postgres_checkpoint_loads_total",
    "postgres_checkpoint_operation_duration_seconds_bucket",
    "postgres_checkpoint_errors_total",
    "postgres_checkpoint_retries_total",
    "postgres_checkpoint_bytes_written_total",
    "postgres_checkpoint_bytes_read_total",
)


def flaky_plan() -> Plan[int]:
    """Fails with a serialization failure on its first attempt only."""
    calls = {"n": 0}

    def make() -> PlanGen[int]:
        calls["n"] += 1
        if calls["n"] == 1:
            raise pgerr.SerializationFailure("could not serialize access")
        rows = yield Query("SELECT 1", None, fetch="all")
        return int(rows[0][0]) if rows else 0

    return Plan("flaky", make)


def test_prometheus_scraped_over_http(db_url: str) -> None:
    registry = prometheus_client.CollectorRegistry()
    port = free_port()
    server, thread = prometheus_client.start_http_server(port, addr="127.0.0.1", registry=registry)
    try:
        with PostgresSaver.from_conn_string(db_url) as saver:
            instrument(saver, PrometheusHook(registry))
            graph = counter_graph(saver, delay=0)
            cfg = config(f"prom-{uuid.uuid4().hex[:8]}")
            graph.invoke(start_input(5), cfg)
            graph.get_state(cfg)
            list(saver.list(cfg))
            assert saver.runner.run(flaky_plan()) == 1
            with pytest.raises(StorageError):
                saver.runner.run(execute_plan("boom", "SELECT 1/0", {}))
        body = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read().decode()
    finally:
        server.shutdown()
        thread.join(5)
    for name in NAMES:
        assert name in body, f"{name} missing from the scrape"

    def value(line_start: str) -> float:
        line = next(ln for ln in body.splitlines() if ln.startswith(line_start))
        return float(line.rsplit(" ", 1)[1])

    assert value('postgres_checkpoint_saves_total{operation="put"}') >= 7
    assert value('postgres_checkpoint_loads_total{operation="get_tuple"}') >= 1
    assert value('postgres_checkpoint_retries_total{operation="flaky"}') == 1
    assert value('postgres_checkpoint_errors_total{error="StorageError",operation="boom"}') == 1
    assert value('postgres_checkpoint_bytes_written_total{operation="put"}') > 0
    assert value('postgres_checkpoint_bytes_read_total{operation="get_tuple"}') > 0


def test_two_hooks_share_one_registry() -> None:
    registry = prometheus_client.CollectorRegistry()
    a, b = PrometheusHook(registry), PrometheusHook(registry)
    assert a._m is b._m


def test_opentelemetry_spans(db_url: str) -> None:
    pytest.importorskip("opentelemetry.sdk")
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    with PostgresSaver.from_conn_string(db_url) as saver:
        instrument(saver, OpenTelemetryHook(provider))
        counter_graph(saver, delay=0).invoke(start_input(2), config("otel"))
        saver.runner.run(flaky_plan())
    spans = exporter.get_finished_spans()
    names = {s.name for s in spans}
    assert {"pgcheckpoint.put", "pgcheckpoint.get_tuple", "pgcheckpoint.flaky"} <= names
    flaky = next(s for s in spans if s.name == "pgcheckpoint.flaky")
    assert flaky.attributes is not None and flaky.attributes["pgcheckpoint.attempts"] == 2
    assert [e.name for e in flaky.events] == ["retry"]


async def test_async_hooks(db_url: str) -> None:
    seen: list[Any] = []

    class Recorder:
        def start(self, operation: str) -> Any:
            return operation

        def retry(self, token: Any, operation: str, error: BaseException) -> None:
            seen.append(("retry", operation))

        def finish(self, token: Any, result: Any) -> None:
            seen.append((token, result.error, result.attempts))

    async with AsyncPostgresSaver.from_conn_string(db_url) as saver:
        instrument(saver, Recorder())
        await counter_graph(saver, delay=0).ainvoke(start_input(1), config("ahooks"))
        await saver.runner.run(flaky_plan())
    assert ("put", None, 1) in seen and ("retry", "flaky") in seen and ("flaky", None, 2) in seen


def test_a_failing_hook_never_fails_the_operation(db_url: str) -> None:
    class Broken:
        def start(self, operation: str) -> Any:
            return None

        def retry(self, token: Any, operation: str, error: BaseException) -> None:
            raise RuntimeError("hook bug")

        def finish(self, token: Any, result: Any) -> None:
            raise RuntimeError("hook bug")

    with psycopg.connect(db_url, autocommit=True) as conn:
        saver = PostgresSaver(conn)
        instrument(saver, Broken())
        assert saver.runner.run(flaky_plan()) == 1


def test_no_metrics_library_is_imported_unless_asked() -> None:
    code = (
        "import sys, pgcheckpoint, pgcheckpoint.metrics\n"
        "bad = [m for m in ('prometheus_client', 'opentelemetry') if m in sys.modules]\n"
        "assert not bad, bad\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
