"""Flask: the server span and HTTP metrics of `opentelemetry-instrumentation-flask`, made once.

Same hook points as contrib (a `wsgi_app` wrapper for metrics and the response, a
`before_request` that starts the span once the route is known, a `teardown_request` that
ends it), but the request attributes are collected once, the excluded-URL answer is cached,
and the request context is read from Flask's context variable instead of through proxies.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from importlib.metadata import version
from time import time_ns
from timeit import default_timer
from typing import Any

from opentelemetry import context, trace
from opentelemetry.instrumentation.flask.version import __version__
from opentelemetry.instrumentation.propagators import get_global_response_propagator
from opentelemetry.instrumentation.wsgi import default_response_propagation_setter, wsgi_getter
from opentelemetry.metrics import get_meter
from opentelemetry.propagate import extract
from opentelemetry.trace import INVALID_SPAN, Span, SpanKind
from opentelemetry.util.http import normalize_user_agent

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
    sanitize_method,
    set_int,
    set_method,
    set_user_agent,
    span_name_method,
)

__all__ = ["flask_class"]

SCOPE = "opentelemetry.instrumentation.flask"
_STATE = "otel_distro.http_server"
_SQLCOMMENTER = "SQLCOMMENTER_ORM_TAGS_AND_VALUES"
_FRAMEWORK = f"flask:{version('flask')}"
_log = logging.getLogger(SCOPE)  # contrib's logger: the same warning under the same name

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
    """`otel_wsgi.collect_request_attributes(environ, HTTP)`, without the mode checks."""
    result: Attributes = {}
    set_method(result, environ.get("REQUEST_METHOD", ""))
    scheme = environ.get("wsgi.url_scheme")
    if scheme:
        result["url.scheme"] = scheme
    host = environ.get("HTTP_HOST")
    if host:
        result["server.address"] = host
    port = environ.get("SERVER_PORT")
    if port and str(port).isdigit():  # contrib's int() would raise and fail the request
        set_int(result, "server.port", int(port))
    target = environ.get("RAW_URI")
    if target is None:
        target = environ.get("REQUEST_URI")
    if target:
        path, query = environ.get("PATH_INFO"), environ.get("QUERY_STRING")
        if path:
            result["url.path"] = path
        if query:
            result["url.query"] = query
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


def _fallback_span_name(environ: dict[str, Any]) -> str:
    """`otel_wsgi.get_default_span_name`: the raw path when no route matched."""
    method = sanitize_method(str(environ.get("REQUEST_METHOD", "")).strip())
    if method == "_OTHER":
        return "HTTP"
    path = str(environ.get("PATH_INFO", "")).strip()
    return f"{method} {path}" if method and path else method


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


class _Request:
    """What one request's hooks share, kept in its WSGI environ."""

    __slots__ = ("attributes", "checked", "excluded", "request_ctx", "route", "span", "start_ns", "token", "traced")

    def __init__(self, attributes: Attributes, start_ns: int | None) -> None:
        self.attributes = attributes
        self.start_ns = start_ns
        self.checked = False
        self.excluded = False
        self.traced = True
        self.route: str | None = None
        self.span: Span | None = None
        self.token: object = None
        self.request_ctx: object = None


