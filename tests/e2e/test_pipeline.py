"""OTLP into the real collector, out into Prometheus, Loki and Tempo.

Independent of the otel_distro package: the plain OpenTelemetry SDK sends one
server span, a histogram recorded inside it and a log record carrying the
span's context, a ``request_id`` and a secret. Each test then polls one
backend's query API until the data shows up, so each fails if that backend
(or the collector's route to it) dropped the data.
"""

from __future__ import annotations

import dataclasses
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import pytest

from tests.harness import wait_until

from .conftest import stack, started_stack

pytestmark = pytest.mark.e2e

otel_sdk = pytest.importorskip("opentelemetry.sdk", reason="opentelemetry-sdk is not installed")

from opentelemetry import trace  # noqa: E402
from opentelemetry._logs import SeverityNumber  # noqa: E402
from opentelemetry.exporter.otlp.proto.http._log_exporter import OTLPLogExporter  # noqa: E402
from opentelemetry.exporter.otlp.proto.http.metric_exporter import OTLPMetricExporter  # noqa: E402
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter  # noqa: E402
from opentelemetry.sdk._logs import LoggerProvider  # noqa: E402
from opentelemetry.sdk._logs.export import SimpleLogRecordProcessor  # noqa: E402
from opentelemetry.sdk.metrics import MeterProvider  # noqa: E402
from opentelemetry.sdk.metrics.export import PeriodicExportingMetricReader  # noqa: E402
from opentelemetry.sdk.resources import Resource  # noqa: E402
from opentelemetry.sdk.trace import TracerProvider  # noqa: E402
from opentelemetry.sdk.trace.export import SimpleSpanProcessor  # noqa: E402

POLL_TIMEOUT = 60.0
SPAN_NAME = "GET /e2e/{item}"
HISTOGRAM = "e2e.request.duration"
# HISTOGRAM after the Prometheus translation (unit suffix, dots to underscores).
PROM_HISTOGRAM = "e2e_request_duration_seconds"
HISTOGRAM_VALUES = (0.05, 0.2, 1.5)
MASK = "****"

T = TypeVar("T")


@dataclasses.dataclass(frozen=True)
class Sent:
    service_name: str
    request_id: str
    trace_id: str  # 32 lowercase hex digits
    span_id: str
    start_ns: int


def poll(what: str, probe: Callable[[], T | None], timeout: float = POLL_TIMEOUT) -> T:
    """Call ``probe`` until it returns something truthy; fail naming ``what`` after ``timeout``."""
    return wait_until(probe, timeout, interval=1.0, what=what)


@pytest.fixture(scope="module")
def sent(backend_stack: stack.Stack) -> Sent:
    """The telemetry of send_telemetry, sent once per module into the shared stack."""
    return send_telemetry(backend_stack.otlp_http_url)


def send_telemetry(base: str) -> Sent:
    """Send a span, a histogram and a log record to the collector's OTLP/HTTP receiver at ``base``."""
    service_name = f"e2e-pipeline-{uuid.uuid4().hex[:8]}"
    request_id = uuid.uuid4().hex
    resource = Resource.create(
        {
            "service.name": service_name,
            "service.instance.id": uuid.uuid4().hex,
            "deployment.environment.name": "e2e",
        }
    )
    tracer_provider = TracerProvider(resource=resource)
    tracer_provider.add_span_processor(SimpleSpanProcessor(OTLPSpanExporter(endpoint=f"{base}/v1/traces")))
    meter_provider = MeterProvider(
        resource=resource,
        metric_readers=[
            PeriodicExportingMetricReader(
                OTLPMetricExporter(endpoint=f"{base}/v1/metrics"), export_interval_millis=3_600_000
            )
        ],
    )
    logger_provider = LoggerProvider(resource=resource)
    logger_provider.add_log_record_processor(SimpleLogRecordProcessor(OTLPLogExporter(endpoint=f"{base}/v1/logs")))

    start_ns = time.time_ns()
    tracer = tracer_provider.get_tracer("e2e.pipeline")
    histogram = meter_provider.get_meter("e2e.pipeline").create_histogram(HISTOGRAM, unit="s")
    logger = logger_provider.get_logger("e2e.pipeline")
    with tracer.start_as_current_span(
        SPAN_NAME,
        kind=trace.SpanKind.SERVER,
        attributes={
            "http.request.method": "GET",
            "http.route": "/e2e/{item}",
            "request_id": request_id,
            "user.password": "hunter2",
        },
    ) as span:
        for value in HISTOGRAM_VALUES:
            histogram.record(value, {"http.route": "/e2e/{item}"})
        logger.emit(
            body=f"handled request {request_id}",
            severity_number=SeverityNumber.INFO,
            severity_text="INFO",
            attributes={"request_id": request_id, "api_key": "sk-live-123456"},
            context=trace.set_span_in_context(span),
        )
        ctx = span.get_span_context()

    for provider in (tracer_provider, meter_provider, logger_provider):
        provider.shutdown()  # flushes
    return Sent(
        service_name=service_name,
        request_id=request_id,
        trace_id=trace.format_trace_id(ctx.trace_id),
        span_id=trace.format_span_id(ctx.span_id),
        start_ns=start_ns,
    )


