"""Our server instrumentation on in-memory providers, and plain ASGI/WSGI clients for the spec tests."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from opentelemetry.instrumentation.propagators import get_global_response_propagator, set_global_response_propagator
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from otel_distro import http_server
from otel_distro.request_id import RequestIdResponsePropagator, RequestIds
from otel_distro.request_log import LOGGER_NAME, RequestLog
from tests.server_inputs import asgi_scope, wsgi_environ


@dataclass
class Telemetry:
    """What the instrumentation recorded: finished spans, metric points, request log records."""

    exporter: InMemorySpanExporter
    reader: InMemoryMetricReader
    tracer_provider: TracerProvider
    meter_provider: MeterProvider
    request_ids: RequestIds
    log_records: list[logging.LogRecord] = field(default_factory=list)

    def spans(self) -> list[ReadableSpan]:
        return list(self.exporter.get_finished_spans())

    def span(self) -> ReadableSpan:
        [span] = self.spans()
        return span

    def metrics(self) -> dict[str, tuple[Any, Any]]:
        """Metric name -> (its instrumentation scope, the metric)."""
        found: dict[str, tuple[Any, Any]] = {}
        data = self.reader.get_metrics_data()
        for resource_metrics in data.resource_metrics if data else ():
            for scope_metrics in resource_metrics.scope_metrics:
                for metric in scope_metrics.metrics:
                    found[metric.name] = (scope_metrics.scope, metric)
        return found

    def points(self, name: str) -> list[Any]:
        found = self.metrics().get(name)
        return list(found[1].data.data_points) if found else []

    def point(self, name: str) -> Any:
        [point] = self.points(name)
        return point

    def lines(self) -> list[tuple[str, Any, Any]]:
        """The request log lines: (message, route, status)."""
        return [(r.getMessage(), r.__dict__.get("route"), r.__dict__.get("status")) for r in self.log_records]


class _Capture(logging.Handler):
    def __init__(self, records: list[logging.LogRecord]) -> None:
        super().__init__(logging.DEBUG)
        self.records = records

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


def _telemetry(framework: str) -> Iterator[Telemetry]:
    exporter = InMemorySpanExporter()
    tracer_provider = TracerProvider(shutdown_on_exit=False)
    tracer_provider.add_span_processor(SimpleSpanProcessor(exporter))
    reader = InMemoryMetricReader()
    meter_provider = MeterProvider(metric_readers=[reader], shutdown_on_exit=False)
    ids = RequestIds("X-Request-ID", trust_inbound=True, on_response=RequestLog(True, 60.0))
    telemetry = Telemetry(exporter, reader, tracer_provider, meter_provider, ids)
    response = get_global_response_propagator()
    set_global_response_propagator(RequestIdResponsePropagator(ids, server_timing=True))
    logger = logging.getLogger(LOGGER_NAME)
    capture, level = _Capture(telemetry.log_records), logger.level
    logger.addHandler(capture)
    logger.setLevel(logging.INFO)
    http_server.instrument(framework, request_ids=ids, tracer_provider=tracer_provider, meter_provider=meter_provider)
    try:
        yield telemetry
    finally:
        http_server.uninstrument(framework)
        logger.removeHandler(capture)
        logger.setLevel(level)
        set_global_response_propagator(response)  # type: ignore[arg-type]


@pytest.fixture
def fastapi_telemetry() -> Iterator[Telemetry]:
    """Ours instruments every FastAPI app created in the test."""
    yield from _telemetry("fastapi")


@pytest.fixture
def flask_telemetry() -> Iterator[Telemetry]:
    """Ours instruments every Flask app created in the test."""
    yield from _telemetry("flask")


# --- clients ----------------------------------------------------------------------------------


@dataclass
class AsgiResponse:
    status: int | None
    headers: dict[str, str]
    body: bytes
    messages: list[dict[str, Any]]


async def asgi_call(
    app: Any,
    scope: dict[str, Any],
    body: bytes = b"",
    on_send: Callable[[dict[str, Any]], Awaitable[None]] | None = None,
) -> AsgiResponse:
    """One request as a server makes it: the body, then `http.disconnect` once the response is over."""
    messages: list[dict[str, Any]] = []
    received: list[bool] = []
    done = asyncio.Event()

    async def receive() -> dict[str, Any]:
        if not received:
            received.append(True)
            return {"type": "http.request", "body": body, "more_body": False}
        await done.wait()
        return {"type": "http.disconnect"}

    async def send(message: dict[str, Any]) -> None:
        if on_send is not None:
            await on_send(message)
        messages.append(message)
        if message["type"] == "http.response.body" and not message.get("more_body", False):
            done.set()

    try:
        await app(scope, receive, send)
    finally:
        done.set()
    start = next((m for m in messages if m["type"] == "http.response.start"), None)
    headers = {bytes(k).decode().lower(): bytes(v).decode() for k, v in (start or {}).get("headers", [])}
    body_sent = b"".join(m.get("body", b"") for m in messages if m["type"] == "http.response.body")
    return AsgiResponse(start["status"] if start else None, headers, body_sent, messages)


def asgi(app: Any, method: str, path: str, headers: tuple[tuple[str, str], ...] = (), **changes: Any) -> AsgiResponse:
    return asyncio.run(asgi_call(app, asgi_scope(method, path, headers, **changes)))


@dataclass
class WsgiResponse:
    status: int
    headers: dict[str, str]
    chunks: list[bytes]


def wsgi(
    app: Any, method: str, path: str, headers: tuple[tuple[str, str], ...] = (), on_chunk: Any = None, **changes: Any
) -> WsgiResponse:
    """One request as a WSGI server makes it: start, iterate the body, close."""
    started: list[Any] = []

    def start_response(status: str, response_headers: list[tuple[str, str]], exc_info: Any = None) -> Any:
        started[:] = [status, response_headers]
        return lambda data: None

    result = app(wsgi_environ(method, path, headers, **changes), start_response)
    chunks = []
    try:
        for chunk in result:
            chunks.append(chunk)
            if on_chunk is not None:
                on_chunk(chunk)
    finally:
        getattr(result, "close", lambda: None)()
    return WsgiResponse(int(started[0].split()[0]), {k.lower(): v for k, v in started[1]}, chunks)
