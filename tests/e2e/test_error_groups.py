"""Error groups end to end: a service raising the same bug from two routes and a different bug
elsewhere, restarted with a new release that also brings a new bug, seen through the real
collector, Prometheus, VictoriaLogs and Alertmanager.

Two groups in the first release, whatever the route or the message, and a third in the second;
the Errors dashboard's issue list with one row per group: count, route, first and last seen and
the release first seen in, right across the restart; the same IDs and a sample line per group in
the logs backend; the new-group alert reaching the webhook.
"""

from __future__ import annotations

import functools
import json
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest

from tests.harness import app_env, free_port, launch, stop_app
from tests.stack import queries

from .backends import find_traces, logsql, promql_instant, trace_exists
from .conftest import stack
from .test_alerts import Webhook, alertmanager, webhook  # noqa: F401 - fixtures used below
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


@app.get("/export")
async def export() -> dict:
    return {"rows": int("not a number")}
"""

# Releases named like commits, the second sorting before the first: the first release seen must come
# from time, not from the names.
FIRST, SECOND = "9f1c2ab", "1a7e0d3"
# What each release raises, by exception type: the two releases' groups and the releases of each.
RELEASES = {"app.PaymentDeclined": {FIRST, SECOND}, "KeyError": {FIRST, SECOND}, "ValueError": {SECOND}}
COUNTS = {"app.PaymentDeclined": 5.0, "KeyError": 3.0, "ValueError": 1.0}


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

    serve(FIRST, ["/checkout/1", "/retry/2", "/checkout/3", "/report"])
    restarted = time.time()
    time.sleep(20)  # a Prometheus sample between the releases: first and last seen tell them apart
    serve(SECOND, ["/retry/4", "/report", "/checkout/5", "/report", "/export"])
    yield Run(restarted)


def _groups(backends: stack.Stack, promql: str) -> dict[str, list[dict[str, Any]]]:
    by_group: dict[str, list[dict[str, Any]]] = {}
    for series in promql_instant(backends, promql):
        by_group.setdefault(series["metric"]["error_group_id"], []).append(series)
    return by_group


def _dashboard_query(panel: str, index: int = 0) -> str:
    found = [q for q in queries.dashboard_queries() if q.dashboard == "errors.json" and q.panel == panel]
    return queries.substitute(str(found[index].expr), {"service": SERVICE, "environment": ENVIRONMENT})


def _groups_of_both_releases(backends: stack.Stack, last: dict[str, Any]) -> dict[str, str] | None:
    """{group: exception type} once Prometheus has every group in each of its releases, else None
    (what it has is left in ``last``)."""
    releases = _groups(
        backends,
        f'group by (error_group_id, error_type, service_version) (max_over_time((app_errors_total{{job="{SERVICE}"}}'
        " * on (job, instance) group_left (service_version) group by (job, instance, service_version) "
        "(target_info))[1h:5s]))",
    )
    types = {group: series[0]["metric"]["error_type"] for group, series in releases.items()}
    found = {types[group]: {s["metric"]["service_version"] for s in series} for group, series in releases.items()}
    last["releases by type"] = found
    return types if found == RELEASES and len(types) == len(RELEASES) else None


def _wait_for_both_releases(backends: stack.Stack) -> dict[str, str]:
    last: dict[str, Any] = {}
    what = "three error groups (two in the first release) in their releases"
    try:
        return poll(what, lambda: _groups_of_both_releases(backends, last), POLL_SECONDS)
    except pytest.fail.Exception:
        pytest.fail(f"{what}: Prometheus had {last} after {POLL_SECONDS:g}s", pytrace=False)


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


def test_same_bug_from_two_routes_is_one_group_and_a_different_bug_another(
    backend_stack: stack.Stack, two_releases: Run
) -> None:
    types = _wait_for_both_releases(backend_stack)
    routes = _groups(
        backend_stack,
        f'group by (error_group_id, http_route) (max_over_time(app_errors_total{{job="{SERVICE}"}}[1h]))',
    )
    by_type = {types[group]: {s["metric"]["http_route"] for s in series} for group, series in routes.items()}
    assert by_type == {
        "app.PaymentDeclined": {"/checkout/{order_id}", "/retry/{order_id}"},
        "KeyError": {"/report"},
        "ValueError": {"/export"},
    }


# ---- the Errors dashboard's issue list, as Grafana would show it ----------------------------

ISSUE_KEY = ("job", "error_group_id", "error_type")


def _issue_rows(backends: stack.Stack, panel: str) -> dict[str, dict[str, Any]] | None:
    """The panel's table as Grafana's merge transformation builds it: each query a column, merged on
    (service, group, type), each query's extra labels (route, release) columns too. None until every
    group has a full row."""
    columns = [q for q in queries.dashboard_queries() if q.dashboard == "errors.json" and q.panel == panel]
    rows: dict[tuple[str, ...], dict[str, Any]] = {}
    for index, column in enumerate(columns):
        expr = queries.substitute(str(column.expr), {"service": SERVICE, "environment": ENVIRONMENT})
        seen_keys: set[tuple[str, ...]] = set()
        for series in promql_instant(backends, expr):
            key = tuple(series["metric"][label] for label in ISSUE_KEY)
            assert key not in seen_keys, f"{panel} query {index}: two series for one row {key}: {expr}"
            seen_keys.add(key)
            row = rows.setdefault(key, {})
            extra = {k: v for k, v in series["metric"].items() if k not in ISSUE_KEY}
            assert not set(extra) & set(row), f"{panel} query {index}: {extra} clashes with {row}"
            row.update(extra)
            row[f"Value #{chr(ord('A') + index)}"] = float(series["value"][1])
    full = {key[2]: row for key, row in rows.items() if len(row) == len(columns) + 2}
    return full if len(full) == len(rows) == len(RELEASES) else None


def _issue_list(backends: stack.Stack, panel: str) -> dict[str, dict[str, Any]]:
    """{exception type: row} once the table has every group with every column."""
    _wait_for_both_releases(backends)
    return poll(f"{panel}: one full row per group", lambda: _issue_rows(backends, panel), POLL_SECONDS)


@pytest.mark.parametrize("panel", ["Issues (error groups)", "New in the last hour"])
def test_issue_list_has_one_row_per_group_with_count_route_and_first_release(
    backend_stack: stack.Stack, two_releases: Run, panel: str
) -> None:
    """Five PaymentDeclined (two routes, two releases), three KeyError and one ValueError, the first
    error of each process included (its series starts at 1, which increase() alone misses); the
    busiest route; the release each group was first seen in."""
    rows = _issue_list(backend_stack, panel)
    assert {t: row["Value #A"] for t, row in rows.items()} == COUNTS
    assert {t: row["service_version"] for t, row in rows.items()} == {
        "app.PaymentDeclined": FIRST,
        "KeyError": FIRST,
        "ValueError": SECOND,
    }
    assert {t: (row["http_route"], row["Value #D"]) for t, row in rows.items()} == {
        "app.PaymentDeclined": ("/checkout/{order_id}", 2.0),
        "KeyError": ("/report", 1.0),
        "ValueError": ("/export", 1.0),
    }


def test_issue_list_first_and_last_seen_straddle_the_restart(backend_stack: stack.Stack, two_releases: Run) -> None:
    rows = _issue_list(backend_stack, "Issues (error groups)")
    restarted_ms = two_releases.restarted * 1000
    for error_type, row in rows.items():
        first_ms, last_ms = row["Value #B"], row["Value #C"]
        # Sample times of the process that raised it: the first release's stopped before the restart.
        if error_type == "ValueError":
            assert restarted_ms < first_ms <= last_ms, row
        else:
            assert first_ms < restarted_ms < last_ms, row
        assert last_ms <= time.time() * 1000, row


def test_the_logs_backend_has_the_same_groups(backend_stack: stack.Stack, two_releases: Run) -> None:
    types = _wait_for_both_releases(backend_stack)
    query = f'{{service.name="{SERVICE}"}} error.group.id:* | stats by (error.group.id) count() records'

    def groups_in_logs() -> set[str] | None:
        rows = logsql(backend_stack, query, two_releases.restarted - 600, by_time=False)
        groups = {row["error.group.id"] for row in rows}
        return groups if len(groups) == len(RELEASES) else None

    assert poll(f"VictoriaLogs {query}", groups_in_logs, POLL_SECONDS) == set(types)


def test_each_group_has_a_sample_line_with_message_and_trace(backend_stack: stack.Stack, two_releases: Run) -> None:
    """The "A sample of each group" panel's question (native twin): a message and a trace ID per
    group; and the issue list's links, asked of the native backends: the group's log lines, and its
    traces found by the group ID on the span's exception event, the sample's trace among them."""
    types = _wait_for_both_releases(backend_stack)
    query = (
        f'{{service.name="{SERVICE}"}} error.group.id:* '
        "| stats by (error.group.id) row_max(_time, exception.message, trace_id) sample"
    )

    def samples() -> dict[str, dict[str, str]] | None:
        rows = logsql(backend_stack, query, two_releases.restarted - 600, by_time=False)
        found = {row["error.group.id"]: json.loads(row["sample"]) for row in rows}
        return found if set(found) == set(types) else None

    found = poll(f"VictoriaLogs {query}", samples, POLL_SECONDS)
    since = two_releases.restarted - 600
    messages = {types[group]: sample["exception.message"] for group, sample in found.items()}
    assert messages["app.PaymentDeclined"] == "card declined for order 5"
    assert messages["KeyError"] == "'missing'"
    assert "not a number" in messages["ValueError"]
    links = {q.query_type: q.expr for q in queries.link_queries() if q.panel == "Issues (error groups)"}
    for group, sample in found.items():
        row = {"job": SERVICE, "error_group_id": group}
        # The row's "log lines" link, and its twin in VictoriaLogs.
        assert queries.fill_row(links["logql"], row) == f'{{service_name="{SERVICE}"}} | error_group_id="{group}"'
        lines = f'{{service.name="{SERVICE}"}} error.group.id:="{group}"'
        assert poll(lines, functools.partial(logsql, backend_stack, lines, since), POLL_SECONDS)
        # The row's "traces" link (the group ID on the exception event), and its twin in Jaeger.
        assert queries.fill_row(links["traceql"], row) == (
            f'{{ resource.service.name = "{SERVICE}" && event.error.group.id = "{group}" }}'
        )
        trace_id = sample["trace_id"]
        poll(
            f"trace {trace_id} of group {group}", functools.partial(trace_exists, backend_stack, trace_id), POLL_SECONDS
        )
        by_group = poll(
            f"traces of group {group} (error.group.id on the exception event)",
            functools.partial(find_traces, backend_stack, SERVICE, {"error.group.id": group}, since),
            POLL_SECONDS,
        )
        assert trace_id in by_group


def test_drill_down_exemplars_open_the_groups_traces(backend_stack: stack.Stack, two_releases: Run) -> None:
    """The rate-by-release graph of a group shows exemplars of app.errors: trace IDs of requests that
    raised it, which the traces backend holds."""
    types = _wait_for_both_releases(backend_stack)
    expr = _dashboard_query("Error rate by group and release")
    window = {"start": str(int(two_releases.restarted) - 600), "end": str(int(time.time()) + 60)}

    def exemplars_by_group() -> dict[str, list[str]] | None:
        status, body = stack.get_json(
            f"{backend_stack.prometheus_url}/api/v1/query_exemplars", {"query": expr, **window}
        )
        found: dict[str, list[str]] = {}
        for series in (body or {}).get("data") or [] if status == 200 and isinstance(body, dict) else []:
            group = series["seriesLabels"].get("error_group_id")
            found.setdefault(group, []).extend(e["labels"]["trace_id"] for e in series["exemplars"])
        return found if set(found) == set(types) else None

    found = poll("exemplars with trace IDs for every group", exemplars_by_group, POLL_SECONDS)
    for group, trace_ids in found.items():
        poll(
            f"trace {trace_ids[0]} of group {group}",
            functools.partial(trace_exists, backend_stack, trace_ids[0]),
            POLL_SECONDS,
        )
