"""The example services, unmodified, under `opentelemetry-instrument`, sending to the real
collector: what arrives is read back from the collector's file exporter."""

from __future__ import annotations

import json
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from tests.harness import EXAMPLES, App, Capture, app_env, free_port, http, launch, stop_app, wait_until
from tests.otlp_files import Span

pytestmark = pytest.mark.integration

ORDERS = "it-orders"
INVENTORY = "it-inventory"
SERVER = 2  # OTLP SpanKind.SERVER
ERROR = 2  # OTLP StatusCode.ERROR


@pytest.fixture(scope="module")
def services(capture: Capture, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[App, App]]:
    logs = tmp_path_factory.mktemp("services")
    inventory_port, orders_port = free_port(), free_port()
    inventory = launch(
        ["gunicorn", "-w", "2", "-b", f"127.0.0.1:{inventory_port}", "app:app"],
        app_env(INVENTORY, capture.endpoint),
        EXAMPLES / "inventory_flask",
        inventory_port,
        logs / "inventory.log",
    )
    orders = launch(
        ["uvicorn", "app:app", "--port", str(orders_port)],
        app_env(ORDERS, capture.endpoint, INVENTORY_URL=inventory.url),
        EXAMPLES / "orders_fastapi",
        orders_port,
        logs / "orders.log",
    )
    try:
        yield orders, inventory
    finally:
        stop_app(orders)
        stop_app(inventory)


def server_spans(capture: Capture, service: str, request_id: str | None = None) -> list[Span]:
    return [
        s
        for s in capture.spans(service)
        if s.kind == SERVER and (request_id is None or s.attributes.get("request.id") == request_id)
    ]


class TestCrossServiceRequest:
    @pytest.fixture(scope="class")
    @classmethod
    def placed(cls, services: tuple[App, App], capture: Capture) -> tuple[dict[str, str], Span, Span]:
        orders, _ = services
        status, headers, _ = http(
            "POST", f"{orders.url}/orders", json.dumps({"sku": "SKU-APPLE"}).encode(), {"X-Request-ID": "it-req-1"}
        )
        assert status == 201
        orders_span = wait_until(lambda: server_spans(capture, ORDERS, "it-req-1"), 20, what="orders span")[0]
        inventory_spans = wait_until(
            lambda: [
                s
                for s in server_spans(capture, INVENTORY)
                if s.trace_id == orders_span.trace_id and s.attributes.get("http.route") == "/reserve"
            ],
            20,
            what="inventory /reserve span in the same trace",
        )
        return headers, orders_span, inventory_spans[0]

    def test_request_id_is_returned_recorded_and_propagated(self, placed: tuple[dict[str, str], Span, Span]) -> None:
        headers, orders_span, inventory_span = placed

        assert headers["x-request-id"] == "it-req-1"
        assert orders_span.attributes["request.id"] == "it-req-1"
        assert inventory_span.attributes["request.id"] == "it-req-1"

    def test_one_trace_across_both_services_with_routes(self, placed: tuple[dict[str, str], Span, Span]) -> None:
        headers, orders_span, inventory_span = placed

        assert orders_span.attributes["http.route"] == "/orders"
        assert inventory_span.attributes["http.route"] == "/reserve"
        assert inventory_span.trace_id == orders_span.trace_id
        assert f"00-{orders_span.trace_id}-" in headers["server-timing"]

    def test_no_per_message_asgi_spans(self, placed: tuple[dict[str, str], Span, Span], capture: Capture) -> None:
        names = {s.name for s in capture.spans(ORDERS)}
        assert not [n for n in names if n.endswith((" send", " receive"))], names

    def test_logs_carry_trace_and_request_ids(
        self, placed: tuple[dict[str, str], Span, Span], capture: Capture
    ) -> None:
        _, orders_span, _ = placed
        records = wait_until(
            lambda: [r for r in capture.logs(ORDERS) if r.body == "order created"], 20, what="order log"
        )

        assert records[0].trace_id == orders_span.trace_id
        assert records[0].attributes["request.id"] == "it-req-1"
        assert records[0].attributes["sku"] == "SKU-APPLE"
        assert records[0].severity == "INFO"

    def test_stable_http_metrics_and_business_metrics(
        self, placed: tuple[dict[str, str], Span, Span], capture: Capture
    ) -> None:
        duration = wait_until(
            lambda: [
                p
                for p in capture.points(ORDERS, "http.server.request.duration")
                if p.attributes.get("http.route") == "/orders"
            ],
            20,
            what="http.server.request.duration for /orders",
        )
        assert duration[-1].attributes["http.request.method"] == "POST"
        assert duration[-1].attributes["http.response.status_code"] == 201
        assert wait_until(lambda: capture.points(INVENTORY, "http.server.request.duration"), 20)
        assert wait_until(lambda: capture.points(ORDERS, "orders.created"), 20)
        old_names = {p.name for p in capture.points()} & {"http.server.duration", "http.server.active_requests_old"}
        assert not old_names

    def test_runtime_metrics(self, placed: tuple[dict[str, str], Span, Span], capture: Capture) -> None:
        names = wait_until(
            lambda: {p.name for p in capture.points(ORDERS)} & {"process.cpu.time", "process.memory.usage"},
            20,
        )
        assert names == {"process.cpu.time", "process.memory.usage"}


