"""Flask: one server span and the HTTP request metrics per request.

A `wsgi_app` wrapper decides exclusion and counts the request active; a `before_request` hook
starts the span once the route is known; the response's `start_response` is its response start;
our `teardown_request` (the last to run) ends it. A body produced while the server sends it (a
generator, `send_file`'s file, any other iterator) ends the request when it is exhausted or
closed instead, so the duration and the span (current while each chunk is produced) cover the
transfer. A server's `wsgi.file_wrapper` is returned as it is (the server may `sendfile` it):
its `close`, which PEP 3333 servers call once sent, ends the request.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable, Iterable, Iterator
from contextvars import Token
from importlib.metadata import version
from time import time_ns
from timeit import default_timer
from typing import Any

from opentelemetry import context, trace
from opentelemetry.context import Context
from opentelemetry.instrumentation.wsgi import wsgi_getter
from opentelemetry.propagate import extract
from opentelemetry.trace import INVALID_SPAN, SpanKind
from opentelemetry.util.http import normalize_user_agent
from werkzeug.wsgi import ClosingIterator, get_current_url

from otel_distro.http_server._config import Config
from otel_distro.http_server._request import ServerRequest, end_request, fail, on_response_start
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

__all__ = ["flask_class"]

_STATE = "otel_distro.http_server"
_SQLCOMMENTER = "SQLCOMMENTER_ORM_TAGS_AND_VALUES"
_FRAMEWORK = f"flask:{version('flask')}"
_log = logging.getLogger("otel_distro.http_server.flask")

try:  # Flask 2.2+: the request context is a context variable; read it without the proxies
    from flask.globals import _cv_request

    def _request_ctx() -> Any:
        return _cv_request.get(None)

except ImportError:  # a Flask that dropped it: go through the public proxy
    from flask.globals import request_ctx as _proxy

    def _request_ctx() -> Any:
        try:
            return _proxy._get_current_object()  # type: ignore[attr-defined]
        except RuntimeError:
            return None


WsgiApp = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]


def request_attributes(environ: dict[str, Any]) -> Attributes:
    """The server span's request attributes from a WSGI environ."""
    result: Attributes = {}
    set_method(result, environ.get("REQUEST_METHOD", ""))
    scheme = environ.get("wsgi.url_scheme")
    if scheme:
        result["url.scheme"] = scheme
    host = environ.get("HTTP_HOST")
    if host:
        result["server.address"] = host
    port = environ.get("SERVER_PORT")
    if port and str(port).isdigit():
        set_int(result, "server.port", int(port))
    target = environ.get("RAW_URI")
    if target is None:
        target = environ.get("REQUEST_URI")
    if target:
        path, query = environ.get("PATH_INFO"), environ.get("QUERY_STRING")
        if path:
            result["url.path"] = path
        if query:
            result["url.query"] = redact_query(query)
    remote_addr = environ.get("REMOTE_ADDR")
    if remote_addr:
        result["client.address"] = remote_addr
    remote_port = environ.get("REMOTE_PORT")
    if remote_port:
        set_int(result, "client.port", remote_port)
    remote_host = environ.get("REMOTE_HOST")
    if remote_host and remote_host != remote_addr:
        result["client.address"] = remote_host
    user_agent = environ.get("HTTP_USER_AGENT")
    if user_agent:
        user_agent = normalize_user_agent(user_agent)
        if user_agent:
            set_user_agent(result, user_agent)
    flavor = environ.get("SERVER_PROTOCOL", "")
    if flavor.upper().startswith("HTTP/"):
        flavor = flavor[5:]
    if flavor:
        result["network.protocol.version"] = flavor
    return result


def _url_key(environ: dict[str, Any]) -> tuple[Any, ...]:
    """Everything werkzeug builds `request.url` from."""
    get = environ.get
    return (
        get("wsgi.url_scheme"),
        get("HTTP_HOST"),
        get("SERVER_NAME"),
        get("SERVER_PORT"),
        get("SCRIPT_NAME"),
        get("PATH_INFO"),
        get("QUERY_STRING"),
    )


