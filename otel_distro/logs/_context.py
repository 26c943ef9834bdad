"""Trace, span and request IDs of the current context, as log fields."""

from __future__ import annotations

import logging
from typing import Any

from opentelemetry import trace

from otel_distro.request_id import request_id_for_trace

# LogRecord attribute names: prefixed so an app's own `extra={"trace_id": ...}` never collides.
TRACE_ID = "otel_trace_id"
SPAN_ID = "otel_span_id"
REQUEST_ID = "otel_request_id"
RECORD_FIELDS = (TRACE_ID, SPAN_ID, REQUEST_ID)


def current_ids() -> tuple[str, str, str]:
    """(trace_id, span_id, request_id) as hex strings; empty strings outside a span."""
    span_context = trace.get_current_span().get_span_context()
    if not span_context.is_valid:
        return "", "", ""
    trace_id = span_context.trace_id
    return (
        f"{trace_id:032x}",
        f"{span_context.span_id:016x}",
        request_id_for_trace(trace_id) or "",
    )


def install_record_factory() -> None:
    """Stamp the IDs on every LogRecord when it is created.

    Doing it at creation (not in a handler) keeps the IDs right for handlers that run
    later on another thread, such as a QueueHandler's listener. Idempotent.
    """
    previous = logging.getLogRecordFactory()
    if getattr(previous, "_otel_distro", False):
        return

    def factory(*args: Any, **kwargs: Any) -> logging.LogRecord:
        record = previous(*args, **kwargs)
        trace_id, span_id, request_id = current_ids()
        record.otel_trace_id = trace_id
        record.otel_span_id = span_id
        record.otel_request_id = request_id
        return record

    factory._otel_distro = True  # type: ignore[attr-defined]
    logging.setLogRecordFactory(factory)
