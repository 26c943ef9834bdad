"""Which server instrumentation runs (setting and automatic fallback) and how the distro hooks it in."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from typing import Any

import fastapi
import flask
import pytest
from fastapi.testclient import TestClient
from opentelemetry.instrumentation.fastapi import FastAPIInstrumentor
from opentelemetry.instrumentation.flask import FlaskInstrumentor
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from otel_distro import distro, http_server
from otel_distro.http_server import CHOSEN, contrib_reason
from otel_distro.settings import Settings, load_settings


class TestSetting:
    def test_ours_by_default(self) -> None:
        assert Settings().http_instrumentation == "distro"

    def test_contrib_can_be_chosen(self) -> None:
        settings = load_settings({"OTEL_DISTRO_HTTP_INSTRUMENTATION": "Contrib"})

        assert settings.http_instrumentation == "contrib"
        assert contrib_reason("flask", settings) == CHOSEN

    def test_unknown_value_keeps_ours(self) -> None:
        settings = load_settings({"OTEL_DISTRO_HTTP_INSTRUMENTATION": "fastest"})

        assert settings.http_instrumentation == "distro"
        assert [p.variable for p in settings.problems] == ["OTEL_DISTRO_HTTP_INSTRUMENTATION"]


class TestFallbackRule:
    @pytest.mark.parametrize("framework", ["flask", "fastapi"])
    def test_defaults_use_ours(self, framework: str) -> None:
        assert contrib_reason(framework, Settings()) is None

    @pytest.mark.parametrize(
        ("name", "value"),
        [
            ("OTEL_INSTRUMENTATION_HTTP_CAPTURE_HEADERS_SERVER_REQUEST", "x-tenant"),
            ("OTEL_INSTRUMENTATION_HTTP_CAPTURE_HEADERS_SERVER_RESPONSE", "content-type"),
            ("OTEL_PYTHON_INSTRUMENTATION_HTTP_CAPTURE_ALL_METHODS", "1"),
            ("OTEL_SEMCONV_STABILITY_OPT_IN", "http/dup"),
            ("OTEL_SEMCONV_STABILITY_OPT_IN", "database"),
        ],
    )
    @pytest.mark.parametrize("framework", ["flask", "fastapi"])
    def test_options_only_contrib_implements_select_contrib(self, framework: str, name: str, value: str) -> None:
        reason = contrib_reason(framework, load_settings({name: value}))

        assert reason is not None
        assert name in reason

    def test_stable_http_among_other_opt_ins_keeps_ours(self) -> None:
        settings = load_settings({"OTEL_SEMCONV_STABILITY_OPT_IN": "database, http"})
        assert contrib_reason("flask", settings) is None

    def test_kept_asgi_message_spans_select_contrib_for_fastapi_only(self) -> None:
        settings = load_settings({"OTEL_DISTRO_ASGI_EXCLUDE_SPANS": "send"})

        assert "OTEL_DISTRO_ASGI_EXCLUDE_SPANS" in (contrib_reason("fastapi", settings) or "")
        assert contrib_reason("flask", settings) is None

    def test_sanitize_fields_alone_keeps_ours(self) -> None:
        """Sanitizing only applies to captured headers, which need one of the capture variables."""
        settings = load_settings({"OTEL_INSTRUMENTATION_HTTP_CAPTURE_HEADERS_SANITIZE_FIELDS": "cookie"})
        assert contrib_reason("flask", settings) is None


# --- the distro's load_instrumentor -----------------------------------------------------------


class _EntryPoint:
    def __init__(self, name: str) -> None:
        self.name = name

    def load(self) -> Any:
        return FlaskInstrumentor if self.name == "flask" else FastAPIInstrumentor


@pytest.fixture
def restore() -> Iterator[None]:
    """Undo whatever instrumentation a test applied, ours and contrib's."""
    classes = flask.Flask, fastapi.FastAPI
    yield
    for framework, contrib in (("flask", FlaskInstrumentor()), ("fastapi", FastAPIInstrumentor())):
        http_server.uninstrument(framework)
        if contrib._is_instrumented_by_opentelemetry and hasattr(contrib, f"_original_{framework}"):
            contrib.uninstrument()
        contrib._is_instrumented_by_opentelemetry = False
    flask.Flask, fastapi.FastAPI = classes  # type: ignore[misc]
    distro._said.clear()


