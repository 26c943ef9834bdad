"""OTEL_DISTRO_HTTP_METRICS=collector end to end: the collector derives from the server spans
the `http.server.request.duration` series the process would have recorded.

The two example services run twice against the real stack, once per mode, and get the same
requests. In Prometheus, each mode's series must be the same (labels and request counts),
with nothing counted twice, and every dashboard panel reading the HTTP histogram must draw
the collector-derived series (the alert rules read the same series).
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest

from tests.harness import App, http, wait_until
from tests.stack import queries

from .backends import promql_instant, promql_range, window
from .conftest import stack
from .services import example_services

pytestmark = pytest.mark.e2e

ENVIRONMENT = "e2e-http-metrics"
MODES = ("process", "collector")
POLL_SECONDS = 120.0

# (service, method, path, how many times); the orders service calls nothing here.
REQUESTS = (
    ("inventory", "GET", "/items/no-such-sku", 3),  # 404
    ("inventory", "GET", "/boom", 2),  # 500, error.type 500
    ("orders", "GET", "/orders/o-1", 4),  # 404
    ("orders", "GET", "/orders/o-1/fail", 2),  # 500
    ("orders", "GET", "/boom", 1),  # 500
)
# Sent last, once the rest is counted (see the test).
MARKERS = {"inventory": "/items/marker", "orders": "/orders/marker"}
# Series key: the labels but the per-process ones and the scope, which says who computed the
# series (the process's instrumentation; the collector's `spanmetricsconnector`).
NOT_COMPARED = {"instance", "job", "__name__", "otel_scope_name", "otel_scope_version"}


def service(kind: str, mode: str) -> str:
    return f"hm-{mode}-{kind}"


@dataclass(frozen=True)
class Traffic:
    started: float
    apps: dict[tuple[str, str], App]  # (kind, mode) -> the running service


@pytest.fixture(scope="module")
def traffic(backend_stack: stack.Stack, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Traffic]:
    started = time.time()
    logs = tmp_path_factory.mktemp("e2e-http-metrics")
    for mode in MODES:
        (logs / mode).mkdir()
    with (
        example_services(
            backend_stack,
            logs / "process",
            service("inventory", "process"),
            service("orders", "process"),
            OTEL_DISTRO_ENVIRONMENT=ENVIRONMENT,
        ) as process_apps,
        example_services(
            backend_stack,
            logs / "collector",
            service("inventory", "collector"),
            service("orders", "collector"),
            OTEL_DISTRO_ENVIRONMENT=ENVIRONMENT,
            OTEL_DISTRO_HTTP_METRICS="collector",
        ) as collector_apps,
    ):
        apps = {}
        for mode, (inventory, orders) in zip(MODES, (process_apps, collector_apps), strict=True):
            apps[("inventory", mode)], apps[("orders", mode)] = inventory, orders
            send(inventory, orders)
        yield Traffic(started, apps)


def send(inventory: App, orders: App) -> None:
    apps = {"inventory": inventory, "orders": orders}
    for kind, method, path, times in REQUESTS:
        for _ in range(times):
            http(method, apps[kind].url + path)


def counts(backends: stack.Stack, job: str) -> Counter[tuple[tuple[str, str], ...]]:
    """Requests per series of the job: the histogram's count, summed over its processes."""
    found: Counter[tuple[tuple[str, str], ...]] = Counter()
    for series in promql_instant(backends, f'http_server_request_duration_seconds_count{{job="{job}"}}'):
        key = tuple(sorted((k, v) for k, v in series["metric"].items() if k not in NOT_COMPARED))
        found[key] += int(float(series["value"][1]))
    return found


def expected_total(kind: str) -> int:
    return sum(times for k, _, _, times in REQUESTS if k == kind)


