"""Error groups end to end: a service raising the same bug from two routes and a different bug
elsewhere, restarted with a new release, seen through the real collector, Prometheus,
VictoriaLogs and Alertmanager.

Two groups, whatever the route or the message; each group's first and last seen and its
releases right across the restart; the same IDs in the logs backend; the new-group alert
reaching the webhook.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest

from tests.harness import app_env, free_port, launch, stop_app
from tests.stack import queries

from .backends import logsql
from .conftest import stack
from .test_alerts import Webhook, alertmanager, webhook  # noqa: F401 - fixtures used below
from .test_dashboards import promql_instant
from .test_pipeline import poll

pytestmark = pytest.mark.e2e

SERVICE = "e2e-error-groups"
ENVIRONMENT = "e2e-error-groups"
POLL_SECONDS = 120.0
DELIVERY_TIMEOUT = 180.0

APP = """
from fastapi import FastAPI

app = FastAPI()


class PaymentDeclined(Exception):
    pass


def charge(order_id: str) -> None:
    raise PaymentDeclined(f"card declined for order {order_id}")


@app.get("/checkout/{order_id}")
async def checkout(order_id: str) -> dict:
    charge(order_id)
    return {}


@app.get("/retry/{order_id}")
async def retry(order_id: str) -> dict:
    charge(order_id)
    return {}


@app.get("/report")
async def report() -> dict:
    totals: dict = {}
    return {"total": totals["missing"]}
