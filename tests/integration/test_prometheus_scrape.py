"""OTEL_METRICS_EXPORTER=prometheus under a pre-fork server: one /metrics per process."""

from __future__ import annotations

import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from tests.harness import EXAMPLES, app_env, free_port, free_port_range, http, launch, stop_app, wait_until

pytestmark = pytest.mark.integration


def _scrape(port: int) -> str:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=2) as response:
            return str(response.read().decode())
    except OSError:
        return ""


def test_each_gunicorn_process_serves_its_own_metrics(tmp_path: Path) -> None:
    base, port = free_port_range(4), free_port()
    app = launch(
        ["gunicorn", "-w", "2", "-b", f"127.0.0.1:{port}", "app:app"],
        app_env(
            "it-scrape",
            "http://127.0.0.1:9",  # OTLP unused here
            OTEL_METRICS_EXPORTER="prometheus",
            OTEL_TRACES_EXPORTER="none",
            OTEL_LOGS_EXPORTER="none",
            OTEL_EXPORTER_PROMETHEUS_PORT=str(base),
            OTEL_DISTRO_PROMETHEUS_PORT_RANGE="4",
        ),
        EXAMPLES / "inventory_flask",
        port,
        tmp_path / "app.log",
    )
    try:
        with ThreadPoolExecutor(6) as pool:
            list(pool.map(lambda _: http("GET", f"{app.url}/slow?seconds=0.4"), range(6)))
        # Master + 2 workers: three endpoints on the first three ports of the range.
        pages = wait_until(
            lambda: (
                (found := [_scrape(p) for p in range(base, base + 4)]) and sum(bool(x) for x in found) == 3 and found
            ),
            20,
            what="three /metrics endpoints",
        )
    finally:
        stop_app(app)

    served = [page for page in pages if page]
    instance_ids = set()
    for page in served:
        info = [line for line in page.splitlines() if line.startswith("target_info{")]
        assert len(info) == 1
        instance_ids.add(info[0].split('service_instance_id="')[1].split('"')[0])
    assert len(instance_ids) == 3  # every process is its own, distinguishable target
    # Both workers served requests and count only their own.
    counts = [
        sum(
            float(line.rsplit(" ", 1)[1])
            for line in page.splitlines()
            if line.startswith("http_server_request_duration_seconds_count{")
        )
        for page in served
    ]
    assert sum(counts) == 6
    assert sorted(c > 0 for c in counts) == [False, True, True]
