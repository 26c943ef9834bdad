"""OTEL_DISTRO_HTTP_METRICS=collector: no HTTP metrics recorded in the process, the same spans.

The same requests run through FastAPI and Flask apps instrumented as the distro does it
(`distro._instrument_server`), once per mode: the exported spans must be the same (IDs and
timings aside) and, with `collector`, no `http.server.*` metric recorded while the app's own
metrics stay.
"""

from __future__ import annotations

import asyncio
import contextlib
import types
from collections.abc import Iterator
from typing import Any

import pytest
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from otel_distro import distro, http_server
from otel_distro.otlp_encoding import encode_span_request
from otel_distro.settings import Settings
from tests.server_inputs import asgi_scope

PATHS = ("/hello", "/items/7", "/missing", "/boom")


@pytest.fixture(params=["fastapi", "flask"])
def framework(request: pytest.FixtureRequest) -> Iterator[str]:
    yield request.param
    http_server.uninstrument(request.param)


def _app(framework: str, meter_provider: MeterProvider) -> Any:
    counter = meter_provider.get_meter("app").create_counter("app.orders")
    if framework == "fastapi":
        import fastapi

        api = fastapi.FastAPI()

        @api.get("/hello")
        async def hello() -> dict[str, str]:
            counter.add(1)
            return {"hello": "world"}

        @api.get("/items/{item}")
        async def item(item: int) -> dict[str, int]:
            return {"item": item}

        @api.get("/boom")
        async def boom() -> None:
            raise RuntimeError("boom")

        return api
    import flask

    app = flask.Flask("t")

    @app.get("/hello")
    def hello_flask() -> dict[str, str]:
        counter.add(1)
        return {"hello": "world"}

    @app.get("/items/<int:item>")
    def item_flask(item: int) -> dict[str, int]:
        return {"item": item}

    @app.get("/boom")
    def boom_flask() -> str:
        raise RuntimeError("boom")

    return app


def _call(framework: str, app: Any, path: str) -> None:
    if framework == "flask":
        client = app.test_client()
        client.get(path)
        return
    scope = asgi_scope("GET", path)

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        return None

    async def one() -> None:
        with contextlib.suppress(RuntimeError):  # /boom: re-raised to the server after the 500 was sent
            await app(scope, receive, send)

    asyncio.run(one())


def _run(framework: str, mode: str) -> tuple[list[Any], set[str]]:
    spans = InMemorySpanExporter()
    tracer_provider = TracerProvider(shutdown_on_exit=False)
    tracer_provider.add_span_processor(SimpleSpanProcessor(spans))
    reader = InMemoryMetricReader()
    meter_provider = MeterProvider(metric_readers=[reader], shutdown_on_exit=False)
    settings = Settings(http_metrics=mode)
    contrib = types.SimpleNamespace(instrument=lambda **kwargs: None)
    kwargs = {"tracer_provider": tracer_provider, "meter_provider": meter_provider}
    distro._instrument_server(framework, contrib, settings, kwargs)
    try:
        app = _app(framework, meter_provider)
        for path in PATHS:
            _call(framework, app, path)
    finally:
        http_server.uninstrument(framework)
    data = reader.get_metrics_data()
    names = {m.name for rm in data.resource_metrics for sm in rm.scope_metrics for m in sm.metrics} if data else set()
    return list(spans.get_finished_spans()), names


def _comparable(span: Any) -> tuple[Any, ...]:
    """Everything exported but the random IDs (trace, span, request) and the clock."""
    return (
        span.name,
        span.kind,
        {k: v for k, v in (span.attributes or {}).items() if k != "request.id"},
        span.status.status_code,
        span.status.description,
        [(e.name, {k: v for k, v in (e.attributes or {}).items() if k != "exception.stacktrace"}) for e in span.events],
        span.instrumentation_scope,
    )


def test_collector_mode_records_no_http_metrics_and_the_same_spans(framework: str) -> None:
    process_spans, process_metrics = _run(framework, "process")
    collector_spans, collector_metrics = _run(framework, "collector")

    assert "http.server.request.duration" in process_metrics
    assert not {name for name in collector_metrics if name.startswith("http.server.")}
    assert "app.orders" in collector_metrics  # the app's own metrics are untouched
    assert collector_metrics == {n for n in process_metrics if not n.startswith("http.server.")}
    assert [_comparable(s) for s in collector_spans] == [_comparable(s) for s in process_spans]
    assert len(process_spans) == len(PATHS)
    encode_span_request(collector_spans)  # still encodable as before


def test_default_is_process() -> None:
    assert Settings().http_metrics == "process"
