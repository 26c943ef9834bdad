#!/usr/bin/env python3
"""Grafana dashboards of the otel-distro stack, as code (grafana-foundation-sdk).

    python stack/grafana/dashboards.py          # rewrite stack/grafana/dashboards/*.json
    python stack/grafana/dashboards.py --check  # exit 1 when a JSON file is out of date

The JSON files are committed and provisioned by Grafana
(stack/grafana/provisioning/dashboards/); edit this file, never the JSON.

Where the data comes from:

* Service metrics reach Prometheus by remote write from the collector: ``job``
  is the service name, ``instance`` the service instance, and every other
  resource attribute sits on ``target_info`` only. The ``environment``
  variable therefore filters by joining ``target_info`` (``ENV_JOIN``).
* The collector's own metrics are scraped (job ``otel-collector``); so are the
  logs and traces backends' (jobs ``logs-backend``, ``traces-backend``: Loki and
  Tempo in docker-compose, VictoriaLogs and Jaeger natively; panels on them
  query both programs' metric names).
* Logs are in Loki with ``service_name`` and ``deployment_environment_name``
  as labels and the rest (``trace_id``, ``severity_number``,
  ``exception_type``) as structured metadata.
* Traces are in Tempo. Span metrics (``traces_spanmetrics_*``) and the service
  graph (``traces_service_graph_*``) come from the collector's connectors, so
  they exist whatever the traces backend.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import urllib.parse
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from grafana_foundation_sdk.builders import (
    bargauge,
    common,
    dashboard,
    logs,
    loki,
    nodegraph,
    prometheus,
    stat,
    table,
    tempo,
    timeseries,
)
from grafana_foundation_sdk.cog.builder import Builder
from grafana_foundation_sdk.cog.encoder import JSONEncoder
from grafana_foundation_sdk.cog.variants import Dataquery
from grafana_foundation_sdk.models.common import (
    BarGaugeDisplayMode,
    LegendDisplayMode,
    LegendPlacement,
    LogsSortOrder,
    VisibilityMode,
    VizOrientation,
)
from grafana_foundation_sdk.models.dashboard import (
    DashboardCursorSync,
    DashboardLinkType,
    DataSourceRef,
    DataTransformerConfig,
    DynamicConfigValue,
    VariableRefresh,
    VariableSort,
)
from grafana_foundation_sdk.models.tempo import SearchTableType

OUT_DIR = Path(__file__).resolve().parent / "dashboards"
TAG = "otel-distro"

# The UIDs of stack/grafana/provisioning/datasources/datasources.yml.
PROMETHEUS = DataSourceRef(type_val="prometheus", uid="prometheus")
LOKI = DataSourceRef(type_val="loki", uid="loki")
TEMPO = DataSourceRef(type_val="tempo", uid="tempo")

# ---- PromQL building blocks ----------------------------------------------------------

HTTP = "http_server_request_duration_seconds"
SERVICE = 'job=~"$service"'
# Keeps only series of instances whose target_info is in the selected environment(s).
ENV_JOIN = (
    "* on (job, instance) group_left () group by (job, instance) "
    '(target_info{deployment_environment_name=~"$environment"})'
)
RUNTIME = 'job=~"$service", instance=~"$instance"'
COLLECTOR = 'job="otel-collector", instance=~"$collector"'
SIGNALS = (("spans", "spans"), ("metric_points", "metric points"), ("log_records", "log records"))
# Extra matchers for the HTTP server metrics.
SERVER_ERROR = ', http_response_status_code=~"5.."'
FAILED = ', error_type!=""'

# Loki selector of the chosen services and environments (both labels come from OTLP resource attributes).
LOGS = '{service_name=~"$service", deployment_environment_name=~"$environment"}'
# TraceQL condition on the same two variables.
TRACES = 'resource.service.name =~ "$service" && resource.deployment.environment.name =~ "$environment"'


# What the logs and traces backends received, from their own metrics: the first operand
# is Loki's or Tempo's (docker-compose), the second VictoriaLogs' or Jaeger's (native).
BACKEND_LOG_RECORDS = (
    'sum(rate(loki_distributor_lines_received_total{job="logs-backend"}[$__rate_interval]))'
    ' or sum(rate(vl_rows_ingested_total{job="logs-backend"}[$__rate_interval]))'
)
BACKEND_SPANS = (
    'sum(rate(tempo_distributor_spans_received_total{job="traces-backend"}[$__rate_interval]))'
    ' or sum(rate(otelcol_receiver_accepted_spans_total{job="traces-backend"}[$__rate_interval]))'
)


def env_join_over(range_: str) -> str:
    """``ENV_JOIN`` for a value over ``range_`` evaluated at its end: every instance that was in the chosen
    environments during the range. One stopped more than the lookback (5 minutes) before the end, such
    as the previous release's after a deploy, has no ``target_info`` at the end any more."""
    return (
        "* on (job, instance) group_left () group by (job, instance) "
        f'(max_over_time(target_info{{deployment_environment_name=~"$environment"}}[{range_}]))'
    )


