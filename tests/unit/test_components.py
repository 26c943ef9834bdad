"""Smaller units: instrumentation options, export-warning limits, shutdown, resource."""

from __future__ import annotations

import logging
import threading
import time

import pytest

from otel_distro.exporters import _RateLimit, limit_export_warnings
from otel_distro.instrumentors import instrument_kwargs
from otel_distro.request_id import RequestIds
from otel_distro.resource import build_resource
from otel_distro.settings import Settings, load_settings
from otel_distro.shutdown import shutdown_within

_HOOKS = RequestIds("X-Request-ID", trust_inbound=True)


class TestInstrumentKwargs:
    def test_fastapi_drops_message_spans_and_health_urls(self) -> None:
        kwargs = instrument_kwargs("fastapi", Settings(), _HOOKS)

        assert kwargs["exclude_spans"] == ["send", "receive"]
        assert kwargs["server_request_hook"] == _HOOKS.asgi_server_request_hook
        assert "/health" in kwargs["excluded_urls"].split(",")

    def test_message_spans_can_be_kept(self) -> None:
        settings = load_settings({"OTEL_DISTRO_ASGI_EXCLUDE_SPANS": ""})
        assert instrument_kwargs("fastapi", settings, _HOOKS)["exclude_spans"] == []

    def test_flask_gets_request_hook(self) -> None:
        kwargs = instrument_kwargs("flask", Settings(), _HOOKS)
        assert kwargs["request_hook"] == _HOOKS.wsgi_request_hook

    @pytest.mark.parametrize("name", ["OTEL_PYTHON_EXCLUDED_URLS", "OTEL_PYTHON_FLASK_EXCLUDED_URLS"])
    def test_upstream_excluded_urls_win(self, name: str) -> None:
        settings = load_settings({name: "ping"})
        assert "excluded_urls" not in instrument_kwargs("flask", settings, _HOOKS)

    def test_other_instrumentations_get_nothing(self) -> None:
        assert instrument_kwargs("requests", Settings(), _HOOKS) == {}


class TestExportWarnings:
    def _record(self) -> logging.LogRecord:
        return logging.LogRecord("x", logging.WARNING, "f", 1, "Failed to export", (), None)

    def test_one_warning_per_interval_then_a_count(self, monkeypatch: pytest.MonkeyPatch) -> None:
        now = [1000.0]  # a clock the test moves, so a slow machine cannot straddle the interval
        monkeypatch.setattr("otel_distro.exporters.time.monotonic", lambda: now[0])
        limit = _RateLimit(interval=0.2)

        results = [limit.filter(self._record()) for _ in range(5)]
        now[0] += 0.19
        held = limit.filter(self._record())
        now[0] += 0.02
        later = self._record()

        assert results == [True, False, False, False, False]
        assert not held
        assert limit.filter(later)
        assert "[5 similar messages suppressed]" in later.getMessage()

    def test_debug_is_not_limited(self) -> None:
        limit = _RateLimit(interval=60)
        debug = logging.LogRecord("x", logging.DEBUG, "f", 1, "d", (), None)
        assert all(limit.filter(debug) for _ in range(3))

    def test_installed_once_per_logger(self) -> None:
        added = limit_export_warnings(60)
        try:
            assert added
            assert limit_export_warnings(60) == []
        finally:
            for logger, limiter in added:
                logger.removeFilter(limiter)


class TestShutdown:
    def test_hanging_exporter_is_abandoned_after_the_timeout(self, caplog: pytest.LogCaptureFixture) -> None:
        release = threading.Event()
        done: list[str] = []
        started = time.monotonic()

        finished = shutdown_within([lambda: release.wait(10), lambda: done.append("fast")], timeout=0.3)

        assert time.monotonic() - started < 2
        assert not finished
        assert done == ["fast"]
        assert "OTEL_DISTRO_SHUTDOWN_TIMEOUT" in caplog.text
        release.set()

    def test_failing_shutdown_does_not_raise(self) -> None:
        def broken() -> None:
            raise RuntimeError("collector gone")

        assert shutdown_within([broken], timeout=1)


class TestResource:
    def test_identity_and_distro_attributes(self, monkeypatch: pytest.MonkeyPatch) -> None:
        monkeypatch.setenv("OTEL_SERVICE_NAME", "orders")
        resource = build_resource(Settings(service_version="1.2.3", environment="staging"))
        attrs = resource.attributes

        assert attrs["service.name"] == "orders"
        assert attrs["service.version"] == "1.2.3"
        assert attrs["deployment.environment.name"] == "staging"
        assert attrs["telemetry.distro.name"] == "otel-distro"
        assert attrs["service.instance.id"]

    def test_collector_http_metrics_mark_the_resource(self) -> None:
        from otel_distro.resource import HTTP_METRICS_ATTRIBUTE

        assert build_resource(Settings(http_metrics="collector")).attributes[HTTP_METRICS_ATTRIBUTE] == "collector"
        assert HTTP_METRICS_ATTRIBUTE not in build_resource(Settings()).attributes

    def test_unnamed_service_warns_once(
        self, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
    ) -> None:
        import otel_distro.resource as module

        monkeypatch.delenv("OTEL_SERVICE_NAME", raising=False)
        monkeypatch.setattr(module, "_warned_no_service_name", False)
        build_resource(Settings())
        build_resource(Settings())

        assert caplog.text.count("OTEL_SERVICE_NAME is not set") == 1
