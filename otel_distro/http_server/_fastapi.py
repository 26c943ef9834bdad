"""FastAPI: one server span and the HTTP request metrics per request or WebSocket connection.

Our middleware sits between two `ServerErrorMiddleware`s with an exception recorder inside, so a
failed request's exception is on its span before the inner one turns it into a 500. Per
request the headers are indexed once and the excluded-URL and route answers are cached.
FastAPI's own (native) telemetry is switched off through its public `telemetry` setting.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Iterable, MutableMapping, Sequence
from contextvars import ContextVar
from timeit import default_timer
from typing import Any

from opentelemetry import context, trace
from opentelemetry.context import Context
from opentelemetry.instrumentation.utils import is_http_instrumentation_enabled
from opentelemetry.propagate import extract
from opentelemetry.propagators.textmap import Getter
from opentelemetry.trace import INVALID_SPAN, SpanKind
from starlette.background import BackgroundTask
from starlette.middleware.errors import ServerErrorMiddleware
from starlette.routing import Host, Match, Mount

try:  # FastAPI 0.137.2+
    from fastapi.routing import iter_route_contexts as _iter_route_contexts
except ImportError:  # older: routers are flattened into the app's routes when included
    _iter_route_contexts = None  # type: ignore[assignment]

from otel_distro.http_server._config import Config
from otel_distro.http_server._request import (
    HeaderList,
    ServerRequest,
    end_request,
    fail,
    on_response_start,
    parse_size,
)
from otel_distro.http_server._semconv import (
    ACTIVE_KEYS,
    Attributes,
    Instruments,
    pick,
    redact_query,
    set_int,
    set_method,
    set_user_agent,
    span_name_method,
)

__all__ = ["NATIVE_TELEMETRY_OFF", "fastapi_class", "route_template", "untrace_background_tasks"]

_log = logging.getLogger("otel_distro.http_server.fastapi")

# FastAPI's native telemetry (0.165+), every part of it off: our middleware makes the server
# span and metrics, and FastAPI's would be a second set of each.
NATIVE_TELEMETRY_OFF = {"tracing": False, "metrics": False, "logs": False, "operation_spans": False}

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
# The request being served, for the exception recorder inside the error middleware.
_current: ContextVar[ServerRequest | None] = ContextVar("otel_distro_request", default=None)


def _decode(value: bytes) -> str:
    """A header name or value: UTF-8, else its bytes escaped rather than failing the request."""
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
    """Propagators read the request's trace context from the header index."""

    def get(self, carrier: Headers, key: str) -> list[str] | None:
        values = carrier.get(key.lower().encode("utf-8"))
        return [_decode(v) for v in values] if values else None

    def keys(self, carrier: Headers) -> list[str]:
        return [_decode(k) for k in carrier]


_getter = _IndexGetter()


def request_attributes(scope: Scope, index: Headers, server_host: str, port: Any) -> Attributes:
    """The server span's request attributes from an ASGI scope."""
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
            query = query.decode("utf8", "replace")
        if query:
            result["url.query"] = redact_query(query)
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


def route_template(routes: Sequence[Any], scope: Scope) -> str | None:
    """The path template of the route that serves `scope`, routers and mounts included
    (`/v1/items/{id}`): Starlette's own choice, the first full match, else the first partial
    one (wrong method). Routers included with `include_router` count with their prefix."""
    partial = None
    for candidate in _route_contexts(routes):
        match, child_scope = candidate.matches(scope)
        if match is Match.NONE:
            continue
        route = getattr(candidate, "original_route", candidate)
        path = getattr(candidate, "path", None)
        if match is Match.PARTIAL:
            if partial is None and path is not None:
                partial = str(path)
            continue
        if isinstance(route, (Mount, Host)):
            inner = route.routes
            if not inner:  # a mounted app without routes (static files, a WSGI app)
                return str(candidate.path_format) if isinstance(route, Mount) else None
            template = route_template(inner, {**scope, **child_scope})
            if template is None:
                return None
            return str(path) + template if isinstance(route, Mount) else template
        return str(path) if path is not None else None
    return partial


def _route_contexts(routes: Sequence[Any]) -> Iterable[Any]:
    """FastAPI 0.137+ nests included routers: its public `iter_route_contexts` flattens them
    into routes that match and carry their full (prefixed) path."""
    return _iter_route_contexts(routes) if _iter_route_contexts is not None else routes