def env_rate(metric: str, matchers: str = "", selector: str = SERVICE) -> str:
    """Per-second rate of ``metric`` for the chosen services, restricted to the chosen environments."""
    return f"(rate({metric}{{{selector}{matchers}}}[$__rate_interval]) {ENV_JOIN})"


def env_gauge(metric: str, selector: str = RUNTIME) -> str:
    return f"({metric}{{{selector}}} {ENV_JOIN})"


# The distro's `app.errors` counter: one series per service instance, error group, type and route.
ERRORS = "app_errors_total"
# One row of the issue list: the service and the group (a group has one exception type).
ISSUE = "job, error_group_id, error_type"
# Adds target_info's service_version (the release) to each series of a service instance.
RELEASE_JOIN = (
    "* on (job, instance) group_left (service_version) group by (job, instance, service_version) (target_info)"
)
# The groups that occurred in the 24 hours before the last hour.
KNOWN_BEFORE = f"group by (job, error_group_id) (max_over_time({ERRORS}{{{SERVICE}}}[1d] offset 1h))"


def errors_in(range_: str, by: str = ISSUE) -> str:
    """Errors per ``by`` over ``range_`` for the chosen services and environments.

    A process's series starts at its first export with the errors so far (often 1), which
    ``increase()`` cannot see: a series born inside the range adds its first value.
    """
    errors = f"{ERRORS}{{{SERVICE}}}"
    first, none = f"min_over_time({errors}[{range_}])", f"min_over_time({errors}[{range_}]) * 0"
    grown = f"(increase({errors}[{range_}]) or {none})"
    born = f"({first} unless {errors} offset {range_} or {none})"
    return f"round(sum by ({by}) (({grown} + {born}) {env_join_over(range_)}))"


def rising() -> str:
    """Each series' latest sample time (unix seconds) while its count went up in the last 2 minutes or
    the series appeared (a process's first errors), with its release; nothing otherwise."""
    errors = f"{ERRORS}{{{SERVICE}}}"
    went_up = f"(increase({errors}[2m]) > 0 or ({errors} unless {errors} offset 2m))"
    return f"((timestamp({errors}) and {went_up}) {ENV_JOIN} {RELEASE_JOIN})"


def last_seen(range_: str) -> str:
    """When a group was last seen over ``range_``, as unix seconds: the latest sample of a minute in which
    one of its series went up or appeared (to the minute)."""
    return f"max by ({ISSUE}) (max_over_time({rising()}[{range_}:1m]))"


def first_release(range_: str) -> str:
    """When a group was first seen over ``range_`` (unix seconds, to the minute, as ``last_seen``) and in
    which release: label ``service_version`` of the release whose series went up first. ``bottomk``
    keeps the labels of the earliest of the per-release first times."""
    by_release = f"min by ({ISSUE}, service_version) (min_over_time({rising()}[{range_}:1m]))"
    return f"bottomk by ({ISSUE}) (1, {by_release})"


def top_route(range_: str) -> str:
    """Per group, the route (label ``http_route``) with the most errors over ``range_``; the value is how
    many routes had errors of the group."""
    per_route = f"({errors_in(range_, ISSUE + ', http_route')} > 0)"
    return f"topk by ({ISSUE}) (1, {per_route}) * 0 + on ({ISSUE}) group_left () count by ({ISSUE}) {per_route}"


def route_quantile(q: float) -> str:
    return f"histogram_quantile({q}, sum by (job, http_route, le) {env_rate(HTTP + '_bucket')})"


# ---- panels ----------------------------------------------------------------------


@dataclass(frozen=True)
class Query:
    expr: str
    legend: str = ""
    exemplars: bool = False
    instant: bool = False


def prom(query: Query, ref_id: str) -> prometheus.Dataquery:
    target = prometheus.Dataquery().expr(query.expr).ref_id(ref_id).datasource(PROMETHEUS)
    if query.legend:
        target = target.legend_format(query.legend)
    if query.exemplars:
        target = target.exemplar(True)
    return target.instant() if query.instant else target.range()


