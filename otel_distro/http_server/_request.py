"""One request's outcome, written the same way for both frameworks.

How a request starts differs (an ASGI scope, a WSGI environ and Flask's hooks); how it ends does
not. `on_response_start` writes the response status (span and metric attributes) and the response
headers (the global response propagator); `end_request` writes the metrics, the request log
line and the span's end, once, whichever way the request ends: its last body byte sent, an
exception, a client gone, Flask's teardown.
"""

from __future__ import annotations

from timeit import default_timer
from typing import Any

from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.instrumentation.propagators import get_global_response_propagator
from opentelemetry.propagators.textmap import Setter
from opentelemetry.trace import Span

from otel_distro.http_server._semconv import (
    ACTIVE_KEYS,
    DURATION_KEYS,
    Attributes,
    Instruments,
    apply_status,
    pick,
    record_error,
)
from otel_distro.request_id import RequestIds

__all__ = ["HeaderList", "ServerRequest", "end_request", "fail", "on_response_start", "parse_size"]

HeaderList = list[tuple[str, str]]


class _HeaderListSetter(Setter[HeaderList]):
    """Response headers are a list of (name, value) pairs in both frameworks (ASGI's decoded)."""

    def set(self, carrier: HeaderList, key: str, value: str) -> None:
        carrier.append((key, value))


_SETTER = _HeaderListSetter()


class ServerRequest:
    """What one traced request has recorded so far."""

    __slots__ = ("attributes", "ended", "error", "head", "metered", "request_size", "response_size", "span", "start")

    def __init__(self, span: Span, attributes: Attributes, start: float, *, metered: bool, head: bool) -> None:
        self.span = span
        self.attributes = attributes  # the span's request attributes; status and route are added
        self.start = start  # default_timer() when the request arrived
        self.metered = metered  # HTTP requests are measured; WebSocket connections are not
        self.head = head  # a HEAD response has no body, whatever its Content-Length says
        self.request_size: int | None = None
        self.response_size: int | None = None
        self.error: BaseException | None = None
        self.ended = False


def on_response_start(request: ServerRequest, status: int | str, headers: HeaderList) -> None:
    """The response's status line and headers are about to be sent: record the status, add ours."""
    text = str(status)
    try:
        code = int(status)
    except ValueError:
        code = -1
    apply_status(request.span, request.attributes, code, text)
    if request.head:
        request.response_size = 0
    else:
        for name, value in headers:
            if len(name) == 14 and name.lower() == "content-length":
                request.response_size = parse_size(value)
                break
    propagator = get_global_response_propagator()
    if propagator is not None:
        propagator.inject(headers, context=trace.set_span_in_context(request.span, Context()), setter=_SETTER)


def fail(request: ServerRequest, exc: BaseException) -> None:
    """An exception escaped the app: on the span once (an inner and an outer layer may both see it)."""
    if request.error is exc:
        return
    request.error = exc
    if isinstance(exc, Exception) and request.span.is_recording():
        record_error(request.span, exc)


def end_request(request: ServerRequest, instruments: Instruments, request_ids: RequestIds | None) -> None:
    """The request is over: its metrics, its request log line (while its span is current), the span's end."""
    if request.ended:
        return
    request.ended = True
    span = request.span
    if request.error is not None and "http.response.status_code" not in request.attributes:
        # No response was started: the exception that ended the request is the error.
        error_type = type(request.error).__qualname__
        request.attributes["error.type"] = error_type
        if span.is_recording():
            span.set_attribute("error.type", error_type)
    if request.metered:
        attributes = pick(request.attributes, DURATION_KEYS)
        context = trace.set_span_in_context(span)
        instruments.duration.record(max(default_timer() - request.start, 0), attributes, context=context)
        if request.request_size is not None:
            instruments.request_size.record(request.request_size, attributes, context=context)
        if request.response_size is not None:
            instruments.response_size.record(request.response_size, attributes, context=context)
        instruments.active.record(-1, pick(request.attributes, ACTIVE_KEYS))
        if request_ids is not None:
            status = request.attributes.get("http.response.status_code", 0)
            request_ids.request_ended(span, status if isinstance(status, int) else 0)
    span.end()


def parse_size(value: Any) -> int | None:
    """A Content-Length value (str or bytes), or None when it is not a number."""
    try:
        return int(value)
    except (TypeError, ValueError):
        return None
