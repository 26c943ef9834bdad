"""The upstream OTLP/HTTP span and log exporters, sending bodies from our faster encoder.

Only the encoding changes: endpoint, headers, timeout, compression, retries, TLS and the
exporters' own metrics are upstream's, configured by the same variables. Whatever is not the
plain path (exporter shut down, a value our encoder leaves to upstream, an oversized batch)
goes to the upstream `export`, which re-encodes the batch and handles it as it always does.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from opentelemetry.exporter.otlp.proto.http._common import _is_request_too_large
from opentelemetry.exporter.otlp.proto.http._log_exporter import OTLPLogExporter as _UpstreamLogExporter
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter as _UpstreamSpanExporter
from opentelemetry.sdk._logs import ReadableLogRecord
from opentelemetry.sdk._logs.export import LogRecordExportResult
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import SpanExportResult

from otel_distro.otlp_encoding import encode_log_request, encode_span_request

__all__ = ["OTLPLogExporter", "OTLPSpanExporter"]

_HTTP_RESPONSE_STATUS_CODE = "http.response.status_code"


def _send(exporter: Any, body: bytes, count: int) -> bool:
    """POST an encoded batch through the exporter's own client; True when it was accepted."""
    with exporter._metrics.export_operation(count) as result:
        sent = exporter._client.export(body)
        if not sent.success:
            result.error = sent.error
            if sent.status_code is not None:
                result.error_attrs = {_HTTP_RESPONSE_STATUS_CODE: sent.status_code}
            return False
    return True


def _encoded(exporter: Any, encode: Any, batch: Sequence[Any]) -> bytes | None:
    """The batch's body, or None when upstream should handle this batch itself."""
    if exporter._shutdown or not batch:
        return None
    try:
        body: bytes = encode(batch)
    except Exception:  # upstream encodes (or reports) what we do not handle
        return None
    return None if _is_request_too_large(body, exporter._max_request_size) else body


class OTLPSpanExporter(_UpstreamSpanExporter):
    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        body = _encoded(self, encode_span_request, spans)
        if body is None:
            return super().export(spans)
        return SpanExportResult.SUCCESS if _send(self, body, len(spans)) else SpanExportResult.FAILURE


class OTLPLogExporter(_UpstreamLogExporter):
    def export(self, batch: Sequence[ReadableLogRecord]) -> LogRecordExportResult:
        body = _encoded(self, encode_log_request, batch)
        if body is None:
            return super().export(batch)
        return LogRecordExportResult.SUCCESS if _send(self, body, len(batch)) else LogRecordExportResult.FAILURE
