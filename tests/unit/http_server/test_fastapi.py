"""FastAPI server telemetry, specified against the OpenTelemetry HTTP semantic conventions."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from typing import Any

import fastapi
import pytest
from opentelemetry import _logs, metrics, trace
from opentelemetry.sdk._logs import LoggerProvider
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode
from opentelemetry.util._once import Once
from starlette.responses import Response, StreamingResponse

from otel_distro import http_server
from otel_distro._version import __version__
from otel_distro.http_server._semconv import DURATION_BUCKETS
from tests.unit.http_server.conftest import Telemetry, asgi, asgi_call, asgi_scope

TRACE_ID = "0af7651916cd43dd8448eb211c80319c"
PARENT_ID = "b7ad6b7169203331"


def _app(**kwargs: Any) -> Any:
    app = fastapi.FastAPI(**kwargs)

    @app.get("/items/{item_id}")
    async def item(item_id: int) -> dict[str, int]:
        return {"id": item_id}

    @app.api_route("/hello", methods=["GET", "HEAD"])
    async def hello() -> dict[str, str]:
        return {"hello": "world"}

    @app.post("/items")
    async def create(payload: dict[str, Any]) -> dict[str, Any]:
        return payload

    @app.get("/boom")
    async def boom() -> None:
        raise ZeroDivisionError("division by zero")

    @app.get("/unavailable")
    async def unavailable() -> Response:
        return Response("later", status_code=503)

    @app.get("/teapot")
    async def teapot() -> None:
        raise fastapi.HTTPException(418)

    return app


def _attributes(span: Any) -> dict[str, Any]:
    return dict(span.attributes or {})


class TestScope:
    def test_spans_and_metrics_carry_our_scope_and_version(self, fastapi_telemetry: Telemetry) -> None:
        asgi(_app(), "GET", "/items/1")

        scope = fastapi_telemetry.span().instrumentation_scope
        assert (scope.name, scope.version) == ("otel_distro.http_server.fastapi", __version__)
        scopes = {s.name for s, _ in fastapi_telemetry.metrics().values()}
        assert scopes == {"otel_distro.http_server.fastapi"}


class TestSpan:
    def test_name_is_method_and_route(self, fastapi_telemetry: Telemetry) -> None:
        asgi(_app(), "GET", "/items/7")

        span = fastapi_telemetry.span()
        assert (span.name, span.kind) == ("GET /items/{item_id}", SpanKind.SERVER)
        attributes = _attributes(span)
        assert attributes["http.route"] == "/items/{item_id}"
        assert attributes["url.path"] == "/items/7"
        assert attributes["http.request.method"] == "GET"
        assert attributes["url.scheme"] == "http"
        assert attributes["http.response.status_code"] == 200
        assert (attributes["server.address"], attributes["server.port"]) == ("127.0.0.1:8000", 8000)

    def test_no_route_matched_is_the_method_alone(self, fastapi_telemetry: Telemetry) -> None:
        asgi(_app(), "GET", "/nowhere/42")

        span = fastapi_telemetry.span()
        assert span.name == "GET"
        assert "http.route" not in _attributes(span)

    def test_unknown_method_is_other_and_named_http(self, fastapi_telemetry: Telemetry) -> None:
        asgi(_app(), "FOO", "/hello")

        span = fastapi_telemetry.span()
        assert span.name == "HTTP /hello"
        attributes = _attributes(span)
        assert (attributes["http.request.method"], attributes["http.request.method_original"]) == ("_OTHER", "FOO")

    def test_signed_url_parameters_are_redacted(self, fastapi_telemetry: Telemetry) -> None:
        asgi(_app(), "GET", "/hello", query_string=b"a=1&sig=secret&X-Goog-Signature=s2")

        assert _attributes(fastapi_telemetry.span())["url.query"] == "a=1&sig=REDACTED&X-Goog-Signature=REDACTED"


class TestStatus:
    def test_success_leaves_the_status_unset(self, fastapi_telemetry: Telemetry) -> None:
        asgi(_app(), "GET", "/hello")

        span = fastapi_telemetry.span()
        assert span.status.status_code is StatusCode.UNSET
        assert "error.type" not in _attributes(span)

    @pytest.mark.parametrize(("path", "code"), [("/teapot", 418), ("/nowhere", 404)])
    def test_client_errors_are_not_server_errors(self, fastapi_telemetry: Telemetry, path: str, code: int) -> None:
        asgi(_app(), "GET", path)

        span = fastapi_telemetry.span()
        assert span.status.status_code is StatusCode.UNSET
        assert _attributes(span)["http.response.status_code"] == code
        assert "error.type" not in _attributes(span)
        assert "error.type" not in dict(fastapi_telemetry.point("http.server.request.duration").attributes)

    def test_a_5xx_response_is_an_error_typed_by_its_status(self, fastapi_telemetry: Telemetry) -> None:
        asgi(_app(), "GET", "/unavailable")

        span = fastapi_telemetry.span()
        assert span.status.status_code is StatusCode.ERROR
        assert _attributes(span)["error.type"] == "503"
        assert dict(fastapi_telemetry.point("http.server.request.duration").attributes)["error.type"] == "503"

    def test_an_exception_is_a_500_with_its_event(self, fastapi_telemetry: Telemetry) -> None:
        with pytest.raises(ZeroDivisionError):
            asgi(_app(), "GET", "/boom")

        span = fastapi_telemetry.span()
        assert span.status.status_code is StatusCode.ERROR
        assert (_attributes(span)["http.response.status_code"], _attributes(span)["error.type"]) == (500, "500")
        assert [e.name for e in span.events] == ["exception"]


class TestMetrics:
    def test_duration_in_seconds_with_the_conventions_buckets_and_attributes(
        self, fastapi_telemetry: Telemetry
    ) -> None:
        asgi(_app(), "GET", "/items/3")

        _, metric = fastapi_telemetry.metrics()["http.server.request.duration"]
        assert metric.unit == "s"
        [point] = metric.data.data_points
        assert tuple(point.explicit_bounds) == DURATION_BUCKETS
        assert point.count == 1
        assert dict(point.attributes) == {
            "http.request.method": "GET",
            "http.response.status_code": 200,
            "http.route": "/items/{item_id}",
            "network.protocol.version": "1.1",
            "url.scheme": "http",
        }

    def test_active_requests_count_up_and_back_down(self, fastapi_telemetry: Telemetry) -> None:
        seen: list[int] = []
        app = _app()

        async def on_send(message: dict[str, Any]) -> None:
            if message["type"] == "http.response.start":
                seen.append(fastapi_telemetry.point("http.server.active_requests").value)

        asyncio.run(asgi_call(app, asgi_scope("GET", "/hello"), on_send=on_send))

        assert seen == [1]
        assert fastapi_telemetry.point("http.server.active_requests").value == 0

    def test_body_sizes_of_request_and_response(self, fastapi_telemetry: Telemetry) -> None:
        body = b'{"name": "a"}'
        scope = asgi_scope("POST", "/items", (("content-type", "application/json"), ("content-length", str(len(body)))))
        response = asyncio.run(asgi_call(_app(), scope, body=body))

        assert fastapi_telemetry.point("http.server.request.body.size").sum == len(body)
        assert fastapi_telemetry.point("http.server.response.body.size").sum == len(response.body)

    def test_duration_ends_with_the_response_not_its_background_tasks(self, fastapi_telemetry: Telemetry) -> None:
        """The response is complete before background tasks run (contrib's duration includes them)."""
        app = fastapi.FastAPI()

        @app.get("/later")
        async def later(tasks: fastapi.BackgroundTasks) -> str:
            tasks.add_task(asyncio.sleep, 0.2)
            return "queued"

        asgi(app, "GET", "/later")

        assert fastapi_telemetry.point("http.server.request.duration").sum < 0.2
        [server] = [s for s in fastapi_telemetry.spans() if s.kind is SpanKind.SERVER]
        assert server.end_time is not None and server.start_time is not None
        assert (server.end_time - server.start_time) / 1e9 < 0.2


class TestHead:
    def test_head_has_no_body_whatever_its_content_length(self, fastapi_telemetry: Telemetry) -> None:
        response = asgi(_app(), "HEAD", "/hello")

        assert response.status == 200 and int(response.headers["content-length"]) > 0
        assert fastapi_telemetry.span().name == "HEAD /hello"
        assert fastapi_telemetry.point("http.server.response.body.size").sum == 0

    def test_head_on_a_get_only_route_is_a_405_on_that_route(self, fastapi_telemetry: Telemetry) -> None:
        asgi(_app(), "HEAD", "/items/1")

        span = fastapi_telemetry.span()
        assert (span.name, _attributes(span)["http.response.status_code"]) == ("HEAD /items/{item_id}", 405)


def _streaming_app(release: asyncio.Event | None = None, delay: float = 0.0, length: bool = False) -> Any:
    app = fastapi.FastAPI()

    @app.get("/stream")
    async def stream() -> StreamingResponse:
        async def chunks() -> AsyncIterator[bytes]:
            yield b"a" * 10
            if release is not None:
                await release.wait()
            await asyncio.sleep(delay)
            yield b"b" * 5

        headers = {"content-length": "15"} if length else None
        return StreamingResponse(chunks(), media_type="text/plain", headers=headers)

    @app.get("/sized/{size}")
    async def sized(size: int) -> Response:
        return Response(b"x" * size)

    return app


class TestStreaming:
    def test_the_span_and_duration_cover_the_whole_stream(self, fastapi_telemetry: Telemetry) -> None:
        response = asgi(_streaming_app(delay=0.05), "GET", "/stream")

        assert response.body == b"a" * 10 + b"b" * 5
        span = fastapi_telemetry.span()
        assert span.end_time is not None and span.start_time is not None
        assert (span.end_time - span.start_time) / 1e9 >= 0.05
        assert fastapi_telemetry.point("http.server.request.duration").sum >= 0.05

    def test_the_body_size_is_the_bytes_sent(self, fastapi_telemetry: Telemetry) -> None:
        asgi(_streaming_app(), "GET", "/stream")

        assert fastapi_telemetry.point("http.server.response.body.size").sum == 15

    def test_one_request_line_when_the_stream_ends(self, fastapi_telemetry: Telemetry) -> None:
        asgi(_streaming_app(), "GET", "/stream")

        assert fastapi_telemetry.lines() == [("request completed", "/stream", 200)]


class TestConcurrency:
    @pytest.mark.parametrize("length", [True, False], ids=["content-length", "counted"])
    def test_each_request_records_its_own_response_size(self, fastapi_telemetry: Telemetry, length: bool) -> None:
        """A response's size is its own even when another response starts and ends while it is
        being sent (contrib keeps the last Content-Length seen on the middleware)."""
        release = asyncio.Event()
        app = _streaming_app(release=release, length=length)

        async def go() -> None:
            async def release_after_other(message: dict[str, Any]) -> None:
                if message["type"] == "http.response.start":
                    asyncio.get_running_loop().call_soon(release.set)

            slow = asyncio.create_task(asgi_call(app, asgi_scope("GET", "/stream")))
            await asyncio.sleep(0.01)  # the stream has sent its first chunk and waits
            await asgi_call(app, asgi_scope("GET", "/sized/1000"), on_send=release_after_other)
            await slow

        asyncio.run(go())

        sizes = {
            dict(p.attributes)["http.route"]: (p.count, p.sum)
            for p in fastapi_telemetry.points("http.server.response.body.size")
        }
        assert sizes == {"/stream": (1, 15), "/sized/{size}": (1, 1000)}

    def test_concurrent_requests_are_separate_traces(self, fastapi_telemetry: Telemetry) -> None:
        app = _streaming_app(delay=0.02)

        async def go() -> None:
            await asyncio.gather(*(asgi_call(app, asgi_scope("GET", "/stream")) for _ in range(5)))

        asyncio.run(go())

        spans = fastapi_telemetry.spans()
        assert len(spans) == 5
        assert len({s.context.trace_id for s in spans}) == 5
        assert all(s.parent is None for s in spans)


class TestParent:
    def test_a_traceparent_makes_the_span_its_child(self, fastapi_telemetry: Telemetry) -> None:
        asgi(_app(), "GET", "/hello", (("traceparent", f"00-{TRACE_ID}-{PARENT_ID}-01"),))

        span = fastapi_telemetry.span()
        assert span.kind is SpanKind.SERVER
        assert span.parent is not None and span.parent.is_remote
        assert (f"{span.context.trace_id:032x}", f"{span.parent.span_id:016x}") == (TRACE_ID, PARENT_ID)

    def test_without_one_the_request_starts_a_trace(self, fastapi_telemetry: Telemetry) -> None:
        asgi(_app(), "GET", "/hello")

        assert fastapi_telemetry.span().parent is None


def _mounting_app(**kwargs: Any) -> Any:
    app = fastapi.FastAPI(**kwargs)
    v1 = fastapi.FastAPI()

    @v1.get("/items/{item_id}")
    async def item(item_id: int) -> dict[str, int]:
        return {"id": item_id}

    app.mount("/v1", v1)
    return app


def _router_app() -> Any:
    app = fastapi.FastAPI()
    notes = fastapi.APIRouter(prefix="/notes")

    @notes.get("/{note_id}")
    def read(note_id: int) -> dict[str, int]:
        return {"id": note_id}

    api = fastapi.APIRouter(prefix="/api/v1")
    api.include_router(notes)
    app.include_router(api)
    return app


class TestRouters:
    def test_an_included_routers_route_has_its_prefixes(self, fastapi_telemetry: Telemetry) -> None:
        asgi(_router_app(), "GET", "/api/v1/notes/3")

        span = fastapi_telemetry.span()
        assert (span.name, _attributes(span)["http.route"]) == (
            "GET /api/v1/notes/{note_id}",
            "/api/v1/notes/{note_id}",
        )

    def test_wrong_method_on_a_routers_route(self, fastapi_telemetry: Telemetry) -> None:
        asgi(_router_app(), "POST", "/api/v1/notes/3")

        span = fastapi_telemetry.span()
        assert (span.name, _attributes(span)["http.response.status_code"]) == ("POST /api/v1/notes/{note_id}", 405)

    def test_a_route_that_cannot_be_resolved_does_not_fail_the_request(
        self, fastapi_telemetry: Telemetry, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        def broken(routes: Any, scope: Any) -> None:
            raise AttributeError("a route type we do not know")

        monkeypatch.setattr(http_server._fastapi, "route_template", broken)
        assert asgi(_router_app(), "GET", "/api/v1/notes/3").status == 200
        assert fastapi_telemetry.span().name == "GET"


class TestMountsAndRootPath:
    def test_a_mounted_app_route_includes_the_mount(self, fastapi_telemetry: Telemetry) -> None:
        asgi(_mounting_app(), "GET", "/v1/items/5")

        span = fastapi_telemetry.span()  # one span: the mounted app adds none
        assert (span.name, _attributes(span)["http.route"]) == ("GET /v1/items/{item_id}", "/v1/items/{item_id}")
        [point] = fastapi_telemetry.points("http.server.request.duration")  # measured once
        assert dict(point.attributes)["http.route"] == "/v1/items/{item_id}"

    def test_nothing_matched_inside_the_mount_is_no_route(self, fastapi_telemetry: Telemetry) -> None:
        asgi(_mounting_app(), "GET", "/v1/nowhere")

        span = fastapi_telemetry.span()
        assert (span.name, _attributes(span)["http.response.status_code"]) == ("GET", 404)

    def test_the_route_includes_the_application_root(self, fastapi_telemetry: Telemetry) -> None:
        """The conventions: `http.route` SHOULD include the application root (a proxy's prefix)."""
        asgi(_app(), "GET", "/api/items/9", root_path="/api")

        span = fastapi_telemetry.span()
        assert _attributes(span)["http.route"] == "/api/items/{item_id}"
        assert span.name == "GET /api/items/{item_id}"

    def test_an_app_root_path_setting_too(self, fastapi_telemetry: Telemetry) -> None:
        asgi(_mounting_app(root_path="/api"), "GET", "/api/v1/items/5")

        assert _attributes(fastapi_telemetry.span())["http.route"] == "/api/v1/items/{item_id}"


class TestClientDisconnect:
    def test_a_client_gone_mid_stream_ends_the_request_once(self, fastapi_telemetry: Telemetry) -> None:
        app = _streaming_app(delay=0.01)

        async def gone(message: dict[str, Any]) -> None:
            if message["type"] == "http.response.body" and message.get("body") == b"b" * 5:
                raise OSError("client gone")

        scope = asgi_scope("GET", "/stream", asgi={"version": "3.0", "spec_version": "2.4"})
        with pytest.raises(Exception):  # noqa: B017 - the server sees the app fail, as without us
            asyncio.run(asgi_call(app, scope, on_send=gone))

        span = fastapi_telemetry.span()
        assert _attributes(span)["http.response.status_code"] == 200
        assert fastapi_telemetry.point("http.server.request.duration").count == 1
        assert fastapi_telemetry.point("http.server.active_requests").value == 0
        assert fastapi_telemetry.point("http.server.response.body.size").sum == 10  # what was sent

    def test_a_request_cancelled_before_any_response(self, fastapi_telemetry: Telemetry) -> None:
        app = fastapi.FastAPI()
        started = asyncio.Event()

        @app.get("/wait")
        async def wait() -> None:
            started.set()
            await asyncio.sleep(10)

        async def go() -> None:
            task = asyncio.create_task(asgi_call(app, asgi_scope("GET", "/wait")))
            await started.wait()
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task

        asyncio.run(go())

        span = fastapi_telemetry.span()
        assert _attributes(span)["error.type"] == "CancelledError"
        assert "http.response.status_code" not in _attributes(span)
        point = fastapi_telemetry.point("http.server.request.duration")
        assert dict(point.attributes)["error.type"] == "CancelledError"
        assert fastapi_telemetry.point("http.server.active_requests").value == 0


class TestWebSocket:
    def test_one_server_span_per_connection_and_no_request_metrics(self, fastapi_telemetry: Telemetry) -> None:
        app = fastapi.FastAPI()

        @app.websocket("/ws/{room}")
        async def chat(websocket: fastapi.WebSocket, room: str) -> None:
            await websocket.accept()
            await websocket.send_text(f"hello {room}")
            await websocket.close()

        inbox = [{"type": "websocket.connect"}]
        sent: list[dict[str, Any]] = []

        async def receive() -> dict[str, Any]:
            return inbox.pop(0) if inbox else {"type": "websocket.disconnect", "code": 1000}

        async def send(message: dict[str, Any]) -> None:
            sent.append(message)

        scope = asgi_scope("GET", "/ws/lobby", type="websocket", scheme="ws", subprotocols=[])
        del scope["method"]
        asyncio.run(app(scope, receive, send))

        span = fastapi_telemetry.span()
        assert (span.kind, _attributes(span)["http.route"]) == (SpanKind.SERVER, "/ws/{room}")
        assert [m["type"] for m in sent] == ["websocket.accept", "websocket.send", "websocket.close"]
        assert fastapi_telemetry.points("http.server.request.duration") == []


@pytest.fixture
def global_providers() -> Iterator[tuple[InMemorySpanExporter, InMemoryMetricReader]]:
    """Global SDK providers, as `opentelemetry-instrument` configures them (FastAPI's native
    telemetry only runs when the globals are configured)."""
    saved = (trace._TRACER_PROVIDER, metrics._internal._METER_PROVIDER, _logs._internal._LOGGER_PROVIDER)
    exporter, reader = InMemorySpanExporter(), InMemoryMetricReader()
    tracer_provider = TracerProvider(shutdown_on_exit=False)
    tracer_provider.add_span_processor(SimpleSpanProcessor(exporter))
    trace._TRACER_PROVIDER_SET_ONCE = Once()
    trace.set_tracer_provider(tracer_provider)
    metrics._internal._METER_PROVIDER_SET_ONCE = Once()
    metrics.set_meter_provider(MeterProvider(metric_readers=[reader], shutdown_on_exit=False))
    _logs._internal._LOGGER_PROVIDER_SET_ONCE = Once()
    _logs.set_logger_provider(LoggerProvider(shutdown_on_exit=False))
    try:
        yield exporter, reader
    finally:
        trace._TRACER_PROVIDER, metrics._internal._METER_PROVIDER, _logs._internal._LOGGER_PROVIDER = saved


def _server_spans(exporter: InMemorySpanExporter) -> list[Any]:
    return [s for s in exporter.get_finished_spans() if s.kind is SpanKind.SERVER]


class TestFastAPINativeTelemetry:
    def test_without_us_fastapi_makes_its_own_span(
        self, global_providers: tuple[InMemorySpanExporter, InMemoryMetricReader]
    ) -> None:
        """The control: FastAPI 0.165+ traces requests by itself once the global providers are set."""
        exporter, _ = global_providers
        asgi(_app(), "GET", "/items/1")

        assert [s.instrumentation_scope.name for s in _server_spans(exporter)] == ["fastapi"]

    def test_exactly_one_server_span_per_request_with_us(
        self, global_providers: tuple[InMemorySpanExporter, InMemoryMetricReader]
    ) -> None:
        exporter, reader = global_providers
        http_server.instrument("fastapi")
        try:
            asgi(_app(), "GET", "/items/1")
        finally:
            http_server.uninstrument("fastapi")

        assert [s.instrumentation_scope.name for s in exporter.get_finished_spans()] == [
            "otel_distro.http_server.fastapi"
        ]
        data = reader.get_metrics_data()
        scopes = {sm.scope.name for rm in data.resource_metrics for sm in rm.scope_metrics} if data else set()
        assert scopes == {"otel_distro.http_server.fastapi"}

    def test_off_even_when_the_app_asks_for_it_and_nothing_poses_as_contrib(
        self, global_providers: tuple[InMemorySpanExporter, InMemoryMetricReader]
    ) -> None:
        exporter, _ = global_providers
        http_server.instrument("fastapi")
        try:
            app = _app(telemetry={"tracing": True, "operation_spans": True})
            asgi(app, "GET", "/items/1")
        finally:
            http_server.uninstrument("fastapi")

        assert [s.instrumentation_scope.name for s in exporter.get_finished_spans()] == [
            "otel_distro.http_server.fastapi"
        ]
        modules = {type(layer).__module__ for layer in _layers(app.middleware_stack)}
        assert not any(m.startswith("opentelemetry") for m in modules), modules


def _layers(stack: Any) -> Iterator[Any]:
    seen = set()
    while stack is not None and id(stack) not in seen:
        seen.add(id(stack))
        yield stack
        stack = getattr(stack, "app", None)


class TestRequestEnd:
    def test_response_headers_come_from_the_propagator_and_one_line_from_the_end(
        self, fastapi_telemetry: Telemetry
    ) -> None:
        response = asgi(_app(), "GET", "/hello", (("x-request-id", "abc-123"),))

        assert response.headers["x-request-id"] == "abc-123"
        assert response.headers["server-timing"].startswith("app;dur=")
        assert fastapi_telemetry.lines() == [("request completed", "/hello", 200)]

    def test_a_failed_request_gets_its_error_line_with_the_exception(self, fastapi_telemetry: Telemetry) -> None:
        with pytest.raises(ZeroDivisionError):
            asgi(_app(), "GET", "/boom")

        assert fastapi_telemetry.lines() == [
            ("unhandled ZeroDivisionError in GET /boom", "/boom", 500),
            ("request completed", "/boom", 500),
        ]
        assert fastapi_telemetry.log_records[0].exc_info is not None
