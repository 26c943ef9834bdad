"""multiprocessing's resource tracker inherits the app's environment, sitecustomize included:
it must not start telemetry of its own (a phantom service instance exporting runtime metrics)."""

from __future__ import annotations

import subprocess
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from tests.harness import REPO, VENV_BIN, app_env

pytestmark = pytest.mark.integration

_TRACKER = "from multiprocessing.resource_tracker import main;main(0)"


class _Sink(ThreadingHTTPServer):
    """Answers 200 to every OTLP export and remembers the paths (the tracker closes its stdout)."""

    def __init__(self) -> None:
        self.paths: list[str] = []
        sink = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                self.rfile.read(int(self.headers.get("Content-Length", 0)))
                sink.paths.append(self.path)
                self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        super().__init__(("127.0.0.1", 0), Handler)


@pytest.fixture
def sink() -> Iterator[_Sink]:
    server = _Sink()
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()


def _run_instrumented(code: str, sink: _Sink) -> None:
    env = app_env("it-helper", f"http://127.0.0.1:{sink.server_address[1]}", OTEL_METRIC_EXPORT_INTERVAL="100")
    done = subprocess.run(
        [str(VENV_BIN / "opentelemetry-instrument"), str(VENV_BIN / "python"), "-c", code],
        env=env,
        cwd=REPO,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr[-3000:]


def test_an_ordinary_process_exports_runtime_metrics(sink: _Sink) -> None:
    # The observation the next test relies on: an instrumented process exports its runtime metrics.
    _run_instrumented("import time; time.sleep(0.3)", sink)
    assert "/v1/metrics" in sink.paths


def test_the_resource_tracker_exports_nothing(sink: _Sink) -> None:
    _run_instrumented(_TRACKER, sink)
    assert sink.paths == []
