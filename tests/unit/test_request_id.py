from __future__ import annotations

from typing import Any

import pytest
from opentelemetry import trace
from opentelemetry.instrumentation.asgi import asgi_setter
from opentelemetry.instrumentation.wsgi import default_response_propagation_setter
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from otel_distro.request_id import (
    RequestIdPropagator,
    RequestIdResponsePropagator,
    RequestIds,
    get_request_id,
    is_safe_request_id,
    new_request_id,
)


class TestValidation:
    @pytest.mark.parametrize("value", ["abc-123", "a" * 128, "f8d7e6c5-b4a3-42d1", "svc:1.2_x"])
    def test_safe(self, value: str) -> None:
        assert is_safe_request_id(value)

    @pytest.mark.parametrize("value", ["", "a" * 129, "id with space", "<script>", "x\r\nSet-Cookie: a=b", "é", "a;b"])
    def test_unsafe(self, value: str) -> None:
        assert not is_safe_request_id(value)

    def test_new_ids_are_safe_and_distinct(self) -> None:
        ids = {new_request_id() for _ in range(100)}

        assert len(ids) == 100
        assert all(is_safe_request_id(i) and len(i) == 32 for i in ids)


def _scope(*headers: tuple[bytes, bytes]) -> dict[str, Any]:
    return {"type": "http", "headers": list(headers)}


class TestServerHooks:
    def test_asgi_keeps_safe_inbound_id_and_records_it(
        self, tracer_provider: TracerProvider, spans: InMemorySpanExporter
    ) -> None:
        hooks = RequestIds("X-Request-ID", trust_inbound=True)
        tracer = tracer_provider.get_tracer("t")

        with tracer.start_as_current_span("GET /x") as span:
            hooks.asgi_server_request_hook(span, _scope((b"x-request-id", b"abc-123")))
            inside = get_request_id()

        assert inside == "abc-123"
        assert spans.get_finished_spans()[0].attributes == {"request.id": "abc-123"}

    def test_unsafe_inbound_id_is_replaced(self, tracer_provider: TracerProvider) -> None:
        hooks = RequestIds("X-Request-ID", trust_inbound=True)
        with tracer_provider.get_tracer("t").start_as_current_span("GET /x") as span:
            hooks.asgi_server_request_hook(span, _scope((b"x-request-id", b"bad id\n")))
            request_id = get_request_id()

        assert request_id is not None
        assert request_id != "bad id\n"
        assert is_safe_request_id(request_id)

    def test_untrusted_inbound_is_ignored(self, tracer_provider: TracerProvider) -> None:
        hooks = RequestIds("X-Request-ID", trust_inbound=False)
        with tracer_provider.get_tracer("t").start_as_current_span("GET /x") as span:
            hooks.wsgi_request_hook(span, {"HTTP_X_REQUEST_ID": "abc-123"})
            request_id = get_request_id()

        assert request_id not in (None, "abc-123")

    def test_custom_header_name_for_wsgi(self, tracer_provider: TracerProvider) -> None:
        hooks = RequestIds("Correlation-Id", trust_inbound=True)
        with tracer_provider.get_tracer("t").start_as_current_span("GET /x") as span:
            hooks.wsgi_request_hook(span, {"HTTP_CORRELATION_ID": "c-1"})
            request_id = get_request_id()

        assert request_id == "c-1"

    def test_id_is_gone_once_the_request_trace_is_no_longer_current(self, tracer_provider: TracerProvider) -> None:
        hooks = RequestIds("X-Request-ID", trust_inbound=True)
        tracer = tracer_provider.get_tracer("t")
        with tracer.start_as_current_span("first") as span:
            hooks.asgi_server_request_hook(span, _scope((b"x-request-id", b"first")))

        assert get_request_id() is None
        with tracer.start_as_current_span("unrelated"):
            assert get_request_id() is None

    def test_unsampled_requests_still_get_an_id(self) -> None:
        from opentelemetry.sdk.trace.sampling import ALWAYS_OFF

        provider = TracerProvider(sampler=ALWAYS_OFF, shutdown_on_exit=False)
        hooks = RequestIds("X-Request-ID", trust_inbound=True)
        with provider.get_tracer("t").start_as_current_span("GET /x") as span:
            assert not span.is_recording()
            hooks.asgi_server_request_hook(span, _scope())
            assert get_request_id() is not None


class TestResponsePropagator:
    def _in_request(self, provider: TracerProvider, inject: Any) -> Any:
        hooks = RequestIds("X-Request-ID", trust_inbound=True)
        with provider.get_tracer("t").start_as_current_span("GET /x") as span:
            hooks.asgi_server_request_hook(span, _scope((b"x-request-id", b"rid-1")))
            trace_id = format(span.get_span_context().trace_id, "032x")
            return inject(), trace_id

    def test_asgi_headers(self, tracer_provider: TracerProvider) -> None:
        propagator = RequestIdResponsePropagator(RequestIds("X-Request-ID", True), server_timing=True)
        message: dict[str, Any] = {"type": "http.response.start", "status": 500, "headers": []}

        _, trace_id = self._in_request(tracer_provider, lambda: propagator.inject(message, setter=asgi_setter))

        headers = {k.decode(): v.decode() for k, v in message["headers"]}
        assert headers["x-request-id"] == "rid-1"
        assert headers["server-timing"].startswith("app;dur=")
        assert f'traceparent;desc="00-{trace_id}-' in headers["server-timing"]
        assert headers["access-control-expose-headers"] == "X-Request-ID, Server-Timing"

    def test_wsgi_headers_without_server_timing(self, tracer_provider: TracerProvider) -> None:
        propagator = RequestIdResponsePropagator(RequestIds("X-Request-ID", True), server_timing=False)
        headers: list[tuple[str, str]] = []

        self._in_request(
            tracer_provider, lambda: propagator.inject(headers, setter=default_response_propagation_setter)
        )

        assert dict(headers) == {"X-Request-ID": "rid-1", "Access-Control-Expose-Headers": "X-Request-ID"}

    def test_app_set_header_is_not_duplicated(self, tracer_provider: TracerProvider) -> None:
        propagator = RequestIdResponsePropagator(RequestIds("X-Request-ID", True), server_timing=False)
        headers = [("x-request-id", "from-app")]

        self._in_request(
            tracer_provider, lambda: propagator.inject(headers, setter=default_response_propagation_setter)
        )

        assert [v for k, v in headers if k.lower() == "x-request-id"] == ["from-app"]

    def test_nothing_outside_a_request(self) -> None:
        headers: list[tuple[str, str]] = []
        RequestIdResponsePropagator(RequestIds("X-Request-ID", True), True).inject(
            headers, setter=default_response_propagation_setter
        )
        assert headers == []


class TestOutgoingPropagator:
    def test_injects_current_request_id(self, tracer_provider: TracerProvider) -> None:
        hooks = RequestIds("X-Request-ID", trust_inbound=True)
        propagator = RequestIdPropagator("X-Request-ID")
        carrier: dict[str, str] = {}
        with tracer_provider.get_tracer("t").start_as_current_span("GET /x") as span:
            hooks.asgi_server_request_hook(span, _scope((b"x-request-id", b"rid-9")))
            with tracer_provider.get_tracer("t").start_as_current_span("client"):
                propagator.inject(carrier)

        assert carrier == {"X-Request-ID": "rid-9"}
        assert propagator.fields == {"X-Request-ID"}

    def test_extract_keeps_context(self) -> None:
        ctx = trace.set_span_in_context(trace.INVALID_SPAN)
        assert RequestIdPropagator("X-Request-ID").extract({}, ctx) is ctx
