"""Every LogQL and TraceQL query we ship parses with Grafana's own grammars.

Loki and Tempo are AGPL and never run here (docker-compose.yml runs their
images), so the LogQL of the Loki panels and the TraceQL of the Tempo panels
cannot be executed natively. Instead each one, filled in as Grafana fills it,
goes through the parsers of Grafana's query editors (``@grafana/lezer-logql``,
``@grafana/lezer-traceql``; tools/grammars, installed by ``scripts/backends
install``), and any error node fails. PromQL is not here: it runs against the
real Prometheus (tests/e2e/test_dashboards.py) and promtool (test_rules.py).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from dataclasses import dataclass
from typing import Any

import pytest

from tests.harness import backends_unavailable
from tests.stack import queries
from tests.stack.queries import REPO

CHECKER = REPO / "tools" / "grammars" / "check.cjs"
NODE_MODULES = REPO / ".backends" / "grammars"
# Example values for Grafana's template variables (a multi-value variable is a regex).
VALUES = {"service": "orders|inventory", "environment": "production", "instance": ".+", "collector": ".+"}
TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"
# A table row of the Errors dashboard, for its data links (``${__data.fields.X}``).
ROW = {"job": "orders", "service_name": "orders", "error_group_id": "5d4d19a70db72e37", "trace_id": TRACE_ID}
# A link whose query is the row's trace ID opens that trace (Tempo's trace-ID lookup, not TraceQL).
TRACE_ID_LOOKUP = "${__data.fields.trace_id}"


@dataclass(frozen=True)
class Shipped:
    """One query as Grafana would send it, with where it comes from."""

    where: str
    dialect: str  # "logql" or "traceql"
    query: str


def parse_errors(items: list[Shipped]) -> dict[str, list[dict[str, Any]]]:
    """{where: error nodes} for each query, from Grafana's parsers."""
    node = shutil.which("node")
    if node is None or not (NODE_MODULES / "@grafana" / "lezer-logql").is_dir():
        backends_unavailable(f"node and the query grammars in {NODE_MODULES.relative_to(REPO)} are needed")
    payload = [{"id": item.where, "dialect": item.dialect, "query": item.query} for item in items]
    result = subprocess.run(
        [str(node), str(CHECKER)],
        input=json.dumps(payload),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        env={**os.environ, "NODE_PATH": str(NODE_MODULES)},
    )
    assert result.returncode == 0, f"{CHECKER.name} failed:\n{result.stderr}"
    answers = json.loads(result.stdout)
    assert [a["id"] for a in answers] == [item.where for item in items]
    return {a["id"]: a["errors"] for a in answers}


def shipped_queries() -> list[Shipped]:
    found = [
        Shipped(f"{q.dashboard} / {q.panel}", q.query_type, queries.substitute(str(q.expr), VALUES))
        for q in queries.dashboard_queries()
        if q.query_type in ("logql", "traceql")
    ]
    tempo = next(ds for ds in queries.load_datasources() if ds["uid"] == "tempo")
    # Provisioning writes `$` as `$$`; Grafana fills the link's macros from the span.
    template = str(tempo["jsonData"]["tracesToLogsV2"]["query"]).replace("$$", "$")
    link = template.replace("${__tags}", 'service_name="orders"').replace("${__trace.traceId}", TRACE_ID)
    found.append(Shipped("datasources.yml / Tempo tracesToLogsV2", "logql", link))
    found.extend(
        Shipped(f"{q.dashboard} / {q.panel} / {q.column} link {q.title!r}", q.query_type, queries.fill_row(q.expr, ROW))
        for q in queries.link_queries()
        if q.expr != TRACE_ID_LOOKUP
    )
    return found


SHIPPED = shipped_queries()


def test_the_dashboards_ship_logql_and_traceql() -> None:
    # Guards the collection itself: an empty list would make the next test pass vacuously.
    dialects = [item.dialect for item in SHIPPED]
    assert dialects.count("logql") >= 3
    assert dialects.count("traceql") >= 2


def test_the_issue_lists_link_to_their_groups_logs_and_traces() -> None:
    """Each row of the Errors dashboard's issue tables opens its group's log lines (Loki) and traces
    (Tempo, by the group ID on the span's exception event); each sample row opens its trace."""
    links = queries.link_queries()
    for panel in ("Issues (error groups)", "New in the last hour", "A sample of each group (logs)"):
        dialects = {q.query_type for q in links if q.panel == panel and q.column == "error group"}
        assert dialects == {"logql", "traceql"}, panel
    group = next(q for q in links if q.panel == "Issues (error groups)" and q.query_type == "logql")
    assert queries.fill_row(group.expr, ROW) == '{service_name="orders"} | error_group_id="5d4d19a70db72e37"'
    (sample,) = [q for q in links if q.column == "sample trace"]
    assert (sample.datasource_uid, sample.expr) == ("tempo", TRACE_ID_LOOKUP)


def test_every_shipped_query_parses() -> None:
    errors = parse_errors(SHIPPED)
    broken = {where: (item.query, errors[where]) for item in SHIPPED if errors[(where := item.where)]}
    assert not broken, "queries with parse errors:\n" + "\n".join(f"{w}: {q!r} {e}" for w, (q, e) in broken.items())


@pytest.mark.parametrize(
    ("dialect", "query"),
    [
        ("logql", '{service_name="orders"} | trace_id='),
        ("logql", 'sum by (service_name) (count_over_time({service_name="orders"} [5m])'),
        ("logql", "{service_name=orders}"),
        ("traceql", "{ span.http.route = }"),
        ("traceql", '{ resource.service.name = "orders" && }'),
        ("traceql", "{ status = error && duration > }"),
        ("klingon", "{}"),
    ],
)
def test_a_broken_query_is_reported(dialect: str, query: str) -> None:
    """The checker can fail: each of these is refused by Grafana's editors."""
    (errors,) = parse_errors([Shipped("broken", dialect, query)]).values()
    assert errors, f"{dialect} {query!r} parsed without an error"


def test_valid_queries_of_each_dialect_parse() -> None:
    good = [
        Shipped("logql filter", "logql", '{service_name="orders"} | request_id="abc" | severity_number >= 17'),
        Shipped("traceql duration", "traceql", "{ kind = server && duration > 500ms }"),
    ]
    assert parse_errors(good) == {"logql filter": [], "traceql duration": []}
