"""Breadcrumbs: the request's earlier log records on its ERROR line, and nowhere else."""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Iterator
from typing import Any

import flask
import pytest
from opentelemetry.sdk._logs import LoggerProvider
from opentelemetry.sdk._logs.export import InMemoryLogRecordExporter
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.trace import INVALID_SPAN

from otel_distro import http_server, request_id
from otel_distro.logs import install_logging
from otel_distro.logs._breadcrumbs import BreadcrumbHandler
from otel_distro.request_id import RequestIds, _Active
from otel_distro.request_log import RequestLog
from otel_distro.scrub import Scrubber
from otel_distro.settings import Settings

log = logging.getLogger("shop.cart")
Shop = Callable[..., Any]


def _app() -> Any:
    app = flask.Flask("shop")

    @app.get("/cart/<int:items>")
    def cart(items: int) -> str:
        for i in range(items):
            log.info("item %d added", i)
        log.warning("login password=hunter2 accepted")
        if items % 2:
            raise RuntimeError("cart broken")
        return "ok"

    return app


@pytest.fixture
def shop(tracer_provider: TracerProvider, logger_provider: LoggerProvider) -> Iterator[Callable[..., Any]]:
    """`shop(limit)`: the instrumented app's test client, logging set up with `breadcrumbs=limit`.

    Called in the test body: pytest's capture handlers, added after fixtures ran, would count
    as the app's and keep our console lines off capsys.
    """
    instrumented = []

    def start(limit: int = 4) -> Any:
        logging.getLogger().handlers[:] = []
        install_logging(
            Settings(log_format="json", breadcrumbs=limit),
            logger_provider,
            Resource.create({"service.name": "shop"}),
            Scrubber(()),
        )
        ids = RequestIds("X-Request-ID", True, on_response=RequestLog(True, 60.0))
        meter_provider = MeterProvider(shutdown_on_exit=False)
        http_server.instrument("flask", request_ids=ids, tracer_provider=tracer_provider, meter_provider=meter_provider)
        instrumented.append(True)
        return _app().test_client()

    yield start
    if instrumented:
        http_server.uninstrument("flask")


def _lines(capsys: pytest.CaptureFixture[str]) -> list[dict[str, Any]]:
    return [json.loads(line) for line in capsys.readouterr().out.splitlines()]


def _errors(lines: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [line for line in lines if line["level"] == "ERROR" and "exception" in line]


class TestBreadcrumbs:
    def test_error_line_carries_the_requests_earlier_records_scrubbed(
        self, shop: Shop, capsys: pytest.CaptureFixture[str], log_records: InMemoryLogRecordExporter
    ) -> None:
        client = shop()
        assert client.get("/cart/3").status_code == 500
        errors = _errors(_lines(capsys))
        assert len(errors) == 1
        crumbs = errors[0]["breadcrumbs"]
        assert [c.split(" ", 1)[1] for c in crumbs] == [
            "INFO shop.cart: item 0 added",
            "INFO shop.cart: item 1 added",
            "INFO shop.cart: item 2 added",
            "WARNING shop.cart: login password=[REDACTED] accepted",
        ]
        exported = [r.log_record for r in log_records.get_finished_logs() if r.log_record.severity_text == "ERROR"]
        assert list((exported[0].attributes or {})["breadcrumbs"]) == crumbs

    def test_only_the_last_n_records(self, shop: Shop, capsys: pytest.CaptureFixture[str]) -> None:
        client = shop(2)
        assert client.get("/cart/9").status_code == 500
        crumbs = _errors(_lines(capsys))[0]["breadcrumbs"]
        assert [c.split(" ", 1)[1] for c in crumbs] == [
            "INFO shop.cart: item 8 added",
            "WARNING shop.cart: login password=[REDACTED] accepted",
        ]

    def test_other_requests_records_are_not_included(self, shop: Shop, capsys: pytest.CaptureFixture[str]) -> None:
        client = shop()
        assert client.get("/cart/2").status_code == 200
        assert client.get("/cart/1").status_code == 500
        crumbs = _errors(_lines(capsys))[0]["breadcrumbs"]
        assert [c.split(" ", 1)[1] for c in crumbs] == [
            "INFO shop.cart: item 0 added",
            "WARNING shop.cart: login password=[REDACTED] accepted",
        ]

    def test_lines_without_an_error_carry_none(self, shop: Shop, capsys: pytest.CaptureFixture[str]) -> None:
        client = shop()
        assert client.get("/cart/4").status_code == 200
        lines = _lines(capsys)
        assert len(lines) == 6  # four items, the warning, the access line
        assert not any("breadcrumbs" in line for line in lines)

    def test_outside_a_request_there_are_none(self, shop: Shop, capsys: pytest.CaptureFixture[str]) -> None:
        shop()
        log.info("starting")
        try:
            raise ValueError("config")
        except ValueError:
            log.exception("bad config")
        errors = _errors(_lines(capsys))
        assert len(errors) == 1 and "breadcrumbs" not in errors[0]

    def test_zero_turns_it_off(self, shop: Shop, capsys: pytest.CaptureFixture[str]) -> None:
        client = shop(0)
        assert not any(isinstance(h, BreadcrumbHandler) for h in logging.getLogger().handlers)
        assert client.get("/cart/3").status_code == 500
        assert "breadcrumbs" not in _errors(_lines(capsys))[0]

    def test_a_request_keeps_at_most_twice_the_limit(self) -> None:
        crumbs: list[Any] = []
        active = _Active(1, "rid", 0.0, "GET", INVALID_SPAN, "/", crumbs)
        handler = BreadcrumbHandler(3)
        token = request_id._active.set(active)
        try:
            for i in range(50):
                record = logging.LogRecord("app", logging.INFO, __file__, 1, "line %d", (i,), None)
                record.otel_request_id = "rid"
                handler.handle(record)
                assert len(crumbs) <= 2 * 3
        finally:
            request_id._active.reset(token)
        assert [r.args[0] for r in crumbs][-3:] == [47, 48, 49]