def test_collector_mode_writes_the_series_the_process_would(backend_stack: stack.Stack, traffic: Traffic) -> None:
    jobs = {(kind, mode): service(kind, mode) for kind in MARKERS for mode in MODES}

    last: dict[tuple[str, str], int] = {}

    def all_counted(extra: int) -> dict[tuple[str, str], Counter[Any]] | None:
        found = {key: counts(backend_stack, job) for key, job in jobs.items()}
        last.update({key: sum(c.values()) for key, c in found.items()})
        enough = all(sum(c.values()) >= expected_total(kind) + extra for (kind, _), c in found.items())
        return found if enough else None

    def wait(extra: int, what: str) -> dict[tuple[str, str], Counter[Any]]:
        try:
            return wait_until(lambda: all_counted(extra), POLL_SECONDS, interval=1, what=what)
        except pytest.fail.Exception:
            wanted = {kind: expected_total(kind) + extra for kind in MARKERS}
            query = 'http_server_request_duration_seconds_count{job="%s"}'
            series = {
                job: [
                    (x["metric"].get("instance"), x["metric"].get("http_route"), x["value"][1])
                    for x in promql_instant(backend_stack, query % job)
                ]
                for job in jobs.values()
            }
            pytest.fail(f"{what}: counted {last}, wanted {wanted}; series {series}", pytrace=False)

    wait(0, "requests counted in both modes")
    # A marker request per service, sent last: once it is counted, whatever the earlier
    # requests could still add (counted twice, late) has been written too.
    for (kind, _), app in traffic.apps.items():
        http("GET", app.url + MARKERS[kind])
    found = wait(1, "marker requests counted")
    for kind in MARKERS:
        process, collector = found[(kind, "process")], found[(kind, "collector")]
        assert sum(process.values()) == sum(collector.values()) == expected_total(kind) + 1
        assert collector == process
        labels = {k for key in collector for k, _ in key}
        assert {"http_route", "http_response_status_code", "http_request_method", "error_type"} <= labels
        # The connector's own labels stay out of the series.
        assert not labels & {"span_name", "span_kind", "status_code", "service_name", "collector_instance_id"}
    scopes = {
        s["metric"].get("otel_scope_name")
        for s in promql_instant(backend_stack, 'http_server_request_duration_seconds_count{job=~"hm-collector-.*"}')
    }
    assert scopes == {"spanmetricsconnector"}


def test_no_calls_counter_is_written(backend_stack: stack.Stack, traffic: Traffic) -> None:
    wait_until(
        lambda: counts(backend_stack, service("orders", "collector")), POLL_SECONDS, interval=1, what="derived series"
    )
    assert promql_instant(backend_stack, '{__name__=~"http_server_request_calls.*"}') == []


def test_exemplars_of_the_derived_histogram_name_traces(backend_stack: stack.Stack, traffic: Traffic) -> None:
    job = service("orders", "collector")
    params = {"query": f'http_server_request_duration_seconds_bucket{{job="{job}"}}', **window(traffic.started)}

    def trace_ids() -> set[str]:
        status, body = stack.get_json(f"{backend_stack.prometheus_url}/api/v1/query_exemplars", params)
        if status != 200 or not isinstance(body, dict):
            return set()
        return {e["labels"].get("trace_id", "") for s in body["data"] for e in s["exemplars"]} - {""}

    found = wait_until(trace_ids, POLL_SECONDS, interval=1, what="exemplars on the derived histogram")
    assert all(len(t) == 32 for t in found)


HTTP_PANELS = [
    q for q in queries.dashboard_queries() if q.query_type == "promql" and "http_server_request_duration" in str(q.expr)
]


@pytest.mark.parametrize("query", HTTP_PANELS, ids=lambda q: f"{q.dashboard}:{q.panel}")
def test_dashboard_panels_draw_the_derived_series(
    backend_stack: stack.Stack, traffic: Traffic, query: queries.PanelQuery
) -> None:
    values = {
        "service": f"{service('orders', 'collector')}|{service('inventory', 'collector')}",
        "environment": ENVIRONMENT,
        "instance": ".+",
        "collector": ".+",
    }
    expr = queries.substitute(str(query.expr), values)
    wait_until(
        lambda: promql_range(backend_stack, expr, traffic.started),
        POLL_SECONDS,
        interval=1,
        what=f"{query.dashboard}:{query.panel} {expr}",
    )
