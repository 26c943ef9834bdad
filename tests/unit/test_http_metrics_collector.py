"""OTEL_DISTRO_HTTP_METRICS=collector: no HTTP metrics recorded in the process, the same spans.

The same requests run through FastAPI and Flask apps instrumented as the distro does it
(`distro._instrument_server`), once per mode: the exported spans must be the same (IDs and
timings aside) and, with `collector`, no `http.server.*` metric recorded while the app's own
metrics stay.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
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


def _run(framework: str, mode: str) -> tuple[list[Any], Any]:
    """The finished spans and the metrics data of PATHS requests in that mode."""
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
    return list(spans.get_finished_spans()), reader.get_metrics_data()


def _names(data: Any) -> set[str]:
    return {m.name for rm in data.resource_metrics for sm in rm.scope_metrics for m in sm.metrics} if data else set()


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
    process_spans, process_data = _run(framework, "process")
    collector_spans, collector_data = _run(framework, "collector")
    process_metrics, collector_metrics = _names(process_data), _names(collector_data)

    assert "http.server.request.duration" in process_metrics
    assert not {name for name in collector_metrics if name.startswith("http.server.")}
    assert "app.orders" in collector_metrics  # the app's own metrics are untouched
    assert collector_metrics == {n for n in process_metrics if not n.startswith("http.server.")}
    assert [_comparable(s) for s in collector_spans] == [_comparable(s) for s in process_spans]
    assert len(process_spans) == len(PATHS)
    encode_span_request(collector_spans)  # still encodable as before


def test_default_is_process() -> None:
    assert Settings().http_metrics == "process"


# --- what the collector derives instead (collector/config.yaml, spanmetrics/http) ------------


def _collector_config() -> dict[str, Any]:
    import yaml

    from tests.harness import REPO

    config: dict[str, Any] = yaml.safe_load((REPO / "collector" / "config.yaml").read_text())
    return config


def _seconds(duration: str) -> float:
    """A Go duration of the bucket list (`5ms`, `2500ms`, `1s`) in seconds."""
    if duration.endswith("ms"):
        return float(duration[:-2]) / 1000
    assert duration.endswith("s"), duration
    return float(duration[:-1])


def test_the_collector_derives_the_same_histogram_definition() -> None:
    from otel_distro.http_server._semconv import DURATION_BUCKETS, DURATION_KEYS

    connector = _collector_config()["connectors"]["spanmetrics/http"]
    assert connector["namespace"] + ".duration" == "http.server.request.duration"
    assert connector["histogram"]["unit"] == "s"
    assert tuple(_seconds(b) for b in connector["histogram"]["explicit"]["buckets"]) == DURATION_BUCKETS
    assert sorted(d["name"] for d in connector["dimensions"]) == sorted(DURATION_KEYS)


def test_the_collector_takes_the_spans_of_marked_services_only() -> None:
    from otel_distro.http_server._semconv import SCOPE
    from otel_distro.resource import HTTP_METRICS_ATTRIBUTE

    (condition,) = _collector_config()["processors"]["filter/http_metrics_from_spans"]["traces"]["span"]
    assert f'resource.attributes["{HTTP_METRICS_ATTRIBUTE}"] == "collector"' in condition
    assert "kind == SPAN_KIND_SERVER" in condition
    pattern = re.search(r'IsMatch\(instrumentation_scope.name, "([^"]+)"\)', condition)
    assert pattern is not None
    scopes = [f"{SCOPE}.fastapi", f"{SCOPE}.flask", "opentelemetry.instrumentation.fastapi"]
    scopes.append("opentelemetry.instrumentation.flask")
    assert all(re.match(pattern[1], s) for s in scopes)
    assert not [
        s for s in ("opentelemetry.instrumentation.django", "app", f"{SCOPE}.fastapi.x") if re.match(pattern[1], s)
    ]


def test_each_server_span_carries_what_its_metric_point_would(framework: str) -> None:
    """In process mode, the attributes of each recorded point equal its span's attributes cut to
    the connector's dimensions: what the collector derives in collector mode, series for series."""
    spans, data = _run(framework, "process")
    dimensions = [d["name"] for d in _collector_config()["connectors"]["spanmetrics/http"]["dimensions"]]
    from_spans = sorted(sorted((k, v) for k, v in (s.attributes or {}).items() if k in dimensions) for s in spans)
    from_points = sorted(
        sorted((point.attributes or {}).items())
        for rm in data.resource_metrics
        for sm in rm.scope_metrics
        for metric in sm.metrics
        if metric.name == "http.server.request.duration"
        for point in metric.data.data_points
    )
    assert len(from_points) == len(PATHS)  # one series per path: each point is one request
    assert from_spans == from_points