def test_error_response_keeps_request_id_and_marks_span_and_metric(services: tuple[App, App], capture: Capture) -> None:
    orders, _ = services
    status, headers, _ = http("GET", f"{orders.url}/boom", headers={"X-Request-ID": "it-boom"})

    assert status == 500
    assert headers["x-request-id"] == "it-boom"
    span = wait_until(lambda: server_spans(capture, ORDERS, "it-boom"), 20)[0]
    assert span.status_code == ERROR
    assert any(e["name"] == "exception" and e["exception.type"] == "RuntimeError" for e in span.events)
    point = wait_until(
        lambda: [
            p
            for p in capture.points(ORDERS, "http.server.request.duration")
            if p.attributes.get("http.route") == "/boom"
        ],
        20,
    )[-1]
    assert point.attributes["http.response.status_code"] == 500
    assert point.attributes["error.type"]


def test_unsafe_inbound_request_id_is_replaced(services: tuple[App, App]) -> None:
    orders, _ = services
    for bad in ("x" * 200, "two words", "<script>"):
        status, headers, _ = http("GET", f"{orders.url}/slow?seconds=0", headers={"X-Request-ID": bad})
        assert status == 200
        assert headers["x-request-id"] != bad
        assert len(headers["x-request-id"]) == 32


def test_health_endpoints_are_not_traced(services: tuple[App, App], capture: Capture) -> None:
    orders, inventory = services
    for app in services:
        assert http("GET", f"{app.url}/health")[0] == 200
    # A later traced request proves the exporters flushed after the health calls.
    http("GET", f"{orders.url}/slow?seconds=0", headers={"X-Request-ID": "it-after-health"})
    http("GET", f"{inventory.url}/items/SKU-APPLE", headers={"X-Request-ID": "it-after-health-2"})
    wait_until(lambda: server_spans(capture, ORDERS, "it-after-health"), 20)
    wait_until(lambda: server_spans(capture, INVENTORY, "it-after-health-2"), 20)

    routes = {s.attributes.get("http.route") for s in capture.spans() if s.kind == SERVER}
    assert "/health" not in routes


def _worker_pids(app: App, marker: str) -> set[int]:
    """PIDs of the server's worker processes (children whose command line has `marker`)."""
    import psutil

    children = psutil.Process(app.process.pid).children(recursive=True)
    return {c.pid for c in children if marker in " ".join(c.cmdline())}


def _instances(capture: Capture, service: str) -> set[tuple[str, int]]:
    """(service.instance.id, process.pid) of every process that exported metrics."""
    return {(p.resource["service.instance.id"], p.resource["process.pid"]) for p in capture.points(service)}


