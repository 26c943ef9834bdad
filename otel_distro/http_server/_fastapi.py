"""FastAPI: the server span and HTTP metrics of `opentelemetry-instrumentation-fastapi` (its ASGI
middleware with `send`/`receive` spans excluded), made once.

The middleware stack is built as contrib builds it (our middleware between two
`ServerErrorMiddleware`s, an exception recorder inside), so 500s and unhandled exceptions
produce the same spans, responses and propagation. Per request the headers are indexed once,
the excluded-URL and route answers are cached, and no send/receive wrappers are created
beyond the one `send` that sets the response status.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, MutableMapping
from contextvars import ContextVar
from timeit import default_timer
from typing import Any

from opentelemetry import context, trace
from opentelemetry.context import Context
from opentelemetry.instrumentation.asgi import asgi_setter
from opentelemetry.instrumentation.fastapi import _get_route_details
from opentelemetry.instrumentation.fastapi.version import __version__
from opentelemetry.instrumentation.propagators import get_global_response_propagator
from opentelemetry.instrumentation.utils import is_http_instrumentation_enabled
from opentelemetry.metrics import get_meter
from opentelemetry.propagate import extract
from opentelemetry.propagators.textmap import Getter
from opentelemetry.trace import INVALID_SPAN, Span, SpanKind
from starlette.background import BackgroundTask
from starlette.middleware.errors import ServerErrorMiddleware

from otel_distro.http_server._config import Config
from otel_distro.http_server._recorder import Recorder
from otel_distro.http_server._semconv import (
    ACTIVE_KEYS,
    DURATION_KEYS,
    SCHEMA_URL,
    Attributes,
    active_requests,
    apply_status,
    duration_histogram,
    pick,
    record_error,
    request_body_size,
    response_body_size,
    set_int,
    set_method,
    set_user_agent,
    span_name_method,
)

__all__ = ["fastapi_class", "untrace_background_tasks"]

SCOPE = "opentelemetry.instrumentation.fastapi"
_log = logging.getLogger(SCOPE)

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
AsgiApp = Callable[[Scope, Receive, Send], Awaitable[None]]
Headers = dict[bytes, list[bytes]]

_MAX_ROUTES_CACHED = 2048

# The headers list of the request whose server span this context carries. A mounted app is
# called with the same scope (updated in place), so the same list; another request never is.
_serving: ContextVar[object] = ContextVar("otel_distro_serving", default=None)


def _decode(value: bytes) -> str:
    """contrib's `_decode_header_item`."""
    try:
        return value.decode("utf-8")
    except ValueError:
        return value.decode("unicode_escape")


def _index(scope: Scope) -> Headers:
    """Request headers by lower-cased name, read once for every lookup of the request."""
    index: Headers = {}
    for key, value in scope.get("headers") or ():
        key = key.lower()
        if key in index:
            index[key].append(value)
        else:
            index[key] = [value]
    return index


class _IndexGetter(Getter[Headers]):
    """`asgi_getter` over the header index: the propagators see the same values."""

    def get(self, carrier: Headers, key: str) -> list[str] | None:
        values = carrier.get(key.lower().encode("utf-8"))
        return [_decode(v) for v in values] if values else None

    def keys(self, carrier: Headers) -> list[str]:
        return [_decode(k) for k in carrier]


_getter = _IndexGetter()


def _first(headers: Any, name: bytes) -> bytes | None:
    for key, value in headers or ():
        if key.lower() == name:
            return bytes(value)
    return None


def request_attributes(scope: Scope, index: Headers, server_host: str, port: Any) -> Attributes:
    """`otel_asgi.collect_request_attributes(scope, HTTP)`, without the mode checks."""
    result: Attributes = {}
    scheme = scope.get("scheme")
    if scheme:
        result["url.scheme"] = scheme
    if server_host:
        result["server.address"] = server_host
    if port:
        set_int(result, "server.port", port)
    flavor = scope.get("http_version")
    if flavor:
        result["network.protocol.version"] = flavor
    path = scope.get("path")
    if path:
        result["url.path"] = path
        query = scope.get("query_string")
        if isinstance(query, bytes):
            query = query.decode("utf8", "replace")  # contrib's strict decode would fail the request
        if query:
            result["url.query"] = query
    method = scope.get("method", "")
    if method:
        set_method(result, method)
    user_agent = index.get(b"user-agent")
    if user_agent:
        value = _decode(user_agent[0])
        if value:
            set_user_agent(result, value)
    client = scope.get("client")
    if client is not None:
        if client[0]:
            result["client.address"] = client[0]
        set_int(result, "client.port", client[1])
    return result


