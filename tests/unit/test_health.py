"""Health endpoints: readiness turning 503 and back, liveness never running checks, the
detailed view's shape, secret-free errors, automatic attachment, and exporter state."""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import fastapi
import flask
import pytest
from fastapi.testclient import TestClient
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult

from otel_distro import exporters, health
from otel_distro.health import _access, _attach, _registry, _report
from otel_distro.settings import Settings

# One "client" shape for both frameworks: get(path) -> (status, json).
Get = Callable[[str], tuple[int, Any]]


@pytest.fixture(autouse=True)
def _no_checks() -> Iterator[None]:
    saved = dict(_registry._checks)
    _registry._checks.clear()
    yield
    _registry._checks.clear()
    _registry._checks.update(saved)


def _fastapi_get() -> Get:
    app = fastapi.FastAPI()
    app.include_router(health.fastapi_router())
    client = TestClient(app)

    def get(path: str) -> tuple[int, Any]:
        response = client.get(path)
        return response.status_code, response.json()

    return get


def _flask_get() -> Get:
    app = flask.Flask(__name__)
    app.register_blueprint(health.flask_blueprint())
    client = app.test_client()

    def get(path: str) -> tuple[int, Any]:
        response = client.get(path)
        return response.status_code, response.get_json()

    return get


@pytest.fixture(params=["fastapi", "flask"])
def get(request: pytest.FixtureRequest) -> Get:
    return _fastapi_get() if request.param == "fastapi" else _flask_get()


def _status_within(get: Get, path: str, status: int, timeout: float = 5.0) -> bool:
    """Polls until `path` answers `status` (bounded): no fixed sleep to race a slow machine."""
    deadline = time.monotonic() + timeout
    while (answer := get(path)[0]) != status and time.monotonic() < deadline:
        time.sleep(0.02)
    return answer == status


class Switch:
    """A check whose outcome the test flips, counting its calls."""

    def __init__(self) -> None:
        self.ok = True
        self.calls = 0

    def __call__(self) -> bool:
        self.calls += 1
        if not self.ok:
            raise ConnectionError("database unreachable")
        return True


class TestReady:
    def test_all_pass_is_200(self, get: Get) -> None:
        health.add_check("db", lambda: True)
        health.add_check("cache", lambda: None)

        status, body = get("/health/ready")

        assert status == 200
        assert body["status"] == "pass"
        assert set(body["checks"]) == {"db", "cache"}
        assert "failing" not in body

    def test_no_checks_is_ready(self, get: Get) -> None:
        assert get("/health/ready") == (200, {"status": "pass", "checks": {}})

    def test_failure_is_503_listing_the_failing_check_and_back(self, get: Get) -> None:
        switch = Switch()
        health.add_check("db", switch)
        health.add_check("cache", lambda: True)

        switch.ok = False
        status, body = get("/health/ready")
        assert status == 503
        assert body["status"] == "fail"
        assert body["failing"] == ["db"]
        assert body["checks"]["db"]["status"] == "fail"
        assert body["checks"]["db"]["error"] == {"type": "ConnectionError", "message": "database unreachable"}
        assert body["checks"]["cache"]["status"] == "pass"

        switch.ok = True
        assert get("/health/ready")[0] == 200

    def test_returning_false_fails(self, get: Get) -> None:
        health.add_check("flag", lambda: False)

        status, body = get("/health/ready")

        assert status == 503
        assert body["checks"]["flag"]["error"]["type"] == "CheckFailed"

    def test_sync_timeout_is_503_then_recovers_when_the_call_returns(self, get: Get) -> None:
        release = threading.Event()
        calls: list[int] = []

        def slow() -> None:
            calls.append(1)
            release.wait(5)

        health.add_check("slow", slow, timeout=0.1)
        started = time.perf_counter()
        status, body = get("/health/ready")
        elapsed = time.perf_counter() - started
        assert status == 503
        assert body["checks"]["slow"]["status"] == "timeout"
        assert body["checks"]["slow"]["error"]["type"] == "Timeout"
        assert elapsed < 2

        # A second probe while the first call still hangs reuses it: no second thread.
        assert get("/health/ready")[0] == 503
        assert len(calls) == 1

        release.set()
        assert _status_within(get, "/health/ready", 200)

    def test_async_check_passes_fails_and_times_out(self, get: Get) -> None:
        state = {"delay": 0.0, "fail": False}

        async def ping() -> None:
            await asyncio.sleep(state["delay"])
            if state["fail"]:
                raise TimeoutError("upstream said no")

        health.add_check("ping", ping, timeout=0.2)
        assert get("/health/ready")[0] == 200

        state["fail"] = True
        status, body = get("/health/ready")
        assert status == 503
        assert body["checks"]["ping"]["status"] == "fail"  # its own TimeoutError is a failure, not ours
        assert body["checks"]["ping"]["error"]["type"] == "TimeoutError"

        state.update(fail=False, delay=0.5)
        status, body = get("/health/ready")
        assert status == 503
        assert body["checks"]["ping"]["status"] == "timeout"

        state["delay"] = 0.0
        # Under Flask the late call finishes on its own thread first; FastAPI cancelled it.
        assert _status_within(get, "/health/ready", 200)

    def test_checks_run_concurrently(self, get: Get) -> None:
        for name in ("a", "b", "c"):
            health.add_check(name, lambda: time.sleep(0.3))

        started = time.perf_counter()
        assert get("/health/ready")[0] == 200

        assert time.perf_counter() - started < 0.8