class _State:
    """What one request's hooks share, kept in its WSGI environ."""

    __slots__ = ("attributes", "deferred", "request", "request_ctx", "start", "start_ns", "streamed", "token")

    def __init__(self, attributes: Attributes) -> None:
        self.attributes = attributes
        self.start_ns = time_ns()
        self.start = default_timer()
        self.request: ServerRequest | None = None  # once the span started
        self.token: Token[Context] | None = None
        self.request_ctx: object = None
        self.streamed = False  # the response body is generated while the server sends it
        self.deferred = False  # so the request ends after it, not at the first teardown


class _StreamedBody:
    """A generated response body. The request ends when the body is exhausted or closed (PEP 3333:
    a server closes it, also when the client left early); the span is current while each chunk
    is generated, and only then: nothing stays attached between chunks or after."""

    __slots__ = ("_body", "_context", "_end")

    def __init__(self, body: Iterable[bytes], span_context: Context, end: Callable[[BaseException | None], None]):
        self._body = body
        self._context = span_context
        self._end = end

    def __iter__(self) -> Iterator[bytes]:
        chunks = iter(self._body)
        while True:
            token = context.attach(self._context)
            try:
                chunk = next(chunks)
            except StopIteration:
                self._end(None)
                return
            except BaseException as exc:
                self._end(exc)
                raise
            finally:
                context.detach(token)
            yield chunk

    def close(self) -> None:
        _close_then_end(getattr(self._body, "close", None), self._context, self._end)


def _close_then_end(
    close: Callable[[], object] | None, span_context: Context, end: Callable[[BaseException | None], None]
) -> None:
    """A body's PEP 3333 `close`: its own first, then the request ends (in its span's context)."""
    try:
        if close is not None:
            close()
    finally:
        token = context.attach(span_context)
        try:
            end(None)
        finally:
            context.detach(token)


def _end_on_close(body: Any, span_context: Context, end: Callable[[BaseException | None], None]) -> bool:
    """Make the server's own file wrapper end the request when closed; False if it cannot be."""
    close = functools.partial(_close_then_end, getattr(body, "close", None), span_context, end)
    try:
        body.close = close
    except AttributeError:  # __slots__: wrapped instead, as any other body
        return False
    return True


