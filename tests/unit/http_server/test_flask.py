"""Flask server telemetry, specified against the OpenTelemetry HTTP semantic conventions."""

from __future__ import annotations

import io
import time
from collections.abc import Iterator
from typing import Any

import flask
import pytest
from opentelemetry import trace
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode

from otel_distro import http_server
from otel_distro._version import __version__
from otel_distro.http_server._semconv import DURATION_BUCKETS
from tests.server_inputs import wsgi_environ
from tests.unit.http_server.conftest import Telemetry, wsgi

TRACE_ID = "0af7651916cd43dd8448eb211c80319c"
PARENT_ID = "b7ad6b7169203331"


def _app() -> Any:
    app = flask.Flask("spec")
    app.logger.disabled = True  # Flask's own report of /boom

    @app.get("/items/<int:item_id>")
    def item(item_id: int) -> dict[str, int]:
        return {"id": item_id}

    @app.get("/hello")
    def hello() -> dict[str, str]:
        return {"hello": "world"}

    @app.post("/items")
    def create() -> tuple[dict[str, Any], int]:
        return {"created": flask.request.get_json()}, 201

    @app.get("/boom")
    def boom() -> str:
        return str(1 / 0)

    @app.get("/unavailable")
    def unavailable() -> tuple[str, int]:
        return "later", 503

    @app.get("/teapot")
    def teapot() -> None:
        flask.abort(418)

    @app.get("/health")
    def health() -> str:
        return "ok"

    return app


def _attributes(span: Any) -> dict[str, Any]:
    return dict(span.attributes or {})


class TestScope:
    def test_spans_and_metrics_carry_our_scope_and_version(self, flask_telemetry: Telemetry) -> None:
        wsgi(_app(), "GET", "/items/1")

        scope = flask_telemetry.span().instrumentation_scope
        assert (scope.name, scope.version) == ("otel_distro.http_server.flask", __version__)
        assert {s.name for s, _ in flask_telemetry.metrics().values()} == {"otel_distro.http_server.flask"}


class TestSpan:
    def test_name_is_method_and_route(self, flask_telemetry: Telemetry) -> None:
        wsgi(_app(), "GET", "/items/7")

        span = flask_telemetry.span()
        assert (span.name, span.kind) == ("GET /items/<int:item_id>", SpanKind.SERVER)
        assert _attributes(span)["http.route"] == "/items/<int:item_id>"
        assert _attributes(span)["http.response.status_code"] == 200

    def test_no_route_matched_is_the_method_alone(self, flask_telemetry: Telemetry) -> None:
        wsgi(_app(), "GET", "/nowhere/42")

        span = flask_telemetry.span()
        assert (span.name, _attributes(span)["http.response.status_code"]) == ("GET", 404)
        assert "http.route" not in _attributes(span)

    def test_the_route_includes_the_application_root(self, flask_telemetry: Telemetry) -> None:
        """The conventions: `http.route` SHOULD include the application root (`SCRIPT_NAME`)."""
        wsgi(_app(), "GET", "/items/7", SCRIPT_NAME="/shop")

        span = flask_telemetry.span()
        assert (span.name, _attributes(span)["http.route"]) == (
            "GET /shop/items/<int:item_id>",
            "/shop/items/<int:item_id>",
        )

    def test_a_traceparent_makes_the_span_its_child(self, flask_telemetry: Telemetry) -> None:
        wsgi(_app(), "GET", "/hello", (("traceparent", f"00-{TRACE_ID}-{PARENT_ID}-01"),))

        span = flask_telemetry.span()
        assert span.parent is not None and span.parent.is_remote
        assert (f"{span.context.trace_id:032x}", f"{span.parent.span_id:016x}") == (TRACE_ID, PARENT_ID)

    def test_excluded_urls_make_no_span_and_no_metrics(self) -> None:
        exporter, reader = InMemorySpanExporter(), InMemoryMetricReader()
        tracer_provider = TracerProvider(shutdown_on_exit=False)
        tracer_provider.add_span_processor(SimpleSpanProcessor(exporter))
        meter_provider = MeterProvider(metric_readers=[reader], shutdown_on_exit=False)
        http_server.instrument(
            "flask", excluded_urls="/health", tracer_provider=tracer_provider, meter_provider=meter_provider
        )
        try:
            assert wsgi(_app(), "GET", "/health").status == 200
        finally:
            http_server.uninstrument("flask")

        assert exporter.get_finished_spans() == ()
        assert reader.get_metrics_data() is None


