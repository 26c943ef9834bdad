"""The stable HTTP semantic conventions as the contrib instrumentations apply them in
`OTEL_SEMCONV_STABILITY_OPT_IN=http` mode (`opentelemetry.instrumentation._semconv`), without
their per-call mode checks and environment reads."""

from __future__ import annotations

from typing import Any

from opentelemetry.instrumentation._semconv import HTTP_DURATION_HISTOGRAM_BUCKETS_NEW
from opentelemetry.metrics import Histogram, Meter, UpDownCounter
from opentelemetry.semconv._incubating.metrics.http_metrics import (
    create_http_server_active_requests,
    create_http_server_request_body_size,
    create_http_server_response_body_size,
)
from opentelemetry.semconv.schemas import Schemas
from opentelemetry.trace import Span, Status, StatusCode
from opentelemetry.util.http.constants import BOT_PATTERNS, TEST_PATTERNS

from otel_distro.error_group import ATTRIBUTE as ERROR_GROUP
from otel_distro.error_group import group_id

__all__ = [
    "ACTIVE_KEYS",
    "DURATION_KEYS",
    "SCHEMA_URL",
    "Attributes",
    "active_requests",
    "apply_status",
    "duration_histogram",
    "record_error",
    "request_body_size",
    "response_body_size",
    "sanitize_method",
    "set_user_agent",
    "span_name_method",
]

Attributes = dict[str, Any]

SCHEMA_URL = Schemas.V1_21_0.value

# The attribute keys each metric keeps (`_server_*_attrs_new` upstream).
DURATION_KEYS = (
    "error.type",
    "http.request.method",
    "http.response.status_code",
    "http.route",
    "network.protocol.version",
    "url.scheme",
)
ACTIVE_KEYS = ("http.request.method", "url.scheme")

_KNOWN_METHODS = frozenset(("GET", "HEAD", "POST", "PUT", "DELETE", "CONNECT", "OPTIONS", "TRACE", "PATCH", "QUERY"))


def sanitize_method(method: str) -> str:
    """Upper-cased known method, else `_OTHER` (`util.http.sanitize_method` without its env read)."""
    method = method.upper()
    return method if method in _KNOWN_METHODS else "_OTHER"


def span_name_method(raw: str) -> str:
    """The method part of a span name: `HTTP` for unknown methods."""
    method = sanitize_method(raw.strip())
    return "HTTP" if method == "_OTHER" else method


def set_method(result: Attributes, raw: str) -> None:
    """`http.request.method` (+ `_original` when it differs), as `_set_http_method`."""
    original = raw.strip()
    normalized = sanitize_method(raw).strip()
    if original != normalized and original:
        result["http.request.method_original"] = original
    if normalized:
        result["http.request.method"] = normalized


def set_user_agent(result: Attributes, user_agent: str) -> None:
    """`user_agent.original` and the synthetic type, as the contrib helpers set them."""
    result["user_agent.original"] = user_agent
    lowered = user_agent.lower()
    if any(p in lowered for p in TEST_PATTERNS):
        result["user_agent.synthetic.type"] = "test"
    elif any(p in lowered for p in BOT_PATTERNS):
        result["user_agent.synthetic.type"] = "bot"


def set_int(result: Attributes, key: str, value: Any) -> None:
    if value:
        try:
            number = int(value)
        except (ValueError, TypeError):
            return
        result[key] = number


_UNSET_STATUS = Status(StatusCode.UNSET)
_ERROR_STATUS = Status(StatusCode.ERROR)


def apply_status(span: Span, metric_attributes: Attributes, status_code: int, status_code_str: str) -> None:
    """Response status on the span and the metric attributes, as `_set_status` (server span)."""
    recording = span.is_recording()
    if status_code < 0:
        metric_attributes["error.type"] = status_code_str
        if recording:
            span.set_attribute("error.type", status_code_str)
            span.set_status(Status(StatusCode.ERROR, "Non-integer HTTP status: " + status_code_str))
        return
    error = status_code < 100 or status_code >= 500
    if recording:
        span.set_attribute("http.response.status_code", status_code)
    metric_attributes["http.response.status_code"] = status_code
    if error:
        if recording:
            span.set_attribute("error.type", status_code_str)
        metric_attributes["error.type"] = status_code_str
    if recording:
        span.set_status(_ERROR_STATUS if error else _UNSET_STATUS)


def duration_histogram(meter: Meter) -> Histogram:
    return meter.create_histogram(
        name="http.server.request.duration",
        unit="s",
        description="Duration of HTTP server requests.",
        explicit_bucket_boundaries_advisory=HTTP_DURATION_HISTOGRAM_BUCKETS_NEW,
    )


def active_requests(meter: Meter) -> UpDownCounter:
    return create_http_server_active_requests(meter)


def request_body_size(meter: Meter) -> Histogram:
    return create_http_server_request_body_size(meter)


def response_body_size(meter: Meter) -> Histogram:
    return create_http_server_response_body_size(meter)


def pick(attributes: Attributes, keys: tuple[str, ...]) -> Attributes:
    """The subset of `attributes` a metric records."""
    return {k: attributes[k] for k in keys if k in attributes}


def record_error(span: Span, exc: Exception) -> None:
    """The exception event (with its error group) and ERROR status of a failed request's span."""
    span.record_exception(exc, {ERROR_GROUP: group_id(exc)})
    span.set_status(Status(StatusCode.ERROR, f"{type(exc).__name__}: {exc}"))