class TestLive:
    def test_live_never_calls_checks(self, get: Get) -> None:
        switch = Switch()
        switch.ok = False
        health.add_check("db", switch)

        assert get("/health/live") == (200, {"status": "pass"})
        assert switch.calls == 0


class TestDetail:
    def test_shape(self, get: Get) -> None:
        health.add_check("db", lambda: True)
        health.add_check("queue", Switch())

        status, body = get("/health")

        assert status == 200
        assert set(body) == {"status", "service", "uptime_seconds", "checks", "telemetry"}
        assert body["status"] == "pass"
        assert set(body["service"]) == {"name", "version", "environment", "instance_id"}
        assert isinstance(body["uptime_seconds"], float)
        assert body["uptime_seconds"] >= 0
        assert set(body["checks"]["db"]) == {"status", "latency_ms"}
        assert isinstance(body["checks"]["db"]["latency_ms"], float)
        assert isinstance(body["telemetry"]["exporters"], list)

    def test_failing_check_makes_it_503_with_the_failing_list(self, get: Get) -> None:
        health.add_check("db", lambda: False)

        status, body = get("/health")

        assert status == 503
        assert body["failing"] == ["db"]

    def test_exporter_state_is_reported(self, get: Get) -> None:
        state = exporters._state_for("traces", _FlakyExporter())
        state.success()
        state.failure("ConnectionError")

        _, body = get("/health")

        [entry] = [e for e in body["telemetry"]["exporters"] if e["exporter"] == "_FlakyExporter"]
        assert entry["signal"] == "traces"
        assert entry["last_success"].endswith("Z")
        assert entry["last_failure"].endswith("Z")
        assert entry["last_error"] == "ConnectionError"
        assert entry["consecutive_failures"] == 1


class TestSecrets:
    def test_failure_message_is_scrubbed_and_bounded(self, get: Get) -> None:
        def db() -> None:
            raise ConnectionError(
                "could not connect to postgres://app:hunter2@db:5432/orders (password=hunter2) " + "x" * 500
            )

        health.add_check("db", db)

        _, body = get("/health/ready")

        error = body["checks"]["db"]["error"]
        assert error["type"] == "ConnectionError"
        assert "hunter2" not in error["message"]
        assert "postgres://[REDACTED]@db:5432" in error["message"]
        assert len(error["message"]) <= 200

    def test_non_builtin_exceptions_are_named_with_their_module(self) -> None:
        class DatabaseError(Exception):
            pass

        health.add_check("db", lambda: (_ for _ in ()).throw(DatabaseError("token=abc123 expired")))

        [result] = health.run_checks()

        assert (
            result.error_type
            == f"{__name__}.TestSecrets.test_non_builtin_exceptions_are_named_with_their_module.<locals>.DatabaseError"
        )
        assert result.error == "token=[REDACTED] expired"


