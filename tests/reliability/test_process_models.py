"""Under `uvicorn --workers`, only the server's own processes are service instances: the resource
tracker multiprocessing starts beside them (with the same environment) exports nothing."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from tests.harness import EXAMPLES, Capture, app_env, free_port, http, launch, stop_app, wait_until

pytestmark = pytest.mark.reliability

SERVICE = "rel-workers"


def _instances(capture: Capture) -> dict[str, tuple[object, object]]:
    """service.instance.id -> (pid, parent pid) of each process that exported runtime metrics."""
    return {
        str(p.resource.get("service.instance.id")): (
            p.resource.get("process.pid"),
            p.resource.get("process.parent_pid"),
        )
        for p in capture.points(SERVICE, "process.cpu.time")
    }


def _exports_each(capture: Capture, instances: int, times: int) -> bool:
    counts: dict[str, int] = {}
    for point in capture.points(SERVICE, "process.cpu.time"):
        key = str(point.resource.get("service.instance.id"))
        counts[key] = counts.get(key, 0) + 1
    return len([c for c in counts.values() if c >= times]) >= instances


def test_uvicorn_workers_have_no_phantom_instance(capture: Capture, tmp_path: Path) -> None:
    port = free_port()
    env = app_env(SERVICE, capture.endpoint)
    app = launch(
        ["uvicorn", "app:app", "--port", str(port), "--workers", "2"],
        env,
        EXAMPLES / "orders_fastapi",
        port,
        tmp_path / "out.log",
    )
    try:
        for _ in range(20):
            assert http("GET", f"{app.url}/health")[0] == 200
        # Supervisor and two workers export every 500 ms; the tracker, started before the workers,
        # would have exported several times too by the time each of them did three times.
        wait_until(lambda: _exports_each(capture, 3, 3), 30, what="three exports by three instances")
    finally:
        stop_app(app)

    instances = _instances(capture)
    assert len(instances) == 3, f"supervisor and two workers expected, got (pid, parent) {list(instances.values())}"


class _SlowCollector:
    """An OTLP/HTTP endpoint that takes 90 ms per metrics export and notes which instance sent it:
    a master exporting every 100 ms is then nearly always mid-export when it forks a worker."""

    def __init__(self) -> None:
        import gzip
        import threading
        from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

        from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import ExportMetricsServiceRequest

        self.instances: dict[str, set[str]] = {}  # service -> service.instance.id that exported
        lock = threading.Lock()
        instances = self.instances

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("content-length", 0)))
                if self.path.endswith("/v1/metrics"):
                    if self.headers.get("content-encoding") == "gzip":
                        body = gzip.decompress(body)
                    request = ExportMetricsServiceRequest()
                    request.ParseFromString(body)
                    for rm in request.resource_metrics:
                        found = {a.key: a.value.string_value for a in rm.resource.attributes}
                        with lock:
                            instances.setdefault(found["service.name"], set()).add(found["service.instance.id"])
                    time.sleep(0.09)
                self.send_response(200)
                self.send_header("content-length", "0")
                self.end_headers()

            def log_message(self, *args: object) -> None:
                return None

        self.server = ThreadingHTTPServer(("127.0.0.1", free_port()), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()
        self.endpoint = f"http://127.0.0.1:{self.server.server_address[1]}"

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def test_gunicorn_workers_forked_mid_export_still_export(tmp_path: Path) -> None:
    """The master's metric export is in flight at (almost) every fork. Its locks, the SDK reader's
    and our transport's, held across the POST, used to stay held in the worker, which then never
    exported a metric again: most of these runs had a silent worker before the fix."""
    collector = _SlowCollector()
    try:
        for run in range(3):
            service = f"rel-fork-{run}"
            port = free_port()
            app = launch(
                ["gunicorn", "-w", "2", "-b", f"127.0.0.1:{port}", "app:app"],
                app_env(service, collector.endpoint, OTEL_METRIC_EXPORT_INTERVAL="100"),
                EXAMPLES / "inventory_flask",
                port,
                tmp_path / f"{service}.log",
            )
            try:
                wait_until(
                    lambda: len(collector.instances.get(service, ())) >= 3,  # noqa: B023 - polled within the run
                    20,
                    interval=0.1,
                    what=f"run {run}: the master and both workers exporting metrics",
                )
            finally:
                stop_app(app)
    finally:
        collector.stop()
