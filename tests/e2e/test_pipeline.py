"""OTLP into the real collector, out into Prometheus, VictoriaLogs and Jaeger.

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
from opentelemetry import trace
from opentelemetry._logs import SeverityNumber
from opentelemetry.exporter.otlp.proto.http._log_exporter import OTLPLogExporter
from opentelemetry.exporter.otlp.proto.http.metric_exporter import OTLPMetricExporter
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk._logs import LoggerProvider
from opentelemetry.sdk._logs.export import SimpleLogRecordProcessor
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import PeriodicExportingMetricReader
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor

from tests.harness import wait_until

from .backends import attributes, find_traces, logsql, trace_spans
from .conftest import stack, started_stack

pytestmark = pytest.mark.e2e

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


def test_collector_connectors_write_span_metrics(backend_stack: stack.Stack, sent: Sent) -> None:
    """Span metrics come from the collector's spanmetrics connector, whatever the traces backend."""
    promql = f'traces_spanmetrics_calls_total{{service_name="{sent.service_name}"}} > 0'
    # The connector flushes every 15 s (its first points of a series may still be 0): allow more time.
    result = poll(f"Prometheus {promql}", lambda: prom_query(backend_stack, promql), timeout=2 * POLL_TIMEOUT)
    assert result[0]["metric"]["span_name"] == SPAN_NAME
    assert result[0]["metric"]["span_kind"] == "SPAN_KIND_SERVER"
    assert float(result[0]["value"][1]) == 1
    histogram = f'traces_spanmetrics_duration_seconds_count{{service_name="{sent.service_name}"}} > 0'
    assert float(poll(histogram, lambda: prom_query(backend_stack, histogram))[0]["value"][1]) == 1


def test_collector_connectors_write_the_service_graph(backend_stack: stack.Stack, sent: Sent) -> None:
    """A server span with no client parent is an edge from the `user` virtual node (Grafana's service map)."""
    promql = f'traces_service_graph_request_total{{server="{sent.service_name}"}} > 0'
    result = poll(f"Prometheus {promql}", lambda: prom_query(backend_stack, promql), timeout=2 * POLL_TIMEOUT)
    assert result[0]["metric"]["client"] == "user"
    assert float(result[0]["value"][1]) == 1


# ---- logs backend (VictoriaLogs) ----------------------------------------------
def test_log_reaches_the_logs_backend_with_trace_context(backend_stack: stack.Stack, sent: Sent) -> None:
    records = poll(
        f"VictoriaLogs trace_id:{sent.trace_id}",
        lambda: logsql(backend_stack, f"trace_id:{sent.trace_id}", sent.start_ns / 1e9),
    )
    assert len(records) == 1
    record = records[0]
    assert record["_msg"] == f"handled request {sent.request_id}"
    assert record["span_id"] == sent.span_id
    assert record["request_id"] == sent.request_id
    assert record["service.name"] == sent.service_name
    assert record["severity_text"] == "INFO"
    # The collector's redaction processor masked the secret but kept the key.
    assert record["api_key"] == MASK
    # Stream fields: the service and environment only, never per-process or per-request values.
    assert record["_stream"] == f'{{deployment.environment.name="e2e",service.name="{sent.service_name}"}}'
    by_request = logsql(backend_stack, f'request_id:="{sent.request_id}"', sent.start_ns / 1e9)
    assert [r["trace_id"] for r in by_request] == [sent.trace_id]


# ---- traces backend (Jaeger) --------------------------------------------------
def test_trace_reaches_the_traces_backend_by_id(backend_stack: stack.Stack, sent: Sent) -> None:
    spans = poll(f"Jaeger trace {sent.trace_id}", lambda: trace_spans(backend_stack, sent.trace_id))
    assert len(spans) == 1
    resource, span = spans[0]
    assert resource["service.name"] == sent.service_name
    assert resource["deployment.environment.name"] == "e2e"
    assert span["name"] == SPAN_NAME
    assert span["spanId"] == sent.span_id
    span_attributes = attributes(span.get("attributes", []))
    assert span_attributes["request_id"] == sent.request_id
    assert span_attributes["user.password"] == MASK


def test_trace_found_by_service_and_attribute_search(backend_stack: stack.Stack, sent: Sent) -> None:
    found = poll(
        f"Jaeger search {sent.service_name} request_id={sent.request_id}",
        lambda: find_traces(backend_stack, sent.service_name, {"request_id": sent.request_id}, sent.start_ns / 1e9),
    )
    assert found == [sent.trace_id]
    # The search filters: another value of the attribute finds nothing.
    other = find_traces(backend_stack, sent.service_name, {"request_id": "not-" + sent.request_id}, sent.start_ns / 1e9)
    assert other == []


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


def test_telemetry_survives_backend_outage_and_collector_restart(private_stack: stack.Stack) -> None:
    """Accepted logs and spans wait in the collector's disk queue, metrics in the remote-write
    exporter's write-ahead log, through both failures."""
    private_stack.stop_program("victoria-logs")
    private_stack.stop_program("jaeger")
    private_stack.stop_program("prometheus")
    sent = send_telemetry(private_stack.otlp_http_url)
    poll(
        "log record and span queued on disk while VictoriaLogs and Jaeger are down",
        lambda: (
            collector_metric(private_stack, "otelcol_exporter_queue_size", 'data_type="logs"') >= 1
            and collector_metric(private_stack, "otelcol_exporter_queue_size", 'data_type="traces"') >= 1
        ),
    )
    wal = private_stack.data_dir / "otelcol" / "file_storage" / "prometheus_remote_write"
    poll(
        "metrics written to the remote-write WAL", lambda: any(p.stat().st_size for p in wal.rglob("*") if p.is_file())
    )
    private_stack.stop_program("otelcol")
    private_stack.start_program("otelcol")
    private_stack.start_program("prometheus")
    private_stack.start_program("victoria-logs")
    private_stack.start_program("jaeger")

    test_log_reaches_the_logs_backend_with_trace_context(private_stack, sent)
    test_trace_reaches_the_traces_backend_by_id(private_stack, sent)
    test_histogram_reaches_prometheus(private_stack, sent)
