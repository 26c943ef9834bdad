"""An unreachable collector: the app keeps serving, warns rarely, and exits promptly."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from tests.harness import EXAMPLES, app_env, free_port, http, launch, stop_app

pytestmark = pytest.mark.integration


def test_collector_down_app_serves_warns_once_and_sigterm_exits_within_timeout(tmp_path: Path) -> None:
    port, dead = free_port(), free_port()  # nothing listens on `dead`
    app = launch(
        ["uvicorn", "app:app", "--port", str(port)],
        app_env("it-down", f"http://127.0.0.1:{dead}", OTEL_DISTRO_SHUTDOWN_TIMEOUT="2"),
        EXAMPLES / "orders_fastapi",
        port,
        tmp_path / "app.log",
    )
    try:
        for i in range(50):
            assert http("GET", f"{app.url}/slow?seconds=0", headers={"X-Request-ID": f"d-{i}"})[0] == 200
            # /login logs a line, so the log exporter has work that fails too.
            assert http("POST", f"{app.url}/login", b'{"username": "u", "password": "p"}')[0] == 401
        time.sleep(3)  # several export attempts fail meanwhile
        started = time.monotonic()
        code = stop_app(app, timeout=20)
        took = time.monotonic() - started
    finally:
        stop_app(app)

    output = app.output()
    assert took < 2 + 3, f"SIGTERM took {took:.1f}s\n{output[-2000:]}"
    assert code in (0, 143), code  # 143: exited on SIGTERM, after the flush
    # Each exporter warns exactly once per interval (60 s default) however often it fails:
    # never silent about the outage, never a line per failed batch.
    for exporter in ("trace_exporter", "metric_exporter", "_log_exporter"):
        lines = [
            line
            for line in output.splitlines()
            if f'"logger":"opentelemetry.exporter.otlp.proto.http.{exporter}"' in line
        ]
        assert len(lines) == 1, lines
