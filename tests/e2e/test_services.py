"""The example services, unmodified under `opentelemetry-instrument`, through the real
collector into Prometheus, Loki and Tempo, queried the way a Grafana panel would."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest

from tests.harness import EXAMPLES, app_env, free_port, http, launch, stop_app

from .conftest import stack
from .test_pipeline import attributes, poll, prom_query, tempo_spans

pytestmark = pytest.mark.e2e

ORDERS = "e2e-orders"
INVENTORY = "e2e-inventory"
ORDERS_PLACED = 3


@dataclass(frozen=True)
class Traffic:
    request_id: str  # of the first cross-service request
    trace_id: str
    error_request_id: str
    started_ns: int


@pytest.fixture(scope="module")
def traffic(backend_stack: stack.Stack, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Traffic]:
    logs = tmp_path_factory.mktemp("e2e-services")
    started_ns = time.time_ns()
    inventory_port, orders_port = free_port(), free_port()
    endpoint = backend_stack.otlp_http_url
    inventory = launch(
        ["gunicorn", "-w", "2", "-b", f"127.0.0.1:{inventory_port}", "app:app"],
        app_env(INVENTORY, endpoint),
        EXAMPLES / "inventory_flask",
        inventory_port,
        logs / "inventory.log",
    )
    orders = launch(
        ["uvicorn", "app:app", "--port", str(orders_port)],
        app_env(ORDERS, endpoint, INVENTORY_URL=inventory.url),
        EXAMPLES / "orders_fastapi",
        orders_port,
        logs / "orders.log",
    )
    try:
        trace_id = ""
        for i in range(ORDERS_PLACED):
            status, headers, _ = http(
                "POST", f"{orders.url}/orders", json.dumps({"sku": "SKU-COFFEE"}).encode(), {"X-Request-ID": f"e2e-{i}"}
            )
            assert status == 201
            if i == 0:
                # traceparent;desc="00-<trace id>-<span id>-01" in Server-Timing
                trace_id = headers["server-timing"].split('desc="00-')[1][:32]
        assert http("GET", f"{orders.url}/boom", headers={"X-Request-ID": "e2e-boom"})[0] == 500
        yield Traffic("e2e-0", trace_id, "e2e-boom", started_ns)
    finally:
        # Stopping flushes what the SDK still holds.
        stop_app(orders)
        stop_app(inventory)


def test_prometheus_counts_each_route_with_stable_labels(backend_stack: stack.Stack, traffic: Traffic) -> None:
    promql = f'sum by (http_route, http_request_method, http_response_status_code) (http_server_request_duration_seconds_count{{job="{ORDERS}"}})'  # noqa: E501

    def counted() -> dict[str, float]:
        return {
            f"{r['metric'].get('http_request_method')} {r['metric'].get('http_route')} "
            f"{r['metric'].get('http_response_status_code')}": float(r["value"][1])
            for r in prom_query(backend_stack, promql)
        }

    # Poll until the last export landed: an early answer may hold a partial count.
    result = poll(
        "orders routes in Prometheus",
        lambda: (c := counted()) and c.get("POST /orders 201") == ORDERS_PLACED and "GET /boom 500" in c and c,
    )
    assert result["POST /orders 201"] == ORDERS_PLACED
    assert result["GET /boom 500"] == 1
    errors = prom_query(
        backend_stack, f'http_server_request_duration_seconds_count{{job="{ORDERS}", http_route="/boom"}}'
    )
    assert errors[0]["metric"].get("error_type")
    reserve_promql = f'sum(http_server_request_duration_seconds_count{{job="{INVENTORY}", http_route="/reserve"}})'

    def reserved() -> float:
        result = prom_query(backend_stack, reserve_promql)
        return float(result[0]["value"][1]) if result else 0.0

    # Summed over both gunicorn workers' series; the counts seen are reported if it never adds up.
    seen: list[float] = []
    try:
        poll("inventory /reserve count in Prometheus", lambda: seen.append(reserved()) or seen[-1] == ORDERS_PLACED)
    except pytest.fail.Exception:
        pytest.fail(f"inventory /reserve count never reached {ORDERS_PLACED}; last seen {seen[-5:]}", pytrace=False)


def _loki(backend_stack: stack.Stack, logql: str, started_ns: int) -> list[dict[str, Any]]:
    status, body = stack.get_json(
        f"{backend_stack.loki_url}/loki/api/v1/query_range",
        {"query": logql, "start": str(started_ns - 60 * 10**9), "end": str(time.time_ns() + 60 * 10**9)},
        headers={"X-Loki-Response-Encoding-Flags": "categorize-labels"},
    )
    if status != 200 or not isinstance(body, dict):
        return []
    return list(body["data"]["result"])


def test_loki_finds_the_request_lines_by_request_id(backend_stack: stack.Stack, traffic: Traffic) -> None:
    logql = f'{{service_name="{ORDERS}"}} | request_id="{traffic.request_id}"'
    streams = poll(f"Loki {logql}", lambda: _loki(backend_stack, logql, traffic.started_ns))

    lines = [(s["stream"], v) for s in streams for v in s["values"]]
    messages = {line for _, (_, line, _) in lines}
    assert "order created" in messages
    assert "request completed" not in messages  # the access line stays on stdout by default
    for labels, (_, _, metadata) in lines:
        structured = metadata.get("structuredMetadata", {})
        assert structured["trace_id"] == traffic.trace_id
        assert "trace_id" not in labels and "request_id" not in labels
        assert labels["service_name"] == ORDERS


def test_loki_has_the_error_line_with_its_stack_trace(backend_stack: stack.Stack, traffic: Traffic) -> None:
    logql = f'{{service_name="{ORDERS}"}} | request_id="{traffic.error_request_id}" | detected_level="error"'
    streams = poll(f"Loki {logql}", lambda: _loki(backend_stack, logql, traffic.started_ns))
    [(_, _, metadata)] = [v for s in streams for v in s["values"]]
    assert "RuntimeError" in metadata["structuredMetadata"]["exception_stacktrace"]


def test_tempo_has_both_services_in_one_trace(backend_stack: stack.Stack, traffic: Traffic) -> None:
    def fetch() -> list[tuple[dict[str, Any], dict[str, Any]]]:
        status, body = stack.get_json(f"{backend_stack.tempo_url}/api/traces/{traffic.trace_id}")
        spans = tempo_spans(body) if status == 200 else []
        return spans if {r["service.name"] for r, _ in spans} >= {ORDERS, INVENTORY} else []

    spans = poll(f"Tempo trace {traffic.trace_id} with both services", fetch)
    server = {
        (resource["service.name"], attributes(span.get("attributes", [])).get("http.route"))
        for resource, span in spans
        if span.get("kind") in (2, "SPAN_KIND_SERVER")
    }
    assert {(ORDERS, "/orders"), (INVENTORY, "/reserve")} <= server
    request_ids = {attributes(s.get("attributes", [])).get("request.id") for _, s in spans} - {None}
    assert request_ids == {traffic.request_id}


def test_traceql_search_by_service_and_route(backend_stack: stack.Stack, traffic: Traffic) -> None:
    traceql = f'{{ resource.service.name = "{ORDERS}" && span.http.route = "/orders" }}'

    def search() -> list[str]:
        status, body = stack.get_json(
            f"{backend_stack.tempo_url}/api/search",
            {"q": traceql, "start": str(traffic.started_ns // 10**9 - 60), "end": str(int(time.time()) + 60)},
        )
        if status != 200 or not isinstance(body, dict):
            return []
        return [t["traceID"].rjust(32, "0") for t in body.get("traces") or []]

    found = poll(f"Tempo search {traceql}", lambda: (f := search()) and len(f) >= ORDERS_PLACED and f)
    assert traffic.trace_id in found
