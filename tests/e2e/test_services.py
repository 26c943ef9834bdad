"""The example services, unmodified under `opentelemetry-instrument`, through the real
collector into Prometheus, VictoriaLogs and Jaeger, queried by the IDs and fields a user
would look them up by."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest

from tests.harness import http

from .backends import attributes, find_traces, logsql, trace_spans
from .conftest import stack
from .services import example_services
from .test_pipeline import poll, prom_query

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
    with example_services(backend_stack, logs, INVENTORY, ORDERS) as (inventory, orders):
        trace_id = ""
        for i in range(ORDERS_PLACED):
            status, headers, _ = http(
                "POST", f"{orders.url}/orders", json.dumps({"sku": "SKU-COFFEE"}).encode(), {"X-Request-ID": f"e2e-{i}"}
            )
            assert status == 201, f"orders answered {status}; inventory's output:\n{inventory.output()[-3000:]}"
            if i == 0:
                # traceparent;desc="00-<trace id>-<span id>-01" in Server-Timing
                trace_id = headers["server-timing"].split('desc="00-')[1][:32]
        assert http("GET", f"{orders.url}/boom", headers={"X-Request-ID": "e2e-boom"})[0] == 500
        yield Traffic("e2e-0", trace_id, "e2e-boom", started_ns)


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


def _records(backend_stack: stack.Stack, logsql_query: str, traffic: Traffic) -> list[dict[str, Any]]:
    return logsql(backend_stack, logsql_query, traffic.started_ns / 1e9)


def test_logs_backend_finds_the_request_lines_by_request_id(backend_stack: stack.Stack, traffic: Traffic) -> None:
    query = f'{{service.name="{ORDERS}"}} request.id:="{traffic.request_id}"'
    records = poll(f"VictoriaLogs {query}", lambda: _records(backend_stack, query, traffic))

    messages = {r["_msg"] for r in records}
    assert "order created" in messages
    assert "request completed" not in messages  # the access line stays on stdout by default
    for record in records:
        assert record["trace_id"] == traffic.trace_id
        assert record["service.name"] == ORDERS
        # Per-request values are fields, never stream fields.
        assert "request.id" not in record["_stream"] and "trace_id" not in record["_stream"]


def test_logs_backend_finds_the_request_lines_by_trace_id(backend_stack: stack.Stack, traffic: Traffic) -> None:
    """trace -> logs: one trace's lines, from both services that served it."""
    query = f"trace_id:={traffic.trace_id}"
    records = poll(
        f"VictoriaLogs {query} from both services",
        lambda: (
            (r := _records(backend_stack, query, traffic))
            and {x["service.name"] for x in r} >= {ORDERS, INVENTORY}
            and r
        ),
    )
    assert {r["request.id"] for r in records} == {traffic.request_id}


def test_logs_backend_has_the_error_line_with_its_stack_trace(backend_stack: stack.Stack, traffic: Traffic) -> None:
    query = f'{{service.name="{ORDERS}"}} request.id:="{traffic.error_request_id}" severity_text:=ERROR'
    records = poll(f"VictoriaLogs {query}", lambda: _records(backend_stack, query, traffic))
    [record] = records
    assert "RuntimeError" in record["exception.stacktrace"]
    assert record["exception.type"] == "RuntimeError"


def test_traces_backend_has_both_services_in_one_trace(backend_stack: stack.Stack, traffic: Traffic) -> None:
    def fetch() -> list[tuple[dict[str, Any], dict[str, Any]]]:
        spans = trace_spans(backend_stack, traffic.trace_id)
        return spans if {r["service.name"] for r, _ in spans} >= {ORDERS, INVENTORY} else []

    spans = poll(f"Jaeger trace {traffic.trace_id} with both services", fetch)
    server = {
        (resource["service.name"], attributes(span.get("attributes", [])).get("http.route"))
        for resource, span in spans
        if span.get("kind") in (2, "SPAN_KIND_SERVER")
    }
    assert {(ORDERS, "/orders"), (INVENTORY, "/reserve")} <= server
    request_ids = {attributes(s.get("attributes", [])).get("request.id") for _, s in spans} - {None}
    assert request_ids == {traffic.request_id}


def test_traces_found_by_service_and_route(backend_stack: stack.Stack, traffic: Traffic) -> None:
    since = traffic.started_ns / 1e9
    found = poll(
        f"Jaeger search {ORDERS} http.route=/orders",
        lambda: (
            (f := find_traces(backend_stack, ORDERS, {"http.route": "/orders"}, since))
            and len(f) >= ORDERS_PLACED
            and f
        ),
    )
    assert traffic.trace_id in found
    assert len(found) == ORDERS_PLACED
    # By request ID: exactly the one request's trace.
    by_request = find_traces(backend_stack, ORDERS, {"request.id": traffic.request_id}, since)
    assert by_request == [traffic.trace_id]
