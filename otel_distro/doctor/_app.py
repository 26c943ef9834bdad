"""App (`--app`): import it instrumented (exporting nowhere), send it one request, and look at
request-ID handling and at log handlers printing or exporting records twice."""

from __future__ import annotations

import importlib
import inspect
import logging
import os
import sys
from collections.abc import Iterable
from typing import Any

from otel_distro.doctor._findings import OK, PROBLEM, Finding, entry_points
from otel_distro.settings import Settings

__all__ = ["app_findings", "logging_findings"]


def _destination(handler: logging.Handler) -> str | None:
    filename = getattr(handler, "baseFilename", None)
    if filename:
        return str(filename)
    stream = getattr(handler, "stream", None)
    if stream is None:
        return None
    if stream in (sys.stderr, sys.__stderr__):
        return "stderr"
    if stream in (sys.stdout, sys.__stdout__):
        return "stdout"
    return f"stream {getattr(stream, 'name', id(stream))}"


def _chain(logger: logging.Logger) -> Iterable[tuple[logging.Logger, logging.Handler]]:
    current: logging.Logger | None = logger
    while current is not None:
        for handler in current.handlers:
            yield current, handler
        current = current.parent if current.propagate else None


def _label(logger: logging.Logger) -> str:
    return "the root logger" if logger.name == "root" else f"logger {logger.name!r}"


def _second_otel_handler(owner: logging.Logger) -> Finding:
    return Finding(
        "app",
        PROBLEM,
        f"{_label(owner)} has OpenTelemetry's LoggingHandler: with otel-distro's export, records are exported twice",
        "remove that handler (otel-distro exports logs), or set OTEL_LOGS_EXPORTER=none",
    )


def _printed_twice(first: logging.Logger, second: logging.Logger, place: str) -> Finding:
    if first is second:
        where, fix = _label(first), "remove one of the two handlers"
    else:
        where = f"{_label(first)} and {_label(second)}"
        fix = f"remove one of them, or set logging.getLogger({first.name!r}).propagate = False"
    return Finding("app", PROBLEM, f"records reaching {where} are printed twice to {place}", fix)


def logging_findings() -> list[Finding]:
    """Records printed twice (two handlers writing to one place on a logger's path), and
    OpenTelemetry's own log handler added next to ours."""
    found = []
    loggers = [logging.getLogger()] + [
        lg for lg in logging.Logger.manager.loggerDict.values() if isinstance(lg, logging.Logger)
    ]
    reported: set[tuple[int, int]] = set()
    for logger in loggers:
        places: dict[str, tuple[logging.Logger, logging.Handler]] = {}
        for owner, handler in _chain(logger):
            module = type(handler).__module__
            if module.startswith("otel_distro"):
                continue  # ours print only what no handler of the app printed
            if module.startswith("opentelemetry") and type(handler).__name__ == "LoggingHandler":
                if (id(handler), 0) not in reported:
                    reported.add((id(handler), 0))
                    found.append(_second_otel_handler(owner))
                continue
            place = _destination(handler)
            if place is None:
                continue
            if place not in places:
                places[place] = (owner, handler)
                continue
            first_owner, first_handler = places[place]
            if (id(first_handler), id(handler)) not in reported:
                reported.add((id(first_handler), id(handler)))
                found.append(_printed_twice(first_owner, owner, place))
    if not found:
        found.append(Finding("app", OK, "no duplicate logging handlers"))
    return found


def _load_app(spec: str) -> Any:
    module_name, _, attr = spec.partition(":")
    if os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())
    module = importlib.import_module(module_name)
    app = module
    for part in (attr or "app").split("."):
        app = getattr(app, part)
    if inspect.isfunction(app):  # an app factory, as `uvicorn --factory` takes
        app = app()
    return app


def _instrument_quietly(settings: Settings) -> Any:
    """Instrument FastAPI and Flask as `opentelemetry-instrument` would, exporting nowhere;
    returns the in-memory span exporter."""
    from opentelemetry.instrumentation.dependencies import get_dist_dependency_conflicts
    from opentelemetry.instrumentation.propagators import set_global_response_propagator
    from opentelemetry.sdk.metrics import MeterProvider
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    from otel_distro.components import request_ids
    from otel_distro.distro import instrument
    from otel_distro.request_id import RequestIdResponsePropagator

    spans = InMemorySpanExporter()
    tracer_provider = TracerProvider(shutdown_on_exit=False)
    tracer_provider.add_span_processor(SimpleSpanProcessor(spans))
    set_global_response_propagator(RequestIdResponsePropagator(request_ids(settings), settings.server_timing))
    for ep in entry_points("opentelemetry_instrumentor"):
        if ep.name not in ("fastapi", "flask") or ep.name in settings.disabled_instrumentations:
            continue
        if ep.dist is not None and get_dist_dependency_conflicts(ep.dist) is not None:
            continue
        instrument(ep, settings, tracer_provider=tracer_provider, meter_provider=MeterProvider())
    return spans


def _probe_request(app: Any) -> int | None:
    """One GET to a path no app serves, through the app in-process; None if it cannot be sent."""
    path = "/otel-distro-doctor-probe"
    if hasattr(app, "test_client"):  # Flask
        return int(app.test_client().get(path).status_code)
    try:
        from starlette.applications import Starlette
        from starlette.testclient import TestClient
    except ImportError:  # no starlette, or no httpx for its test client
        return None
    if isinstance(app, Starlette):
        return int(TestClient(app, raise_server_exceptions=False).get(path).status_code)
    return None


def app_findings(spec: str, settings: Settings) -> list[Finding]:
    spans = _instrument_quietly(settings)
    try:
        app = _load_app(spec)
    except Exception as err:
        return [
            Finding("app", PROBLEM, f"cannot import {spec}: {type(err).__name__}: {err}", "check --app module:attr")
        ]
    found = logging_findings()
    status = _probe_request(app)
    kind = type(app).__name__
    if status is None:
        found.append(
            Finding(
                "app",
                PROBLEM,
                f"{spec} is a {kind}: request IDs and request traces need a FastAPI or Flask app",
                "pass the FastAPI or Flask app object to --app",
            )
        )
        return found
    server = [s for s in spans.get_finished_spans() if s.kind.name == "SERVER"]
    if any((s.attributes or {}).get("request.id") for s in server):
        found.append(Finding("app", OK, f"request-ID handling is active ({settings.request_id_header})"))
    elif server:
        found.append(
            Finding("app", PROBLEM, "requests are traced but get no request ID", "report this as an otel-distro bug")
        )
    elif not any(base.__name__ in ("FastAPI", "Flask") for base in type(app).__mro__):
        found.append(
            Finding(
                "app",
                PROBLEM,
                f"request-ID handling is not active: otel-distro traces FastAPI and Flask apps, not {kind}",
                "build the app with FastAPI or Flask, or pass that app object to --app",
            )
        )
    else:
        found.append(
            Finding(
                "app",
                PROBLEM,
                f"request-ID handling is not active: a request to the {kind} app was not traced",
                "create the app after start-up under opentelemetry-instrument (not in sitecustomize), "
                "and keep the fastapi/flask instrumentation installed and enabled",
            )
        )
    return found
