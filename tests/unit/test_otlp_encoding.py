"""The fast OTLP encoder writes exactly the bytes the upstream encoder writes."""

from __future__ import annotations

from typing import Any

import pytest
from opentelemetry._logs import SeverityNumber
from opentelemetry.context import Context
from opentelemetry.exporter.otlp.proto.common._log_encoder import encode_logs
from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
from opentelemetry.sdk._logs import LoggerProvider, ReadableLogRecord
from opentelemetry.sdk._logs.export import InMemoryLogRecordExporter, SimpleLogRecordProcessor
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import (
    Link,
    SpanContext,
    SpanKind,
    Status,
    StatusCode,
    TraceFlags,
    TraceState,
    set_span_in_context,
)

from otel_distro import otlp_encoding
from otel_distro.otlp_encoding import encode_log_request, encode_span_request

ODD_VALUES: dict[str, Any] = {
    "str": "GET",
    "empty": "",
    "unicode": "naïve ✓ 🚀",
    "long": "x" * 300,
    "true": True,
    "false": False,
    "zero": 0,
    "int": 200,
    "negative": -5,
    "big": 2**62,
    "float": 0.125,
    "float_zero": 0.0,
    "strings": ["a", "b"],
    "ints": [1, -1, 0],
    "floats": [1.5],
    "bools": [True, False],
    "empty_list": [],
}


def _spans(resource: Resource) -> list[ReadableSpan]:
    exporter = InMemorySpanExporter()
    provider = TracerProvider(resource=resource)
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    tracer = provider.get_tracer("tests.scope", "1.2.3", schema_url="https://example.com/schema")
    other = provider.get_tracer("other")
    remote = SpanContext(0xABC, 0xDEF, is_remote=True, trace_flags=TraceFlags(1), trace_state=TraceState([("k", "v")]))
    with tracer.start_as_current_span("GET /hello", kind=SpanKind.SERVER, attributes=ODD_VALUES) as span:
        span.add_event("started", {"n": 1, "what": "x"})
        span.add_event("empty")
        with other.start_as_current_span("child", links=[Link(remote, {"why": "batch"})]) as child:
            child.set_status(Status(StatusCode.ERROR, "boom"))
        with tracer.start_as_current_span("ok") as ok:
            ok.set_status(Status(StatusCode.OK))
    with tracer.start_as_current_span("remote parent", context=set_span_in_context(_remote_span(remote))):
        pass
    with tracer.start_as_current_span("", kind=SpanKind.CLIENT):
        pass
    for kind in (SpanKind.PRODUCER, SpanKind.CONSUMER, SpanKind.INTERNAL):
        tracer.start_span(f"kind {kind.name}", kind=kind).end()
    return list(exporter.get_finished_spans())


def _remote_span(context: SpanContext) -> Any:
    from opentelemetry.trace import NonRecordingSpan

    return NonRecordingSpan(context)


def _logs(resource: Resource) -> list[ReadableLogRecord]:
    exporter = InMemoryLogRecordExporter()
    provider = LoggerProvider(resource=resource)
    provider.add_log_record_processor(SimpleLogRecordProcessor(exporter))
    logger = provider.get_logger("tests.logs", "0.1", schema_url="https://example.com/schema")
    tracer_provider = TracerProvider(resource=resource)
    with tracer_provider.get_tracer("t").start_as_current_span("s"):
        logger.emit(
            body="request completed",
            severity_number=SeverityNumber.INFO,
            severity_text="INFO",
            attributes={**ODD_VALUES, "request.id": "abc"},
        )
    logger.emit(body={"nested": {"a": [1, "two"]}, "n": 3}, severity_number=SeverityNumber.ERROR)
    logger.emit(body=None, context=Context())
    logger.emit(body=b"\x00\x01", event_name="my.event", timestamp=1_700_000_000_000_000_123)
    provider.get_logger("other").emit(body=12.5, severity_text="WARN")
    return list(exporter.get_finished_logs())


RESOURCES = {
    "plain": Resource.create({"service.name": "bench", "service.version": "1", "pid": 42}),
    "empty": Resource({}),
    "schema": Resource({"a": "b"}, schema_url="https://example.com/resource"),
}


@pytest.mark.parametrize("resource", RESOURCES.values(), ids=RESOURCES.keys())
def test_spans_encode_like_upstream(resource: Resource) -> None:
    spans = _spans(resource)
    assert encode_span_request(spans) == encode_spans(spans).SerializePartialToString()


@pytest.mark.parametrize("resource", RESOURCES.values(), ids=RESOURCES.keys())
def test_logs_encode_like_upstream(resource: Resource) -> None:
    records = _logs(resource)
    assert encode_log_request(records) == encode_logs(records).SerializeToString()


def test_mixed_resources_group_like_upstream() -> None:
    spans = _spans(RESOURCES["plain"]) + _spans(RESOURCES["schema"]) + _spans(RESOURCES["plain"])
    assert encode_span_request(spans) == encode_spans(spans).SerializePartialToString()
    records = _logs(RESOURCES["plain"]) + _logs(RESOURCES["empty"])
    assert encode_log_request(records) == encode_logs(records).SerializeToString()


def test_repeated_batches_reuse_cached_pairs_without_changing_bytes() -> None:
    spans = _spans(RESOURCES["plain"])
    first = encode_span_request(spans)
    assert otlp_encoding._KV_CACHE
    assert encode_span_request(spans) == first == encode_spans(spans).SerializePartialToString()


def test_cache_full_is_cleared() -> None:
    otlp_encoding._KV_CACHE.clear()
    for n in range(otlp_encoding._KV_CACHE_SIZE + 10):
        otlp_encoding._attributes(b"\x0a", {"request.id": f"id-{n}"})
    assert len(otlp_encoding._KV_CACHE) <= otlp_encoding._KV_CACHE_SIZE


@pytest.mark.parametrize("value", [2**64, object(), "\ud800"], ids=["int-overflow", "object", "surrogate"])
def test_values_upstream_handles_differently_raise(value: Any) -> None:
    with pytest.raises((ValueError, UnicodeEncodeError)):
        otlp_encoding._attributes(b"\x0a", {"odd": value})