def prom_targets(queries: Sequence[Query]) -> list[Builder[Dataquery]]:
    return [prom(query, chr(ord("A") + i)) for i, query in enumerate(queries)]


def graph(title: str, unit: str, queries: Sequence[Query], description: str = "", width: int = 12) -> timeseries.Panel:
    panel = (
        timeseries.Panel()
        .title(title)
        .description(description)
        .datasource(PROMETHEUS)
        .unit(unit)
        .span(width)
        .height(8)
        .fill_opacity(10)
        .show_points(VisibilityMode.NEVER)
        .legend(
            common.VizLegendOptions()
            .display_mode(LegendDisplayMode.TABLE)
            .placement(LegendPlacement.BOTTOM)
            .show_legend(True)
        )
    )
    return panel.targets(prom_targets(queries))


def single_stat(title: str, unit: str, query: Query, description: str = "") -> stat.Panel:
    return (
        stat.Panel()
        .title(title)
        .description(description)
        .datasource(PROMETHEUS)
        .unit(unit)
        .span(8)
        .height(4)
        .targets(prom_targets([query]))
    )


def top_list(title: str, query: Query, description: str = "") -> bargauge.Panel:
    return (
        bargauge.Panel()
        .title(title)
        .description(description)
        .datasource(PROMETHEUS)
        .unit("short")
        .span(12)
        .height(8)
        .orientation(VizOrientation.HORIZONTAL)
        .display_mode(BarGaugeDisplayMode.BASIC)
        .targets(prom_targets([query]))
    )


# Label columns of the issue list, in order, with their titles.
ISSUE_LABELS = {
    "job": "service",
    "error_group_id": "error group",
    "error_type": "type",
    "http_route": "route (most errors)",
    "service_version": "first release",
}


def explore_url(pane: dict[str, object]) -> str:
    """A link to Explore with one pane. Grafana fills the ``${...}`` variables of a data link
    (percent-encoded) before opening it, so they stay literal in the encoded pane."""
    encoded = urllib.parse.quote(json.dumps({"sample": pane}, separators=(",", ":")), safe="")
    encoded = re.sub(r"%24%7B([\w.]+)%7D", r"${\1}", encoded)
    return f"/explore?schemaVersion=1&orgId=1&panes={encoded}"


def explore_pane(datasource: DataSourceRef, query: dict[str, object]) -> dict[str, object]:
    ref = {"type": datasource.type_val, "uid": datasource.uid}
    return {
        "datasource": datasource.uid,
        "queries": [{"refId": "A", "datasource": ref, **query}],
        "range": {"from": "${__from}", "to": "${__to}"},
    }


def group_links(service_field: str, drill_down: bool = True) -> list[dict[str, str]]:
    """Data links of a table row to its group's log lines, traces and (``drill_down``) rate by release;
    ``service_field`` is the row's field holding the service name."""
    service, group = f"${{__data.fields.{service_field}}}", "${__data.fields.error_group_id}"
    group_logs = f'{{service_name="{service}"}} | error_group_id="{group}"'
    group_traces = f'{{ resource.service.name = "{service}" && event.error.group.id = "{group}" }}'
    links = [
        {
            "title": "Log lines of this group (message, stack, breadcrumbs; Trace link per line)",
            "url": explore_url(explore_pane(LOKI, {"expr": group_logs, "queryType": "range"})),
        },
        {
            "title": "Sample traces of this group",
            "url": explore_url(explore_pane(TEMPO, {"queryType": "traceql", "query": group_traces, "limit": 20})),
        },
    ]
    if drill_down:
        links.append(
            {
                "title": "Drill down: this group's rate by release",
                "url": "/d/otel-distro-errors/errors?from=${__from}&to=${__to}&${environment:queryparam}"
                f"&var-service={service}&var-error_group={group}",
            }
        )
    return links


