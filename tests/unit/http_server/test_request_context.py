"""Each request on a kept-alive connection is its own trace, even when it starts in a context
left over from the request before it.

asyncio runs a resumed reader in the context of whoever resumed it: uvicorn resumes reading
from inside a request's `receive()` when a body is over 64 KiB, and starts a pipelined request
from inside the previous one's last `send()`. The next request's task then starts with the
previous server span current. Both are modelled here by starting request B in a context copied
during A's `receive()` or `send()`.
"""

from __future__ import annotations

import asyncio
import contextvars
from collections.abc import Iterator
from typing import Any

import fastapi
import pytest
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind

from otel_distro import http_server
from tests.server_inputs import asgi_scope

TRACEPARENT = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"


@pytest.fixture
def spans() -> Iterator[InMemorySpanExporter]:
    exporter = InMemorySpanExporter()
    provider = TracerProvider(shutdown_on_exit=False)
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    http_server.instrument("fastapi", tracer_provider=provider)
    try:
        yield exporter
    finally:
        http_server.uninstrument("fastapi")


def _app() -> Any:
    app = fastapi.FastAPI()

    @app.post("/upload")
    async def upload(request: fastapi.Request) -> dict[str, int]:
        return {"size": len(await request.body())}

    @app.get("/items/{item}")
    async def item(item: str) -> dict[str, str]:
        return {"item": item}

    sub = fastapi.FastAPI()

    @sub.get("/ping")
    async def ping() -> str:
        return "pong"

    app.mount("/sub", sub)
    return app


def _scope(method: str, path: str, headers: list[tuple[bytes, bytes]] | None = None) -> dict[str, Any]:
    return asgi_scope(method, path, headers or ())


async def _call(app: Any, scope: dict[str, Any], on_receive: Any = None, on_send: Any = None) -> None:
    async def receive() -> dict[str, Any]:
        if on_receive is not None:
            on_receive()
        return {"type": "http.request", "body": b"x" * 100, "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        if on_send is not None and message["type"] == "http.response.body":
            on_send()

    await app(scope, receive, send)


def _server_span(spans: InMemorySpanExporter, path: str) -> ReadableSpan:
    (span,) = [s for s in spans.get_finished_spans() if s.attributes and s.attributes.get("url.path") == path]
    return span


class TestLeftOverContext:
    def test_a_request_after_a_large_body_is_its_own_trace(self, spans: InMemorySpanExporter) -> None:
        app = _app()
        left_over: list[contextvars.Context] = []

        async def go() -> None:
            # A's receive() resumes reading: the reader keeps A's context for what comes next.
            await _call(app, _scope("POST", "/upload"), on_receive=lambda: left_over.append(contextvars.copy_context()))
            await left_over[0].run(asyncio.get_running_loop().create_task, _call(app, _scope("GET", "/items/b")))

        asyncio.run(go())
        a, b = _server_span(spans, "/upload"), _server_span(spans, "/items/b")
        assert (a.kind, b.kind) == (SpanKind.SERVER, SpanKind.SERVER)
        assert b.parent is None and b.context.trace_id != a.context.trace_id

    def test_a_pipelined_request_is_its_own_trace(self, spans: InMemorySpanExporter) -> None:
        app = _app()
        started: list[asyncio.Task[None]] = []

        async def go() -> None:
            loop = asyncio.get_running_loop()
            # B starts from inside A's last send(), while A's span is still current.
            await _call(
                app,
                _scope("GET", "/items/a"),
                on_send=lambda: started.append(loop.create_task(_call(app, _scope("GET", "/items/b")))),
            )
            await started[0]

        asyncio.run(go())
        a, b = _server_span(spans, "/items/a"), _server_span(spans, "/items/b")
        assert b.kind == SpanKind.SERVER
        assert b.parent is None and b.context.trace_id != a.context.trace_id

    def test_the_left_over_request_does_not_hide_a_traceparent(self, spans: InMemorySpanExporter) -> None:
        app = _app()
        left_over: list[contextvars.Context] = []
        traced = _scope("GET", "/items/b", [(b"traceparent", TRACEPARENT.encode())])

        async def go() -> None:
            await _call(app, _scope("POST", "/upload"), on_receive=lambda: left_over.append(contextvars.copy_context()))
            await left_over[0].run(asyncio.get_running_loop().create_task, _call(app, traced))

        asyncio.run(go())
        b = _server_span(spans, "/items/b")
        assert b.kind == SpanKind.SERVER
        assert b.parent is not None and b.parent.is_remote
        assert (f"{b.context.trace_id:032x}", f"{b.parent.span_id:016x}") == tuple(TRACEPARENT.split("-")[1:3])

    def test_a_mounted_app_is_part_of_its_request(self, spans: InMemorySpanExporter) -> None:
        app = _app()
        asyncio.run(_call(app, _scope("GET", "/sub/ping")))
        [span] = spans.get_finished_spans()
        assert (span.kind, span.name) == (SpanKind.SERVER, "GET /sub/ping")