class TestRegistry:
    def test_same_name_replaces(self) -> None:
        health.add_check("db", lambda: False)
        health.add_check("db", lambda: True)

        assert [r.ok for r in health.run_checks()] == [True]

    def test_remove(self) -> None:
        health.add_check("db", lambda: False)
        health.remove_check("db")
        health.remove_check("never-added")

        assert health.run_checks() == []

    @pytest.mark.parametrize(
        ("name", "fn", "timeout"), [("", lambda: True, None), ("x", "nope", None), ("x", lambda: True, 0)]
    )
    def test_rejects_bad_registrations(self, name: str, fn: Any, timeout: float | None) -> None:
        with pytest.raises((ValueError, TypeError)):
            health.add_check(name, fn, timeout=timeout)


class TestPaths:
    def test_paths_are_configurable(self) -> None:
        app = flask.Flask(__name__)
        app.register_blueprint(health.flask_blueprint(path="/status", live_path="/livez", ready_path="/readyz"))
        client = app.test_client()

        assert client.get("/livez").status_code == 200
        assert client.get("/readyz").status_code == 200
        assert client.get("/status").get_json()["status"] == "pass"
        assert client.get("/health/live").status_code == 404

    def test_not_in_the_openapi_schema_by_default(self) -> None:
        app = fastapi.FastAPI()
        app.include_router(health.fastapi_router())

        assert not [p for p in app.openapi()["paths"] if p.startswith("/health")]

    def test_custom_paths_are_added_to_the_excluded_urls(self) -> None:
        paths = _report.Paths("/status", "/health/live", "/ping")

        excluded = _attach.exclude_health_paths("/health,/metrics$", paths).split(",")

        assert excluded == ["/health", "/metrics$", r"/status(?:\?|$)", r"/ping(?:\?|$)"]

    def test_default_paths_are_already_excluded_from_tracing(self) -> None:
        default = ",".join(Settings().excluded_urls)

        assert _attach.exclude_health_paths(default, _report.paths(Settings())) == default


class TestSettingsPassedDown:
    """Routers, checks and automatic attachment use the settings they are given, not the process's."""

    def test_router_and_blueprint_take_their_paths_from_the_settings(self) -> None:
        settings = Settings(health_path="/status", health_live_path="/livez", health_ready_path="/readyz")
        app = flask.Flask(__name__)
        app.register_blueprint(health.flask_blueprint(settings=settings))
        api = fastapi.FastAPI()
        api.include_router(health.fastapi_router(settings=settings))

        assert app.test_client().get("/livez").status_code == 200
        assert TestClient(api).get("/readyz").status_code == 200
        assert app.test_client().get("/health/live").status_code == 404

    def test_the_default_timeout_comes_from_the_settings(self) -> None:
        release = threading.Event()
        health.add_check("slow", lambda: release.wait(5))
        try:
            [result] = health.run_checks(settings=Settings(health_check_timeout=0.05))
        finally:
            release.set()

        assert result.status == "timeout"
        assert result.error == "no answer within 0.05s"

    def test_extra_scrub_keys_apply_to_error_messages(self) -> None:
        health.add_check("db", lambda: (_ for _ in ()).throw(ConnectionError("tenant_pin=4711 refused")))

        [result] = health.run_checks(settings=Settings(scrub_keys=("pin",)))

        assert "4711" not in (result.error or "")

    def test_attached_endpoints_use_the_distros_settings(self) -> None:
        original = flask.Flask
        _attach.attach_automatically("flask", Settings(health_live_path="/alive"))
        try:
            app = flask.Flask(__name__)
            assert app.test_client().get("/alive").get_json() == {"status": "pass"}
        finally:
            flask.Flask = original  # type: ignore[misc]