def merged_table(
    title: str,
    description: str,
    datasource: DataSourceRef,
    height: int,
    targets: Sequence[Builder[Dataquery]],
    index: Mapping[str, int],
    renames: Mapping[str, str],
    labels_to_fields: bool = False,
) -> table.Panel:
    """A full-width table of its queries' rows merged on their common fields: columns ordered by
    ``index``, renamed by ``renames``, without the time column."""
    panel = table.Panel().title(title).description(description).datasource(datasource).span(24).height(height)
    panel = panel.targets(list(targets))
    if labels_to_fields:  # labels (Loki) become columns first
        panel = panel.with_transformation(DataTransformerConfig(id_val="labelsToFields", options={"mode": "columns"}))
    organize = {"excludeByName": {"Time": True}, "indexByName": dict(index), "renameByName": dict(renames)}
    return panel.with_transformation(DataTransformerConfig(id_val="merge", options={})).with_transformation(
        DataTransformerConfig(id_val="organize", options=organize)
    )


def issue_table(title: str, columns: Sequence[tuple[str, Query]], description: str = "") -> table.Panel:
    """One row per issue (service, group, type): each instant query is a column (named by its ref ID),
    merged on the labels they all have; a query's extra label (route, release) is a column too."""
    values = {f"Value #{chr(ord('A') + i)}": name for i, (name, _) in enumerate(columns)}
    renames = {**ISSUE_LABELS, **values}
    # Columns in this order (by title), any other after them.
    titles = ["service", "error group", "type", "route (most errors)", "routes", "count", "first seen"]
    titles += ["first release", "last seen"]
    by_title = {title: i for i, title in enumerate(titles)}
    order = {name: by_title.get(title, len(titles)) for name, title in renames.items()}
    targets = [prom(query, chr(ord("A") + i)).format("table") for i, (_, query) in enumerate(columns)]
    panel = merged_table(title, description, PROMETHEUS, 10, targets, order, renames).override_by_name(
        "error group", [DynamicConfigValue(id_val="links", value=group_links("job"))]
    )
    for name, _ in columns:
        if name.endswith("seen"):
            panel = panel.override_by_name(name, [DynamicConfigValue(id_val="unit", value="dateTimeAsIso")])
    return panel


def sample_table(title: str, logql: str, description: str = "") -> table.Panel:
    """One row per service and error group with a sample ERROR line's type, message and trace ID (from the
    logs' structured metadata): ``topk`` keeps one (message, trace) pair of each group, the one with the
    most lines, any of them on a tie (usually every pair has one line): a sample, not the latest."""
    inner = (
        "sum by (service_name, error_group_id, exception_type, exception_message, trace_id) "
        f"(count_over_time({logql} [$__range]))"
    )
    target = (
        loki.Dataquery()
        .ref_id("A")
        .datasource(LOKI)
        .expr(f"topk by (service_name, error_group_id) (1, {inner})")
        .query_type("instant")
        .instant(True)
    )
    trace_link = {
        "title": "Open this trace",
        "url": explore_url(explore_pane(TEMPO, {"queryType": "traceql", "query": "${__data.fields.trace_id}"})),
    }
    columns = ["service_name", "error_group_id", "exception_type", "exception_message", "trace_id", "Value"]
    renames = {
        "service_name": "service",
        "error_group_id": "error group",
        "exception_type": "type",
        "exception_message": "sample message",
        "trace_id": "sample trace",
        "Value": "lines like it",
    }
    index = {name: i for i, name in enumerate(columns)}
    return (
        merged_table(title, description, LOKI, 8, [target], index, renames, labels_to_fields=True)
        .override_by_name("sample trace", [DynamicConfigValue(id_val="links", value=[trace_link])])
        .override_by_name(
            "error group", [DynamicConfigValue(id_val="links", value=group_links("service_name", drill_down=False))]
        )
    )


def trace_table(title: str, traceql: str, description: str = "") -> table.Panel:
    target = (
        tempo.TempoQuery()
        .ref_id("A")
        .datasource(TEMPO)
        .query_type("traceql")
        .query(traceql)
        .table_type(SearchTableType.TRACES)
        .limit(20)
    )
    return table.Panel().title(title).description(description).datasource(TEMPO).span(24).height(8).targets([target])


def log_panel(title: str, logql: str, description: str = "") -> logs.Panel:
    target = loki.Dataquery().ref_id("A").datasource(LOKI).expr(logql).query_type("range")
    return (
        logs.Panel()
        .title(title)
        .description(description)
        .datasource(LOKI)
        .span(24)
        .height(10)
        .show_time(True)
        .wrap_log_message(True)
        .enable_log_details(True)
        .sort_order(LogsSortOrder.DESCENDING)
        .targets([target])
    )


