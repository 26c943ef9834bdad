"""The OpenTelemetry HTTP semantic conventions for server spans and metrics, as both our
framework integrations apply them: attribute names and values, the status rules (5xx is an
error for a server, 4xx is not), the metric instruments with their units and buckets, and the
instrumentation scope our telemetry is reported under."""

from __future__ import annotations

from typing import Any

from opentelemetry import trace
from opentelemetry.metrics import Histogram, Meter, UpDownCounter, get_meter
from opentelemetry.semconv._incubating.metrics.http_metrics import (
    create_http_server_active_requests,
    create_http_server_request_body_size,
    create_http_server_response_body_size,
)
from opentelemetry.semconv.schemas import Schemas
from opentelemetry.trace import Span, Status, StatusCode
from opentelemetry.util.http.constants import BOT_PATTERNS, TEST_PATTERNS

from otel_distro._version import __version__
from otel_distro.error_group import ATTRIBUTE as ERROR_GROUP
from otel_distro.error_group import group_id
from otel_distro.http_server._recorder import Recorder

__all__ = [
    "ACTIVE_KEYS",
    "DURATION_BUCKETS",
    "DURATION_KEYS",
    "SCHEMA_URL",
    "SCOPE",
    "Attributes",
    "Instruments",
    "active_requests",
    "apply_status",
    "duration_histogram",
    "record_error",
    "redact_query",
    "request_body_size",
    "response_body_size",
    "sanitize_method",
    "set_user_agent",
    "span_name_method",
]

Attributes = dict[str, Any]

SCHEMA_URL = Schemas.V1_30_0.value
SCOPE = "otel_distro.http_server"  # + ".fastapi" / ".flask", with the distro's version

# `http.server.request.duration`'s explicit bucket boundaries (seconds), as the conventions advise.
DURATION_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0)

# The attribute keys the request metrics keep (`http.server.active_requests` keeps fewer).
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
    """Upper-cased known method, else `_OTHER` (the conventions' bound on method cardinality)."""
    method = method.upper()
    return method if method in _KNOWN_METHODS else "_OTHER"


def span_name_method(raw: str) -> str:
    """The method part of a span name: `HTTP` for unknown methods."""
    method = sanitize_method(raw.strip())
    return "HTTP" if method == "_OTHER" else method


def set_method(result: Attributes, raw: str) -> None:
    """`http.request.method`, plus `http.request.method_original` when the request's differs."""
    original = raw.strip()
    normalized = sanitize_method(raw).strip()
    if original != normalized and original:
        result["http.request.method_original"] = original
    if normalized:
        result["http.request.method"] = normalized


def set_user_agent(result: Attributes, user_agent: str) -> None:
    """`user_agent.original`, and `user_agent.synthetic.type` for test tools and bots."""
    result["user_agent.original"] = user_agent
    lowered = user_agent.lower()
    if any(p in lowered for p in TEST_PATTERNS):
        result["user_agent.synthetic.type"] = "test"
    elif any(p in lowered for p in BOT_PATTERNS):
        result["user_agent.synthetic.type"] = "bot"


# Query parameters whose values the conventions say to replace with `REDACTED` (signed URLs).
_SENSITIVE_QUERY_KEYS = frozenset(("AWSAccessKeyId", "Signature", "sig", "X-Goog-Signature"))


def redact_query(query: str) -> str:
    """`url.query` with the values of signed-URL parameters replaced; unchanged (and cheap) otherwise."""
    if "ig" not in query and "AWSAccessKeyId" not in query:  # every sensitive key but one contains "ig"
        return query
    parts = query.split("&")
    for i, part in enumerate(parts):
        key, equals, _ = part.partition("=")
        if equals and key in _SENSITIVE_QUERY_KEYS:
            parts[i] = key + "=REDACTED"
    return "&".join(parts)


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
    """Response status on the span and the metric attributes: for a server, 5xx (and anything
    that is not a status code) is an error with `error.type` the status; 4xx is the client's."""
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
        explicit_bucket_boundaries_advisory=DURATION_BUCKETS,
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


class Instruments:
    """One app's tracer and request metrics, under our scope (`otel_distro.http_server.<framework>`)."""

    def __init__(self, framework: str, tracer_provider: Any, meter_provider: Any) -> None:
        scope = f"{SCOPE}.{framework}"
        self.tracer = trace.get_tracer(scope, __version__, tracer_provider, schema_url=SCHEMA_URL)
        meter = get_meter(scope, __version__, meter_provider, schema_url=SCHEMA_URL)
        self.duration = Recorder(duration_histogram(meter), negative_allowed=False)
        self.active = Recorder(active_requests(meter), negative_allowed=True)
        self.request_size = Recorder(request_body_size(meter), negative_allowed=False)
        self.response_size = Recorder(response_body_size(meter), negative_allowed=False)
