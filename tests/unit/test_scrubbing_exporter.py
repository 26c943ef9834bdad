"""Span attributes are scrubbed on the export thread; clean spans pass through untouched."""

from __future__ import annotations

from collections.abc import Sequence

from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult
from opentelemetry.trace import Status, StatusCode

from otel_distro.exporters import ScrubbingSpanExporter
from otel_distro.scrub import REDACTED, Scrubber


class _Keep(SpanExporter):
    def __init__(self) -> None:
        self.spans: list[ReadableSpan] = []

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        self.spans += spans
        return SpanExportResult.SUCCESS


def _span(attributes: dict[str, object], event: dict[str, object] | None = None) -> ReadableSpan:
    span = TracerProvider().get_tracer("t").start_span("GET /login", attributes=attributes)  # type: ignore[arg-type]
    if event is not None:
        span.add_event("e", event)  # type: ignore[arg-type]
    span.end()
    return span  # type: ignore[return-value]


class TestScrubbingSpanExporter:
    def test_secrets_hidden_again_and_again_clean_spans_untouched(self) -> None:
        kept = _Keep()
        exporter = ScrubbingSpanExporter(kept, Scrubber())
        secret = {"url.query": "token=abc123", "http.request.header.authorization": ("Bearer xyz",), "n": 1}
        clean = {"url.path": "/login", "http.response.status_code": 200, "tags": ("a", "b")}
        spans = [_span(secret), _span(clean), _span(secret), _span(clean, {"password": "p"})]

        exporter.export(spans)

        for scrubbed in (kept.spans[0], kept.spans[2]):  # the second time through the pair cache too
            assert scrubbed.attributes == {
                "url.query": f"token={REDACTED}",
                "http.request.header.authorization": REDACTED,
                "n": 1,
            }
        assert kept.spans[1] is spans[1]
        assert kept.spans[3].attributes == clean
        assert kept.spans[3].events[0].attributes == {"password": REDACTED}

    def test_recorded_exceptions_are_scrubbed_like_log_lines(self) -> None:
        kept = _Keep()
        exporter = ScrubbingSpanExporter(kept, Scrubber())
        span = TracerProvider().get_tracer("t").start_span("login")
        try:
            raise RuntimeError("database login failed: password=hunter2")
        except RuntimeError as err:
            span.record_exception(err)
            span.set_status(Status(StatusCode.ERROR, f"{type(err).__name__}: {err}"))
        span.add_event("retry", {"attempts": [{"url": "https://x.example/?api_key=k3y"}]})  # type: ignore[dict-item]
        span.end()

        exporter.export([span])  # type: ignore[list-item]

        [exported] = kept.spans
        exception = dict(exported.events[0].attributes or {})
        assert exception["exception.message"] == f"database login failed: password={REDACTED}"
        assert "hunter2" not in str(exception["exception.stacktrace"])
        assert "Traceback" in str(exception["exception.stacktrace"])
        assert exported.status.description == f"RuntimeError: database login failed: password={REDACTED}"
        assert "k3y" not in repr(exported.events[1].attributes)

    def test_span_name_is_scrubbed(self) -> None:
        kept = _Keep()
        span = TracerProvider().get_tracer("t").start_span("GET /reset?token=abc123")
        span.end()

        ScrubbingSpanExporter(kept, Scrubber()).export([span])  # type: ignore[list-item]

        assert kept.spans[0].name == f"GET /reset?token={REDACTED}"
