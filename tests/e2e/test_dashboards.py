"""Every query of the Grafana dashboards and datasource links finds data in the real backends.

Grafana itself cannot run here, so each panel's query is sent the way Grafana
would send it (template variables filled, macros replaced) after the example
services, unmodified under `opentelemetry-instrument`, served traffic from
examples/traffic.py. PromQL goes to the real Prometheus as it is. The LogQL and
TraceQL panels are for Loki and Tempo, which run only in docker-compose (AGPL):
their text is checked by Grafana's own grammars (tests/stack/test_query_grammars.py),
and here each has a native twin, the same question asked of VictoriaLogs
(LogsQL) or Jaeger, which must find the data the panel would show. The links
between signals (exemplar -> trace, trace -> logs, log -> trace, trace ->
metrics, service map) are followed the same way.
"""

from __future__ import annotations

import functools
import json
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import pytest

from tests.harness import EXAMPLES
from tests.stack import queries

from .backends import find_traces, logsql, promql_instant, promql_range, trace_exists, window
from .conftest import stack
from .services import example_services
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
    with example_services(backend_stack, logs, INVENTORY, ORDERS, OTEL_DISTRO_ENVIRONMENT=ENVIRONMENT) as (
        inventory,
        orders,
    ):
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


# ---- backend clients ---------------------------------------------------------------


def native_logs(backends: stack.Stack, query: str, traffic: Traffic) -> list[dict[str, Any]]:
    by_time = "| stats" not in query
    return logsql(backends, query, traffic.started, by_time=by_time)


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
        poll(f"{_id(query)} {expr}", lambda: promql_range(backend_stack, expr, traffic.started), POLL_SECONDS)


# The LogQL and TraceQL panels' questions, asked of the native backends. Keyed by
# (dashboard, panel title); every such panel must have one (test below).
SERVICES = f'{{service.name=~"{ORDERS}|{INVENTORY}", deployment.environment.name="{ENVIRONMENT}"}}'
NativeTwin = Callable[[stack.Stack, Traffic], list[Any]]


def _traces_of_both_services(tags: dict[str, str], min_duration: str = "") -> NativeTwin:
    def search(backends: stack.Stack, traffic: Traffic) -> list[str]:
        tags_in_env = {**tags, "deployment.environment.name": ENVIRONMENT}
        return [
            trace_id
            for service in (ORDERS, INVENTORY)
            for trace_id in find_traces(backends, service, tags_in_env, traffic.started, min_duration)
        ]

    return search


NATIVE_TWINS: dict[tuple[str, str], NativeTwin] = {
    ("errors.json", "Top exception types (logs)"): lambda backends, traffic: native_logs(
        backends, f"{SERVICES} exception.type:* | stats by (service.name, exception.type) count() records", traffic
    ),
    ("errors.json", "Recent error logs"): lambda backends, traffic: native_logs(
        backends, f"{SERVICES} severity_number:>=17", traffic
    ),
    ("errors.json", "Error logs of the chosen groups"): lambda backends, traffic: native_logs(
        backends, f"{SERVICES} error.group.id:*", traffic
    ),
    # A line of each group with its message and trace ID (LogQL: topk by group over (message, trace)).
    ("errors.json", "A sample of each group (logs)"): lambda backends, traffic: [
        row
        for row in native_logs(
            backends,
            f"{SERVICES} error.group.id:* | stats by (service.name, error.group.id) "
            "row_max(_time, exception.message, trace_id) sample",
            traffic,
        )
        if json.loads(row["sample"]).get("exception.message") and json.loads(row["sample"]).get("trace_id")
    ],
    ("errors.json", "Failing traces"): _traces_of_both_services({"otel.status_code": "ERROR"}),
    ("service-overview.json", "Slow requests"): _traces_of_both_services({"span.kind": "server"}, "500ms"),
}
NATIVE_PANELS = [q for q in PANEL_QUERIES if q.query_type in ("logql", "traceql")]


def test_every_logql_and_traceql_panel_has_a_native_twin() -> None:
    assert {(q.dashboard, q.panel) for q in NATIVE_PANELS} == set(NATIVE_TWINS)


@pytest.mark.parametrize("query", NATIVE_PANELS, ids=_id)
def test_logql_and_traceql_panels_data_is_in_the_native_backends(
    backend_stack: stack.Stack, traffic: Traffic, query: queries.PanelQuery
) -> None:
    twin = NATIVE_TWINS[(query.dashboard, query.panel)]
    poll(f"native twin of {_id(query)}", lambda: twin(backend_stack, traffic), POLL_SECONDS)