class TestStatus:
    @pytest.mark.parametrize(("path", "code"), [("/teapot", 418), ("/nowhere", 404)])
    def test_client_errors_are_not_server_errors(self, flask_telemetry: Telemetry, path: str, code: int) -> None:
        wsgi(_app(), "GET", path)

        span = flask_telemetry.span()
        assert span.status.status_code is StatusCode.UNSET
        assert _attributes(span)["http.response.status_code"] == code
        assert "error.type" not in _attributes(span)

    def test_a_5xx_response_is_an_error_typed_by_its_status(self, flask_telemetry: Telemetry) -> None:
        wsgi(_app(), "GET", "/unavailable")

        span = flask_telemetry.span()
        assert (span.status.status_code, _attributes(span)["error.type"]) == (StatusCode.ERROR, "503")

    def test_an_exception_is_a_500_with_its_event(self, flask_telemetry: Telemetry) -> None:
        assert wsgi(_app(), "GET", "/boom").status == 500

        span = flask_telemetry.span()
        assert span.status.status_code is StatusCode.ERROR
        assert (_attributes(span)["http.response.status_code"], _attributes(span)["error.type"]) == (500, "500")
        assert [e.name for e in span.events] == ["exception"]


class TestMetrics:
    def test_duration_in_seconds_with_the_conventions_buckets_and_attributes(self, flask_telemetry: Telemetry) -> None:
        wsgi(_app(), "GET", "/items/3")

        _, metric = flask_telemetry.metrics()["http.server.request.duration"]
        [point] = metric.data.data_points
        assert (metric.unit, tuple(point.explicit_bounds), point.count) == ("s", DURATION_BUCKETS, 1)
        assert dict(point.attributes) == {
            "http.request.method": "GET",
            "http.response.status_code": 200,
            "http.route": "/items/<int:item_id>",
            "network.protocol.version": "1.1",
            "url.scheme": "http",
        }
        assert flask_telemetry.point("http.server.active_requests").value == 0

    def test_body_sizes_of_request_and_response(self, flask_telemetry: Telemetry) -> None:
        body = b'{"name": "a"}'
        headers = (("content-type", "application/json"), ("content-length", str(len(body))))
        response = wsgi(_app(), "POST", "/items", headers, **{"wsgi.input": io.BytesIO(body)})

        assert response.status == 201
        assert flask_telemetry.point("http.server.request.body.size").sum == len(body)
        assert flask_telemetry.point("http.server.response.body.size").sum == len(b"".join(response.chunks))


class TestHead:
    def test_head_has_no_body_whatever_its_content_length(self, flask_telemetry: Telemetry) -> None:
        response = wsgi(_app(), "HEAD", "/hello")

        assert response.status == 200 and int(response.headers["content-length"]) > 0
        assert flask_telemetry.span().name == "HEAD /hello"
        assert flask_telemetry.point("http.server.response.body.size").sum == 0


def _streaming_app(seen: list[Any]) -> Any:
    app = flask.Flask("stream")

    @app.get("/stream")
    def stream() -> Any:
        def chunks() -> Iterator[bytes]:
            yield b"a" * 10
            time.sleep(0.05)
            seen.append(trace.get_current_span())
            yield b"b" * 5

        return flask.Response(flask.stream_with_context(chunks()), mimetype="text/plain")

    @app.teardown_request
    def teardown(exc: BaseException | None) -> None:
        span = trace.get_current_span()
        seen.append(("teardown", span, span.is_recording(), exc))

    @app.get("/fail")
    def fail() -> str:
        raise KeyError("x")

    app.logger.disabled = True
    return app


FILE_BYTES = b"x" * 20_000
SLOW_READ = 0.02  # seconds per read of the slow file below


class _SlowFile(io.BytesIO):
    """A file whose reads take time, like one on a slow disk."""

    def read(self, size: int | None = -1) -> bytes:
        time.sleep(SLOW_READ)
        return super().read(size)


def _file_app() -> Any:
    app = flask.Flask("files")

    @app.get("/file")
    def file() -> Any:
        return flask.send_file(_SlowFile(FILE_BYTES), mimetype="application/octet-stream")

    return app