def log_top_list(title: str, logql: str, legend: str, description: str = "") -> bargauge.Panel:
    target = (
        loki.Dataquery()
        .ref_id("A")
        .datasource(LOKI)
        .expr(logql)
        .legend_format(legend)
        .query_type("instant")
        .instant(True)
    )
    return (
        bargauge.Panel()
        .title(title)
        .description(description)
        .datasource(LOKI)
        .unit("short")
        .span(12)
        .height(8)
        .orientation(VizOrientation.HORIZONTAL)
        .display_mode(BarGaugeDisplayMode.BASIC)
        .targets([target])
    )


def service_map() -> nodegraph.Panel:
    # Service-graph metrics name both ends of a call: show every edge touching a chosen service.
    target = (
        tempo.TempoQuery()
        .ref_id("A")
        .datasource(TEMPO)
        .query_type("serviceMap")
        .service_map_query(['{client=~"$service"}', '{server=~"$service"}'])
    )
    return (
        nodegraph.Panel()
        .title("Service map")
        .description("Calls between services, from the collector's service-graph connector.")
        .datasource(TEMPO)
        .span(24)
        .height(10)
        .targets([target])
    )


# ---- template variables ----------------------------------------------------------


def prom_variable(name: str, label: str, query: str) -> dashboard.QueryVariable:
    # `.+` rather than `.*` for "All": LogQL refuses selectors that can match the empty string.
    return (
        dashboard.QueryVariable(name)
        .label(label)
        .datasource(PROMETHEUS)
        .query(query)
        .refresh(VariableRefresh.ON_TIME_RANGE_CHANGED)
        .sort(VariableSort.ALPHABETICAL_ASC)
        .multi(True)
        .include_all(True)
        .all_value(".+")
    )


def environment_variable() -> dashboard.QueryVariable:
    return prom_variable("environment", "Environment", "label_values(target_info, deployment_environment_name)")


def error_group_variable() -> dashboard.QueryVariable:
    return prom_variable("error_group", "Error group", f"label_values({ERRORS}{{{SERVICE}}}, error_group_id)")


def service_variable() -> dashboard.QueryVariable:
    return prom_variable(
        "service", "Service", 'label_values(target_info{deployment_environment_name=~"$environment"}, job)'
    )


def instance_variable() -> dashboard.QueryVariable:
    return prom_variable(
        "instance",
        "Instance",
        'label_values(target_info{deployment_environment_name=~"$environment", job=~"$service"}, instance)',
    )


def new_dashboard(uid: str, title: str, description: str) -> dashboard.Dashboard:
    links = (
        dashboard.DashboardLink("otel-distro dashboards")
        .type(DashboardLinkType.DASHBOARDS)
        .tags([TAG])
        .as_dropdown(True)
        .include_vars(True)
        .keep_time(True)
    )
    return (
        dashboard.Dashboard(title)
        .uid(uid)
        .description(description)
        .tags([TAG])
        .time("now-1h", "now")
        .refresh("30s")
        .timezone("browser")
        .tooltip(DashboardCursorSync.CROSSHAIR)
        .link(links)
        .readonly()
    )


# ---- the dashboards --------------------------------------------------------------


def service_overview() -> dashboard.Dashboard:
    count = HTTP + "_count"
    requests = f"sum by (job, http_route) {env_rate(count)}"
    server_errors = f"sum by (job, http_route) {env_rate(count, SERVER_ERROR)}"
    by_error_type = (
        f"sum by (job, http_route, error_type) {env_rate(count, FAILED)}"
        f" / on (job, http_route) group_left () {requests}"
    )
    return (
        new_dashboard(
            "otel-distro-service-overview",
            "Service overview",
            "RED per route of the chosen services: rate, errors, latency with exemplars linking to traces.",
        )
        .with_variable(environment_variable())
        .with_variable(service_variable())
        .with_row(dashboard.Row("Totals"))
        .with_panel(single_stat("Requests", "reqps", Query(f"sum {env_rate(count)}")))
        .with_panel(
            single_stat(
                "5xx ratio",
                "percentunit",
                Query(f"sum {env_rate(count, SERVER_ERROR)} / sum {env_rate(count)}"),
            )
        )
        .with_panel(
            single_stat(
                "p95 latency",
                "s",
                Query(f"histogram_quantile(0.95, sum by (le) {env_rate(HTTP + '_bucket')})"),
            )
        )
        .with_row(dashboard.Row("Per route"))
        .with_panel(graph("Request rate", "reqps", [Query(requests, "{{job}} {{http_route}}")]))
        .with_panel(
            graph(
                "Error ratio by error type",
                "percentunit",
                [Query(by_error_type, "{{job}} {{http_route}} {{error_type}}")],
                "Share of requests that failed, split by error.type (exception class or status code).",
            )
        )
        .with_panel(
            graph(
                "5xx ratio",
                "percentunit",
                [Query(f"{server_errors} / {requests}", "{{job}} {{http_route}}")],
                "The HighHttpErrorRatio alert fires above 5 % over 5 minutes.",
            )
        )
        .with_panel(
            graph(
                "Latency p50 / p95 / p99",
                "s",
                [
                    Query(route_quantile(0.5), "p50 {{job}} {{http_route}}"),
                    Query(route_quantile(0.95), "p95 {{job}} {{http_route}}", exemplars=True),
                    Query(route_quantile(0.99), "p99 {{job}} {{http_route}}"),
                ],
                "Exemplar dots open the trace of a request behind the point.",
            )
        )
        .with_row(dashboard.Row("Traces"))
        .with_panel(service_map())
        .with_panel(
            trace_table(
                "Slow requests",
                f"{{ {TRACES} && kind = server && duration > 500ms }}",
                "Server spans slower than 500 ms; open one for its logs and metrics.",
            )
        )
    )