class _FlaskServer:
    """Instruments one app: tracer, meter and instruments under contrib's scope."""

    def __init__(self, config: Config) -> None:
        self._config = config
        self._request_ids = config.request_ids
        self._excluded = config.excluded
        meter = get_meter(SCOPE, __version__, config.meter_provider, schema_url=SCHEMA_URL)
        self._duration = Recorder(duration_histogram(meter), negative_allowed=False)
        self._active = Recorder(active_requests(meter), negative_allowed=True)
        self._tracer = trace.get_tracer(SCOPE, __version__, config.tracer_provider, schema_url=SCHEMA_URL)

    def instrument(self, app: Any) -> None:
        app._original_wsgi_app = app.wsgi_app
        app.wsgi_app = self._wrap(app.wsgi_app)
        # The names contrib uses, so its `uninstrument_app` still works on our apps.
        app._before_request = self._before_request
        app.before_request(self._before_request)
        app._teardown_request = self._teardown_request
        app.teardown_request(self._teardown_request)
        app._is_instrumented_by_opentelemetry = True

    def _is_excluded(self, environ: dict[str, Any], request: Any) -> bool:
        return self._excluded.excluded(_url_key(environ), lambda: str(request.url))

    def _wrap(self, wsgi_app: WsgiApp) -> WsgiApp:
        active, duration = self._active, self._duration

        def _wrapped_app(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
            start_ns = time_ns()
            start = default_timer()
            state = _Request(request_attributes(environ), start_ns)
            environ[_STATE] = state
            active_attributes = pick(state.attributes, ACTIVE_KEYS)
            active.record(1, active_attributes)

            def _start_response(status: str, headers: list[tuple[str, str]], *args: Any, **kwargs: Any) -> Any:
                self._response_started(state, environ, status, headers)
                return start_response(status, headers, *args, **kwargs)

            try:
                result = wsgi_app(environ, _start_response)
                if state.traced:
                    attributes = pick(state.attributes, DURATION_KEYS)
                    if state.route:
                        attributes["http.route"] = state.route
                    metrics_context = trace.set_span_in_context(state.span)  # type: ignore[arg-type]
                    duration.record(max(default_timer() - start, 0), attributes, context=metrics_context)
                return result
            finally:
                active.record(-1, active_attributes)

        return _wrapped_app

    def _response_started(self, state: _Request, environ: dict[str, Any], status: str, headers: list[Any]) -> None:
        request_ctx = _request_ctx()
        if state.checked:
            traced = not state.excluded
        else:  # no before_request ran for this environ: decide as contrib does, from the request
            traced = request_ctx is not None and not self._is_excluded(environ, request_ctx.request)
        state.traced = traced
        if not traced:
            return
        if request_ctx is not None:
            rule = request_ctx.request.url_rule
            state.route = str(rule) if rule else None
        span = state.span
        propagator = get_global_response_propagator()
        if propagator:
            propagator.inject(headers, setter=default_response_propagation_setter)
        if span:
            code_str = status.partition(" ")[0]
            try:
                code = int(code_str)
            except ValueError:
                code = -1
            apply_status(span, state.attributes, code, code_str)
        else:
            _log.warning("Flask environ's OpenTelemetry span missing at _start_response(%s)", status)
        if self._request_ids is not None:
            self._request_ids.wsgi_response_hook(span, status, headers)  # type: ignore[arg-type]

    def _before_request(self) -> None:
        request_ctx = _request_ctx()
        request = request_ctx.request
        environ = request.environ
        state = environ.get(_STATE)
        if state is None:  # a request context not made by a WSGI call (test_request_context)
            state = environ[_STATE] = _Request(request_attributes(environ), None)
        state.excluded = self._is_excluded(environ, request)
        state.checked = True
        if state.excluded:
            return
        rule = request.url_rule
        attributes = dict(state.attributes)
        if rule:
            attributes["http.route"] = rule.rule
            name = f"{span_name_method(environ.get('REQUEST_METHOD', ''))} {rule.rule}"
        else:
            name = _fallback_span_name(environ)
        ids = self._request_ids
        if ids is not None:  # the request hook's attribute, set at start rather than after
            request_id = attributes["request.id"] = ids.choose(environ.get(ids.wsgi_key))
        parent = context.get_current()
        if trace.get_current_span(parent) is INVALID_SPAN:
            parent = extract(environ, getter=wsgi_getter)
            kind = SpanKind.SERVER
        else:
            kind = SpanKind.INTERNAL
        span = self._tracer.start_span(name, parent, kind, attributes, start_time=state.start_ns)
        if ids is not None:
            method, path = str(environ.get("REQUEST_METHOD", "")), str(environ.get("PATH_INFO", ""))
            ids.activate(span, request_id, method, path)
        tags = {"framework": _FRAMEWORK}
        if request.endpoint:
            tags["controller"] = request.endpoint
        if rule and rule.rule:
            tags["route"] = rule.rule
        # Contrib attaches the parent, the span and the SQLCommenter tags in three steps.
        state.token = context.attach(context.set_value(_SQLCOMMENTER, tags, trace.set_span_in_context(span, parent)))
        state.span = span
        state.request_ctx = request_ctx

    def _teardown_request(self, exc: BaseException | None) -> None:
        request_ctx = _request_ctx()
        if request_ctx is None:
            return
        state = request_ctx.request.environ.get(_STATE)
        # Only the request context that started the span ends it (copy_current_request_context).
        if state is None or state.token is None or state.request_ctx is not request_ctx:
            return
        token, span = state.token, state.span
        state.token = None
        try:
            context.detach(token)
            if isinstance(exc, Exception) and span.is_recording():
                record_error(span, exc)
            span.end()
        except (RuntimeError, AttributeError, ValueError) as error:
            _log.debug("Error during request teardown: %s", error, exc_info=True)


def flask_class(base: type, config: Config) -> type:
    """A subclass of `flask.Flask` whose every new app is instrumented."""

    class Flask(base):  # type: ignore[misc]
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            _FlaskServer(config).instrument(self)

    Flask.__name__ = Flask.__qualname__ = base.__name__
    Flask.__module__ = base.__module__
    return Flask