class _ExceptionRecorder:
    """Puts an escaping exception on the request's span before the inner `ServerErrorMiddleware`
    turns it into a 500 (and the response ends the request)."""

    def __init__(self, app: AsgiApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await self.app(scope, receive, send)
        except Exception as exc:
            request = _current.get()
            if request is not None:
                fail(request, exc)
            raise


class _Middleware:
    """Starts the server span of each HTTP request and WebSocket connection, and ends it through
    `end_request` when the last body message is sent or the app gives up."""

    def __init__(self, app: AsgiApp, server: _FastAPIServer) -> None:
        self.app = app
        self._server = server
        self._instruments = server.instruments
        self._tracer = server.instruments.tracer
        self._excluded = server.config.excluded
        self._request_ids = server.config.request_ids
        self._routes: dict[tuple[Any, ...], str | None] = {}

    def _route(self, scope: Scope, index: Headers) -> str | None:
        """`http.route`: the template under the application root (`root_path`), cached."""
        app = scope["app"]
        host = index.get(b"host")
        root_path = scope.get("root_path", "")
        key = (
            id(app),
            len(app.routes),
            scope["type"],
            scope.get("method"),
            scope.get("path"),
            root_path,
            host[0] if host else None,
        )
        try:
            return self._routes[key]
        except KeyError:
            pass
        try:
            template = route_template(app.routes, scope)
        except Exception:  # a route type we do not know must not fail the request
            _log.debug("otel-distro: no http.route for %s", scope.get("path"), exc_info=True)
            template = None
        route = root_path.rstrip("/") + template if template is not None else None
        if len(self._routes) >= _MAX_ROUTES_CACHED:
            self._routes.clear()
        self._routes[key] = route
        return route

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        start = default_timer()
        kind = scope["type"]
        if kind not in ("http", "websocket") or not is_http_instrumentation_enabled():
            return await self.app(scope, receive, send)
        headers, serving_before = scope.get("headers"), _serving.get()
        if serving_before is not None and serving_before is headers:
            # A mounted instrumented app: the outer app's span already covers this request
            # (its route names the mounted path), and one request is measured once.
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
        if ids is not None and http:  # recorded at the span's start, so samplers and processors see it
            inbound = index.get(ids.asgi_key)
            request_id = attributes["request.id"] = ids.choose(inbound[0].decode("latin-1") if inbound else None)
        parent = context.get_current()
        token = None
        if trace.get_current_span(parent) is INVALID_SPAN:
            parent = extract(index, getter=_getter)
            token = context.attach(parent)
            span_kind = SpanKind.SERVER
        elif serving_before is not None:
            # Another request's span, left current by asyncio: a reader resumed inside a request's
            # receive() (bodies over 64 KiB) or a pipelined request started from its last send()
            # runs in that request's context. This request starts afresh.
            parent = extract(index, getter=_getter, context=Context())
            token = context.attach(parent)
            span_kind = SpanKind.SERVER
        else:  # the app is called inside a span of the caller's (in-process, tests)
            span_kind = SpanKind.INTERNAL
        span = self._tracer.start_span(name, parent, span_kind, attributes)
        request = ServerRequest(span, attributes, start, metered=http, head=scope.get("method") == "HEAD")
        if http:
            size = index.get(b"content-length")
            if size:
                request.request_size = parse_size(size[0])
            self._instruments.active.record(1, pick(attributes, ACTIVE_KEYS))
        serving, current = _serving.set(headers), _current.set(request)
        try:
            if ids is not None and http:
                ids.activate(span, request_id, str(scope.get("method", "")), str(scope.get("path", "")))
            await self._call_in_span(request, parent, scope, receive, send)
        finally:
            _serving.reset(serving)
            _current.reset(current)
            if token:
                context.detach(token)

    async def _call_in_span(
        self, request: ServerRequest, parent: Context, scope: Scope, receive: Receive, send: Send
    ) -> None:
        """The app runs with the span current; the request ends inside it, an exception's too."""
        span_token = context.attach(trace.set_span_in_context(request.span, parent))
        try:
            await self.app(scope, receive, self._send(request, send))
        except BaseException as exc:  # a client gone (CancelledError) ends the request too
            fail(request, exc)
            end_request(request, self._instruments, self._request_ids)
            raise
        finally:
            end_request(request, self._instruments, self._request_ids)
            context.detach(span_token)

    def _send(self, request: ServerRequest, send: Send) -> Send:
        instruments, request_ids = self._instruments, self._request_ids

        counting = False  # no Content-Length: the body's size is what is sent

        async def otel_send(message: Message) -> None:
            nonlocal counting
            kind = message["type"]
            if kind == "http.response.body":
                await send(message)
                if counting:  # once sent: a client gone mid-stream got only what was sent before
                    request.response_size = (request.response_size or 0) + len(message.get("body", b""))
                if not message.get("more_body", False):
                    end_request(request, instruments, request_ids)
                return
            if kind == "http.response.start" or kind == "websocket.accept":
                headers = [(_decode(k), _decode(v)) for k, v in message.get("headers") or ()]
                count = len(headers)
                on_response_start(request, message["status"] if kind == "http.response.start" else 200, headers)
                counting = request.response_size is None
                if len(headers) > count:
                    message["headers"] = [*(message.get("headers") or ()), *_encode(headers[count:])]
            await send(message)

        return otel_send


def _encode(headers: HeaderList) -> list[tuple[bytes, bytes]]:
    return [(name.lower().encode("latin-1"), value.encode("latin-1")) for name, value in headers]


class _FastAPIServer:
    """One app's instruments and configuration."""

    def __init__(self, config: Config) -> None:
        self.config = config
        self.instruments = Instruments("fastapi", config.tracer_provider, config.meter_provider)
        _trace_background_tasks(self.instruments.tracer)

    def wrap(self, stack: Any) -> Any:
        """The app's middleware stack with ours between two `ServerErrorMiddleware`s."""
        if not isinstance(stack, ServerErrorMiddleware):
            _log.error(
                "otel-distro: FastAPI app not instrumented: its middleware stack starts with %s, not %s",
                type(stack).__name__,
                ServerErrorMiddleware.__name__,
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
    """A subclass of `fastapi.FastAPI` whose every new app builds an instrumented stack and has
    FastAPI's native telemetry off (the app's other `telemetry` settings are kept)."""

    class FastAPI(base):  # type: ignore[misc]
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            kwargs["telemetry"] = {**(kwargs.get("telemetry") or {}), **NATIVE_TELEMETRY_OFF}
            super().__init__(*args, **kwargs)
            self._otel_distro_server = _FastAPIServer(config)
            self._is_instrumented_by_opentelemetry = True

        def build_middleware_stack(self) -> Any:
            return self._otel_distro_server.wrap(super().build_middleware_stack())

    FastAPI.__name__ = FastAPI.__qualname__ = base.__name__
    FastAPI.__module__ = base.__module__
    return FastAPI