def issue_columns(range_: str, new: bool = False) -> list[tuple[str, Query]]:
    """The issue list's columns over ``range_``; ``new`` keeps the groups unseen in the 24 hours before."""
    unless = f" unless on (job, error_group_id) {KNOWN_BEFORE}" if new else ""
    return [
        ("count", Query(f"{errors_in(range_)} > 0{unless}", instant=True)),
        ("first seen", Query(f"1000 * {first_release(range_)}{unless}", instant=True)),
        ("last seen", Query(f"1000 * {last_seen(range_)}{unless}", instant=True)),
        ("routes", Query(f"{top_route(range_)}{unless}", instant=True)),
    ]


def errors() -> dashboard.Dashboard:
    count = HTTP + "_count"
    failures = env_rate(count, FAILED)
    return (
        new_dashboard(
            "otel-distro-errors",
            "Errors",
            "What fails: one row per error group (same exception at the same place in your code), new groups, "
            "rate by release; exception types from metrics and logs, error logs, failing traces.",
        )
        .with_variable(environment_variable())
        .with_variable(service_variable())
        .with_variable(error_group_variable())
        .with_panel(
            issue_table(
                "Issues (error groups)",
                issue_columns("$__range"),
                "One row per error group and service (app.errors; group = exception type + innermost frame of "
                "your code, see docs/errors.md): its type, the route with the most errors and how many routes had "
                "it, the count, first and last seen in the dashboard's range (to the minute) and the release "
                "(service.version) it was first seen in. Click the error group for its log lines (message, stack, "
                "breadcrumbs, each line's Trace link), its traces, or its rate by release.",
            )
        )
        .with_panel(
            issue_table(
                "New in the last hour",
                issue_columns("1h", new=True),
                "Groups that occurred in the last hour and not in the 24 hours before it.",
            )
        )
        .with_panel(
            sample_table(
                "A sample of each group (logs)",
                f'{LOGS} | error_group_id =~ "$error_group"',
                "One ERROR line of each chosen group (Error group variable) in the dashboard's range: its message "
                "and trace ID (the pair with the most lines; any on a tie). Click the trace ID for the trace, the "
                "group for all its lines.",
            )
        )
        .with_panel(
            graph(
                "Error rate by group and release",
                "short",
                [
                    Query(
                        f"sum by (job, error_group_id, error_type, service_version) "
                        f'(rate({ERRORS}{{{SERVICE}, error_group_id=~"$error_group"}}[$__rate_interval]) '
                        f"{ENV_JOIN} {RELEASE_JOIN})",
                        "{{job}} {{error_type}} {{error_group_id}} @ {{service_version}}",
                        exemplars=True,
                    )
                ],
                "Errors per second of each chosen group (Error group variable), split by service.version: "
                "a group that starts or jumps with a release shows here. Exemplar dots open the trace of an "
                "error behind the point.",
                width=24,
            )
        )
        .with_panel(
            log_panel(
                "Error logs of the chosen groups",
                f'{LOGS} | error_group_id =~ "$error_group"',
                "The ERROR lines of the groups chosen above, with their breadcrumbs, request and trace IDs; "
                "the Trace link of a line opens its trace.",
            )
        )
        .with_panel(
            top_list(
                "Top error types (requests)",
                Query(
                    f"topk(10, sum by (job, error_type) (increase({count}{{{SERVICE}{FAILED}}}[$__range]) "
                    f"{env_join_over('$__range')}))",
                    "{{job}} {{error_type}}",
                    instant=True,
                ),
                "Failed requests over the dashboard's time range, by error.type.",
            )
        )
        .with_panel(
            log_top_list(
                "Top exception types (logs)",
                "topk(10, sum by (service_name, exception_type) "
                f'(count_over_time({LOGS} | exception_type != "" [$__range])))',
                "{{service_name}} {{exception_type}}",
                "Log records carrying an exception, by exception.type.",
            )
        )
        .with_panel(
            graph(
                "Failed requests by error type",
                "reqps",
                [Query(f"sum by (job, error_type) {failures}", "{{job}} {{error_type}}")],
                width=24,
            )
        )
        .with_panel(
            log_panel(
                "Recent error logs",
                f"{LOGS} | severity_number >= 17",
                "Log records at ERROR or above. The Trace link of a line opens its trace.",
            )
        )
        .with_panel(
            trace_table("Failing traces", f"{{ {TRACES} && status = error }}", "Traces with a span in error status.")
        )
    )


