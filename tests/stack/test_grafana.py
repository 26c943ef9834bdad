"""Grafana provisioning: generated dashboards up to date, fixed datasource UIDs, links between signals."""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from collections.abc import Iterator
from typing import Any

import pytest
import yaml

from tests.stack import queries
from tests.stack.queries import GRAFANA, REPO

PROVISIONED_UIDS = {"prometheus", "loki", "tempo", "alertmanager"}
BUILT_IN_UIDS = {"-- Grafana --", "grafana"}


def datasource(uid: str) -> dict[str, Any]:
    return next(ds for ds in queries.load_datasources() if ds["uid"] == uid)


def datasource_refs(node: Any) -> Iterator[dict[str, Any]]:
    """Every {"uid": ...} found under a "datasource" key, anywhere in a dashboard."""
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "datasource" and isinstance(value, dict):
                yield value
            yield from datasource_refs(value)
    elif isinstance(node, list):
        for item in node:
            yield from datasource_refs(item)


class TestGeneratedDashboards:
    def test_regeneration_changes_nothing(self) -> None:
        if importlib.util.find_spec("grafana_foundation_sdk") is None:
            message = "grafana-foundation-sdk is not installed (dev extra)"
            if os.environ.get("CI", "").lower() == "true":
                pytest.fail(message, pytrace=False)
            pytest.skip(message)
        result = subprocess.run(
            [sys.executable, str(GRAFANA / "dashboards.py"), "--check"],
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        assert result.returncode == 0, f"dashboards out of date, run stack/grafana/dashboards.py:\n{result.stderr}"

    def test_the_four_dashboards_exist_with_unique_uids(self) -> None:
        dashboards = queries.load_dashboards()
        assert set(dashboards) == {"service-overview.json", "errors.json", "runtime.json", "pipeline.json"}
        uids = [d["uid"] for d in dashboards.values()]
        assert len(set(uids)) == len(uids)

    def test_only_provisioned_datasource_uids(self) -> None:
        for name, dashboard in queries.load_dashboards().items():
            for ref in datasource_refs(dashboard):
                assert ref.get("uid") in PROVISIONED_UIDS | BUILT_IN_UIDS, f"{name}: {ref}"

    @pytest.mark.parametrize("name", ["service-overview.json", "errors.json", "runtime.json"])
    def test_service_and_environment_variables(self, name: str) -> None:
        assert {"service", "environment"} <= set(queries.variable_names(queries.load_dashboards()[name]))

    def test_latency_panel_shows_exemplars(self) -> None:
        overview = queries.load_dashboards()["service-overview.json"]
        latency = next(p for p in queries.panels(overview) if p.get("title", "").startswith("Latency"))
        exprs = " ".join(t["expr"] for t in latency["targets"])
        assert all(f"histogram_quantile({q}," in exprs for q in ("0.5", "0.95", "0.99"))
        assert any(t.get("exemplar") for t in latency["targets"])

    def test_dashboards_provider_reads_the_generated_folder(self) -> None:
        provider = yaml.safe_load((GRAFANA / "provisioning/dashboards/dashboards.yml").read_text())["providers"][0]
        assert provider["type"] == "file"
        assert provider["allowUiUpdates"] is False


class TestDatasources:
    def test_fixed_uids(self) -> None:
        by_uid = {ds["uid"]: ds["type"] for ds in queries.load_datasources()}
        assert by_uid == {"prometheus": "prometheus", "loki": "loki", "tempo": "tempo", "alertmanager": "alertmanager"}

    def test_every_link_points_at_a_provisioned_uid(self) -> None:
        text = (GRAFANA / "provisioning/datasources/datasources.yml").read_text()
        for ds in yaml.safe_load(text)["datasources"]:
            for ref in _uids_in(ds.get("jsonData", {})):
                assert ref in PROVISIONED_UIDS, f"{ds['uid']} links to unknown datasource {ref}"

    def test_metrics_to_traces_by_the_exemplar_label(self) -> None:
        # Service histograms and the collector's span metrics both label exemplars `trace_id`.
        destinations = datasource("prometheus")["jsonData"]["exemplarTraceIdDestinations"]
        assert {(d["name"], d["datasourceUid"]) for d in destinations} == {("trace_id", "tempo")}

    def test_logs_to_trace_by_derived_field(self) -> None:
        (field,) = datasource("loki")["jsonData"]["derivedFields"]
        assert field["matcherType"] == "label" and field["matcherRegex"] == "trace_id"
        assert field["datasourceUid"] == "tempo"
        # `$$` is how provisioning writes a literal `$`.
        assert field["url"] == "$${__value.raw}"

    def test_trace_to_logs(self) -> None:
        links = datasource("tempo")["jsonData"]["tracesToLogsV2"]
        assert links["datasourceUid"] == "loki"
        assert (links["spanStartTimeShift"], links["spanEndTimeShift"]) == ("-2s", "2s")
        assert {"key": "service.name", "value": "service_name"} in links["tags"]
        assert 'trace_id="$${__trace.traceId}"' in links["query"]

    def test_trace_to_metrics_service_map_and_node_graph(self) -> None:
        tempo = datasource("tempo")["jsonData"]
        assert tempo["tracesToMetrics"]["datasourceUid"] == "prometheus"
        assert tempo["tracesToMetrics"]["queries"]
        assert tempo["serviceMap"]["datasourceUid"] == "prometheus"
        assert tempo["nodeGraph"]["enabled"] is True

    def test_urls_are_the_compose_service_names(self) -> None:
        compose = yaml.safe_load((REPO / "docker-compose.yml").read_text())["services"]
        for ds in queries.load_datasources():
            host = ds["url"].split("//", 1)[1].split(":", 1)[0]
            assert host in compose, f"{ds['uid']} points at {host}, not a compose service"


def _uids_in(node: Any) -> Iterator[str]:
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "datasourceUid":
                yield str(value)
            yield from _uids_in(value)
    elif isinstance(node, list):
        for item in node:
            yield from _uids_in(item)
