"""The tail-sampling policy of collector/config.yaml, run by the real collector: errors and
slow traces are always kept, the rest by the configured share (here 0 %)."""

from __future__ import annotations

import os
import subprocess
import time
from pathlib import Path

import pytest

from tests.harness import REPO, free_port, port_open, require_binary, stop_process, wait_until
from tests.otlp_files import read_spans

pytestmark = pytest.mark.integration

# Same pipeline, but traces go to a file instead of the traces backend.
OVERRIDE = """
exporters:
  file/sampled:
    path: ${env:CAPTURE_DIR}/traces.jsonl
    flush_interval: 100ms
service:
  pipelines:
    traces:
      exporters: [file/sampled]
"""


def _send(endpoint: str, name: str, error: bool, seconds: float) -> str:
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.trace import Status, StatusCode

    provider = TracerProvider(resource=Resource.create({"service.name": "it-sampling"}), shutdown_on_exit=False)
    provider.add_span_processor(SimpleSpanProcessor(OTLPSpanExporter(endpoint=f"{endpoint}/v1/traces")))
    start = time.time_ns()
    span = provider.get_tracer("t").start_span(name, start_time=start)
    if error:
        span.set_status(Status(StatusCode.ERROR))
    span.end(end_time=start + int(seconds * 1e9))
    provider.shutdown()
    return f"{span.get_span_context().trace_id:032x}"


def test_errors_and_slow_traces_are_kept_the_rest_by_share(tmp_path: Path) -> None:
    otelcol = require_binary("otelcol")
    override = tmp_path / "override.yaml"
    override.write_text(OVERRIDE)
    http_port = free_port()
    dead = f"127.0.0.1:{free_port()}"
    env = {
        **os.environ,
        "CAPTURE_DIR": str(tmp_path),
        "OTELCOL_OTLP_GRPC_ENDPOINT": f"127.0.0.1:{free_port()}",
        "OTELCOL_OTLP_HTTP_ENDPOINT": f"127.0.0.1:{http_port}",
        "OTELCOL_HEALTH_CHECK_ENDPOINT": f"127.0.0.1:{free_port()}",
        "OTELCOL_METRICS_HOST": "127.0.0.1",
        "OTELCOL_METRICS_PORT": str(free_port()),
        "OTELCOL_STORAGE_DIR": str(tmp_path / "storage"),
        "OTELCOL_PROMETHEUS_REMOTE_WRITE_URL": f"http://{dead}/api/v1/write",
        "OTELCOL_LOGS_OTLP_ENDPOINT": f"http://{dead}/otlp",
        "OTELCOL_TRACES_OTLP_ENDPOINT": dead,
        "OTELCOL_TAIL_SAMPLING_PERCENT": "0",
        "OTELCOL_TAIL_SAMPLING_SLOW_MS": "500",
        "OTELCOL_TAIL_SAMPLING_DECISION_WAIT": "1s",
    }
    with open(tmp_path / "collector.log", "wb") as log:
        process = subprocess.Popen(
            [str(otelcol), f"--config={REPO / 'collector' / 'config.yaml'}", f"--config={override}"],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    try:
        wait_until(lambda: port_open(http_port), 30, what="collector")
        endpoint = f"http://127.0.0.1:{http_port}"
        fast = _send(endpoint, "fast", error=False, seconds=0.01)
        failed = _send(endpoint, "failed", error=True, seconds=0.01)
        slow = _send(endpoint, "slow", error=False, seconds=0.8)
        # Sent last and always kept: the sampler decides traces in arrival order and writes what
        # it keeps in order, so once the marker is in the file the fast trace's fate is known
        # (no fixed sleep to race a slow machine).
        marker = _send(endpoint, "marker", error=True, seconds=0.01)
        kept = wait_until(
            lambda: (
                (ids := {s.trace_id for s in read_spans(tmp_path / "traces.jsonl")}) >= {failed, slow, marker} and ids
            ),
            30,
            what="the error, slow and marker traces",
        )
    finally:
        stop_process(process)

    assert failed in kept
    assert slow in kept
    assert fast not in kept
