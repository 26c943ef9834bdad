"""Differential check: the same requests through the contrib instrumentation and through ours
give the same spans, metrics, response headers and request log lines (timings, random IDs and
the instrumentation scope aside), except where contrib departs from the HTTP semantic
conventions: each such `Difference` says why, and the spec tests (test_fastapi.py,
test_flask.py) pin what we do instead."""

from __future__ import annotations

import asyncio
import contextlib
import io
import logging
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import fastapi
import flask
import pytest
from opentelemetry import propagate
from opentelemetry.instrumentation._semconv import (
    _OpenTelemetrySemanticConventionStability,
    _OpenTelemetryStabilitySignalType,
    _StabilityMode,
)
from opentelemetry.instrumentation.fastapi import FastAPIInstrumentor
from opentelemetry.instrumentation.flask import FlaskInstrumentor
from opentelemetry.instrumentation.propagators import get_global_response_propagator, set_global_response_propagator
from opentelemetry.propagators.composite import CompositePropagator
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import HistogramDataPoint, InMemoryMetricReader
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from starlette.background import BackgroundTasks
from starlette.responses import StreamingResponse

from otel_distro import http_server
from otel_distro.error_group import ATTRIBUTE as ERROR_GROUP
from otel_distro.request_id import RequestIdPropagator, RequestIdResponsePropagator, RequestIds
from otel_distro.request_log import LOGGER_NAME, RequestLog
from tests.unit.http_server.conftest import asgi_call, asgi_scope, wsgi_environ

EXCLUDED = "/health,/metrics$"
TRACE_ID = "0af7651916cd43dd8448eb211c80319c"
PARENT_ID = "b7ad6b7169203331"
TRACEPARENT = f"00-{TRACE_ID}-{PARENT_ID}-01"


@dataclass(frozen=True)
class Call:
    """One request: method, path, query, headers (lower-case names), body."""

    method: str
    path: str
    query: str = ""
    headers: tuple[tuple[str, str], ...] = ()
    body: bytes = b""


CALLS = [
    Call("GET", "/hello", headers=(("user-agent", "curl/8.0"),)),
    Call("GET", "/missing"),
    Call("GET", "/boom"),
    Call("GET", "/unavailable"),
    Call("GET", "/hello", query="x=1&y=two"),
    Call("POST", "/items", headers=(("content-type", "application/json"),), body=b'{"name": "a"}'),
    Call("GET", "/items/42"),
    Call("GET", "/hello", headers=(("traceparent", TRACEPARENT), ("baggage", "k=v"))),
    Call("GET", "/hello", headers=(("x-request-id", "abc-123"),)),
    Call("GET", "/hello", headers=(("x-request-id", "bad id"),)),
    Call("GET", "/hello", headers=(("user-agent", "Mozilla/5.0 (compatible; Googlebot/2.1)"),)),
    Call("GET", "/health"),
    Call("GET", "/health/ready", query="probe=1"),
    Call("FOO", "/hello"),
    Call("get", "/hello"),
    Call("GET", "/background"),
    Call("HEAD", "/hello"),
    Call("GET", "/stream"),
    Call("POST", "/items", headers=(("content-type", "text/plain"),), body=b"not json"),
    Call("GET", "/teapot"),
    Call("GET", "/api/notes/3"),
]


@dataclass(frozen=True)
class Difference:
    """Where our telemetry deliberately differs from contrib's, and why.

    `span(call, expected)` turns contrib's span for `call` into ours; data points of the metric
    `metric` whose attributes match `points` are left out on both sides; metrics in
    `ours_only` exist in ours alone.
    """

    why: str
    span: Callable[[Call, dict[str, Any]], None] | None = None
    metric: str = ""
    points: Callable[[dict[str, Any]], bool] = lambda attributes: False
    ours_only: tuple[str, ...] = ()


def _name_without_path(call: Call, expected: dict[str, Any]) -> None:
    if "http.route" not in expected["attributes"] and expected["name"] != "HTTP":
        expected["name"] = expected["name"].split(" ", 1)[0]


