"""The queries inside the generated Grafana dashboards and datasources, as data for tests.

Grafana fills template variables and its own macros before a query reaches a
backend; ``substitute`` does the same with fixed values so that promtool or a
real Prometheus can run the query as Grafana would, and Grafana's own LogQL and
TraceQL grammars can parse it (tests/stack/test_query_grammars.py).
"""

from __future__ import annotations

import json
import re
import urllib.parse
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

REPO = Path(__file__).resolve().parents[2]
GRAFANA = REPO / "stack" / "grafana"
DASHBOARD_DIR = GRAFANA / "dashboards"
DATASOURCES_FILE = GRAFANA / "provisioning" / "datasources" / "datasources.yml"

# "All" of every template variable (the dashboards' allValue) and Grafana's range macros.
ALL = ".+"
MACROS = {"__rate_interval": "1m", "__range": "1h", "__auto": "1m", "__interval": "1m"}


@dataclass(frozen=True)
class PanelQuery:
    """One target of one panel."""

    dashboard: str  # file name
    panel: str
    datasource_uid: str
    query_type: str  # "promql", "logql", "traceql" or "serviceMap"
    expr: str | list[str]
    instant: bool = False


def load_dashboards() -> dict[str, dict[str, Any]]:
    return {path.name: json.loads(path.read_text()) for path in sorted(DASHBOARD_DIR.glob("*.json"))}


def load_datasources() -> list[dict[str, Any]]:
    document = yaml.safe_load(DATASOURCES_FILE.read_text())
    datasources: list[dict[str, Any]] = document["datasources"]
    return datasources


def panels(dashboard: Mapping[str, Any]) -> Iterator[dict[str, Any]]:
    """Every panel, including those nested in collapsed rows."""
    for panel in dashboard.get("panels", []):
        yield panel
        yield from panel.get("panels", [])


def _query_of(dashboard: str, panel: Mapping[str, Any], target: Mapping[str, Any]) -> PanelQuery:
    uid = (target.get("datasource") or panel.get("datasource") or {}).get("uid", "")
    title = str(panel.get("title", ""))
    if uid == "prometheus":
        return PanelQuery(dashboard, title, uid, "promql", target["expr"], bool(target.get("instant")))
    if uid == "loki":
        return PanelQuery(dashboard, title, uid, "logql", target["expr"], target.get("queryType") == "instant")
    if uid == "tempo" and target.get("queryType") == "serviceMap":
        return PanelQuery(dashboard, title, uid, "serviceMap", list(target["serviceMapQuery"]))
    if uid == "tempo":
        return PanelQuery(dashboard, title, uid, "traceql", target["query"])
    raise ValueError(f"{dashboard} / {title}: target on unknown datasource {uid!r}")


def dashboard_queries() -> list[PanelQuery]:
    found: list[PanelQuery] = []
    for name, dashboard in load_dashboards().items():
        for panel in panels(dashboard):
            found.extend(_query_of(name, panel, target) for target in panel.get("targets", []))
    return found


@dataclass(frozen=True)
class LinkQuery:
    """The query of a data link that opens Explore, with the row fields it reads (``${__data.fields.X}``)."""

    dashboard: str
    panel: str
    column: str  # the field (column) the link is on
    title: str
    datasource_uid: str
    query_type: str  # "logql" or "traceql"
    expr: str


def data_links(dashboard: Mapping[str, Any]) -> Iterator[tuple[str, str, dict[str, Any]]]:
    """(panel title, column, link) of every data link in a field override or the field defaults."""
    for panel in panels(dashboard):
        config = panel.get("fieldConfig", {})
        for link in config.get("defaults", {}).get("links", []):
            yield str(panel.get("title", "")), "", link
        for override in config.get("overrides", []):
            for prop in override.get("properties", []):
                if prop.get("id") == "links":
                    for link in prop["value"]:
                        yield str(panel.get("title", "")), str(override["matcher"]["options"]), link


def explore_panes(url: str) -> dict[str, Any]:
    """The panes of an Explore link (``/explore?...&panes=<JSON>``); the link's ``${...}`` stay literal."""
    parsed = urllib.parse.urlsplit(url)
    assert parsed.path == "/explore", url
    (panes,) = urllib.parse.parse_qs(parsed.query)["panes"]
    result: dict[str, Any] = json.loads(panes)
    return result


def link_queries() -> list[LinkQuery]:
    """The LogQL and TraceQL of every data link opening Explore."""
    found = []
    for name, dashboard in load_dashboards().items():
        for panel, column, link in data_links(dashboard):
            if not link["url"].startswith("/explore"):
                continue
            for pane in explore_panes(link["url"]).values():
                for query in pane["queries"]:
                    uid = query["datasource"]["uid"]
                    dialect, text = ("logql", query["expr"]) if uid == "loki" else ("traceql", query["query"])
                    found.append(LinkQuery(name, panel, column, link["title"], uid, dialect, text))
    return found


def fill_row(expr: str, row: Mapping[str, str]) -> str:
    """Fill a data link's ``${__data.fields.X}`` with the row's values, as Grafana does on click."""

    def replace(match: re.Match[str]) -> str:
        return row[match.group(1)]

    return re.sub(r"\$\{__data\.fields\.(\w+)\}", replace, expr)


def variable_names(dashboard: Mapping[str, Any]) -> list[str]:
    return [variable["name"] for variable in dashboard.get("templating", {}).get("list", [])]


def variable_queries() -> list[str]:
    """The PromQL label_values(...) of every query variable."""
    return [
        variable["query"]
        for dashboard in load_dashboards().values()
        for variable in dashboard.get("templating", {}).get("list", [])
        if variable.get("type") == "query"
    ]


def label_values_selector(query: str) -> str:
    """The series selector inside ``label_values(<selector>, <label>)``."""
    match = re.fullmatch(r"label_values\((.*),\s*\w+\)", query.strip())
    if not match:
        raise ValueError(f"not a label_values() query: {query}")
    return match.group(1)


def substitute(expr: str, values: Mapping[str, str] | None = None) -> str:
    """Fill Grafana macros and template variables; variables missing from ``values`` become ALL."""
    values = values or {}

    def replace(match: re.Match[str]) -> str:
        name = match.group(1) or match.group(2)
        if name in MACROS:
            return MACROS[name]
        return values.get(name, ALL)

    return re.sub(r"\$\{(\w+)\}|\$(\w+)", replace, expr)


def traces_to_metrics_queries(service: str = "checkout") -> list[str]:
    """The PromQL of the Tempo datasource's trace -> metrics links, with `$__tags` filled for ``service``."""
    tempo = next(ds for ds in load_datasources() if ds["uid"] == "tempo")
    # Provisioning writes a literal `$` as `$$`.
    return [
        q["query"].replace("$$__tags", f'service_name="{service}"')
        for q in tempo["jsonData"]["tracesToMetrics"]["queries"]
    ]