"""


@dataclass(frozen=True)
class Run:
    restarted: float  # unix seconds between the two releases


@pytest.fixture(scope="module")
def two_releases(backend_stack: stack.Stack, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Run]:
    directory = tmp_path_factory.mktemp("error-groups")
    (directory / "app.py").write_text(APP)
    endpoint = backend_stack.otlp_http_url

    def serve(version: str, paths: list[str]) -> None:
        port = free_port()
        env = app_env(SERVICE, endpoint, OTEL_DISTRO_SERVICE_VERSION=version, OTEL_DISTRO_ENVIRONMENT=ENVIRONMENT)
        app = launch(["uvicorn", "app:app", "--port", str(port)], env, directory, port, directory / f"{version}.log")
        try:
            for path in paths:
                assert stack.get_json(f"{app.url}{path}")[0] == 500, path
            time.sleep(2)  # a few metric exports (every 0.5 s) after the last error
        finally:
            stop_app(app)

    serve("1.0", ["/checkout/1", "/retry/2", "/checkout/3", "/report"])
    restarted = time.time()
    time.sleep(20)  # a Prometheus sample between the releases: first and last seen tell them apart
    serve("2.0", ["/retry/4", "/report", "/report"])
    yield Run(restarted)


def _groups(backends: stack.Stack, promql: str) -> dict[str, list[dict[str, Any]]]:
    by_group: dict[str, list[dict[str, Any]]] = {}
    for series in promql_instant(backends, promql):
        by_group.setdefault(series["metric"]["error_group_id"], []).append(series)
    return by_group


def _dashboard_query(panel: str, index: int = 0) -> str:
    found = [q for q in queries.dashboard_queries() if q.dashboard == "errors.json" and q.panel == panel]
    return queries.substitute(str(found[index].expr), {"service": SERVICE, "environment": ENVIRONMENT})


def _two_groups_in_both_releases(backends: stack.Stack) -> dict[str, set[str]] | None:
    releases = _groups(
        backends,
        f'group by (error_group_id, error_type, service_version) (max_over_time((app_errors_total{{job="{SERVICE}"}}'
        " * on (job, instance) group_left (service_version) group by (job, instance, service_version) "
        "(target_info))[1h:5s]))",
    )
    found = {group: {s["metric"]["service_version"] for s in series} for group, series in releases.items()}
    return found if len(found) == 2 and all(v == {"1.0", "2.0"} for v in found.values()) else None


def test_new_error_group_alert_reaches_the_webhook(
    backend_stack: stack.Stack,
    two_releases: Run,
    alertmanager: str,  # noqa: F811
    webhook: Webhook,  # noqa: F811
) -> None:
    def new_group_alerts() -> list[dict[str, Any]]:
        return [
            alert
            for payload in webhook.received()
            for alert in payload["alerts"]
            if alert["labels"].get("alertname") == "NewErrorGroup" and alert["labels"].get("job") == SERVICE
        ]

    alerts = poll("NewErrorGroup for the service at the webhook", new_group_alerts, DELIVERY_TIMEOUT)
    assert alerts[0]["labels"]["severity"] == "warning"
    assert alerts[0]["labels"]["error_group_id"] in alerts[0]["annotations"]["summary"]


def test_two_groups_in_prometheus_each_in_both_releases(backend_stack: stack.Stack, two_releases: Run) -> None:
    found = poll(
        "two error groups, each in releases 1.0 and 2.0",
        lambda: _two_groups_in_both_releases(backend_stack),
        POLL_SECONDS,
    )
    counts = _groups(
        backend_stack, f'sum by (error_group_id, error_type) (max_over_time(app_errors_total{{job="{SERVICE}"}}[1h]))'
    )
    types = {group: series[0]["metric"]["error_type"] for group, series in counts.items()}
    assert set(types) == set(found)
    assert sorted(types.values()) == ["KeyError", "app.PaymentDeclined"]


def _counts(backends: stack.Stack, panel: str) -> dict[str, float]:
    rows = _groups(backends, _dashboard_query(panel))
    return {group: sum(float(s["value"][1]) for s in series) for group, series in rows.items()}


def test_issue_list_counts_every_error_of_both_releases(backend_stack: stack.Stack, two_releases: Run) -> None:
    """Four PaymentDeclined (two routes, two releases) and three KeyError, the first error of each
    process included (its series starts at 1, which increase() alone misses)."""
    poll("two error groups in both releases", lambda: _two_groups_in_both_releases(backend_stack), POLL_SECONDS)
    types = {
        group: series[0]["metric"]["error_type"]
        for group, series in _groups(backend_stack, _dashboard_query("Issues (error groups)")).items()
    }
    expected = {"app.PaymentDeclined": 4.0, "KeyError": 3.0}
    for panel in ("Issues (error groups)", "New in the last hour"):
        counts = _counts(backend_stack, panel)
        assert {types[group]: count for group, count in counts.items()} == expected, panel


def test_issue_list_first_and_last_seen_straddle_the_restart(backend_stack: stack.Stack, two_releases: Run) -> None:
    poll("two error groups in both releases", lambda: _two_groups_in_both_releases(backend_stack), POLL_SECONDS)
    first = _groups(backend_stack, _dashboard_query("Issues (error groups)", 1))
    last = _groups(backend_stack, _dashboard_query("Issues (error groups)", 2))
    assert len(first) == 2 and set(first) == set(last)
    for group in first:
        first_ms = min(float(s["value"][1]) for s in first[group])
        last_ms = max(float(s["value"][1]) for s in last[group])
        # Minute steps of the subquery: first seen at most a minute early, last seen after the restart.
        assert first_ms / 1000 <= two_releases.restarted + 60, group
        assert last_ms / 1000 >= two_releases.restarted - 60, group
        assert last_ms >= first_ms, group


def test_the_logs_backend_has_the_same_two_groups(backend_stack: stack.Stack, two_releases: Run) -> None:
    found = poll("two error groups in both releases", lambda: _two_groups_in_both_releases(backend_stack), POLL_SECONDS)
    query = f'{{service.name="{SERVICE}"}} error.group.id:* | stats by (error.group.id) count() records'

    def groups_in_logs() -> set[str] | None:
        rows = logsql(backend_stack, query, two_releases.restarted - 600, by_time=False)
        groups = {row["error.group.id"] for row in rows}
        return groups if len(groups) == 2 else None

    assert poll(f"VictoriaLogs {query}", groups_in_logs, POLL_SECONDS) == set(found)