UNROUTED_SPAN_NAME = Difference(
    "contrib's Flask names a request no route matched `{method} {path}`; the conventions say `{method}`: "
    "a path (IDs, scanners' probes) would make span names unbounded",
    span=_name_without_path,
)
FLASK_BODY_SIZES = Difference(
    "contrib's Flask records no body sizes; ours records http.server.request.body.size and "
    "http.server.response.body.size as for FastAPI",
    ours_only=("http.server.request.body.size", "http.server.response.body.size"),
)
HEAD_HAS_NO_BODY = Difference(
    "contrib records a HEAD response's Content-Length as its body size; no body is sent for HEAD: ours records 0",
    metric="http.server.response.body.size",
    points=lambda attributes: attributes.get("http.request.method") == "HEAD",
)
STREAMED_BODY_SIZE = Difference(
    "contrib records no body size for a streamed response (no Content-Length); ours counts the bytes sent",
    metric="http.server.response.body.size",
    points=lambda attributes: attributes.get("http.route") == "/stream",
)


# --- one run: instrument, build the app, send every call, snapshot what came out ------------


@dataclass
class Snapshot:
    spans: list[list[dict[str, Any]]] = field(default_factory=list)  # per call
    responses: list[tuple[int, list[str], str | None]] = field(default_factory=list)
    logs: list[tuple[str, str, tuple[Any, ...]]] = field(default_factory=list)
    metrics: dict[tuple[Any, ...], Any] = field(default_factory=dict)


# Our scope and contrib's stand for the same framework (names, versions and schemas differ).
_SCOPES = {
    "opentelemetry.instrumentation.fastapi": "fastapi",
    "otel_distro.http_server.fastapi": "fastapi",
    "opentelemetry.instrumentation.flask": "flask",
    "otel_distro.http_server.flask": "flask",
}


def _span(span: ReadableSpan, inbound_request_id: bool, names: dict[int, str]) -> dict[str, Any]:
    attributes = dict(span.attributes or {})
    if "request.id" in attributes and not inbound_request_id:
        attributes["request.id"] = "<random>"
    parent = span.parent
    scope = span.instrumentation_scope
    # A remote parent by its ID; a local one by its name (span IDs are random).
    parent_id = (f"{parent.span_id:016x}" if parent.is_remote else names.get(parent.span_id)) if parent else None
    return {
        "name": span.name,
        "kind": span.kind,
        "parent": (parent_id, parent.is_remote) if parent else None,
        "trace_id": f"{span.context.trace_id:032x}" if parent and parent.is_remote else None,
        "status": (span.status.status_code, span.status.description),
        "attributes": attributes,
        # Ours adds the error group to exception events (tests/unit/test_error_group.py); contrib cannot.
        "events": [(e.name, sorted(k for k in (e.attributes or {}) if k != ERROR_GROUP)) for e in span.events],
        "scope": _SCOPES.get(scope.name, scope.name) if scope else None,
        "links": len(span.links),
    }


def _metrics(reader: InMemoryMetricReader) -> dict[tuple[Any, ...], Any]:
    found: dict[tuple[Any, ...], Any] = {}
    data = reader.get_metrics_data()
    for resource_metrics in data.resource_metrics if data else ():
        for scope_metrics in resource_metrics.scope_metrics:
            scope = scope_metrics.scope
            for metric in scope_metrics.metrics:
                points = []
                for point in metric.data.data_points:
                    attributes = tuple(sorted((point.attributes or {}).items()))
                    if isinstance(point, HistogramDataPoint):
                        sizes = point.sum if metric.unit == "By" else None  # durations vary, sizes do not
                        points.append((attributes, point.count, tuple(point.explicit_bounds), sizes))
                    else:
                        points.append((attributes, point.value))
                key = (_SCOPES.get(scope.name, scope.name), metric.name)
                found[key] = (metric.unit, metric.description, type(metric.data).__name__, sorted(points, key=repr))
    return found