def runtime() -> dashboard.Dashboard:
    per_instance = "{{job}} {{instance}}"
    return (
        new_dashboard(
            "otel-distro-runtime",
            "Runtime",
            "CPU, memory, garbage collection and threads of each service instance (process.* and cpython.* metrics).",
        )
        .with_variable(environment_variable())
        .with_variable(service_variable())
        .with_variable(instance_variable())
        .with_panel(
            graph(
                "CPU",
                "short",
                [
                    Query(
                        f"sum by (job, instance) {env_rate('process_cpu_time_seconds_total', selector=RUNTIME)}",
                        per_instance,
                    )
                ],
                "CPU seconds per second (1 = one core busy).",
            )
        )
        .with_panel(
            graph(
                "Memory (RSS)",
                "bytes",
                [Query(f"sum by (job, instance) {env_gauge('process_memory_usage_bytes')}", per_instance)],
            )
        )
        .with_panel(
            graph(
                "GC collections",
                "ops",
                [
                    Query(
                        "sum by (job, instance, cpython_gc_generation) "
                        f"{env_rate('cpython_gc_collections_total', selector=RUNTIME)}",
                        "{{job}} {{instance}} gen {{cpython_gc_generation}}",
                    )
                ],
            )
        )
        .with_panel(
            graph(
                "GC collected objects",
                "ops",
                [
                    Query(
                        f"sum by (job, instance) {env_rate('cpython_gc_collected_objects_total', selector=RUNTIME)}",
                        per_instance,
                    )
                ],
            )
        )
        .with_panel(
            graph(
                "Threads",
                "short",
                [Query(f"sum by (job, instance) {env_gauge('process_thread_count')}", per_instance)],
            )
        )
        .with_panel(
            graph(
                "Open file descriptors",
                "short",
                [Query(f"sum by (job, instance) {env_gauge('process_open_file_descriptor_count')}", per_instance)],
            )
        )
    )


def collector_rate(metric: str, by: str) -> str:
    return f"sum by ({by}) (rate({metric}{{{COLLECTOR}}}[$__rate_interval]))"


def collector_signals(metric: Callable[[str], str], by: str, prefix: str = "") -> list[Query]:
    """One query per signal; ``metric("spans")`` names the counter, e.g. otelcol_receiver_accepted_spans.

    Collector 0.159 exposes its counters without the `_total` suffix.
    """
    return [Query(collector_rate(metric(signal), by), f"{prefix}{label} {{{{{by}}}}}") for signal, label in SIGNALS]


def exporter_failures(kind: str, prefix: str = "") -> list[Query]:
    """Failure rates per exporter, 0 while nothing failed.

    The collector creates a failure counter only at the first failure; the
    exporter's `sent` counter supplies the zero line until then.
    """
    return [
        Query(
            f"{collector_rate(f'otelcol_exporter_{kind}_{signal}', 'exporter')}"
            f" or 0 * {collector_rate(f'otelcol_exporter_sent_{signal}', 'exporter')}",
            f"{prefix}{label} {{{{exporter}}}}",
        )
        for signal, label in SIGNALS
    ]


