"""Every query of the Grafana dashboards and datasource links returns data from the real backends.

Grafana itself cannot run here, so each panel's query is sent the way Grafana
would send it (template variables filled, macros replaced) after the example
services, unmodified under `opentelemetry-instrument`, served traffic from
examples/traffic.py: PromQL to Prometheus, LogQL to Loki, TraceQL to Tempo.
The links between signals (exemplar -> trace, trace -> logs, log -> trace,
trace -> metrics, service map) are followed the same way.
"""

from __future__ import annotations

import functools
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest

from tests.harness import EXAMPLES, app_env, free_port, launch, stop_app
from tests.stack import queries

from .conftest import stack
from .test_pipeline import poll

pytestmark = pytest.mark.e2e

ORDERS = "dash-orders"
INVENTORY = "dash-inventory"
ENVIRONMENT = "e2e-dashboards"
# Grafana renders a multi-value variable as a regex alternation.
VALUES = {"service": f"{ORDERS}|{INVENTORY}", "environment": ENVIRONMENT, "instance": ".+", "collector": ".+"}
TRAFFIC_SECONDS = 30
POLL_SECONDS = 120.0


@dataclass(frozen=True)
class Traffic:
    started: float  # unix seconds


@pytest.fixture(scope="module")
def traffic(backend_stack: stack.Stack, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Traffic]:
    """Both example services, driven by examples/traffic.py; they keep running while the tests query."""
    logs = tmp_path_factory.mktemp("e2e-dashboards")
    started = time.time()
    inventory_port, orders_port = free_port(), free_port()
    endpoint = backend_stack.otlp_http_url
    extra = {"OTEL_DISTRO_ENVIRONMENT": ENVIRONMENT}
    inventory = launch(
        ["gunicorn", "-w", "2", "-b", f"127.0.0.1:{inventory_port}", "app:app"],
        app_env(INVENTORY, endpoint, **extra),
        EXAMPLES / "inventory_flask",
        inventory_port,
        logs / "inventory.log",
    )
    orders = launch(
        ["uvicorn", "app:app", "--port", str(orders_port)],
        app_env(ORDERS, endpoint, INVENTORY_URL=inventory.url, **extra),
        EXAMPLES / "orders_fastapi",
        orders_port,
        logs / "orders.log",
    )
    try:
        subprocess.run(
            [
                sys.executable,
                str(EXAMPLES / "traffic.py"),
                f"--orders-url={orders.url}",
                f"--inventory-url={inventory.url}",
                f"--duration={TRAFFIC_SECONDS}",
                "--rate=10",
                "--seed=7",
            ],
            check=True,
            capture_output=True,
            timeout=TRAFFIC_SECONDS + 60,
        )
        yield Traffic(started)
    finally:
        stop_app(orders)
        stop_app(inventory)


# ---- backend clients ---------------------------------------------------------------


def window(traffic: Traffic) -> dict[str, str]:
    return {"start": str(int(traffic.started) - 60), "end": str(int(time.time()) + 60)}


def promql_range(backends: stack.Stack, promql: str, traffic: Traffic) -> list[dict[str, Any]]:
    """Series with at least one sample over the traffic window (what a time-series panel draws)."""
    params = {"query": promql, "step": "15", **window(traffic)}
    status, body = stack.get_json(f"{backends.prometheus_url}/api/v1/query_range", params)
    assert status in (200, 0, 503), f"Prometheus refused {promql}: {body}"
    if status != 200 or not isinstance(body, dict):
        return []
    return [series for series in body["data"]["result"] if series.get("values")]


def promql_instant(backends: stack.Stack, promql: str) -> list[dict[str, Any]]:
    status, body = stack.get_json(f"{backends.prometheus_url}/api/v1/query", {"query": promql})
    assert status in (200, 0, 503), f"Prometheus refused {promql}: {body}"
    return list(body["data"]["result"]) if status == 200 and isinstance(body, dict) else []


def logql(backends: stack.Stack, query: str, traffic: Traffic, instant: bool = False) -> list[dict[str, Any]]:
    if instant:
        url, params = f"{backends.loki_url}/loki/api/v1/query", {"query": query}
    else:
        start, end = (int(v) * 10**9 for v in window(traffic).values())
        url, params = (
            f"{backends.loki_url}/loki/api/v1/query_range",
            {"query": query, "start": str(start), "end": str(end)},
        )
    status, body = stack.get_json(url, params, headers={"X-Loki-Response-Encoding-Flags": "categorize-labels"})
    assert status in (200, 0, 503), f"Loki refused {query}: {body}"
    return list(body["data"]["result"]) if status == 200 and isinstance(body, dict) else []


def traceql(backends: stack.Stack, query: str, traffic: Traffic) -> list[dict[str, Any]]:
    status, body = stack.get_json(f"{backends.tempo_url}/api/search", {"q": query, "limit": "20", **window(traffic)})
    assert status in (200, 0, 503), f"Tempo refused {query}: {body}"
    return list(body.get("traces") or []) if status == 200 and isinstance(body, dict) else []


def trace_exists(backends: stack.Stack, trace_id: str) -> bool:
    status, _ = stack.get_json(f"{backends.tempo_url}/api/traces/{trace_id.rjust(32, '0')}")
    return bool(status == 200)


# ---- every panel ---------------------------------------------------------------------

PANEL_QUERIES = queries.dashboard_queries()


def _id(query: queries.PanelQuery) -> str:
    return f"{query.dashboard}:{query.panel}:{query.query_type}"


