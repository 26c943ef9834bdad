"""Helpers for tests that run real processes: free ports, readiness, instrumented apps,
and a real collector that captures what apps send."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import pytest

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "scripts"))

import stack  # noqa: E402  (lives in scripts/, not an installed package)
from tests import otlp_files  # noqa: E402

BIN_DIR = Path(os.environ.get("OTEL_DISTRO_BACKENDS_BIN", REPO / ".backends" / "bin"))
VENV_BIN = Path(sys.executable).parent
EXAMPLES = REPO / "examples"

T = TypeVar("T")


def backends_unavailable(reason: str) -> None:
    """Fail under CI (which must install what it tests against), skip elsewhere."""
    message = f"{reason}: run `scripts/backends install`"
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(message, pytrace=False)
    pytest.skip(message)


def require_binary(name: str) -> Path:
    path = BIN_DIR / name
    if not os.access(path, os.X_OK):
        backends_unavailable(f"{path} is missing")
    return path


def free_port() -> int:
    """A loopback port to listen on: see scripts/stack.py free_ports (one allocator for every test)."""
    return stack.free_ports(1)[0]


def free_port_range(size: int) -> int:
    """The first of `size` consecutive free ports."""
    return stack.free_ports(size, consecutive=True)[0]


def wait_until(probe: Callable[[], T | None], timeout: float, interval: float = 0.2, what: str = "") -> T:
    """Poll `probe` until it returns something truthy; fail after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        result = probe()
        if result:
            return result
        if time.monotonic() > deadline:
            pytest.fail(f"{what or probe}: nothing after {timeout:g}s (last answer: {result!r})", pytrace=False)
        time.sleep(interval)


def http(
    method: str, url: str, body: bytes | None = None, headers: Mapping[str, str] | None = None, timeout: float = 10
) -> tuple[int, dict[str, str], bytes]:
    request = urllib.request.Request(url, data=body, method=method, headers=dict(headers or {}))
    if body is not None:
        request.add_header("Content-Type", "application/json")
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return response.status, {k.lower(): v for k, v in response.headers.items()}, response.read()
    except urllib.error.HTTPError as err:
        return err.code, {k.lower(): v for k, v in err.headers.items()}, err.read()


def port_open(port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(0.2)
        return s.connect_ex(("127.0.0.1", port)) == 0


# Excluded from telemetry by default (OTEL_DISTRO_EXCLUDED_URLS), so probing it adds no span,
# metric or request line to what a test counts; any status will do.
READY_PATH = "/livez"


def answers_http(port: int, timeout: float = 2.0) -> bool:
    """True once a worker answers: a listening socket alone is not enough (a gunicorn master
    listens before its workers have booted, so the first request could wait on a slow boot)."""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
            s.sendall(f"GET {READY_PATH} HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n".encode())
            return s.recv(5) == b"HTTP/"
    except OSError:
        return False


@dataclass
class Capture:
    """A real collector writing everything it receives to JSON files."""

    directory: Path
    http_port: int
    grpc_port: int
    process: subprocess.Popen[bytes] | None = None

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.http_port}"

    def spans(self, service: str | None = None) -> list[otlp_files.Span]:
        found = otlp_files.read_spans(self.directory / "traces.jsonl")
        return [s for s in found if service is None or s.service == service]

    def points(self, service: str | None = None, name: str | None = None) -> list[otlp_files.Point]:
        found = otlp_files.read_points(self.directory / "metrics.jsonl")
        return [p for p in found if (service is None or p.service == service) and (name is None or p.name == name)]

    def logs(self, service: str | None = None) -> list[otlp_files.Log]:
        found = otlp_files.read_logs(self.directory / "logs.jsonl")
        return [r for r in found if service is None or r.service == service]


def start_capture(directory: Path) -> Capture:
    otelcol = require_binary("otelcol")
    capture = Capture(directory, free_port(), free_port())
    env = {
        **os.environ,
        "CAPTURE_DIR": str(directory),
        "CAPTURE_HTTP_PORT": str(capture.http_port),
        "CAPTURE_GRPC_PORT": str(capture.grpc_port),
    }
    log = open(directory / "collector.log", "wb")  # noqa: SIM115 - lives as long as the process
    config = REPO / "tests" / "integration" / "collector-capture.yaml"
    capture.process = subprocess.Popen(
        [str(otelcol), f"--config={config}"], env=env, stdout=log, stderr=subprocess.STDOUT
    )
    wait_until(lambda: port_open(capture.http_port), 30, what="capture collector")
    return capture


def stop_process(process: subprocess.Popen[bytes], timeout: float = 10) -> int | None:
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(5)
    return process.returncode


@dataclass
class App:
    """An unmodified service run under `opentelemetry-instrument`."""

    port: int
    process: subprocess.Popen[bytes]
    log_path: Path
    extra_ports: list[int] = field(default_factory=list)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def output(self) -> str:
        return self.log_path.read_text(errors="replace")


def app_env(service: str, endpoint: str, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("OTEL_")}
    env.update(
        {
            "OTEL_SERVICE_NAME": service,
            "OTEL_EXPORTER_OTLP_ENDPOINT": endpoint,
            "OTEL_METRIC_EXPORT_INTERVAL": "500",
            "OTEL_BSP_SCHEDULE_DELAY": "200",
            "OTEL_BLRP_SCHEDULE_DELAY": "200",
            "PATH": f"{VENV_BIN}{os.pathsep}{env.get('PATH', '')}",
            "PYTHONUNBUFFERED": "1",
        }
    )
    env.update(extra)
    return env


def launch(
    argv: Sequence[str], env: Mapping[str, str], cwd: Path, port: int, log_path: Path, ready_timeout: float = 30
) -> App:
    """Start `opentelemetry-instrument <argv>` and wait until it accepts connections."""
    log = open(log_path, "wb")  # noqa: SIM115 - lives as long as the process
    process = subprocess.Popen(
        [str(VENV_BIN / "opentelemetry-instrument"), *argv],
        env=dict(env),
        cwd=cwd,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    app = App(port, process, log_path)

    def ready() -> bool:
        if process.poll() is not None:
            pytest.fail(f"app exited early ({process.returncode}):\n{app.output()[-3000:]}", pytrace=False)
        return port_open(port) and answers_http(port)

    wait_until(ready, ready_timeout, what=f"{argv} on port {port}")
    return app


def stop_app(app: App, timeout: float = 15) -> int | None:
    """SIGTERM the whole process group (reloaders and workers too); bounded."""
    if app.process.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(app.process.pid, signal.SIGTERM)
        try:
            app.process.wait(timeout)
        except subprocess.TimeoutExpired:
            os.killpg(app.process.pid, signal.SIGKILL)
            app.process.wait(5)
    return app.process.returncode


def json_body(raw: bytes) -> Any:
    import json

    return json.loads(raw)