def test_each_gunicorn_worker_is_its_own_instance(services: tuple[App, App], capture: Capture) -> None:
    _, inventory = services
    ids = [f"it-worker-{i}" for i in range(6)]
    # Concurrent slow requests cannot all be served by one sync worker.
    with ThreadPoolExecutor(len(ids)) as pool:
        list(pool.map(lambda rid: http("GET", f"{inventory.url}/slow?seconds=0.5", headers={"X-Request-ID": rid}), ids))

    spans = wait_until(
        lambda: (
            (found := [s for s in server_spans(capture, INVENTORY) if s.attributes.get("request.id") in ids])
            and len(found) == len(ids)
            and found
        ),
        20,
    )
    assert len({s.resource["service.instance.id"] for s in spans}) == 2
    assert len({s.resource["process.pid"] for s in spans}) == 2
    # Every worker also reports its own runtime metrics, traffic or not.
    workers = _worker_pids(inventory, "gunicorn")
    assert len(workers) == 2
    wait_until(lambda: workers <= {pid for _, pid in _instances(capture, INVENTORY)}, 20, what="metrics of each worker")


def _served(capture: Capture, service: str, request_id: str) -> list[Span]:
    return wait_until(lambda: server_spans(capture, service, request_id), 30, what=f"{service} span")


def test_uvicorn_workers_each_report(capture: Capture, tmp_path: Path) -> None:
    port = free_port()
    app = launch(
        ["uvicorn", "app:app", "--port", str(port), "--workers", "2"],
        app_env("it-orders-workers", capture.endpoint),
        EXAMPLES / "orders_fastapi",
        port,
        tmp_path / "app.log",
    )
    service = "it-orders-workers"
    try:
        ids = [f"uw-{i}" for i in range(8)]
        with ThreadPoolExecutor(len(ids)) as pool:
            list(pool.map(lambda rid: http("GET", f"{app.url}/slow?seconds=0.3", headers={"X-Request-ID": rid}), ids))
        spans = [_served(capture, service, rid)[0] for rid in ids]
        # One event loop may serve every request, so the proof of "every worker reports" is
        # that each worker process exports its own runtime metrics.
        workers = _worker_pids(app, "multiprocessing.spawn")
        instances = wait_until(
            lambda: workers <= {pid for _, pid in _instances(capture, service)} and _instances(capture, service),
            20,
            what="metrics of each worker",
        )
    finally:
        stop_app(app)
    assert len(workers) == 2
    worker_instances = {i for i, pid in instances if pid in workers}
    assert len(worker_instances) == 2
    assert {s.resource["service.instance.id"] for s in spans} <= worker_instances


def test_uvicorn_reload(capture: Capture, tmp_path: Path) -> None:
    port = free_port()
    app = launch(
        ["uvicorn", "app:app", "--port", str(port), "--reload"],
        app_env("it-orders-reload", capture.endpoint),
        EXAMPLES / "orders_fastapi",
        port,
        tmp_path / "app.log",
    )
    try:
        wait_until(lambda: http("GET", f"{app.url}/slow?seconds=0", headers={"X-Request-ID": "reload-1"})[0] == 200, 20)
        span = _served(capture, "it-orders-reload", "reload-1")[0]
    finally:
        stop_app(app)
    assert span.attributes["http.route"] == "/slow"


def test_flask_debug_reloader(capture: Capture, tmp_path: Path) -> None:
    port = free_port()
    app = launch(
        ["python", "app.py"],
        app_env("it-inventory-debug", capture.endpoint, PORT=str(port), FLASK_DEBUG="1"),
        EXAMPLES / "inventory_flask",
        port,
        tmp_path / "app.log",
    )
    try:
        wait_until(lambda: http("GET", f"{app.url}/items/SKU-APPLE", headers={"X-Request-ID": "dbg-1"})[0] == 200, 20)
        span = _served(capture, "it-inventory-debug", "dbg-1")[0]
        logs = wait_until(lambda: [r for r in capture.logs("it-inventory-debug") if r.trace_id == span.trace_id], 20)
    finally:
        stop_app(app)
    assert span.attributes["http.route"] == "/items/<sku>"
    assert logs