@pytest.mark.parametrize("query", [q for q in PANEL_QUERIES if q.query_type == "promql"], ids=_id)
def test_promql_panel_returns_data(backend_stack: stack.Stack, traffic: Traffic, query: queries.PanelQuery) -> None:
    expr = queries.substitute(str(query.expr), VALUES)
    if query.instant:
        poll(f"{_id(query)} {expr}", lambda: promql_instant(backend_stack, expr), POLL_SECONDS)
    else:
        poll(f"{_id(query)} {expr}", lambda: promql_range(backend_stack, expr, traffic), POLL_SECONDS)


@pytest.mark.parametrize("query", [q for q in PANEL_QUERIES if q.query_type == "logql"], ids=_id)
def test_logql_panel_returns_lines(backend_stack: stack.Stack, traffic: Traffic, query: queries.PanelQuery) -> None:
    expr = queries.substitute(str(query.expr), VALUES)
    poll(f"{_id(query)} {expr}", lambda: logql(backend_stack, expr, traffic, query.instant), POLL_SECONDS)


@pytest.mark.parametrize("query", [q for q in PANEL_QUERIES if q.query_type == "traceql"], ids=_id)
def test_traceql_panel_returns_traces(backend_stack: stack.Stack, traffic: Traffic, query: queries.PanelQuery) -> None:
    expr = queries.substitute(str(query.expr), VALUES)
    poll(f"{_id(query)} {expr}", lambda: traceql(backend_stack, expr, traffic), POLL_SECONDS)


@pytest.mark.parametrize("query", [q for q in PANEL_QUERIES if q.query_type == "serviceMap"], ids=_id)
def test_service_map_has_edges(backend_stack: stack.Stack, traffic: Traffic, query: queries.PanelQuery) -> None:
    # Grafana reads the service graph from these Prometheus series, filtered by each selector.
    for selector in query.expr:
        promql = f"traces_service_graph_request_total{queries.substitute(selector, VALUES)}"
        poll(f"service map {promql}", functools.partial(promql_range, backend_stack, promql, traffic), POLL_SECONDS)


def test_variables_list_the_services(backend_stack: stack.Stack, traffic: Traffic) -> None:
    for query in set(queries.variable_queries()):
        selector = queries.substitute(queries.label_values_selector(query), VALUES)
        poll(f"variable {query}", functools.partial(promql_instant, backend_stack, selector), POLL_SECONDS)


# ---- links between signals ------------------------------------------------------------


def test_latency_exemplars_open_traces(backend_stack: stack.Stack, traffic: Traffic) -> None:
    """metric -> trace: the exemplars of the latency panel carry trace IDs that Tempo knows."""
    latency = next(q for q in PANEL_QUERIES if q.panel.startswith("Latency"))
    expr = queries.substitute(str(latency.expr), VALUES)

    def exemplar_trace_ids() -> list[str]:
        status, body = stack.get_json(
            f"{backend_stack.prometheus_url}/api/v1/query_exemplars", {"query": expr, **window(traffic)}
        )
        if status != 200 or not isinstance(body, dict):
            return []
        return [
            e["labels"]["trace_id"] for s in body.get("data") or [] for e in s["exemplars"] if "trace_id" in e["labels"]
        ]

    trace_ids = poll("exemplars with trace_id on the latency panel", exemplar_trace_ids, POLL_SECONDS)
    poll(f"Tempo trace of exemplar {trace_ids[0]}", lambda: trace_exists(backend_stack, trace_ids[0]), POLL_SECONDS)


def _orders_trace_id(backends: stack.Stack, traffic: Traffic) -> str:
    found = poll(
        "an orders POST /orders trace",
        lambda: traceql(backends, f'{{ resource.service.name = "{ORDERS}" && span.http.route = "/orders" }}', traffic),
        POLL_SECONDS,
    )
    return str(found[0]["traceID"]).rjust(32, "0")


def test_trace_to_logs_query_finds_the_trace_lines(backend_stack: stack.Stack, traffic: Traffic) -> None:
    """trace -> logs: the Tempo datasource's tracesToLogsV2 query, filled as Grafana fills it."""
    tempo = next(ds for ds in queries.load_datasources() if ds["uid"] == "tempo")
    template = tempo["jsonData"]["tracesToLogsV2"]["query"]
    trace_id = _orders_trace_id(backend_stack, traffic)
    logql_query = template.replace("$${__tags}", f'service_name="{ORDERS}"').replace("$${__trace.traceId}", trace_id)
    poll(f"Loki {logql_query}", lambda: logql(backend_stack, logql_query, traffic), POLL_SECONDS)


def test_log_lines_link_to_traces(backend_stack: stack.Stack, traffic: Traffic) -> None:
    """log -> trace: the derived field reads trace_id from structured metadata; Tempo has that trace."""
    query = f'{{service_name="{ORDERS}"}} | trace_id != ""'
    streams = poll(f"Loki {query}", lambda: logql(backend_stack, query, traffic), POLL_SECONDS)
    _, _, metadata = streams[0]["values"][0]
    trace_id = metadata["structuredMetadata"]["trace_id"]
    poll(f"Tempo trace {trace_id} of a log line", lambda: trace_exists(backend_stack, trace_id), POLL_SECONDS)


def test_trace_to_metrics_queries_return_data(backend_stack: stack.Stack, traffic: Traffic) -> None:
    """trace -> metrics: span metrics of Tempo's metrics-generator, with the span's service filled in."""
    for promql in queries.traces_to_metrics_queries(service=ORDERS):
        poll(
            f"trace -> metrics {promql}", functools.partial(promql_range, backend_stack, promql, traffic), POLL_SECONDS
        )