def pipeline() -> dashboard.Dashboard:
    collector = prom_variable("collector", "Collector", 'label_values(up{job="otel-collector"}, instance)')
    queue_fill = (
        f"max by (exporter) (otelcol_exporter_queue_size{{{COLLECTOR}}})"
        f" / max by (exporter) (otelcol_exporter_queue_capacity{{{COLLECTOR}}})"
    )
    return (
        new_dashboard(
            "otel-distro-pipeline",
            "Telemetry pipeline",
            "The collector's own metrics: what it accepted, refused, sent and failed to send, and its queues.",
        )
        .with_variable(collector)
        .with_row(dashboard.Row("Receivers"))
        .with_panel(
            graph(
                "Accepted",
                "short",
                collector_signals(lambda s: f"otelcol_receiver_accepted_{s}", "receiver"),
                "Items per second the receivers accepted from services.",
            )
        )
        .with_panel(
            graph(
                "Refused",
                "short",
                collector_signals(lambda s: f"otelcol_receiver_refused_{s}", "receiver"),
                "Items per second refused (memory_limiter pushing back): senders must retry.",
            )
        )
        .with_row(dashboard.Row("Exporters"))
        .with_panel(
            graph(
                "Sent",
                "short",
                collector_signals(lambda s: f"otelcol_exporter_sent_{s}", "exporter"),
                "Items per second delivered to Prometheus and to the logs and traces backends.",
            )
        )
        .with_panel(
            graph(
                "Failed to send / to enqueue",
                "short",
                exporter_failures("send_failed") + exporter_failures("enqueue_failed", "dropped "),
                "Send failures are retried from the queue; enqueue failures (queue full) are data lost.",
            )
        )
        .with_panel(
            graph(
                "Queue fill",
                "percentunit",
                [Query(queue_fill, "{{exporter}}")],
                "Sending queue size / capacity; the CollectorQueueFilling alert fires above 80 %.",
            )
        )
        .with_panel(
            graph(
                "Queue size",
                "short",
                [Query(f"max by (exporter) (otelcol_exporter_queue_size{{{COLLECTOR}}})", "{{exporter}}")],
                "Batches waiting in each exporter's sending queue (on disk for logs and traces).",
            )
        )
        .with_row(dashboard.Row("Process and backends"))
        .with_panel(
            graph(
                "Collector memory",
                "bytes",
                [Query(f"max by (instance) (otelcol_process_memory_rss{{{COLLECTOR}}})", "RSS {{instance}}")],
                "Compare with memory_limiter's limit (OTELCOL_MEMORY_LIMIT_MIB).",
                width=8,
            )
        )
        .with_panel(
            graph(
                "Logs backend: records received",
                "short",
                [Query(BACKEND_LOG_RECORDS, "records")],
                "Loki's distributor or VictoriaLogs' ingestion counter, whichever backend runs.",
                width=8,
            )
        )
        .with_panel(
            graph(
                "Traces backend: spans received",
                "short",
                [Query(BACKEND_SPANS, "spans")],
                "Tempo's distributor or Jaeger's OTLP receiver, whichever backend runs.",
                width=8,
            )
        )
    )


DASHBOARDS: dict[str, Callable[[], dashboard.Dashboard]] = {
    "service-overview.json": service_overview,
    "errors.json": errors,
    "runtime.json": runtime,
    "pipeline.json": pipeline,
}


def render(build: Callable[[], dashboard.Dashboard]) -> str:
    """The dashboard as Grafana's JSON model, stable byte for byte across runs."""
    return json.dumps(build().build(), cls=JSONEncoder, indent=2, sort_keys=True) + "\n"


def stale_files(out_dir: Path = OUT_DIR) -> list[str]:
    return [name for name, build in DASHBOARDS.items() if _read(out_dir / name) != render(build)]


def _read(path: Path) -> str | None:
    return path.read_text() if path.exists() else None


def write_all(out_dir: Path = OUT_DIR) -> list[str]:
    out_dir.mkdir(parents=True, exist_ok=True)
    changed = stale_files(out_dir)
    for name in changed:
        (out_dir / name).write_text(render(DASHBOARDS[name]))
    return changed


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--check", action="store_true", help="only report out-of-date files (exit 1)")
    parser.add_argument("--out-dir", type=Path, default=OUT_DIR)
    args = parser.parse_args(argv)
    if args.check:
        stale = stale_files(args.out_dir)
        for name in stale:
            print(f"out of date: {args.out_dir / name} (run {Path(__file__).name})", file=sys.stderr)
        return 1 if stale else 0
    for name in write_all(args.out_dir):
        print(f"wrote {args.out_dir / name}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
