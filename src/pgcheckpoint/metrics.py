"""Operation metrics and traces: Prometheus and OpenTelemetry, both optional.

The runners (:mod:`pgcheckpoint._runner_base`) call the hooks a saver holds
around every operation. A saver holds none by default, and then the runners
take a path with no timing, no byte counting and no imports: metrics cost
nothing unless enabled. ``prometheus_client`` and ``opentelemetry`` are
imported only when a hook that needs them is made
(``pip install 'pgcheckpoint[metrics]'`` / ``'pgcheckpoint[otel]'``).

Example::

    from pgcheckpoint.metrics import PrometheusHook, instrument
    instrument(saver, PrometheusHook())          # postgres_checkpoint_* metrics
    prometheus_client.start_http_server(9464)
"""

from __future__ import annotations

import weakref
from dataclasses import dataclass
from typing import Any, ClassVar, Protocol

from .errors import ConfigurationError

# Operations counted by the saves_total and loads_total counters.
SAVE_OPERATIONS = frozenset({"put", "put_writes", "batch_save_checkpoints"})
LOAD_OPERATIONS = frozenset({"get_tuple", "list", "get_delta_channel_history"})

# Latency buckets, seconds: a local put takes ~0.5 ms, a retried one seconds.
BUCKETS = (
    0.0005,
    0.001,
    0.0025,
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
    5.0,
    10.0,
    30.0,
)


@dataclass(frozen=True, slots=True)
class OperationResult:
    """What one operation did, as the runner saw it.

    Attributes:
        operation: the plan's name (``put``, ``get_tuple``, ``list``...).
        seconds: wall time from the first attempt to the result or error.
        attempts: how many times the plan was run (1 without retries).
        error: the class name of the error raised, or ``None`` on success.
        bytes_written: bytes of ``bytes`` parameters sent (checkpoints, blobs).
        bytes_read: bytes of ``bytes`` columns received.
    """

    operation: str
    seconds: float
    attempts: int
    error: str | None
    bytes_written: int
    bytes_read: int


class OperationHook(Protocol):
    """What a runner calls around each operation. ``start``'s return value is
    handed back to ``retry`` and ``finish`` (a span, a timer...)."""

    def start(self, operation: str) -> Any: ...

    def retry(self, token: Any, operation: str, error: BaseException) -> None: ...

    def finish(self, token: Any, result: OperationResult) -> None: ...


def instrument(saver: Any, *hooks: OperationHook) -> None:
    """Add hooks to a ``PostgresSaver`` or ``AsyncPostgresSaver`` (and its clones)."""
    runner = getattr(saver, "runner", None)
    if runner is None or not hasattr(runner, "hooks"):
        raise ConfigurationError(f"cannot instrument {type(saver).__name__}: it has no runner")
    runner.hooks = (*runner.hooks, *hooks)