class TestAutomaticAttachment:
    @pytest.fixture
    def attached(self) -> Iterator[None]:
        original_fastapi, original_flask = fastapi.FastAPI, flask.Flask
        _attach.attach_automatically("fastapi", Settings())
        _attach.attach_automatically("flask", Settings())
        _attach.attach_automatically("fastapi", Settings())  # twice: no second layer
        try:
            yield
        finally:
            fastapi.FastAPI, flask.Flask = original_fastapi, original_flask  # type: ignore[misc]

    def test_one_layer_only(self, attached: None) -> None:
        assert fastapi.FastAPI.__mro__[1] is not fastapi.FastAPI.__mro__[0]
        assert not getattr(fastapi.FastAPI.__mro__[1], _attach._MARK, False)

    def test_fastapi_app_gets_endpoints_but_keeps_its_own_health(self, attached: None) -> None:
        app = fastapi.FastAPI()

        @app.get("/health")
        def own() -> dict[str, str]:
            return {"mine": "yes"}

        with TestClient(app) as client:
            assert client.get("/health").json() == {"mine": "yes"}
            assert client.get("/health/live").json() == {"status": "pass"}
            assert client.get("/health/ready").status_code == 200

    def test_flask_app_gets_endpoints_but_keeps_its_own_health(self, attached: None) -> None:
        app = flask.Flask(__name__)

        @app.get("/health/ready")
        def own() -> str:
            return "mine"

        client = app.test_client()
        assert client.get("/health/ready").get_data(as_text=True) == "mine"
        assert client.get("/health/live").get_json() == {"status": "pass"}
        assert client.get("/health").get_json()["status"] == "pass"


class TestAccessLog:
    @pytest.mark.parametrize(
        ("logger", "args"),
        [
            ("uvicorn.access", ("127.0.0.1:5000", "GET", "/health/ready?x=1", "1.1", 200)),
            ("gunicorn.access", {"U": "/health/live", "s": "200"}),
        ],
    )
    def test_health_probes_are_dropped_from_server_access_logs(self, logger: str, args: Any) -> None:
        health.fastapi_router()
        record = logging.LogRecord(logger, logging.INFO, "f", 1, "%s", (args,), None)
        record.args = args
        other = logging.LogRecord(logger, logging.INFO, "f", 1, "%s", (), None)
        other.args = ("127.0.0.1:5000", "GET", "/orders", "1.1", 200)

        filters = [f for f in logging.getLogger(logger).filters if isinstance(f, _access.HealthAccessFilter)]

        assert len(filters) == 1
        assert not filters[0].filter(record)
        assert filters[0].filter(other)


class _FlakyExporter(SpanExporter):
    def __init__(self) -> None:
        self.results = [SpanExportResult.SUCCESS]

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        result = self.results.pop(0)
        if isinstance(result, Exception):
            raise result
        return result


class TestPipelineState:
    def test_records_success_failure_and_exceptions(self) -> None:
        inner = _FlakyExporter()
        inner.results = [SpanExportResult.SUCCESS, SpanExportResult.FAILURE, ConnectionError("x")]  # type: ignore[list-item]
        recording = exporters._RecordingSpanExporter(inner, exporters.ExporterState("traces", "flaky"))

        assert recording.export([]) == SpanExportResult.SUCCESS
        assert recording._state.last_success is not None
        assert recording._state.last_failure is None
        assert recording.export([]) == SpanExportResult.FAILURE
        with pytest.raises(ConnectionError):
            recording.export([])

        assert recording._state.last_failure is not None
        assert recording._state.last_error == "ConnectionError"
        assert recording._state.failures == 2

    def test_built_exporters_are_recorded_per_signal(self) -> None:
        from otel_distro.settings import load_settings

        settings = load_settings(
            {"OTEL_TRACES_EXPORTER": "console", "OTEL_METRICS_EXPORTER": "console", "OTEL_LOGS_EXPORTER": "console"}
        )
        built = [
            *exporters.span_exporters(settings),
            *exporters.metric_exporters(settings),
            *exporters.log_exporters(settings),
        ]

        names = {(s.signal, s.exporter) for s in exporters.pipeline_state()}

        assert len(built) == 3
        assert {("traces", "console"), ("metrics", "console"), ("logs", "console")} <= names

    def test_metric_wrapper_keeps_the_exporters_preferences(self) -> None:
        from opentelemetry.sdk.metrics import Counter
        from opentelemetry.sdk.metrics.export import AggregationTemporality, ConsoleMetricExporter

        inner = ConsoleMetricExporter(preferred_temporality={Counter: AggregationTemporality.DELTA})
        wrapped = exporters._RecordingMetricExporter(inner, exporters.ExporterState("metrics", "console"))

        assert wrapped._preferred_temporality[Counter] == AggregationTemporality.DELTA