@pytest.mark.parametrize("query", [q for q in PANEL_QUERIES if q.query_type == "serviceMap"], ids=_id)
def test_service_map_has_edges(backend_stack: stack.Stack, traffic: Traffic, query: queries.PanelQuery) -> None:
    # Grafana reads the service graph from these Prometheus series, filtered by each selector.
    for selector in query.expr:
        promql = f"traces_service_graph_request_total{queries.substitute(selector, VALUES)}"
        drawn = functools.partial(promql_range, backend_stack, promql, traffic.started)
        poll(f"service map {promql}", drawn, POLL_SECONDS)


def test_variables_list_the_services(backend_stack: stack.Stack, traffic: Traffic) -> None:
    for query in set(queries.variable_queries()):
        selector = queries.substitute(queries.label_values_selector(query), VALUES)
        poll(f"variable {query}", functools.partial(promql_instant, backend_stack, selector), POLL_SECONDS)


# ---- links between signals ------------------------------------------------------------


def test_latency_exemplars_open_traces(backend_stack: stack.Stack, traffic: Traffic) -> None:
    """metric -> trace: the exemplars of the latency panel carry trace IDs that the traces backend knows."""
    latency = next(q for q in PANEL_QUERIES if q.panel.startswith("Latency"))
    expr = queries.substitute(str(latency.expr), VALUES)

    def exemplar_trace_ids() -> list[str]:
        status, body = stack.get_json(
            f"{backend_stack.prometheus_url}/api/v1/query_exemplars", {"query": expr, **window(traffic.started)}
        )
        if status != 200 or not isinstance(body, dict):
            return []
        return [
            e["labels"]["trace_id"] for s in body.get("data") or [] for e in s["exemplars"] if "trace_id" in e["labels"]
        ]

    trace_ids = poll("exemplars with trace_id on the latency panel", exemplar_trace_ids, POLL_SECONDS)
    poll(f"Jaeger trace of exemplar {trace_ids[0]}", lambda: trace_exists(backend_stack, trace_ids[0]), POLL_SECONDS)


def _orders_trace_id(backends: stack.Stack, traffic: Traffic) -> str:
    found = poll(
        "an orders POST /orders trace",
        lambda: find_traces(backends, ORDERS, {"http.route": "/orders"}, traffic.started),
        POLL_SECONDS,
    )
    return found[0]


def test_trace_to_logs_finds_the_trace_lines(backend_stack: stack.Stack, traffic: Traffic) -> None:
    """trace -> logs: what the Tempo datasource's tracesToLogsV2 link asks (the span's service and
    trace ID; its LogQL is parsed in tests/stack), asked of the logs backend."""
    tempo = next(ds for ds in queries.load_datasources() if ds["uid"] == "tempo")
    assert 'trace_id="$${__trace.traceId}"' in tempo["jsonData"]["tracesToLogsV2"]["query"]
    trace_id = _orders_trace_id(backend_stack, traffic)
    query = f'{{service.name="{ORDERS}"}} trace_id:="{trace_id}"'
    poll(f"VictoriaLogs {query}", lambda: native_logs(backend_stack, query, traffic), POLL_SECONDS)


def test_log_lines_link_to_traces(backend_stack: stack.Stack, traffic: Traffic) -> None:
    """log -> trace: a log line's trace_id field opens a trace the traces backend has."""
    query = f'{{service.name="{ORDERS}"}} trace_id:*'
    records = poll(f"VictoriaLogs {query}", lambda: native_logs(backend_stack, query, traffic), POLL_SECONDS)
    trace_id = records[-1]["trace_id"]
    poll(f"Jaeger trace {trace_id} of a log line", lambda: trace_exists(backend_stack, trace_id), POLL_SECONDS)


def test_trace_to_metrics_queries_return_data(backend_stack: stack.Stack, traffic: Traffic) -> None:
    """trace -> metrics: span metrics of the collector's connector, with the span's service filled in."""
    for promql in queries.traces_to_metrics_queries(service=ORDERS):
        drawn = functools.partial(promql_range, backend_stack, promql, traffic.started)
        poll(f"trace -> metrics {promql}", drawn, POLL_SECONDS)