# ---- Prometheus -------------------------------------------------------------
def prom_query(backends: stack.Stack, promql: str) -> list[dict[str, Any]]:
    status, body = stack.get_json(f"{backends.prometheus_url}/api/v1/query", {"query": promql})
    if status != 200 or not isinstance(body, dict) or body.get("status") != "success":
        return []
    return list(body["data"]["result"])


def test_histogram_reaches_prometheus(backend_stack: stack.Stack, sent: Sent) -> None:
    promql = f'{PROM_HISTOGRAM}_count{{job="{sent.service_name}", http_route="/e2e/{{item}}"}}'
    result = poll(f"Prometheus {promql}", lambda: prom_query(backend_stack, promql))
    assert float(result[0]["value"][1]) == len(HISTOGRAM_VALUES)
    total = prom_query(backend_stack, f'{PROM_HISTOGRAM}_sum{{job="{sent.service_name}"}}')
    assert float(total[0]["value"][1]) == pytest.approx(sum(HISTOGRAM_VALUES))


def test_resource_attributes_go_to_target_info_not_series(backend_stack: stack.Stack, sent: Sent) -> None:
    info = poll("target_info", lambda: prom_query(backend_stack, f'target_info{{job="{sent.service_name}"}}'))
    assert info[0]["metric"]["deployment_environment_name"] == "e2e"
    series = prom_query(backend_stack, f'{PROM_HISTOGRAM}_count{{job="{sent.service_name}"}}')
    assert "deployment_environment_name" not in series[0]["metric"]


def test_histogram_exemplar_links_to_trace(backend_stack: stack.Stack, sent: Sent) -> None:
    def exemplars() -> list[dict[str, Any]]:
        status, body = stack.get_json(
            f"{backend_stack.prometheus_url}/api/v1/query_exemplars",
            {
                "query": f'{PROM_HISTOGRAM}_bucket{{job="{sent.service_name}"}}',
                "start": str(sent.start_ns / 1e9 - 60),
                "end": str(time.time() + 60),
            },
        )
        if status != 200 or not isinstance(body, dict):
            return []
        return [e for series in body.get("data") or [] for e in series["exemplars"]]

    found = poll("exemplars on the histogram", exemplars)
    assert {e["labels"].get("trace_id") for e in found} == {sent.trace_id}


def test_tempo_metrics_generator_writes_span_metrics(backend_stack: stack.Stack, sent: Sent) -> None:
    promql = f'traces_spanmetrics_calls_total{{service="{sent.service_name}"}}'
    # The generator collects every 15 s before it remote-writes: allow more time.
    result = poll(f"Prometheus {promql}", lambda: prom_query(backend_stack, promql), timeout=2 * POLL_TIMEOUT)
    assert result[0]["metric"]["span_name"] == SPAN_NAME


# ---- Loki -------------------------------------------------------------------
def test_log_reaches_loki_with_trace_context_in_structured_metadata(backend_stack: stack.Stack, sent: Sent) -> None:
    logql = f'{{service_name="{sent.service_name}"}} | request_id="{sent.request_id}"'

    def query() -> list[dict[str, Any]]:
        status, body = stack.get_json(
            f"{backend_stack.loki_url}/loki/api/v1/query_range",
            {
                "query": logql,
                "start": str(sent.start_ns - 300 * 10**9),
                "end": str(time.time_ns() + 60 * 10**9),
                "limit": "10",
            },
            # Split labels into stream (index) labels, structured metadata and parsed.
            headers={"X-Loki-Response-Encoding-Flags": "categorize-labels"},
        )
        if status != 200 or not isinstance(body, dict):
            return []
        return list(body["data"]["result"])

    streams = poll(f"Loki {logql}", query)
    assert len(streams) == 1
    stream, values = streams[0]["stream"], streams[0]["values"]
    assert len(values) == 1
    _ts, line, metadata = values[0]
    assert sent.request_id in line
    structured = metadata.get("structuredMetadata", {})
    # Index labels: the service, never per-request values.
    assert stream.get("service_name") == sent.service_name
    assert stream.get("deployment_environment_name") == "e2e"
    for high_cardinality in ("request_id", "trace_id", "span_id"):
        assert high_cardinality not in stream
    assert structured.get("trace_id") == sent.trace_id
    assert structured.get("span_id") == sent.span_id
    assert structured.get("request_id") == sent.request_id
    # The collector's redaction processor masked the secret but kept the key.
    assert structured.get("api_key") == MASK


