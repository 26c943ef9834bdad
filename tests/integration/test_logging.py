"""Log lines of an unmodified service on stdout, and what reached the collector."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest

from tests.harness import EXAMPLES, App, Capture, app_env, free_port, http, launch, stop_app, wait_until

pytestmark = pytest.mark.integration

SERVICE = "it-logs"
PASSWORD = "s3cr3t-hunter2"


def json_lines(app: App) -> list[dict[str, Any]]:
    lines = []
    for line in app.output().splitlines():
        if line.startswith("{"):
            lines.append(json.loads(line))
    return lines


@pytest.fixture(scope="module")
def orders(capture: Capture, tmp_path_factory: pytest.TempPathFactory) -> Iterator[App]:
    logs = tmp_path_factory.mktemp("logs")
    inventory_port, port = free_port(), free_port()
    inventory = launch(
        ["gunicorn", "-w", "1", "-b", f"127.0.0.1:{inventory_port}", "app:app"],
        app_env(SERVICE + "-inventory", capture.endpoint),
        EXAMPLES / "inventory_flask",
        inventory_port,
        logs / "inventory.log",
    )
    app = launch(
        ["uvicorn", "app:app", "--port", str(port)],
        app_env(
            SERVICE,
            capture.endpoint,
            INVENTORY_URL=inventory.url,
            OTEL_DISTRO_SLOW_REQUEST_THRESHOLD="0.2",
            OTEL_DISTRO_SERVICE_VERSION="9.9.9",
            OTEL_DISTRO_ENVIRONMENT="it",
        ),
        EXAMPLES / "orders_fastapi",
        port,
        logs / "orders.log",
    )
    try:
        yield app
    finally:
        stop_app(app)
        stop_app(inventory)


def _lines_for(app: App, request_id: str, message: str | None = None) -> list[dict[str, Any]]:
    return [
        line
        for line in json_lines(app)
        if line.get("request_id") == request_id and (message is None or line["message"] == message)
    ]


def test_stdlib_and_structlog_lines_carry_the_exported_span_ids(orders: App, capture: Capture) -> None:
    status, headers, _ = http(
        "POST", f"{orders.url}/login", json.dumps({"username": "ann", "password": PASSWORD}).encode(),
        {"X-Request-ID": "log-1"},
    )  # fmt: skip
    assert status == 401
    assert headers["x-request-id"] == "log-1"
    span = wait_until(
        lambda: [s for s in capture.spans(SERVICE) if s.kind == 2 and s.attributes.get("request.id") == "log-1"], 20
    )[0]
    lines = wait_until(lambda: _lines_for(orders, "log-1", "login attempt"), 10)

    line = lines[0]
    assert line["trace_id"] == span.trace_id
    assert len(line["span_id"]) == 16
    assert (line["service"], line["service_version"], line["environment"]) == (SERVICE, "9.9.9", "it")
    assert line["user"] == "ann"
    assert line["password"] == "[REDACTED]"
    completed = wait_until(lambda: _lines_for(orders, "log-1", "request completed"), 10)[0]
    assert (completed["method"], completed["route"], completed["status"]) == ("POST", "/login", 401)


def test_structlog_line_carries_the_exported_span_ids(orders: App, capture: Capture) -> None:
    status, _, body = http("POST", f"{orders.url}/orders", json.dumps({"sku": "SKU-BREAD"}).encode())
    assert status == 201
    order_id = json.loads(body)["id"]
    status, headers, _ = http("GET", f"{orders.url}/orders/{order_id}", headers={"X-Request-ID": "log-2"})
    assert status == 200
    span = wait_until(
        lambda: [s for s in capture.spans(SERVICE) if s.kind == 2 and s.attributes.get("request.id") == "log-2"], 20
    )[0]
    [line] = wait_until(lambda: _lines_for(orders, "log-2", "order fetched"), 10)

    assert line["trace_id"] == span.trace_id
    assert line["order_id"] == order_id
    assert line["sku"] == "SKU-BREAD"
    assert line["logger"] == "orders"
    assert headers["x-request-id"] == "log-2"
    exported = wait_until(
        lambda: [r for r in capture.logs(SERVICE) if r.body == "order fetched" and r.trace_id == span.trace_id], 20
    )
    assert exported[0].attributes["request.id"] == "log-2"


def test_password_reaches_neither_stdout_nor_the_collector(orders: App, capture: Capture) -> None:
    http(
        "POST", f"{orders.url}/login", json.dumps({"username": "bob", "password": PASSWORD}).encode(),
        {"X-Request-ID": "log-3"},
    )  # fmt: skip
    wait_until(lambda: [r for r in capture.logs(SERVICE) if r.attributes.get("request.id") == "log-3"], 20)

    assert PASSWORD not in orders.output()
    for name in ("logs.jsonl", "traces.jsonl", "metrics.jsonl"):
        path = capture.directory / name
        assert PASSWORD not in (path.read_text() if path.exists() else "")


def test_unhandled_exception_is_exactly_one_error_line_with_ids(orders: App, capture: Capture) -> None:
    status, _, _ = http("GET", f"{orders.url}/boom", headers={"X-Request-ID": "log-4"})
    assert status == 500
    span = wait_until(
        lambda: [s for s in capture.spans(SERVICE) if s.kind == 2 and s.attributes.get("request.id") == "log-4"], 20
    )[0]
    errors = wait_until(lambda: [x for x in _lines_for(orders, "log-4") if x["level"] == "ERROR"], 10)

    assert len(errors) == 1
    assert errors[0]["trace_id"] == span.trace_id
    assert errors[0]["exception"]["type"] == "RuntimeError"
    assert "Traceback" in errors[0]["exception"]["stacktrace"]
    # Neither uvicorn's own report nor any other copy of the traceback is printed.
    assert orders.output().count("RuntimeError: boom") == 1
    exported = wait_until(
        lambda: [
            r for r in capture.logs(SERVICE) if r.attributes.get("request.id") == "log-4" and r.severity == "ERROR"
        ],
        20,
    )
    assert exported[0].attributes["exception.type"] == "RuntimeError"
    assert exported[0].trace_id == span.trace_id


def test_slow_request_warning(orders: App) -> None:
    status, _, _ = http("GET", f"{orders.url}/slow?seconds=0.3", headers={"X-Request-ID": "log-5"})
    assert status == 200

    [line] = wait_until(lambda: _lines_for(orders, "log-5", "slow request"), 10)
    assert line["level"] == "WARNING"
    assert (line["method"], line["route"], line["status"]) == ("GET", "/slow", 200)
    assert line["duration_ms"] >= 300
    assert not _lines_for(orders, "log-5", "request completed")


def test_unsafe_inbound_request_id_is_replaced_in_logs(orders: App) -> None:
    status, headers, _ = http("GET", f"{orders.url}/slow?seconds=0", headers={"X-Request-ID": "bad id;<x>"})
    assert status == 200
    replaced = headers["x-request-id"]
    assert replaced != "bad id;<x>"
    assert wait_until(lambda: _lines_for(orders, replaced, "request completed"), 10)


def test_uvicorn_access_lines_are_replaced(orders: App) -> None:
    http("GET", f"{orders.url}/slow?seconds=0", headers={"X-Request-ID": "log-6"})
    wait_until(lambda: _lines_for(orders, "log-6", "request completed"), 10)
    assert '"GET /slow?seconds=0 HTTP/1.1" 200' not in orders.output()


def test_access_line_stays_local_and_slow_line_is_exported(orders: App, capture: Capture) -> None:
    http("GET", f"{orders.url}/slow?seconds=0", headers={"X-Request-ID": "log-7"})
    http("GET", f"{orders.url}/slow?seconds=0.25", headers={"X-Request-ID": "log-8"})

    def exported(request_id: str) -> list[Any]:
        return [r for r in capture.logs(SERVICE) if r.attributes.get("request.id") == request_id]

    records = wait_until(lambda: exported("log-8"), 20)
    assert records[0].body == "slow request"
    assert records[0].attributes["route"] == "/slow"
    assert len(records[0].trace_id) == 32
    assert _lines_for(orders, "log-7", "request completed")
    # Exported in order by one batch processor: had log-7's line been exported, it would be here.
    assert not exported("log-7")