class _Capture(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


def _log_lines(records: list[logging.LogRecord]) -> list[tuple[str, str, tuple[Any, ...]]]:
    return [
        (r.levelname, r.getMessage(), (r.__dict__.get("method"), r.__dict__.get("route"), r.__dict__.get("status")))
        for r in records
    ]


@pytest.fixture(autouse=True)
def _http_semconv() -> Iterator[None]:
    """Contrib reads its mode from the environment once per process: pin it to `http`."""
    cls = _OpenTelemetrySemanticConventionStability
    saved = (cls._initialized, dict(cls._OTEL_SEMCONV_STABILITY_SIGNAL_MAPPING))
    cls._initialized = True
    cls._OTEL_SEMCONV_STABILITY_SIGNAL_MAPPING = {
        _OpenTelemetryStabilitySignalType.HTTP: _StabilityMode.HTTP,
        _OpenTelemetryStabilitySignalType.DATABASE: _StabilityMode.DEFAULT,
        _OpenTelemetryStabilitySignalType.GEN_AI: _StabilityMode.DEFAULT,
    }
    yield
    cls._initialized, cls._OTEL_SEMCONV_STABILITY_SIGNAL_MAPPING = saved[0], saved[1]


@pytest.fixture(autouse=True)
def _propagators() -> Iterator[None]:
    """Our composite text-map propagator and the request-ID response propagator, as configured."""
    textmap, response = propagate.get_global_textmap(), get_global_response_propagator()
    propagate.set_global_textmap(CompositePropagator([textmap, RequestIdPropagator("X-Request-ID")]))
    yield
    propagate.set_global_textmap(textmap)
    set_global_response_propagator(response)  # type: ignore[arg-type]


Runner = Callable[[Any, Call], tuple[int, list[tuple[str, str]]]]


def run(
    framework: str, implementation: str, make_app: Callable[[], Any], call_app: Runner, calls: list[Call] = CALLS
) -> Snapshot:
    spans = InMemorySpanExporter()
    tracer_provider = TracerProvider(shutdown_on_exit=False)
    tracer_provider.add_span_processor(SimpleSpanProcessor(spans))
    reader = InMemoryMetricReader()
    meter_provider = MeterProvider(metric_readers=[reader], shutdown_on_exit=False)
    ids = RequestIds("X-Request-ID", trust_inbound=True, on_response=RequestLog(True, 60.0))
    set_global_response_propagator(RequestIdResponsePropagator(ids, server_timing=True))
    providers = {"tracer_provider": tracer_provider, "meter_provider": meter_provider}
    contrib: Any = FlaskInstrumentor() if framework == "flask" else FastAPIInstrumentor()
    if implementation == "contrib":
        hooks: dict[str, Any] = (
            {"request_hook": ids.wsgi_request_hook, "response_hook": ids.wsgi_response_hook}
            if framework == "flask"
            else {"server_request_hook": ids.asgi_server_request_hook, "exclude_spans": ["send", "receive"]}
        )
        contrib.instrument(excluded_urls=EXCLUDED, **hooks, **providers)
    else:
        http_server.instrument(framework, request_ids=ids, excluded_urls=EXCLUDED, **providers)
    capture = _Capture()
    request_logger = logging.getLogger(LOGGER_NAME)
    request_logger.addHandler(capture)
    level = request_logger.level
    request_logger.setLevel(logging.INFO)
    snapshot = Snapshot()
    try:
        app = make_app()
        for call in calls:
            status, headers = call_app(app, call)
            names = sorted({name.lower() for name, _ in headers})
            request_id = next((v for k, v in headers if k.lower() == "x-request-id"), None)
            inbound = dict(call.headers).get("x-request-id")
            snapshot.responses.append((status, names, request_id if request_id == inbound else None))
            finished = spans.get_finished_spans()
            names = {s.context.span_id: s.name for s in finished}
            snapshot.spans.append([_span(s, inbound == "abc-123", names) for s in finished])
            spans.clear()
    finally:
        request_logger.removeHandler(capture)
        request_logger.setLevel(level)
        if implementation == "contrib":
            contrib.uninstrument()
        else:
            http_server.uninstrument(framework)
    snapshot.logs = _log_lines(capture.records)
    snapshot.metrics = _metrics(reader)
    return snapshot


def _drop_points(metrics: dict[tuple[Any, ...], Any], difference: Difference) -> None:
    for key, (unit, description, kind, points) in list(metrics.items()):
        if key[1] in difference.ours_only:
            del metrics[key]
        elif key[1] == difference.metric:
            kept = [p for p in points if not difference.points(dict(p[0]))]
            metrics[key] = (unit, description, kind, kept)


def assert_same(
    contrib: Snapshot, ours: Snapshot, calls: list[Call] = CALLS, differences: tuple[Difference, ...] = ()
) -> None:
    for difference in differences:
        _drop_points(contrib.metrics, difference)
        _drop_points(ours.metrics, difference)
        for call, expected_spans in zip(calls, contrib.spans, strict=True):
            for expected in expected_spans:
                if difference.span is not None:
                    difference.span(call, expected)
    for call, expected, got in zip(calls, contrib.spans, ours.spans, strict=True):
        assert got == expected, call
    for call, expected_response, got_response in zip(calls, contrib.responses, ours.responses, strict=True):
        assert got_response == expected_response, call
    assert ours.logs == contrib.logs
    assert ours.metrics.keys() == contrib.metrics.keys()
    for key, expected_metric in contrib.metrics.items():
        assert ours.metrics[key] == expected_metric, key


# --- Flask ------------------------------------------------------------------------------------


def _flask_app() -> Any:
    app = flask.Flask("parity")

    @app.get("/hello")
    def hello() -> dict[str, str]:
        return {"hello": "world"}

    @app.get("/boom")
    def boom() -> str:
        return str(1 / 0)

    @app.get("/unavailable")
    def unavailable() -> tuple[str, int]:
        return "later", 503

    @app.post("/items")
    def create() -> tuple[dict[str, Any], int]:
        return {"created": flask.request.get_json()}, 201

    @app.get("/items/<int:item_id>")
    def item(item_id: int) -> dict[str, int]:
        return {"id": item_id}

    @app.get("/health")
    def health() -> str:
        return "ok"

    @app.get("/background")
    def background() -> str:
        return "none in flask"

    @app.get("/stream")
    def stream() -> Any:
        return flask.Response(iter([b"a" * 10, b"b" * 5]), mimetype="text/plain")

    @app.get("/teapot")
    def teapot() -> None:
        flask.abort(418)

    notes = flask.Blueprint("notes", "parity", url_prefix="/api/notes")

    @notes.get("/<int:note_id>")
    def note(note_id: int) -> dict[str, int]:
        return {"id": note_id}

    app.register_blueprint(notes)
    return app


def _call_flask(app: Any, call: Call, raw_uri: bool = False) -> tuple[int, list[tuple[str, str]]]:
    environ = wsgi_environ(call.method, call.path, **{"QUERY_STRING": call.query, "wsgi.input": io.BytesIO(call.body)})
    if raw_uri:
        environ["RAW_URI"] = call.path + ("?" + call.query if call.query else "")
    if call.body:
        environ["CONTENT_LENGTH"] = str(len(call.body))
    for name, value in call.headers:
        key = name.upper().replace("-", "_")
        environ[key if key == "CONTENT_TYPE" else "HTTP_" + key] = value
    started: list[Any] = []

    def start_response(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Callable[[bytes], None]:
        started.extend((status, headers))
        return lambda data: None

    body = app(environ, start_response)
    for _chunk in body:
        pass
    getattr(body, "close", lambda: None)()
    return int(started[0].split()[0]), list(started[1])


FLASK_DIFFERENCES = (UNROUTED_SPAN_NAME, FLASK_BODY_SIZES)
PROPAGATED_EXCEPTION = Difference(
    "when Flask lets an exception through to the server, contrib's Flask records no duration and writes "
    "no request line for the request; ours ends it in teardown as any other: duration with "
    "error.type the exception's type (no response status exists), and its request line",
    span=lambda call, expected: (
        expected["attributes"].update({"error.type": "ZeroDivisionError"}) if call.path == "/boom" else None
    ),
    metric="http.server.request.duration",
    points=lambda attributes: attributes.get("http.route") == "/boom",
)


class TestFlaskParity:
    @pytest.fixture(autouse=True)
    def _quiet_flask_errors(self) -> Iterator[None]:
        logger = logging.getLogger("parity")
        logger.disabled = True
        yield
        logger.disabled = False

    def test_same_telemetry_as_contrib(self) -> None:
        contrib = run("flask", "contrib", _flask_app, _call_flask)
        ours = run("flask", "distro", _flask_app, _call_flask)

        assert_same(contrib, ours, differences=FLASK_DIFFERENCES)
        assert [s[0]["name"] for s in ours.spans[:3]] == ["GET /hello", "GET", "GET /boom"]
        assert ours.spans[2][0]["status"][1] == "ZeroDivisionError: division by zero"
        assert ours.spans[7][0]["parent"] == (PARENT_ID, True)
        assert ours.spans[8][0]["attributes"]["request.id"] == "abc-123"
        assert ours.spans[11] == []  # excluded
        assert ours.logs[0][1] == "request completed"

    def test_same_telemetry_behind_gunicorn(self) -> None:
        """gunicorn sets RAW_URI: then `url.path` and `url.query` are recorded too."""

        def call(app: Any, c: Call) -> tuple[int, list[tuple[str, str]]]:
            return _call_flask(app, c, raw_uri=True)

        contrib = run("flask", "contrib", _flask_app, call)
        ours = run("flask", "distro", _flask_app, call)

        assert_same(contrib, ours, differences=FLASK_DIFFERENCES)
        assert ours.spans[4][0]["attributes"]["url.query"] == "x=1&y=two"

    def test_unhandled_exception_still_propagates_when_flask_propagates(self) -> None:
        def make() -> Any:
            app = _flask_app()
            app.config["PROPAGATE_EXCEPTIONS"] = True
            return app

        outcomes = []
        for implementation in ("contrib", "distro"):

            def call(app: Any, c: Call) -> tuple[int, list[tuple[str, str]]]:
                try:
                    return _call_flask(app, c)
                except ZeroDivisionError:
                    return 0, []

            outcomes.append(run("flask", implementation, make, call))
        contrib, ours = outcomes
        boom = ours.logs.pop(2)
        [duration] = [v for k, v in ours.metrics.items() if k[1] == "http.server.request.duration"]
        [point] = [p for p in duration[3] if ("http.route", "/boom") in p[0]]

        assert_same(contrib, ours, differences=(*FLASK_DIFFERENCES, PROPAGATED_EXCEPTION))
        assert ours.responses[2][0] == 0
        assert boom[1:] == ("request completed", ("GET", "/boom", 0))
        assert ("error.type", "ZeroDivisionError") in point[0]


# --- FastAPI ----------------------------------------------------------------------------------


def _fastapi_app() -> Any:
    app = fastapi.FastAPI()

    @app.get("/hello")
    async def hello() -> dict[str, str]:
        return {"hello": "world"}

    @app.get("/boom")
    async def boom() -> dict[str, float]:
        return {"x": 1 / 0}

    @app.get("/unavailable")
    async def unavailable() -> fastapi.Response:
        return fastapi.Response("later", status_code=503)

    @app.post("/items", status_code=201)
    async def create(payload: dict[str, Any]) -> dict[str, Any]:
        return {"created": payload}

    @app.get("/items/{item_id}")
    def item(item_id: int) -> dict[str, int]:
        return {"id": item_id}

    @app.get("/health")
    async def health() -> str:
        return "ok"

    @app.get("/background")
    async def background(tasks: BackgroundTasks) -> str:
        tasks.add_task(lambda: None)
        return "queued"

    @app.get("/stream")
    async def stream() -> StreamingResponse:
        async def chunks() -> AsyncIterator[bytes]:
            yield b"a" * 10
            yield b"b" * 5

        return StreamingResponse(chunks(), media_type="text/plain")

    @app.get("/teapot")
    async def teapot() -> None:
        raise fastapi.HTTPException(418)

    notes = fastapi.APIRouter(prefix="/api/notes")

    @notes.get("/{note_id}")
    async def note(note_id: int) -> dict[str, int]:
        return {"id": note_id}

    app.include_router(notes)
    return app


def _call_fastapi(app: Any, call: Call) -> tuple[int, list[tuple[str, str]]]:
    headers = list(call.headers)
    if call.body:
        headers.append(("content-length", str(len(call.body))))
    scope = asgi_scope(call.method, call.path, headers, query_string=call.query.encode())
    messages: list[dict[str, Any]] = []  # kept here too: asgi_call returns nothing when the app raises

    async def collect(message: dict[str, Any]) -> None:
        messages.append(message)

    async def go() -> None:
        with contextlib.suppress(ZeroDivisionError):  # after its 500, as under a server
            await asgi_call(app, scope, call.body, on_send=collect)

    asyncio.run(go())
    start = next(m for m in messages if m["type"] == "http.response.start")
    return start["status"], [(bytes(k).decode(), bytes(v).decode()) for k, v in start.get("headers", [])]


class TestFastAPIParity:
    def test_same_telemetry_as_contrib(self) -> None:
        contrib = run("fastapi", "contrib", _fastapi_app, _call_fastapi)
        ours = run("fastapi", "distro", _fastapi_app, _call_fastapi)

        assert_same(contrib, ours, differences=(HEAD_HAS_NO_BODY, STREAMED_BODY_SIZE))
        assert [s[0]["name"] for s in ours.spans[:3]] == ["GET /hello", "GET", "GET /boom"]
        keys = ["exception.escaped", "exception.message", "exception.stacktrace", "exception.type"]
        assert ours.spans[2][0]["events"] == [("exception", keys)]
        assert ours.spans[2][0]["attributes"]["error.type"] == "500"
        assert ours.spans[7][0]["parent"] == (PARENT_ID, True)
        assert any(k[1] == "http.server.request.body.size" for k in ours.metrics)

    def test_websocket_same_as_contrib(self) -> None:
        def make() -> Any:
            app = fastapi.FastAPI()

            @app.websocket("/ws/{room}")
            async def chat(websocket: fastapi.WebSocket, room: str) -> None:
                await websocket.accept()
                await websocket.send_text(f"hello {room}")
                await websocket.close()

            return app

        calls = [Call("WS", "/ws/lobby", headers=(("x-request-id", "abc-123"),)), Call("WS", "/health")]
        contrib = run("fastapi", "contrib", make, _call_websocket, calls)
        ours = run("fastapi", "distro", make, _call_websocket, calls)

        assert_same(contrib, ours, calls)
        assert ours.spans[0][0]["name"] == "HTTP /ws/{room}"


def _call_websocket(app: Any, call: Call) -> tuple[int, list[tuple[str, str]]]:
    scope = {
        "type": "websocket",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "server": ("127.0.0.1", 8000),
        "client": ("127.0.0.1", 50000),
        "scheme": "ws",
        "root_path": "",
        "path": call.path,
        "raw_path": call.path.encode(),
        "query_string": b"",
        "headers": [(b"host", b"127.0.0.1:8000")] + [(k.encode(), v.encode()) for k, v in call.headers],
        "subprotocols": [],
    }
    inbox = [{"type": "websocket.connect"}, {"type": "websocket.disconnect", "code": 1000}]
    messages: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return inbox.pop(0) if inbox else {"type": "websocket.disconnect", "code": 1000}

    async def send(message: dict[str, Any]) -> None:
        messages.append(message)

    asyncio.run(app(scope, receive, send))
    accept = next((m for m in messages if m["type"] == "websocket.accept"), {"headers": []})
    kinds = len(messages)
    return kinds, [(bytes(k).decode(), bytes(v).decode()) for k, v in accept.get("headers") or []]


def _concurrent_sizes(implementation: str) -> dict[str, list[float]]:
    """A streamed response (Content-Length 15) still sending while another (1000 bytes) starts
    and ends: the response body sizes each implementation records, by route."""
    reader = InMemoryMetricReader()
    meter_provider = MeterProvider(metric_readers=[reader], shutdown_on_exit=False)
    tracer_provider = TracerProvider(shutdown_on_exit=False)
    providers = {"tracer_provider": tracer_provider, "meter_provider": meter_provider}
    contrib = FastAPIInstrumentor()
    if implementation == "contrib":
        contrib.instrument(exclude_spans=["send", "receive"], **providers)
    else:
        http_server.instrument("fastapi", **providers)
    release = asyncio.Event()
    try:
        app = fastapi.FastAPI()

        @app.get("/stream")
        async def stream() -> StreamingResponse:
            async def chunks() -> AsyncIterator[bytes]:
                yield b"a" * 10
                await release.wait()
                yield b"b" * 5

            return StreamingResponse(chunks(), headers={"content-length": "15"})

        @app.get("/big")
        async def big() -> fastapi.Response:
            return fastapi.Response(b"x" * 1000)

        async def go() -> None:
            slow = asyncio.create_task(asgi_call(app, asgi_scope("GET", "/stream")))
            await asyncio.sleep(0.01)
            await asgi_call(app, asgi_scope("GET", "/big"))
            release.set()
            await slow

        asyncio.run(go())
    finally:
        if implementation == "contrib":
            contrib.uninstrument()
        else:
            http_server.uninstrument("fastapi")
    sizes: dict[str, list[float]] = {}
    data = reader.get_metrics_data()
    for resource_metrics in data.resource_metrics if data else ():
        for scope_metrics in resource_metrics.scope_metrics:
            for metric in scope_metrics.metrics:
                if metric.name == "http.server.response.body.size":
                    for point in metric.data.data_points:
                        sizes[str(point.attributes["http.route"])] = [point.sum]  # type: ignore[union-attr,index]
    return sizes


class TestConcurrentResponseSizes:
    def test_contrib_records_another_requests_size_ours_does_not(self) -> None:
        """contrib keeps the last Content-Length on its middleware, shared by every request:
        the stream ending after /big records /big's 1000 bytes. Ours keeps it per request."""
        assert _concurrent_sizes("contrib") == {"/stream": [1000], "/big": [1000]}
        assert _concurrent_sizes("distro") == {"/stream": [15], "/big": [1000]}