def _load(monkeypatch: pytest.MonkeyPatch, framework: str, **env: str) -> None:
    monkeypatch.setattr(distro, "get_settings", lambda: load_settings(env))
    distro.OtelDistro().load_instrumentor(_EntryPoint(framework), skip_dep_check=True)


@pytest.mark.usefixtures("restore")
class TestHookIn:
    @pytest.mark.parametrize("framework", ["flask", "fastapi"])
    def test_ours_replaces_the_app_class_and_marks_contrib_instrumented(
        self, monkeypatch: pytest.MonkeyPatch, framework: str
    ) -> None:
        module: Any = flask if framework == "flask" else fastapi
        name = "Flask" if framework == "flask" else "FastAPI"
        original = getattr(module, name)
        contrib: Any = FlaskInstrumentor() if framework == "flask" else FastAPIInstrumentor()

        _load(monkeypatch, framework)
        ours = getattr(module, name)
        contrib.instrument()  # already instrumented: must not wrap a second time

        assert http_server.is_instrumented(framework)
        assert getattr(module, name) is ours
        assert ours.__mro__[1] is original
        contrib.uninstrument()  # contrib's uninstrument restores the framework
        assert getattr(module, name) is original

    def test_flask_apps_are_instrumented_once(self, monkeypatch: pytest.MonkeyPatch) -> None:
        _load(monkeypatch, "flask")
        app = flask.Flask(__name__)

        FlaskInstrumentor.instrument_app(app)  # a user's explicit call is skipped too

        assert app._is_instrumented_by_opentelemetry  # type: ignore[attr-defined]
        assert app.before_request_funcs[None] == [app._before_request]  # type: ignore[attr-defined]

    def test_health_endpoints_still_attach(self, monkeypatch: pytest.MonkeyPatch) -> None:
        _load(monkeypatch, "flask", OTEL_DISTRO_HEALTH="true")
        _load(monkeypatch, "fastapi", OTEL_DISTRO_HEALTH="true")
        flask_app = flask.Flask(__name__)
        fastapi_app = fastapi.FastAPI()

        assert flask_app.test_client().get("/health/live").status_code == 200
        with TestClient(fastapi_app) as client:
            assert client.get("/health/live").status_code == 200
        assert http_server.is_instrumented("flask")
        assert http_server.is_instrumented("fastapi")

    def test_fallback_uses_contrib_and_says_why_once(
        self, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
    ) -> None:
        env = {"OTEL_INSTRUMENTATION_HTTP_CAPTURE_HEADERS_SERVER_REQUEST": "x-tenant"}
        with caplog.at_level(logging.INFO, logger="otel_distro.http_server"):
            _load(monkeypatch, "flask", **env)
            _load(monkeypatch, "fastapi", **env)

        assert not http_server.is_instrumented("flask")
        assert flask.Flask.__name__ == "_InstrumentedFlask"
        assert fastapi.FastAPI.__name__ == "_InstrumentedFastAPI"
        [record] = caplog.records
        assert record.levelno == logging.INFO
        assert "OTEL_INSTRUMENTATION_HTTP_CAPTURE_HEADERS_SERVER_REQUEST" in record.getMessage()

    def test_chosen_contrib_is_not_announced(
        self, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
    ) -> None:
        with caplog.at_level(logging.INFO, logger="otel_distro.http_server"):
            _load(monkeypatch, "flask", OTEL_DISTRO_HTTP_INSTRUMENTATION="contrib")

        assert flask.Flask.__name__ == "_InstrumentedFlask"
        assert not caplog.records

    def test_providers_passed_to_the_distro_are_used(
        self, monkeypatch: pytest.MonkeyPatch, tracer_provider: TracerProvider, spans: InMemorySpanExporter
    ) -> None:
        """`otel-distro doctor` instruments with its own providers, as contrib allows."""
        monkeypatch.setattr(distro, "get_settings", lambda: Settings())
        loader = distro.OtelDistro()
        loader.load_instrumentor(_EntryPoint("flask"), tracer_provider=tracer_provider, meter_provider=MeterProvider())
        app = flask.Flask(__name__)

        assert app.test_client().get("/nowhere").status_code == 404
        [span] = spans.get_finished_spans()
        assert span.name == "GET"  # no route matched: the method alone
        assert span.attributes is not None and span.attributes["request.id"]