class TestStreamingAndTeardown:
    def test_the_span_covers_a_stream_with_context(self, flask_telemetry: Telemetry) -> None:
        seen: list[Any] = []
        ended_before_last_chunk: list[bool] = []

        def on_chunk(chunk: bytes) -> None:
            ended_before_last_chunk.append(bool(flask_telemetry.spans()))

        response = wsgi(_streaming_app(seen), "GET", "/stream", on_chunk=on_chunk)

        assert b"".join(response.chunks) == b"a" * 10 + b"b" * 5
        span = flask_telemetry.span()
        [in_stream] = [x for x in seen if not isinstance(x, tuple)]
        assert in_stream.get_span_context().span_id == span.context.span_id  # current while streaming
        assert ended_before_last_chunk == [False, False]
        assert flask_telemetry.point("http.server.request.duration").sum >= 0.05
        assert flask_telemetry.lines() == [("request completed", "/stream", 200)]

    def test_the_apps_teardown_runs_inside_the_span_before_it_ends(self, flask_telemetry: Telemetry) -> None:
        seen: list[Any] = []
        wsgi(_streaming_app(seen), "GET", "/fail")

        [(_, span, recording, exc)] = seen  # Flask runs the app's teardown first: ours was registered first
        assert span.get_span_context().span_id == flask_telemetry.span().context.span_id
        assert recording
        assert isinstance(exc, KeyError)
        assert flask_telemetry.span().status.status_code is StatusCode.ERROR

    def test_a_plain_generator_ends_when_the_server_closes_the_body(self, flask_telemetry: Telemetry) -> None:
        app = flask.Flask("plain")
        current: list[Any] = []

        @app.get("/gen")
        def gen() -> Any:
            def chunks() -> Iterator[bytes]:
                yield b"a"
                current.append(trace.get_current_span())
                yield b"b"

            return flask.Response(chunks())

        ended_early: list[bool] = []
        wsgi(app, "GET", "/gen", on_chunk=lambda chunk: ended_early.append(bool(flask_telemetry.spans())))

        span = flask_telemetry.span()
        assert ended_early == [False, False]
        assert current[0].get_span_context().span_id == span.context.span_id
        assert flask_telemetry.lines() == [("request completed", "/gen", 200)]
        assert flask_telemetry.point("http.server.active_requests").value == 0

    def test_an_iterator_body_ends_once_sent(self, flask_telemetry: Telemetry) -> None:
        app = flask.Flask("iterator")

        @app.get("/it")
        def it() -> Any:
            return flask.Response(iter([b"a", b"b"]))

        ended_early: list[bool] = []
        response = wsgi(app, "GET", "/it", on_chunk=lambda chunk: ended_early.append(bool(flask_telemetry.spans())))

        assert b"".join(response.chunks) == b"ab"
        assert ended_early == [False, False]
        assert flask_telemetry.lines() == [("request completed", "/it", 200)]

    def test_send_file_ends_once_the_file_is_read(self, flask_telemetry: Telemetry) -> None:
        app = _file_app()
        ended_early: list[bool] = []
        response = wsgi(app, "GET", "/file", on_chunk=lambda chunk: ended_early.append(bool(flask_telemetry.spans())))

        assert b"".join(response.chunks) == FILE_BYTES
        assert ended_early and not any(ended_early)
        assert flask_telemetry.point("http.server.request.duration").sum >= SLOW_READ * 2  # the reads, timed
        assert flask_telemetry.point("http.server.active_requests").value == 0
        assert flask_telemetry.lines() == [("request completed", "/file", 200)]

    def test_the_servers_file_wrapper_is_kept_and_its_close_ends_the_request(self, flask_telemetry: Telemetry) -> None:
        """gunicorn sends its own `wsgi.file_wrapper` with sendfile: the body must stay that object."""
        from gunicorn.http.wsgi import FileWrapper

        started: list[str] = []
        environ = wsgi_environ("GET", "/file", **{"wsgi.file_wrapper": FileWrapper})
        body = _file_app()(environ, lambda status, headers, exc_info=None: started.append(status))

        assert isinstance(body, FileWrapper)
        assert started == ["200 OK"]
        sent = b"".join(body)  # what sendfile would send
        assert flask_telemetry.spans() == []  # sent, not yet closed
        body.close()  # PEP 3333: the server closes the body once sent

        assert sent == FILE_BYTES
        assert flask_telemetry.span().attributes["http.response.status_code"] == 200
        assert flask_telemetry.point("http.server.active_requests").value == 0
        assert flask_telemetry.lines() == [("request completed", "/file", 200)]

    def test_a_body_never_read_leaves_no_span_current(self, flask_telemetry: Telemetry) -> None:
        """A test client that neither reads nor closes a streamed body: the next request is still
        a trace of its own (nothing of the first stays attached)."""
        app = flask.Flask("unread")

        @app.get("/gen")
        def gen() -> Any:
            return flask.Response(iter_chunks())

        def iter_chunks() -> Iterator[bytes]:
            yield b"a"

        client = app.test_client()
        client.get("/gen")
        client.get("/gen").close()

        assert trace.get_current_span() is trace.INVALID_SPAN
        spans = flask_telemetry.spans()
        assert [s.parent for s in spans] == [None]  # the second; the first ends once its body is read or closed
