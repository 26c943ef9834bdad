"""The agent -> gateway tier (collector/agent.yaml in front of collector/config.yaml) with real
collectors on loopback: 2 agents, 3 gateways. A generator sends traces whose parent span
comes from `frontend` through agent A and whose child span comes from `backend` through
agent B; every trace must land, complete, on exactly one gateway (docs/scale-out.md)."""

from __future__ import annotations

import re
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.tiers import (
    Collector,
    Generator,
    Point,
    Sent,
    agent,
    delivered,
    gateway,
    send_traces,
    spans_by_trace,
    stop_all,
    wait_delivered,
)
from tests.harness import REPO, require_binary, wait_until

pytestmark = pytest.mark.e2e


@pytest.mark.parametrize("resolver", ["static", "dns", "k8s"])
def test_agent_config_validates_with_each_resolver(resolver: str) -> None:
    otelcol = require_binary("otelcol")
    extra = [] if resolver == "static" else [f"--config={REPO / 'collector' / f'agent-{resolver}.yaml'}"]
    result = subprocess.run(
        [str(otelcol), "validate", f"--config={REPO / 'collector' / 'agent.yaml'}", *extra],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize("name", ["agent.yaml", "agent-dns.yaml", "agent-k8s.yaml", "gateway.yaml"])
def test_agent_files_document_every_variable_they_read(name: str) -> None:
    text = (REPO / "collector" / name).read_text()
    header = text.split("\nexporters:", 1)[0].split("\nextensions:", 1)[0].split("\nprocessors:", 1)[0]
    read = set(re.findall(r"\$\{env:(\w+)", text))
    documented = set(re.findall(r"^# (OTELCOL_\w+)", header, re.MULTILINE))
    assert read == documented


def test_gateway_override_keeps_the_metrics_processors_of_config_yaml() -> None:
    import yaml

    base = yaml.safe_load((REPO / "collector" / "config.yaml").read_text())["service"]["pipelines"]
    override = yaml.safe_load((REPO / "collector" / "gateway.yaml").read_text())["service"]["pipelines"]
    # Every metrics pipeline a connector feeds gets the label; none is left out.
    assert set(override) == {"metrics", "metrics/http"}
    for name, pipeline in override.items():
        assert pipeline["processors"] == [*base[name]["processors"], "transform/gateway"]


HTTP_DURATION = "http.server.request.duration"


def _tier(tmp_path: Path, **gateway_settings: object) -> tuple[list[Collector], list[Collector]]:
    require_binary("otelcol")
    gateways = [gateway(tmp_path, f"gateway-{i}", **gateway_settings) for i in (1, 2, 3)]  # type: ignore[arg-type]
    agents = [agent(tmp_path, f"agent-{x}", gateways) for x in ("a", "b")]
    return gateways, agents


@pytest.fixture
def tier(tmp_path: Path) -> Iterator[tuple[list[Collector], list[Collector]]]:
    gateways, agents = _tier(tmp_path)
    try:
        for c in (*gateways, *agents):
            c.start()
        yield gateways, agents
    finally:
        stop_all((*agents, *gateways))


def _assert_one_gateway_per_trace(gateways: list[Collector], sent: Sent) -> dict[str, int]:
    """Every sent trace is complete on exactly one gateway; returns traces per gateway."""
    seen = spans_by_trace(gateways)
    split = {t: sorted(where) for t, where in seen.items() if t in sent.spans and len(where) > 1}
    assert not split, f"{len(split)} traces split over gateways, e.g. {list(split.items())[:3]}"
    incomplete = [t for t in sent.spans if t in seen and set().union(*seen[t].values()) != sent.spans[t]]
    assert not incomplete, f"{len(incomplete)} traces incomplete, e.g. {incomplete[:3]}"
    per_gateway = {g.name: 0 for g in gateways}
    for t in sent.spans:
        for name in seen.get(t, {}):
            per_gateway[name] += 1
    return per_gateway


def test_every_trace_lands_complete_on_exactly_one_gateway(tier: tuple[list[Collector], list[Collector]]) -> None:
    gateways, (agent_a, agent_b) = tier
    sent = send_traces(agent_a.http_endpoint, agent_b.http_endpoint, 1200)
    wait_delivered(gateways, sent, timeout=90)

    per_gateway = _assert_one_gateway_per_trace(gateways, sent)
    assert sum(per_gateway.values()) == len(sent.spans)
    # Consistent hashing spreads the trace IDs: each gateway has a fair share (1/3 = 400).
    assert all(n >= 200 for n in per_gateway.values()), per_gateway
    # Both services really came through different agents to the same gateway.
    services = {s.service for g in gateways for s in g.spans()}
    assert services == {"frontend", "backend"}


def test_tail_sampling_behind_agents_keeps_errors_and_slow_whole_and_nothing_of_the_rest(tmp_path: Path) -> None:
    gateways, agents = _tier(tmp_path, sampling_percent=0, slow_ms=500, decision_wait="2s")
    agent_a, agent_b = agents
    try:
        for c in (*gateways, *agents):
            c.start()
        sent = send_traces(agent_a.http_endpoint, agent_b.http_endpoint, 1000, error_every=10, slow_every=10)
        kept = sent.of_kind("error", "slow")
        assert len(kept) == 200
        wait_delivered(gateways, sent, timeout=90, traces=kept)
        time.sleep(4)  # past every fast trace's decision (2 s after its first span)
        _assert_one_gateway_per_trace(gateways, sent)
        seen = spans_by_trace(gateways)
        dropped_but_seen = sent.of_kind("fast") & seen.keys()
        assert not dropped_but_seen, f"{len(dropped_but_seen)} dropped traces have spans on a gateway"
        assert kept <= seen.keys()
    finally:
        stop_all((*agents, *gateways))


def test_a_gateway_down_for_20s_loses_nothing(tier: tuple[list[Collector], list[Collector]]) -> None:
    gateways, (agent_a, agent_b) = tier
    generator = Generator(agent_a.http_endpoint, agent_b.http_endpoint)
    try:
        before = generator.send(300)
        generator.flush()
        wait_delivered(gateways, before, timeout=60)

        down = gateways[1]
        down.kill()
        during = generator.send(600)
        generator.flush()  # the agents accept: their disk queues hold the dead gateway's share
        outage_start = time.monotonic()
        # Meanwhile the healthy gateways keep receiving their own share.
        healthy = [g for g in gateways if g is not down]
        seen = spans_by_trace(healthy)
        time.sleep(max(0.0, 20 - (time.monotonic() - outage_start)))
        seen = spans_by_trace(healthy)
        on_healthy = {t for t in during.spans if t in seen}
        assert len(on_healthy) >= 300, f"only {len(on_healthy)} of 600 traces reached the healthy gateways"
        assert not delivered(gateways, during), "the dead gateway's share cannot have arrived yet"
        down.start()
        wait_delivered(gateways, during, timeout=60)
    finally:
        generator.shutdown()

    everything = Sent()
    everything.merge(before)
    everything.merge(during)
    per_gateway = _assert_one_gateway_per_trace(gateways, everything)
    assert per_gateway[down.name] > 0


def test_an_agent_killed_after_accepting_loses_nothing(tmp_path: Path) -> None:
    gateways, agents = _tier(tmp_path)
    agent_a, agent_b = agents
    try:
        # Gateways not started yet: everything the agents accept waits in their disk queues.
        for a in agents:
            a.start()
        sent = send_traces(agent_a.http_endpoint, agent_b.http_endpoint, 500)
        for a in agents:
            a.kill()  # SIGKILL: nothing flushed, nothing drained
        for c in (*gateways, *agents):
            c.start()
        wait_delivered(gateways, sent, timeout=90)
        _assert_one_gateway_per_trace(gateways, sent)
    finally:
        stop_all((*agents, *gateways))


def test_each_gateway_labels_its_span_metrics_and_service_graph(tmp_path: Path) -> None:
    """Without their own label, gateways would write the same span-metrics series."""
    gateways, agents = _tier(tmp_path, capture_metrics=True)
    agent_a, agent_b = agents
    try:
        for c in (*gateways, *agents):
            c.start()
        sent = send_traces(agent_a.http_endpoint, agent_b.http_endpoint, 300)
        wait_delivered(gateways, sent, timeout=60)

        kinds = ("traces.spanmetrics", "traces_service_graph", HTTP_DURATION)

        def derived(g: Collector) -> list[Point]:
            return [p for p in g.points() if p.name.startswith(kinds)]

        def every_kind_everywhere() -> bool:
            return all({k for k in kinds for p in derived(g) if p.name.startswith(k)} == set(kinds) for g in gateways)

        def http_requests_counted() -> int:
            # Cumulative: each gateway's latest count per series, summed over the gateways.
            latest: dict[tuple[str, tuple[tuple[str, Any], ...]], int] = {}
            for g in gateways:
                for p in derived(g):
                    if p.name == HTTP_DURATION:
                        latest[(g.name, tuple(sorted(p.attributes.items())))] = int(p.data.get("count", 0))
            return sum(latest.values())

        # The connectors flush every 15 s.
        wait_until(every_kind_everywhere, 60, interval=1, what="span metrics, service graph and HTTP metric everywhere")
        for g in gateways:
            labels = {p.attributes.get("otelcol.gateway") for p in derived(g)}
            assert labels == {g.name}, (g.name, labels)
            own = [p for p in g.points() if not p.name.startswith(kinds)]
            assert all("otelcol.gateway" not in p.attributes for p in own)
        # Each server span counted once, by the gateway its trace went to; client spans not at all.
        wait_until(lambda: http_requests_counted() >= len(sent.spans), 60, interval=1, what="every request counted")
        assert http_requests_counted() == len(sent.spans)
    finally:
        stop_all((*agents, *gateways))
