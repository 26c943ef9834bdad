"""Prometheus alert rules and every PromQL query of the dashboards, checked by the real promtool."""

from __future__ import annotations

import fnmatch
import subprocess
from pathlib import Path
from typing import Any

import yaml

from tests.harness import require_binary
from tests.stack import queries
from tests.stack.queries import REPO

PROMETHEUS_DIR = REPO / "stack" / "prometheus"
RULE_FILES = sorted(PROMETHEUS_DIR.glob("rules*.yml"))
TEST_FILES = sorted(PROMETHEUS_DIR.glob("test.rules*.yml"))
ALERTS = (
    "HighHttpErrorRatio",
    "HighHttpLatencyP95",
    "CollectorRefusingData",
    "CollectorExportFailing",
    "CollectorEnqueueFailing",
    "CollectorQueueFilling",
    "TargetDown",
    "Watchdog",
    "NewErrorGroup",
    "ErrorGroupRateJumpAfterDeploy",
)


def promtool(*args: str | Path, cwd: Path = PROMETHEUS_DIR) -> str:
    result = subprocess.run(
        [str(require_binary("promtool")), *map(str, args)],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=cwd,
        check=False,
    )
    assert result.returncode == 0, f"promtool {' '.join(map(str, args))}:\n{result.stdout}\n{result.stderr}"
    return result.stdout


def load(path: Path) -> Any:
    return yaml.safe_load(path.read_text())


def alert_rules() -> dict[str, dict[str, Any]]:
    return {
        rule["alert"]: rule
        for path in RULE_FILES
        for group in load(path)["groups"]
        for rule in group["rules"]
        if "alert" in rule
    }


class TestAlertRules:
    def test_promtool_check_rules(self) -> None:
        assert RULE_FILES, "no rules*.yml in stack/prometheus"
        promtool("check", "rules", *RULE_FILES)

    def test_promtool_test_rules(self) -> None:
        assert TEST_FILES, "no test.rules*.yml in stack/prometheus"
        promtool("test", "rules", *TEST_FILES)

    def test_the_issue_alerts_exist_with_a_severity(self) -> None:
        rules = alert_rules()
        assert set(ALERTS) <= set(rules)
        for name, rule in rules.items():
            assert rule["labels"]["severity"] in {"critical", "warning", "none"}, name
            assert rule["annotations"]["summary"], name

    def test_every_alert_has_a_firing_unit_test(self) -> None:
        tested = {
            case["alertname"]
            for path in TEST_FILES
            for test in load(path)["tests"]
            for case in test.get("alert_rule_test", [])
            if case.get("exp_alerts")
        }
        assert set(alert_rules()) <= tested, f"untested alerts: {set(alert_rules()) - tested}"

    def test_thresholds_of_the_issue(self) -> None:
        rules = alert_rules()
        assert "> 0.05" in rules["HighHttpErrorRatio"]["expr"] and "[5m]" in rules["HighHttpErrorRatio"]["expr"]
        assert "histogram_quantile(0.95" in rules["HighHttpLatencyP95"]["expr"]
        assert "> 2" in rules["HighHttpLatencyP95"]["expr"] and rules["HighHttpLatencyP95"]["for"] == "10m"
        assert "> 0.8" in rules["CollectorQueueFilling"]["expr"]
        assert rules["TargetDown"]["expr"] == "up == 0"


class TestPrometheusConfig:
    def test_rule_glob_loads_rules_but_not_their_tests(self) -> None:
        globs = load(PROMETHEUS_DIR / "prometheus.yml")["rule_files"]
        loaded = {path.name for path in PROMETHEUS_DIR.iterdir() if any(fnmatch.fnmatch(path.name, g) for g in globs)}
        assert {path.name for path in RULE_FILES} <= loaded
        assert not loaded & {path.name for path in TEST_FILES}

    def test_alerts_go_to_alertmanager(self) -> None:
        alerting = load(PROMETHEUS_DIR / "prometheus.yml")["alerting"]
        targets = [t for am in alerting["alertmanagers"] for sc in am["static_configs"] for t in sc["targets"]]
        assert targets == ["alertmanager:9093"]


class TestDashboardQueries:
    """Each PromQL query Grafana would send, with its variables filled, must parse."""

    def test_promtool_accepts_every_query(self, tmp_path: Path) -> None:
        exprs = [queries.substitute(str(q.expr)) for q in queries.dashboard_queries() if q.query_type == "promql"]
        exprs += [f"count({queries.substitute(queries.label_values_selector(v))})" for v in queries.variable_queries()]
        exprs += queries.traces_to_metrics_queries()
        assert len(exprs) > 20
        rules = [{"record": f"dashboard:query_{i}", "expr": expr} for i, expr in enumerate(exprs)]
        path = tmp_path / "dashboard-queries.yml"
        path.write_text(yaml.safe_dump({"groups": [{"name": "dashboards", "rules": rules}]}))
        promtool("check", "rules", path, cwd=tmp_path)

    def test_substitution_leaves_no_variable(self) -> None:
        for query in queries.dashboard_queries():
            for expr in [query.expr] if isinstance(query.expr, str) else query.expr:
                assert "$" not in queries.substitute(expr), f"{query.dashboard} / {query.panel}: {expr}"
