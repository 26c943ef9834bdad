"""Request IDs: accept or mint one per request, return it, log it, pass it downstream.

The framework instrumentations give us three public hooks, so nothing is patched:

* their request hook (ASGI ``server_request_hook``, Flask ``request_hook``) runs inside the
  server span: we pick the ID there, record it on the span and remember it for this request;
* the global *response* propagator is called on every response, 500s included: we add the
  ID and a ``Server-Timing`` header there;
* the global *text-map* propagator is called by every HTTP client instrumentation: we add
  the same header to outgoing requests so the next service keeps the ID.

The remembered ID is tied to the request's trace ID and only returned while that trace is
current, so a log line written between requests never inherits a stale ID.
"""

from __future__ import annotations

import os
import re
import sys
import time
from collections.abc import Callable, Iterable, Mapping
from contextvars import ContextVar
from typing import Any, NamedTuple

from opentelemetry import trace
from opentelemetry.context import Context, get_current
from opentelemetry.instrumentation.propagators import ResponsePropagator
from opentelemetry.propagators import textmap
from opentelemetry.trace import Span, format_span_id, format_trace_id

__all__ = [
    "SPAN_ATTRIBUTE",
    "RequestIdPropagator",
    "RequestIdResponsePropagator",
    "RequestIds",
    "get_request_id",
    "is_safe_request_id",
    "new_request_id",
]

SPAN_ATTRIBUTE = "request.id"

# Inbound IDs end up in logs, spans and response headers: only short, plain tokens pass.
_SAFE_ID = re.compile(r"[A-Za-z0-9._:\-]{1,128}")


class _Active(NamedTuple):
    trace_id: int
    request_id: str
    started: float  # perf_counter() at request start, for Server-Timing and slow requests
    method: str
    span: Span
    path: str  # route template when the framework resolved one, else the raw path
    crumbs: list[Any]  # the request's recent log records (otel_distro.logs._breadcrumbs)

    def route(self) -> str:
        """`http.route` as the instrumentation recorded it, else what the framework knows."""
        attributes = getattr(self.span, "attributes", None)
        route = attributes.get("http.route") if attributes else None
        return str(route) if route else self.path


# Called when a response starts: (request, status code, the exception being handled if any).
ResponseCallback = Callable[[_Active, int, "BaseException | None"], None]


_active: ContextVar[_Active | None] = ContextVar("otel_distro_request", default=None)


def is_safe_request_id(value: str) -> bool:
    """True when an inbound ID is short and made only of conservative characters."""
    return _SAFE_ID.fullmatch(value) is not None


def new_request_id() -> str:
    """A fresh random ID: 32 hex characters."""
    return os.urandom(16).hex()


def _active_for(context: Context | None = None) -> _Active | None:
    active = _active.get()
    if active is None:
        return None
    span_context = trace.get_current_span(context).get_span_context()
    return active if span_context.trace_id == active.trace_id else None


def request_id_for_trace(trace_id: int) -> str | None:
    """The request ID when the request being handled has this trace ID (the log-record path)."""
    active = _active.get()
    return active.request_id if active is not None and active.trace_id == trace_id else None


def request_crumbs(request_id: str) -> list[Any] | None:
    """The breadcrumb list of the request being handled, when its ID is `request_id`."""
    active = _active.get()
    return active.crumbs if active is not None and active.request_id == request_id else None


def get_request_id(context: Context | None = None) -> str | None:
    """The ID of the request being handled, or None outside a request."""
    active = _active_for(context)
    return active.request_id if active else None


def _asgi_header(scope: Mapping[str, Any], name: bytes) -> str | None:
    headers: Iterable[tuple[bytes, bytes]] = scope.get("headers") or ()
    for key, value in headers:
        if key.lower() == name:
            return value.decode("latin-1")
    return None