class _ExceptionRecorder:
    """contrib's `ExceptionHandlerMiddleware`: the exception on the server span before the
    inner `ServerErrorMiddleware` turns it into a 500."""

    def __init__(self, app: AsgiApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await self.app(scope, receive, send)
        except Exception as exc:
            span = trace.get_current_span()
            if span.is_recording():
                record_error(span, exc)
            raise


class _Middleware:
    """contrib's `OpenTelemetryMiddleware` for `http` and `websocket` scopes, send/receive spans
    excluded, in `OTEL_SEMCONV_STABILITY_OPT_IN=http` mode."""

    def __init__(self, app: AsgiApp, server: _FastAPIServer) -> None:
        self.app = app
        self._server = server
        self._tracer = server.tracer
        self._excluded = server.config.excluded
        self._request_ids = server.config.request_ids
        self._routes: dict[tuple[Any, ...], str | None] = {}
        # Contrib keeps the last response's Content-Length on the middleware, not per request.
        self.content_length_header: int | None = None

    def _route(self, scope: Scope, index: Headers) -> str | None:
        app = scope["app"]
        host = index.get(b"host")
        key = (
            id(app),
            len(app.routes),
            scope["type"],
            scope.get("method"),
            scope.get("path"),
            scope.get("root_path"),
            host[0] if host else None,
        )
        try:
            return self._routes[key]
        except KeyError:
            pass
        route: str | None = _get_route_details(scope)
        if len(self._routes) >= _MAX_ROUTES_CACHED:
            self._routes.clear()
        self._routes[key] = route
        return route

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        start = default_timer()
        kind = scope["type"]
        if kind not in ("http", "websocket") or not is_http_instrumentation_enabled():
            return await self.app(scope, receive, send)
        index = _index(scope)
        server = scope.get("server") or ("0.0.0.0", 80)
        port = server[1]
        server_host = server[0] + (":" + str(port) if str(port) != "80" else "")
        host = index.get(b"host")
        url_host = _decode(host[0]) if host else server_host
        url = scope.get("scheme", "http") + "://" + url_host + scope.get("path", "")
        if self._excluded.excluded(url, lambda: url):
            return await self.app(scope, receive, send)

        route = self._route(scope, index)
        method = span_name_method(scope.get("method", ""))
        name = f"{method} {route}" if method and route else route or method
        attributes = request_attributes(scope, index, server_host, port)
        if route:
            attributes["http.route"] = route
        ids = self._request_ids
        http = kind == "http"
        if ids is not None and http:  # the request hook's attribute, set at start rather than after
            inbound = index.get(ids.asgi_key)
            request_id = attributes["request.id"] = ids.choose(inbound[0].decode("latin-1") if inbound else None)
        parent = context.get_current()
        token = None
        headers, serving_before = scope.get("headers"), _serving.get()
        if trace.get_current_span(parent) is INVALID_SPAN:
            parent = extract(index, getter=_getter)
            token = context.attach(parent)
            span_kind = SpanKind.SERVER
        elif serving_before is not None and serving_before is not headers:
            # Another request's span, left current by asyncio: a reader resumed inside a request's
            # receive() (bodies over 64 KiB) or a pipelined request started from its last send()
            # runs in that request's context. This request starts afresh.
            parent = extract(index, getter=_getter, context=Context())
            token = context.attach(parent)
            span_kind = SpanKind.SERVER
        else:
            span_kind = SpanKind.INTERNAL
        serving = _serving.set(headers)
        span = self._tracer.start_span(name, parent, span_kind, attributes)
        active_attributes = pick(attributes, ACTIVE_KEYS)
        if http:
            self._server.active.record(1, active_attributes)
        try:
            if ids is not None and http:
                ids.activate(span, request_id, str(scope.get("method", "")), str(scope.get("path", "")))
            await self._call_in_span(span, parent, scope, receive, send, attributes)
        finally:
            if http:
                self._record(span, start, attributes, active_attributes, index)
            _serving.reset(serving)
            if token:
                context.detach(token)
            if span.is_recording():
                span.end()

    async def _call_in_span(
        self,
        span: Span,
        parent: Context,
        scope: Scope,
        receive: Receive,
        send: Send,
        attributes: Attributes,
    ) -> None:
        """`with trace.use_span(span)`: current while the app runs; an escaping exception is recorded."""
        try:
            span_token = context.attach(trace.set_span_in_context(span, parent))
            try:
                await self.app(scope, receive, self._send(span, send, attributes))
            finally:
                context.detach(span_token)
        except Exception as exc:
            if span.is_recording():
                record_error(span, exc)
            raise

    def _send(self, span: Span, send: Send, attributes: Attributes) -> Send:
        async def otel_send(message: Message) -> None:
            kind = message["type"]
            status = message["status"] if kind == "http.response.start" else 200 if kind == "websocket.send" else None
            if status:
                text = str(status)
                try:
                    code = int(status)
                except ValueError:
                    code = -1
                apply_status(span, attributes, code, text)
            propagator = get_global_response_propagator()
            # Contrib also injects into body messages, whose headers no server reads: skipped.
            if propagator and kind != "http.response.body":
                propagator.inject(message, context=trace.set_span_in_context(span, Context()), setter=asgi_setter)
            content_length = _first(message.get("headers"), b"content-length")
            if content_length:
                self._remember_content_length(content_length)
            await send(message)
            if kind == "http.response.body" and not message.get("more_body", False):
                span.end()

        return otel_send

    def _remember_content_length(self, value: bytes) -> None:
        try:
            self.content_length_header = int(_decode(value))
        except ValueError:
            return

    def _record(
        self, span: Span, start: float, attributes: Attributes, active_attributes: Attributes, index: Headers
    ) -> None:
        server = self._server
        duration_attributes = pick(attributes, DURATION_KEYS)
        span_context = trace.set_span_in_context(span)
        server.duration.record(max(default_timer() - start, 0), duration_attributes, context=span_context)
        server.active.record(-1, active_attributes)
        if self.content_length_header:
            server.response_size.record(self.content_length_header, duration_attributes, context=span_context)
        request_size = index.get(b"content-length")
        if request_size:
            try:
                amount = int(_decode(request_size[0]))
            except ValueError:
                return
            server.request_size.record(amount, duration_attributes, context=span_context)


# FastAPI (0.16x) turns its own native telemetry off when it finds contrib's middleware in the
# built stack, matched by module and class name: ours stands in for contrib's, so it must be
# found the same way, or every request would get a second set of spans and metrics.
_Middleware.__name__ = "OpenTelemetryMiddleware"
_Middleware.__module__ = "opentelemetry.instrumentation.asgi"


class _FastAPIServer:
    """One app's tracer, meter and instruments, under contrib's scope."""

    def __init__(self, config: Config) -> None:
        self.config = config
        self.tracer = trace.get_tracer(SCOPE, __version__, config.tracer_provider, schema_url=SCHEMA_URL)
        meter = get_meter(SCOPE, __version__, config.meter_provider, schema_url=SCHEMA_URL)
        self.duration = Recorder(duration_histogram(meter), negative_allowed=False)
        self.response_size = Recorder(response_body_size(meter), negative_allowed=False)
        self.request_size = Recorder(request_body_size(meter), negative_allowed=False)
        self.active = Recorder(active_requests(meter), negative_allowed=True)
        _trace_background_tasks(self.tracer)

    def wrap(self, stack: Any) -> Any:
        """contrib's `build_middleware_stack`, with our middleware in place of its own."""
        if not isinstance(stack, ServerErrorMiddleware):
            _log.error(
                "Skipping FastAPI instrumentation due to unexpected middleware stack: expected %s, got %s",
                ServerErrorMiddleware.__name__,
                type(stack),
            )
            return stack
        inner = ServerErrorMiddleware(app=_ExceptionRecorder(stack.app), handler=stack.handler, debug=stack.debug)
        return ServerErrorMiddleware(app=_Middleware(inner, self))


def _trace_background_tasks(tracer: trace.Tracer) -> None:
    """contrib's span per `BackgroundTask`, installed once (same marker, so contrib can undo it)."""
    if hasattr(BackgroundTask, "_otel_original_call"):
        return
    original = BackgroundTask.__call__
    BackgroundTask._otel_original_call = original  # type: ignore[attr-defined]

    async def traced_call(self: BackgroundTask) -> None:
        span_name = f"BackgroundTask {getattr(self.func, '__name__', self.func.__class__.__name__)}"
        with tracer.start_as_current_span(span_name):
            return await original(self)

    BackgroundTask.__call__ = traced_call  # type: ignore[method-assign]


def untrace_background_tasks() -> None:
    original = BackgroundTask.__dict__.get("_otel_original_call")
    if original is not None:
        BackgroundTask.__call__ = original  # type: ignore[method-assign]
        del BackgroundTask._otel_original_call  # type: ignore[attr-defined]


def fastapi_class(base: type, config: Config) -> type:
    """A subclass of `fastapi.FastAPI` whose every new app builds an instrumented stack."""

    class FastAPI(base):  # type: ignore[misc]
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            self._otel_distro_server = _FastAPIServer(config)
            self._is_instrumented_by_opentelemetry = True

        def build_middleware_stack(self) -> Any:
            return self._otel_distro_server.wrap(super().build_middleware_stack())

    FastAPI.__name__ = FastAPI.__qualname__ = base.__name__
    FastAPI.__module__ = base.__module__
    return FastAPI