class _FlaskServer:
    """Instruments one app."""

    def __init__(self, config: Config) -> None:
        self._request_ids = config.request_ids
        self._excluded = config.excluded
        self._instruments = Instruments("flask", config.tracer_provider, config.meter_provider)

    def instrument(self, app: Any) -> None:
        app._original_wsgi_app = app.wsgi_app
        app.wsgi_app = self._wrap(app.wsgi_app)
        # Under the names contrib's `uninstrument_app` looks for, so it can undo ours too.
        app._before_request = self._before_request
        app.before_request(self._before_request)
        app.after_request(self._after_request)
        app._teardown_request = self._teardown_request
        app.teardown_request(self._teardown_request)  # registered first, so run last
        app._is_instrumented_by_opentelemetry = True

    def _wrap(self, wsgi_app: WsgiApp) -> WsgiApp:
        instruments, excluded = self._instruments, self._excluded

        def _wrapped_app(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
            if excluded.excluded(_url_key(environ), lambda: get_current_url(environ)):
                return wsgi_app(environ, start_response)
            state = environ[_STATE] = _State(request_attributes(environ))
            active_attributes = pick(state.attributes, ACTIVE_KEYS)
            instruments.active.record(1, active_attributes)

            def _start_response(status: str, headers: list[tuple[str, str]], *args: Any, **kwargs: Any) -> Any:
                if state.request is not None:
                    on_response_start(state.request, status.partition(" ")[0], headers)
                return start_response(status, headers, *args, **kwargs)

            try:
                body = wsgi_app(environ, _start_response)
            finally:
                if state.request is None:  # no span was started (a failing earlier hook)
                    instruments.active.record(-1, active_attributes)
            if state.deferred and state.request is not None:  # teardown left the end to the body
                return self._deferred_end(environ, body, state.request)
            return body

        return _wrapped_app

    def _deferred_end(self, environ: dict[str, Any], body: Iterable[bytes], request: ServerRequest) -> Iterable[bytes]:
        """The body, made to end the request once sent."""
        span_context = trace.set_span_in_context(request.span)

        def end(exc: BaseException | None) -> None:
            self._end(request, exc)

        file_wrapper = environ.get("wsgi.file_wrapper")
        if isinstance(file_wrapper, type) and isinstance(body, file_wrapper) and _end_on_close(body, span_context, end):
            return body
        return _StreamedBody(body, span_context, end)

    def _before_request(self) -> None:
        request_ctx = _request_ctx()
        request = request_ctx.request
        environ = request.environ
        state = environ.get(_STATE)
        if state is None or state.request is not None:  # excluded, or not a request of ours
            return
        rule = request.url_rule
        attributes = dict(state.attributes)
        method = span_name_method(environ.get("REQUEST_METHOD", ""))
        if rule:
            route = environ.get("SCRIPT_NAME", "").rstrip("/") + rule.rule  # under the application root
            attributes["http.route"] = route
            name = f"{method} {route}"
        else:  # no route matched: the path would make the name unbounded
            name = method
        ids = self._request_ids
        if ids is not None:  # recorded at the span's start, so samplers and processors see it
            request_id = attributes["request.id"] = ids.choose(environ.get(ids.wsgi_key))
        parent = context.get_current()
        if trace.get_current_span(parent) is INVALID_SPAN:
            parent = extract(environ, getter=wsgi_getter)
            kind = SpanKind.SERVER
        else:
            kind = SpanKind.INTERNAL
        span = self._instruments.tracer.start_span(name, parent, kind, attributes, start_time=state.start_ns)
        served = ServerRequest(span, attributes, state.start, metered=True, head=request.method == "HEAD")
        size = request.content_length
        served.request_size = size if size else None
        if ids is not None:
            ids.activate(span, request_id, str(environ.get("REQUEST_METHOD", "")), str(environ.get("PATH_INFO", "")))
        tags = {"framework": _FRAMEWORK}
        if request.endpoint:
            tags["controller"] = request.endpoint
        if rule and rule.rule:
            tags["route"] = rule.rule
        # The SQLCommenter tags contrib's database instrumentations read from the context.
        state.token = context.attach(context.set_value(_SQLCOMMENTER, tags, trace.set_span_in_context(span, parent)))
        state.request = served
        state.request_ctx = request_ctx

    def _after_request(self, response: Any) -> Any:
        # A list or tuple body is complete now; anything else is produced while it is sent, except
        # the ClosingIterator werkzeug makes of an already rendered response (an error page).
        if not isinstance(response.response, (list, tuple, ClosingIterator)):
            state = _request_ctx().request.environ.get(_STATE)
            if state is not None:
                state.streamed = True
        return response

    def _teardown_request(self, exc: BaseException | None) -> None:
        request_ctx = _request_ctx()
        if request_ctx is None:
            return
        state = request_ctx.request.environ.get(_STATE)
        # Only the request context that started the span ends it (copy_current_request_context).
        if state is None or state.token is None or state.request_ctx is not request_ctx:
            return
        token = state.token
        state.token = None
        try:
            if state.streamed and exc is None:
                state.deferred = True  # the body is yet to be generated: it ends the request
            else:
                self._end(state.request, exc)
        finally:
            context.detach(token)

    def _end(self, request: ServerRequest | None, exc: BaseException | None) -> None:
        if request is None:
            return
        try:
            if exc is not None:
                fail(request, exc)
            end_request(request, self._instruments, self._request_ids)
        except (RuntimeError, AttributeError, ValueError) as error:
            _log.debug("Error ending the request: %s", error, exc_info=True)


def flask_class(base: type, config: Config) -> type:
    """A subclass of `flask.Flask` whose every new app is instrumented."""

    class Flask(base):  # type: ignore[misc]
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            _FlaskServer(config).instrument(self)

    Flask.__name__ = Flask.__qualname__ = base.__name__
    Flask.__module__ = base.__module__
    return Flask