class RequestIds:
    """Server-side hooks; one instance per process, built from settings."""

    def __init__(self, header: str, trust_inbound: bool, on_response: ResponseCallback | None = None) -> None:
        self.header = header
        self.asgi_key = header.lower().encode("latin-1")  # the header's name in an ASGI scope
        self.wsgi_key = "HTTP_" + header.upper().replace("-", "_")  # ... and in a WSGI environ
        self._trust_inbound = trust_inbound
        self._on_response = on_response

    def choose(self, inbound: str | None) -> str:
        """The request's ID: the inbound one (the header's value) when trusted and safe, else a new one."""
        if inbound is not None and self._trust_inbound and is_safe_request_id(inbound):
            return inbound
        return new_request_id()

    def activate(self, span: Span, request_id: str, method: str, path: str) -> None:
        """Remember `request_id` for the request traced by `span` (which records it already)."""
        trace_id = span.get_span_context().trace_id
        _active.set(_Active(trace_id, request_id, time.perf_counter(), method, span, path, []))

    def begin(self, span: Span, inbound: str | None, method: str, path: str) -> None:
        """A request started in `span`: pick its ID, remember it, record it on the span."""
        request_id = self.choose(inbound)
        self.activate(span, request_id, method, path)
        if span.is_recording():
            span.set_attribute(SPAN_ATTRIBUTE, request_id)

    def asgi_server_request_hook(self, span: Span, scope: dict[str, Any]) -> None:
        """`server_request_hook` of the ASGI/FastAPI instrumentation."""
        if scope.get("type") == "http":
            inbound = _asgi_header(scope, self.asgi_key)
            self.begin(span, inbound, str(scope.get("method", "")), str(scope.get("path", "")))

    def wsgi_request_hook(self, span: Span, environ: dict[str, Any]) -> None:
        """`request_hook` of the Flask/WSGI instrumentation."""
        method, path = str(environ.get("REQUEST_METHOD", "")), str(environ.get("PATH_INFO", ""))
        self.begin(span, environ.get(self.wsgi_key), method, path)

    def wsgi_response_hook(self, span: Span, status: str, headers: list[tuple[str, str]]) -> None:
        """`response_hook` of the contrib Flask instrumentation: the response is starting."""
        self.request_ended(span, int(status.split(" ", 1)[0]) if status[:3].isdigit() else 0)

    def request_ended(self, span: Span, status: int) -> None:
        """The request being handled ends with `status` (writes its `request completed` line)."""
        active = _active_for()
        if active is not None and self._on_response is not None:
            self._on_response(active, status, sys.exc_info()[1])

    def asgi_response_started(self, active: _Active, status: int) -> None:
        if self._on_response is not None:
            # Starlette sends its 500 from inside the `except` block: the error is visible here.
            self._on_response(active, status, sys.exc_info()[1])


def _carrier_has(carrier: Any, name: str) -> bool:
    """Whether the app already set this response header (ASGI message or WSGI header list)."""
    lowered = name.lower()
    if isinstance(carrier, dict):
        raw = lowered.encode("latin-1")
        return any(bytes(k).lower() == raw for k, _ in carrier.get("headers") or ())
    if isinstance(carrier, list):
        return any(str(k).lower() == lowered for k, _ in carrier)
    return False


class RequestIdResponsePropagator(ResponsePropagator):  # type: ignore[misc]
    """Adds the request ID and `Server-Timing` to every instrumented response."""

    def __init__(self, request_ids: RequestIds, server_timing: bool) -> None:
        self._request_ids = request_ids
        self._header = request_ids.header
        self._server_timing = server_timing
        header = self._header
        exposed = [header, "Server-Timing"] if server_timing else [header]
        self._expose = ", ".join(exposed)

    def inject(
        self,
        carrier: textmap.CarrierT,
        context: Context | None = None,
        setter: textmap.Setter[Any] = textmap.default_setter,
    ) -> None:
        active = _active_for(context)
        if active is None:
            return
        if isinstance(carrier, dict) and "status" in carrier:  # ASGI http.response.start
            self._request_ids.asgi_response_started(active, int(carrier["status"]))
        if not _carrier_has(carrier, self._header):
            setter.set(carrier, self._header, active.request_id)
        if self._server_timing:
            span_context = trace.get_current_span(context).get_span_context()
            millis = (time.perf_counter() - active.started) * 1000
            traceparent = (
                f"00-{format_trace_id(span_context.trace_id)}-{format_span_id(span_context.span_id)}"
                f"-{int(span_context.trace_flags):02x}"
            )
            setter.set(carrier, "Server-Timing", f'app;dur={millis:.1f}, traceparent;desc="{traceparent}"')
        # Lets browser code read the headers on cross-origin responses.
        setter.set(carrier, "Access-Control-Expose-Headers", self._expose)


class RequestIdPropagator(textmap.TextMapPropagator):
    """Puts the current request ID on outgoing requests; extraction is the server hooks' job."""

    def __init__(self, header: str) -> None:
        self._header = header

    def extract(
        self,
        carrier: textmap.CarrierT,
        context: Context | None = None,
        getter: textmap.Getter[textmap.CarrierT] = textmap.default_getter,
    ) -> Context:
        return context if context is not None else get_current()

    def inject(
        self,
        carrier: textmap.CarrierT,
        context: Context | None = None,
        setter: textmap.Setter[textmap.CarrierT] = textmap.default_setter,
    ) -> None:
        request_id = get_request_id(context)
        if request_id is not None:
            setter.set(carrier, self._header, request_id)

    @property
    def fields(self) -> set[str]:
        return {self._header}