# ---- Tempo ------------------------------------------------------------------
def tempo_spans(body: Any) -> list[tuple[dict[str, Any], dict[str, Any]]]:
    """(resource attributes, span) pairs from Tempo's OTLP-JSON trace answer."""
    if not isinstance(body, dict):
        return []
    trace_body = body.get("trace", body)
    pairs = []
    for resource_spans in trace_body.get("batches") or trace_body.get("resourceSpans") or []:
        resource = attributes(resource_spans.get("resource", {}).get("attributes", []))
        for scope_spans in resource_spans.get("scopeSpans") or resource_spans.get("instrumentationLibrarySpans") or []:
            pairs.extend((resource, span) for span in scope_spans.get("spans", []))
    return pairs


def attributes(otlp_attributes: list[dict[str, Any]]) -> dict[str, Any]:
    return {a["key"]: next(iter(a.get("value", {}).values()), None) for a in otlp_attributes}


def test_trace_reaches_tempo_by_id(backend_stack: stack.Stack, sent: Sent) -> None:
    def fetch() -> list[tuple[dict[str, Any], dict[str, Any]]]:
        status, body = stack.get_json(f"{backend_stack.tempo_url}/api/traces/{sent.trace_id}")
        return tempo_spans(body) if status == 200 else []

    spans = poll(f"Tempo trace {sent.trace_id}", fetch)
    assert len(spans) == 1
    resource, span = spans[0]
    assert resource["service.name"] == sent.service_name
    assert span["name"] == SPAN_NAME
    span_attributes = attributes(span.get("attributes", []))
    assert span_attributes["request_id"] == sent.request_id
    assert span_attributes["user.password"] == MASK


def test_trace_found_by_traceql_search(backend_stack: stack.Stack, sent: Sent) -> None:
    traceql = f'{{ resource.service.name = "{sent.service_name}" && span.request_id = "{sent.request_id}" }}'

    def search() -> list[str]:
        status, body = stack.get_json(
            f"{backend_stack.tempo_url}/api/search",
            {"q": traceql, "start": str(sent.start_ns // 10**9 - 300), "end": str(int(time.time()) + 60)},
        )
        if status != 200 or not isinstance(body, dict):
            return []
        return [t["traceID"] for t in body.get("traces") or []]

    found = poll(f"Tempo search {traceql}", search)
    # Tempo drops leading zeros of trace IDs in search results.
    assert [t.lstrip("0") for t in found] == [sent.trace_id.lstrip("0")]


# ---- durability ---------------------------------------------------------------
def collector_metric(backends: stack.Stack, name: str, labels: str) -> float:
    """Sum of one of the collector's own metrics whose label text contains ``labels``."""
    status, text = stack.get_json(backends.collector_metrics_url)
    if status != 200 or not isinstance(text, str):
        return 0.0
    return sum(
        float(line.rsplit(" ", 1)[1]) for line in text.splitlines() if line.startswith(name + "{") and labels in line
    )


@pytest.fixture
def private_stack(tmp_path: Path) -> Iterator[stack.Stack]:
    """A stack of its own, so that stopping programs cannot disturb the shared one."""
    yield from started_stack(tmp_path)


def test_logs_and_traces_survive_backend_outage_and_collector_restart(private_stack: stack.Stack) -> None:
    """Accepted logs and spans wait in the collector's disk queue through both failures."""
    private_stack.stop_program("loki")
    private_stack.stop_program("tempo")
    sent = send_telemetry(private_stack.otlp_http_url)
    poll(
        "log record and span queued on disk while Loki and Tempo are down",
        lambda: (
            collector_metric(private_stack, "otelcol_exporter_queue_size", 'data_type="logs"') >= 1
            and collector_metric(private_stack, "otelcol_exporter_queue_size", 'data_type="traces"') >= 1
        ),
    )
    private_stack.stop_program("otelcol")
    private_stack.start_program("otelcol")
    private_stack.start_program("loki")
    private_stack.start_program("tempo")

    test_log_reaches_loki_with_trace_context_in_structured_metadata(private_stack, sent)
    test_trace_reaches_tempo_by_id(private_stack, sent)