class PrometheusHook:
    """Prometheus metrics for every operation, with the ``postgres_checkpoint_`` names.

    Counters ``saves_total``, ``loads_total``, ``errors_total``, ``retries_total``,
    ``bytes_written_total``, ``bytes_read_total`` and the histogram
    ``operation_duration_seconds``, each labelled by ``operation``. Metrics are
    registered in ``registry`` (default: prometheus_client's global one); two
    hooks on one registry share the metrics instead of failing.
    """

    # Metrics already registered, per registry: a second hook reuses them.
    _shared: ClassVar[weakref.WeakKeyDictionary[Any, dict[str, Any]]] = weakref.WeakKeyDictionary()

    def __init__(self, registry: Any = None, *, namespace: str = "postgres_checkpoint") -> None:
        try:
            import prometheus_client as prom
        except ImportError as exc:  # pragma: no cover - depends on the environment
            raise ConfigurationError(
                "PrometheusHook needs prometheus_client: pip install 'pgcheckpoint[metrics]'"
            ) from exc
        registry = registry if registry is not None else prom.REGISTRY
        made = self._shared.get(registry)
        if made is None or made.get("_namespace") != namespace:
            label = ["operation"]
            made = {
                "_namespace": namespace,
                "saves": prom.Counter(
                    "saves",
                    "Checkpoints and writes saved",
                    label,
                    namespace=namespace,
                    registry=registry,
                ),
                "loads": prom.Counter(
                    "loads", "Checkpoint reads", label, namespace=namespace, registry=registry
                ),
                "errors": prom.Counter(
                    "errors",
                    "Operations that failed",
                    [*label, "error"],
                    namespace=namespace,
                    registry=registry,
                ),
                "retries": prom.Counter(
                    "retries",
                    "Retries after transient errors",
                    label,
                    namespace=namespace,
                    registry=registry,
                ),
                "written": prom.Counter(
                    "bytes_written",
                    "Bytes of values sent",
                    label,
                    namespace=namespace,
                    registry=registry,
                ),
                "read": prom.Counter(
                    "bytes_read",
                    "Bytes of values received",
                    label,
                    namespace=namespace,
                    registry=registry,
                ),
                "duration": prom.Histogram(
                    "operation_duration_seconds",
                    "Operation latency, retries included",
                    label,
                    namespace=namespace,
                    registry=registry,
                    buckets=BUCKETS,
                ),
            }
            self._shared[registry] = made
        self._m = made

    def start(self, operation: str) -> Any:
        return None

    def retry(self, token: Any, operation: str, error: BaseException) -> None:
        self._m["retries"].labels(operation).inc()

    def finish(self, token: Any, result: OperationResult) -> None:
        m, op = self._m, result.operation
        m["duration"].labels(op).observe(result.seconds)
        if result.error is not None:
            m["errors"].labels(op, result.error).inc()
            return
        if op in SAVE_OPERATIONS:
            m["saves"].labels(op).inc()
        elif op in LOAD_OPERATIONS:
            m["loads"].labels(op).inc()
        if result.bytes_written:
            m["written"].labels(op).inc(result.bytes_written)
        if result.bytes_read:
            m["read"].labels(op).inc(result.bytes_read)


class OpenTelemetryHook:
    """One OpenTelemetry span per operation (``pgcheckpoint.<operation>``), with
    attempts, bytes and the error as attributes; retries are span events."""

    def __init__(self, tracer_provider: Any = None) -> None:
        try:
            from opentelemetry import trace
        except ImportError as exc:  # pragma: no cover - depends on the environment
            raise ConfigurationError(
                "OpenTelemetryHook needs opentelemetry-api: pip install 'pgcheckpoint[otel]'"
            ) from exc
        self._trace = trace
        self._tracer = trace.get_tracer("pgcheckpoint", tracer_provider=tracer_provider)

    def start(self, operation: str) -> Any:
        span = self._tracer.start_span(
            f"pgcheckpoint.{operation}",
            attributes={"db.system": "postgresql", "db.operation": operation},
        )
        return span

    def retry(self, token: Any, operation: str, error: BaseException) -> None:
        token.add_event("retry", {"error": f"{type(error).__name__}: {error}"[:500]})

    def finish(self, token: Any, result: OperationResult) -> None:
        token.set_attribute("pgcheckpoint.attempts", result.attempts)
        token.set_attribute("pgcheckpoint.bytes_written", result.bytes_written)
        token.set_attribute("pgcheckpoint.bytes_read", result.bytes_read)
        if result.error is not None:
            token.set_status(self._trace.Status(self._trace.StatusCode.ERROR, result.error))
        token.end()


def bytes_in(value: Any) -> int:
    """Bytes held by ``bytes`` values in a parameter mapping, row or list (one level deep)."""
    if isinstance(value, bytes | bytearray | memoryview):
        return len(value)
    total = 0
    items = value.values() if isinstance(value, dict) else value
    if isinstance(items, str) or not hasattr(items, "__iter__"):
        return 0
    for item in items:
        if isinstance(item, bytes | bytearray | memoryview):
            total += len(item)
        elif isinstance(item, list | tuple):
            total += sum(len(x) for x in item if isinstance(x, bytes | bytearray | memoryview))
    return total
