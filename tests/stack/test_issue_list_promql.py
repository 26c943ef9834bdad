"""The Errors dashboard's issue list, evaluated by promtool on series whose answers are known.

The e2e suite runs the same queries against a live Prometheus fed by real services
(tests/e2e/test_error_groups.py); here the series are written out minute by minute, so every
column's exact value can be worked out by hand: the count with each process's first errors,
the busiest route, first seen with the release it was first seen in, and last seen.

The story, one sample a minute, evaluated at minute 59 over the last hour:

* release 9f1c2ab (instance a, minutes 0-30): group g1 on /x from minute 10 (1, 1, then 2 from
  minute 12: two errors) and on /y from minute 20 (one error);
* release 1a7e0d3 (instance b, minutes 40-59; its name sorts first): g1 again on /x from
  minute 45 (one error), and a new group g2 on /z from minute 50 (1, then 2: two errors).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from tests.stack import queries

from .test_rules import promtool

SERVICE = 'job="svc"'
# Every series is written for minutes 0-59 (60 samples; `_` is no sample).
ENV = 'deployment_environment_name="prod"'
SERIES = [
    (f'target_info{{{SERVICE}, instance="a", service_version="9f1c2ab", {ENV}}}', "1x30 _x29"),
    (f'target_info{{{SERVICE}, instance="b", service_version="1a7e0d3", {ENV}}}', "_x40 1x19"),
    (
        f'app_errors_total{{{SERVICE}, instance="a", error_group_id="g1", error_type="app.Bug", http_route="/x"}}',
        "_x10 1 1 2x18 _x29",
    ),
    (
        f'app_errors_total{{{SERVICE}, instance="a", error_group_id="g1", error_type="app.Bug", http_route="/y"}}',
        "_x20 1x10 _x29",
    ),
    (
        f'app_errors_total{{{SERVICE}, instance="b", error_group_id="g1", error_type="app.Bug", http_route="/x"}}',
        "_x45 1x14",
    ),
    (
        f'app_errors_total{{{SERVICE}, instance="b", error_group_id="g2", error_type="app.Other", http_route="/z"}}',
        "_x50 1 2x8",
    ),
]
G1 = {"job": "svc", "error_group_id": "g1", "error_type": "app.Bug"}
G2 = {"job": "svc", "error_group_id": "g2", "error_type": "app.Other"}
MINUTE_MS = 60_000
# Column (ref ID order of the panel) -> expected rows: (labels, value).
EXPECTED: dict[str, list[tuple[dict[str, str], float]]] = {
    # a/x 2 + a/y 1 + b/x 1; b/z 2: the first value of each series included.
    "count": [(G1, 4), (G2, 2)],
    # The first rise of g1 is a's at minute 10; g2 appeared in b at minute 50.
    "first seen": [
        ({**G1, "service_version": "9f1c2ab"}, 10 * MINUTE_MS),
        ({**G2, "service_version": "1a7e0d3"}, 50 * MINUTE_MS),
    ],
    # A series counts as rising in the 2 minutes after it appears or goes up: b/x appeared at 45,
    # so g1 was last seen at 46; b/z went up at 51.
    "last seen": [(G1, 46 * MINUTE_MS), (G2, 51 * MINUTE_MS)],
    # g1: /x 3 errors, /y 1, so /x and 2 routes.
    "routes": [({**G1, "http_route": "/x"}, 2), ({**G2, "http_route": "/z"}, 1)],
}


def panel_exprs(panel: str) -> list[str]:
    found = [q for q in queries.dashboard_queries() if q.dashboard == "errors.json" and q.panel == panel]
    return [queries.substitute(str(q.expr), {"service": "svc", "environment": "prod"}) for q in found]


def expr_tests(panel: str) -> list[dict[str, Any]]:
    exprs = panel_exprs(panel)
    assert len(exprs) == len(EXPECTED), panel
    return [
        {
            "expr": expr,
            "eval_time": "59m",
            "exp_samples": [
                {"labels": "{" + ", ".join(f'{k}="{v}"' for k, v in labels.items()) + "}", "value": value}
                for labels, value in EXPECTED[column]
            ],
        }
        for expr, column in zip(exprs, EXPECTED, strict=True)
    ]


def test_issue_list_columns_on_known_series(tmp_path: Path) -> None:
    document = {
        "rule_files": [],
        "evaluation_interval": "1m",
        "tests": [
            {
                "interval": "1m",
                "input_series": [{"series": series, "values": values} for series, values in SERIES],
                "promql_expr_test": expr_tests("Issues (error groups)") + expr_tests("New in the last hour"),
            }
        ],
    }
    path = tmp_path / "issue-list.yml"
    path.write_text(yaml.safe_dump(document, sort_keys=False))
    promtool("test", "rules", path, cwd=tmp_path)


def test_a_group_seen_the_day_before_is_not_new(tmp_path: Path) -> None:
    """The same series a day earlier: the issue list keeps g1 and g2, the "new" table drops both."""
    day = 24 * 60
    shifted = [(series, f"{values} _x{day - 60} {values}") for series, values in SERIES]
    document = {
        "rule_files": [],
        "evaluation_interval": "1m",
        "tests": [
            {
                "interval": "1m",
                "input_series": [{"series": series, "values": values} for series, values in shifted],
                "promql_expr_test": [
                    {"expr": expr, "eval_time": f"{day + 59}m", "exp_samples": []}
                    for expr in panel_exprs("New in the last hour")
                ],
            }
        ],
    }
    path = tmp_path / "not-new.yml"
    path.write_text(yaml.safe_dump(document, sort_keys=False))
    promtool("test", "rules", path, cwd=tmp_path)
