from __future__ import annotations

import logging
import time

import pytest
from opentelemetry.sdk.trace import TracerProvider

from otel_distro.request_id import RequestIds, _active_for
from otel_distro.request_log import LOGGER_NAME, RequestLog, SuppressLoggedErrors


def _finish(provider: TracerProvider, log: RequestLog, status: int, error: BaseException | None, delay: float) -> None:
    ids = RequestIds("X-Request-ID", True, on_response=log)
    with provider.get_tracer("t").start_as_current_span("GET /orders/{id}") as span:
        span.set_attribute("http.route", "/orders/{id}")
        ids.asgi_server_request_hook(span, {"type": "http", "method": "GET", "path": "/orders/7", "headers": []})
        time.sleep(delay)
        active = _active_for()
        assert active is not None
        log(active, status, error)


class TestRequestLog:
    def test_completed_line(self, tracer_provider: TracerProvider, caplog: pytest.LogCaptureFixture) -> None:
        with caplog.at_level(logging.INFO, LOGGER_NAME):
            _finish(tracer_provider, RequestLog(access=True, slow_threshold=1.0), 200, None, 0)

        [record] = caplog.records
        assert record.getMessage() == "request completed"
        assert (record.method, record.route, record.status) == ("GET", "/orders/{id}", 200)  # type: ignore[attr-defined]

    def test_slow_request_is_one_warning(
        self, tracer_provider: TracerProvider, caplog: pytest.LogCaptureFixture
    ) -> None:
        with caplog.at_level(logging.INFO, LOGGER_NAME):
            _finish(tracer_provider, RequestLog(access=True, slow_threshold=0.05), 200, None, 0.06)

        [record] = caplog.records
        assert record.levelname == "WARNING"
        assert record.getMessage() == "slow request"
        assert record.duration_ms >= 50  # type: ignore[attr-defined]

    def test_unhandled_error_logged_once_and_server_copy_suppressed(
        self, tracer_provider: TracerProvider, caplog: pytest.LogCaptureFixture
    ) -> None:
        error = RuntimeError("boom")
        log = RequestLog(access=False, slow_threshold=0)
        with caplog.at_level(logging.INFO, LOGGER_NAME):
            _finish(tracer_provider, log, 500, error, 0)
            _finish(tracer_provider, log, 500, error, 0)  # same exception seen again

        [record] = caplog.records
        assert record.levelname == "ERROR"
        assert record.exc_info is not None and record.exc_info[1] is error
        uvicorn_copy = logging.LogRecord("uvicorn.error", 40, "f", 1, "Exception in ASGI application", (), None)
        uvicorn_copy.exc_info = (RuntimeError, error, None)
        assert not SuppressLoggedErrors().filter(uvicorn_copy)

    def test_nothing_when_access_off_and_fast(
        self, tracer_provider: TracerProvider, caplog: pytest.LogCaptureFixture
    ) -> None:
        with caplog.at_level(logging.INFO, LOGGER_NAME):
            _finish(tracer_provider, RequestLog(access=False, slow_threshold=1.0), 200, None, 0)
        assert caplog.records == []
