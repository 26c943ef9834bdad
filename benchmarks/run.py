"""Overhead benchmark: uninstrumented vs stock `opentelemetry-distro` vs otel-distro (vs peers).

    scripts/venv && .venv/bin/python benchmarks/run.py            # full run
    .venv/bin/python benchmarks/run.py --quick                     # one short round, no features
    .venv/bin/python benchmarks/run.py --peers --no-features       # with ddtrace, EDOT, Splunk, FastAPI native

For FastAPI/uvicorn (1 worker) and Flask/gunicorn (1 sync worker) it starts each variant,
times start-up (process start to first 200), drives two routes with wrk (`GET /hello`, and
`POST /order`: pydantic validation, a SQLite query, an HTTP call to a local stub, two log
lines), reads RSS and CPU time from /proc, and counts what the real collector (and, for
ddtrace, a counting agent stand-in, `dd_sink.py`) received for that variant, so a variant
cannot look fast by dropping telemetry. Variants run interleaved (A B C A B C ...) so drift
on the machine hits all of them alike; the table shows medians over the rounds, each as a
ratio to the uninstrumented run of the same route. Not a pass/fail test.

It installs what it needs: wrk (Debian), and stock opentelemetry-distro with the same
frameworks in `benchmarks/.venv-stock`, kept apart so the two distros' entry points never
meet; with `--peers` each peer gets its own venv the same way (`benchmarks/.venv-<peer>`,
pinned versions). Our distro runs from the repository's `.venv`. Results go to
`benchmarks/results/`.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import hashlib
import http.client
import json
import os
import platform
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
APPS = HERE / "apps"
RESULTS = HERE / "results"
OURS_VENV = REPO / ".venv"
STOCK_VENV = HERE / ".venv-stock"
COLLECTOR_BIN = Path(os.environ.get("OTEL_DISTRO_BACKENDS_BIN", REPO / ".backends" / "bin")) / "otelcol"
COLLECTOR_CONFIG = REPO / "tests" / "integration" / "collector-capture.yaml"
ORDER_SCRIPT = HERE / "order.lua"
DD_SINK = HERE / "dd_sink.py"

# The apps' libraries, pinned to what the repository's `.venv` had when the peers were added,
# so every venv runs the same framework code.
FRAMEWORKS = (
    "fastapi==0.165.0",
    "starlette==1.10.0",
    "uvicorn==0.54.0",
    "flask==3.1.3",
    "werkzeug==3.1.9",
    "gunicorn==27.0.1",
    "structlog==26.1.0",
    "pydantic==2.14.4",
    "httpx==0.28.1",
    "requests==2.34.2",
)
# The instrumentations `opentelemetry-bootstrap` would pick for these apps' server and client
# libraries (sqlite3 is left out everywhere: otel-distro does not instrument it).
CONTRIB = tuple(f"opentelemetry-instrumentation-{name}==0.66b1" for name in ("fastapi", "flask", "requests", "httpx"))

# The stock side: the published distro and OTLP/HTTP exporter of the same SDK/contrib pair as
# ours, the instrumentations above, the same frameworks.
STOCK_REQUIREMENTS = (
    "opentelemetry-distro==0.66b1",
    "opentelemetry-exporter-otlp-proto-http==1.45.1",
    *CONTRIB,
    *FRAMEWORKS,
)
# Stock with all three signals over OTLP/HTTP (its logs need the SDK's logging handler).
STOCK_ENV = {
    "OTEL_TRACES_EXPORTER": "otlp",
    "OTEL_METRICS_EXPORTER": "otlp",
    "OTEL_LOGS_EXPORTER": "otlp",
    "OTEL_EXPORTER_OTLP_PROTOCOL": "http/protobuf",
    "OTEL_PYTHON_LOGGING_AUTO_INSTRUMENTATION_ENABLED": "true",
}


# --- set-up ------------------------------------------------------------------------------------


def ensure_wrk() -> str:
    found = shutil.which("wrk")
    if found:
        return found
    print("==> installing wrk (apt-get)", flush=True)
    if subprocess.run(["apt-get", "install", "-y", "wrk"], capture_output=True).returncode != 0:
        subprocess.run(["apt-get", "update"], check=True, capture_output=True)
        subprocess.run(["apt-get", "install", "-y", "wrk"], check=True, capture_output=True)
    return shutil.which("wrk") or sys.exit("wrk is not installed and apt-get could not install it")


def ensure_venv(venv: Path, requirements: tuple[str, ...], label: str) -> str | None:
    """Create or update `venv` with exactly these pins; None when ready, else pip's complaint."""
    digest = hashlib.sha256("\n".join(requirements).encode()).hexdigest()[:12]
    stamp = venv / f".installed-{digest}"
    if stamp.exists():
        return None
    print(f"==> preparing {venv.relative_to(REPO)} ({label})", flush=True)
    if not (venv / "bin" / "python").exists():
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    python = str(venv / "bin" / "python")
    subprocess.run([python, "-m", "pip", "install", "--quiet", "--upgrade", "pip"], check=True)
    pip = subprocess.run([python, "-m", "pip", "install", "--quiet", *requirements], capture_output=True, text=True)
    if pip.returncode != 0:
        lines = [line for line in (pip.stderr or pip.stdout).splitlines() if line.strip()]
        return " / ".join(lines[-3:]) or f"pip exited {pip.returncode}"
    for old in venv.glob(".installed-*"):
        old.unlink()
    stamp.touch()
    return None


def ensure_stock_venv() -> None:
    problem = ensure_venv(STOCK_VENV, STOCK_REQUIREMENTS, "stock opentelemetry-distro")
    if problem:
        sys.exit(f"could not install the stock venv: {problem}")


# --- peers -----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Peer:
    """Another vendor's Python agent or distribution, in its own venv, started by its launcher."""

    name: str
    requirements: tuple[str, ...]
    launcher: str  # executable in the venv's bin/ that wraps the server command
    env: tuple[tuple[str, str], ...]
    note: str

    @property
    def venv(self) -> Path:
        return HERE / f".venv-{self.name}"


# Every OTel-based peer: all three signals over OTLP/HTTP (protobuf), logs through the SDK's
# logging handler as for stock, no sampling (their defaults are always-on / ratio 1.0).
_OTLP_HTTP = (
    ("OTEL_TRACES_EXPORTER", "otlp"),
    ("OTEL_METRICS_EXPORTER", "otlp"),
    ("OTEL_LOGS_EXPORTER", "otlp"),
    ("OTEL_EXPORTER_OTLP_PROTOCOL", "http/protobuf"),
    ("OTEL_PYTHON_LOGGING_AUTO_INSTRUMENTATION_ENABLED", "true"),
)

PEERS: dict[str, Peer] = {
    "ddtrace": Peer(
        "ddtrace",
        # The OTLP/HTTP exporter lets ddtrace send logs and span-derived metrics over OTLP;
        # msgpack is for dd_sink.py, which runs from this venv.
        (
            "ddtrace==4.16.0",
            "opentelemetry-exporter-otlp-proto-http==1.45.1",
            "opentelemetry-sdk==1.45.1",
            "msgpack==1.2.4",
            *FRAMEWORKS,
        ),
        "ddtrace-run",
        (
            # Traces: Datadog's msgpack protocol to dd_sink.py (DD_TRACE_AGENT_URL, set per run).
            ("DD_LOGS_INJECTION", "true"),
            # Logs: the app's log records over OTLP (ddtrace then turns its log injection off).
            ("DD_LOGS_OTEL_ENABLED", "true"),
            # Metrics: the tracer's own span-derived request metrics (hits, errors, latency) over OTLP.
            ("DD_METRICS_OTEL_ENABLED", "true"),
            ("OTEL_TRACES_SPAN_METRICS_ENABLED", "true"),
            ("OTEL_EXPORTER_OTLP_PROTOCOL", "http/protobuf"),
            # The same spans as the others: server and HTTP client, no database spans.
            ("DD_TRACE_SQLITE3_ENABLED", "false"),
            # ddtrace instruments FastAPI itself; FastAPI's native telemetry would otherwise
            # wake up on the OTel logger provider ddtrace installs.
            ("BENCH_FASTAPI_TELEMETRY", "off"),
            # ddtrace sets its OTLP logs up when the app imports `opentelemetry` (FastAPI
            # >= 0.165 does); the Flask app then imports it too, or no log record is sent.
            ("BENCH_IMPORT_OPENTELEMETRY", "true"),
        ),
        "ddtrace-run: traces (agent protocol) + OTLP logs + span metrics",
    ),
    "edot": Peer(
        "edot",
        ("elastic-opentelemetry==1.18.0", *CONTRIB, *FRAMEWORKS),
        "opentelemetry-instrument",
        _OTLP_HTTP,
        "Elastic EDOT Python, traces+metrics+logs",
    ),
    "splunk": Peer(
        "splunk",
        ("splunk-opentelemetry==2.13.2", *CONTRIB, *FRAMEWORKS),
        "opentelemetry-instrument",
        _OTLP_HTTP,
        "Splunk distribution, traces+metrics+logs",
    ),
}


def ensure_peers(names: list[str]) -> dict[str, str]:
    """Install each peer's venv; returns the peers that could not be installed, with why."""
    problems = {}
    for name in names:
        peer = PEERS[name]
        problem = ensure_venv(peer.venv, peer.requirements, f"peer {name}")
        if problem is None and not (peer.venv / "bin" / peer.launcher).exists():
            problem = f"{peer.launcher} missing after install"
        if problem:
            print(f"!! peer {name} cannot run here: {problem}", flush=True)
            problems[name] = problem
    return problems


# --- where telemetry goes ---------------------------------------------------------------------


class Sink:
    """The real collector writing OTLP JSON files, read incrementally and counted per service.

    Without the collector binary a stand-in answers 200 to every export so the numbers can be
    developed; it counts nothing, and the results say so.
    """

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.real = os.access(COLLECTOR_BIN, os.X_OK)
        self.port = _free_port()
        self._offsets: dict[str, int] = {}
        self.counts: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))
        self.names: dict[str, set[str]] = defaultdict(set)
        env = {**os.environ, "CAPTURE_DIR": str(directory), "CAPTURE_HTTP_PORT": str(self.port)}
        if self.real:
            env["CAPTURE_GRPC_PORT"] = str(_free_port())
            argv = [str(COLLECTOR_BIN), f"--config={COLLECTOR_CONFIG}"]
        else:
            argv = [sys.executable, str(Path(__file__)), "--stand-in-sink", str(self.port)]
        log = open(directory / "collector.log", "wb")  # noqa: SIM115 - lives with the process
        self.process = subprocess.Popen(argv, env=env, stdout=log, stderr=subprocess.STDOUT)
        _wait_port(self.port, 30)

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def stop(self) -> None:
        _terminate(self.process)

    def refresh(self) -> None:
        """Count what arrived since the last call."""
        if not self.real:
            return
        for signal_name, container, scope_key, items_key in (
            ("traces", "resourceSpans", "scopeSpans", "spans"),
            ("logs", "resourceLogs", "scopeLogs", "logRecords"),
        ):
            for request in self._new_lines(signal_name):
                for resource in request.get(container, []):
                    service = _service_name(resource)
                    for scope in resource.get(scope_key, []):
                        self.counts[service][signal_name] += len(scope.get(items_key, []))
        for request in self._new_lines("metrics"):
            for resource in request.get("resourceMetrics", []):
                service = _service_name(resource)
                for scope in resource.get("scopeMetrics", []):
                    for metric in scope.get("metrics", []):
                        points = sum(
                            len(metric.get(kind, {}).get("dataPoints", []))
                            for kind in ("sum", "gauge", "histogram", "exponentialHistogram", "summary")
                        )
                        self.counts[service]["metric_points"] += points
                        self.names[service].add(str(metric.get("name", "")))

    def _new_lines(self, signal_name: str) -> Iterator[dict[str, Any]]:
        path = self.directory / f"{signal_name}.jsonl"
        if not path.exists():
            return
        with path.open("rb") as f:
            f.seek(self._offsets.get(signal_name, 0))
            data = f.read()
        complete = data.rfind(b"\n") + 1  # a line still being written is read next time
        self._offsets[signal_name] = self._offsets.get(signal_name, 0) + complete
        for line in data[:complete].splitlines():
            if line.strip():
                yield json.loads(line)

    def received(self, service: str) -> dict[str, int]:
        self.refresh()
        return dict(self.counts.get(service, {}))


class DatadogSink:
    """`dd_sink.py` from the ddtrace venv: the agent's trace intake, counting spans per service."""

    def __init__(self, directory: Path) -> None:
        self.port = _free_port()
        log = open(directory / "dd-sink.log", "wb")  # noqa: SIM115 - lives with the process
        python = PEERS["ddtrace"].venv / "bin" / "python"
        self.process = subprocess.Popen(
            [str(python), str(DD_SINK), str(self.port)], stdout=log, stderr=subprocess.STDOUT
        )
        _wait_port(self.port, 30)

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def spans(self, service: str) -> int:
        connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=5)
        try:
            connection.request("GET", "/counts")
            counts = json.loads(connection.getresponse().read())
        finally:
            connection.close()
        return int(counts["spans"].get(service, 0))

    def stop(self) -> None:
        _terminate(self.process)


class Stub:
    """The downstream service `POST /order` calls: `GET /pricing` answers a small JSON object."""

    def __init__(self, directory: Path) -> None:
        self.port = _free_port()
        log = open(directory / "stub.log", "wb")  # noqa: SIM115 - lives with the process
        argv = [sys.executable, str(Path(__file__)), "--stub-server", str(self.port)]
        self.process = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT)
        _wait_port(self.port, 30)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def stop(self) -> None:
        _terminate(self.process)


def stub_server(port: int) -> None:
    """Answers `GET /pricing?tier=&country=&subtotal=` like a small pricing service would."""
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
    from urllib.parse import parse_qs, urlsplit

    discounts = {"basic": 0, "silver": 5, "gold": 10}

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        disable_nagle_algorithm = True  # headers and body go out as two writes: no 40 ms stalls

        def do_GET(self) -> None:
            query = parse_qs(urlsplit(self.path).query)
            tier = query.get("tier", ["basic"])[0]
            subtotal = int(query.get("subtotal", ["0"])[0] or 0)
            shipping = 0 if subtotal >= 5_000 or query.get("country", [""])[0] == "GB" else 495
            body = json.dumps({"discount_pct": discounts.get(tier, 0), "shipping_cents": shipping}).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: Any) -> None:
            return None

    class Server(ThreadingHTTPServer):
        request_queue_size = 128  # 8 connections opened at once must not hit the default backlog of 5
        daemon_threads = True

    Server(("127.0.0.1", port), Handler).serve_forever()


def _service_name(resource: dict[str, Any]) -> str:
    for attribute in resource.get("resource", {}).get("attributes", []):
        if attribute.get("key") == "service.name":
            return str(attribute.get("value", {}).get("stringValue", ""))
    return ""


def stand_in_sink(port: int) -> None:
    """Answers every OTLP/HTTP export with 200 (used only when the collector is missing)."""
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_POST(self) -> None:
            self.rfile.read(int(self.headers.get("Content-Length", 0)))
            self.send_response(200)
            self.send_header("Content-Type", "application/x-protobuf")
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args: Any) -> None:
            return None

    ThreadingHTTPServer(("127.0.0.1", port), Handler).serve_forever()


# --- processes and probes ---------------------------------------------------------------------


def _free_port() -> int:
    """One allocator with the tests: outside the ephemeral range, never the same port twice."""
    sys.path.insert(0, str(REPO / "scripts"))
    import stack

    return stack.free_ports(1)[0]


def _wait_port(port: int, timeout: float) -> None:
    import socket

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.05)
    raise RuntimeError(f"nothing listens on port {port} after {timeout:g}s")


def _terminate(process: subprocess.Popen[bytes], timeout: float = 20) -> None:
    if process.poll() is not None:
        return
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGTERM) if _own_group(process) else process.terminate()
    try:
        process.wait(timeout)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL) if _own_group(process) else process.kill()
        process.wait(5)


def _own_group(process: subprocess.Popen[bytes]) -> bool:
    try:
        return os.getpgid(process.pid) == process.pid
    except ProcessLookupError:
        return False


def _get(port: int, path: str, timeout: float = 2.0) -> int | None:
    """Status of one GET, or None when the server does not answer yet."""
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        connection.request("GET", path)
        response = connection.getresponse()
        response.read()
        return response.status
    except OSError:
        return None
    finally:
        connection.close()


def _children(pid: int) -> list[int]:
    try:
        return [int(p) for p in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
    except OSError:
        return []


def _rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def _cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")  # utime + stime


def busy_builds() -> int:
    """Compilers running on the machine (another job's Go build makes numbers untrustworthy)."""
    count = 0
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            cmdline = (proc / "cmdline").read_bytes().replace(b"\0", b" ")
        except OSError:
            continue
        if b"go build" in cmdline or re.search(rb"/compile( |$)", cmdline) or b"/cc1" in cmdline:
            count += 1
    return count


# --- wrk ----------------------------------------------------------------------------------------

_UNITS = {"us": 1e-3, "ms": 1.0, "s": 1e3, "m": 60e3}


def _millis(text: str) -> float:
    match = re.fullmatch(r"([\d.]+)(us|ms|s|m)", text)
    if not match:
        raise ValueError(f"unexpected wrk latency {text!r}")
    return float(match.group(1)) * _UNITS[match.group(2)]


def run_wrk(wrk: str, url: str, seconds: float, connections: int, script: Path | None = None) -> dict[str, Any]:
    argv = [wrk, "-t1", f"-c{connections}", f"-d{seconds:g}s", "--latency", url]
    if script is not None:
        argv[1:1] = ["-s", str(script)]
    out = subprocess.run(argv, capture_output=True, text=True, check=True).stdout
    result: dict[str, Any] = {
        "requests": int(re.search(r"(\d+) requests in", out).group(1)),  # type: ignore[union-attr]
        "rps": float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1)),  # type: ignore[union-attr]
        "non_2xx": 0,
        "socket_errors": 0,
    }
    for pct in ("50", "99"):
        match = re.search(rf"^\s+{pct}%\s+(\S+)", out, re.MULTILINE)
        result[f"p{pct}_ms"] = _millis(match.group(1)) if match else float("nan")
    if match := re.search(r"Non-2xx or 3xx responses: (\d+)", out):
        result["non_2xx"] = int(match.group(1))
    if match := re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out):
        result["socket_errors"] = sum(int(g) for g in match.groups())
    return result


# --- variants -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Variant:
    framework: str  # fastapi | flask
    name: str  # none | stock | ours | ours+<feature> | a peer's name | fastapi-native...
    kind: str  # none | stock | ours | ddtrace | edot | splunk
    env: tuple[tuple[str, str], ...] = ()
    path: str = "/hello"
    note: str = ""
    route: str = "hello"  # hello | order (POST /order with benchmarks/order.lua)

    @property
    def key(self) -> str:
        return f"{self.framework}/{self.route}/{self.name}"

    @property
    def probe_path(self) -> str:
        """What start-up polls: a GET that answers 200 once the app is up."""
        return self.path if self.route == "hello" else "/hello"


CORE = ("none", "stock", "ours")


# Exporters off: what instrumentation costs in-process before anything is encoded or sent.
_NO_EXPORT = (("OTEL_TRACES_EXPORTER", "none"), ("OTEL_METRICS_EXPORTER", "none"), ("OTEL_LOGS_EXPORTER", "none"))


# FastAPI's native telemetry (FastAPI >= 0.165) on our providers: our FastAPI server
# instrumentation off, so FastAPI's own middleware makes the spans and metrics.
_NATIVE = (("OTEL_PYTHON_DISABLED_INSTRUMENTATIONS", "fastapi,flask"),)


def variants(
    frameworks: list[str],
    features: bool,
    log_dir: Path,
    floors: bool = False,
    peers: bool = False,
    routes: tuple[str, ...] = ("hello",),
) -> list[Variant]:
    """Every variant per framework and route; the features are measured on `/hello` only."""
    chosen: list[Variant] = []
    for framework in frameworks:
        for route in routes:
            path = "/hello" if route == "hello" else f"/{route}"
            chosen += [
                replace(v, route=route, path=path if v.path == "/hello" else v.path)
                for v in _variants(framework, features and route == "hello", log_dir, floors, peers)
            ]
    return chosen


def _variants(framework: str, features: bool, log_dir: Path, floors: bool, peers: bool) -> list[Variant]:
    chosen = [
        Variant(framework, "none", "none", note="uninstrumented"),
        Variant(framework, "stock", "stock", note="opentelemetry-distro, traces+metrics+logs"),
        Variant(framework, "ours", "ours", note="otel-distro defaults"),
    ]
    if peers:
        chosen += [Variant(framework, name, name, note=peer.note) for name, peer in PEERS.items()]
        chosen += [
            Variant(
                framework,
                "ours+traces-only",
                "ours",
                (("OTEL_METRICS_EXPORTER", "none"), ("OTEL_LOGS_EXPORTER", "none")),
                note="spans only, to set beside ddtrace's traces",
            ),
            Variant(
                framework,
                "ours+http_metrics=collector",
                "ours",
                (("OTEL_DISTRO_HTTP_METRICS", "collector"),),
                note="request metrics left to the collector's span metrics",
            ),
        ]
        if framework == "fastapi":
            chosen += [
                Variant(framework, "fastapi-native", "ours", _NATIVE, note="FastAPI native telemetry, our SDK"),
                Variant(
                    framework,
                    "fastapi-native-no-ops",
                    "ours",
                    (*_NATIVE, ("BENCH_FASTAPI_TELEMETRY", "no-operation-spans")),
                    note="the same without its operation spans",
                ),
            ]
    if features:
        log_file = str(log_dir / f"{framework}-app.log")
        chosen += [
            Variant(framework, "ours+log_file", "ours", (("OTEL_DISTRO_LOG_FILE", log_file),), note="rotated file"),
            Variant(framework, "ours+scrub=false", "ours", (("OTEL_DISTRO_SCRUB", "false"),), note="no scrubbing"),
            Variant(framework, "ours+structlog", "ours", path="/hello-structlog", note="route logs via structlog"),
            Variant(framework, "ours+access_log=off", "ours", (("OTEL_DISTRO_ACCESS_LOG", "off"),)),
            Variant(
                framework,
                "ours+access_log_export",
                "ours",
                (("OTEL_DISTRO_ACCESS_LOG_EXPORT", "true"),),
                note="request-completed lines over OTLP too",
            ),
            Variant(
                framework,
                "ours+contrib_http",
                "ours",
                (("OTEL_DISTRO_HTTP_INSTRUMENTATION", "contrib"),),
                note="contrib server instrumentation instead of ours",
            ),
        ]
    if floors:
        chosen += [
            Variant(framework, "stock+no-export", "stock", _NO_EXPORT, note="contrib instrumentation only"),
            Variant(framework, "ours+no-export", "ours", _NO_EXPORT, note="ours, nothing exported"),
        ]
    return chosen


def _bin_dir(variant: Variant) -> Path:
    if variant.kind in PEERS:
        return PEERS[variant.kind].venv / "bin"
    return (STOCK_VENV if variant.kind == "stock" else OURS_VENV) / "bin"


def _argv(variant: Variant, port: int) -> list[str]:
    bin_dir = _bin_dir(variant)
    if variant.framework == "fastapi":
        server = [str(bin_dir / "uvicorn"), "fastapi_hello:app", "--host", "127.0.0.1", "--port", str(port)]
    else:
        server = [str(bin_dir / "gunicorn"), "-w", "1", "-k", "sync", "-b", f"127.0.0.1:{port}", "flask_hello:app"]
    if variant.kind == "none":
        return server
    launcher = PEERS[variant.kind].launcher if variant.kind in PEERS else "opentelemetry-instrument"
    return [str(bin_dir / launcher), *server]


_OTHER_FRAMEWORK = {"fastapi": "flask", "flask": "fastapi"}


def _env(variant: Variant, service: str, endpoint: str, stub_url: str = "", dd_url: str = "") -> dict[str, str]:
    # A production-like environment: no OTEL_* (or DD_*) leaking in from the caller, bytecode
    # cached, stdout buffered as a service's would be when written to a pipe or file.
    drop = ("OTEL_", "DD_", "BENCH_", "PYTHONDONTWRITEBYTECODE", "PYTHONUNBUFFERED", "VIRTUAL_ENV")
    env = {k: v for k, v in os.environ.items() if not k.startswith(drop)}
    bin_dir = _bin_dir(variant)
    env["PATH"] = f"{bin_dir}{os.pathsep}{env.get('PATH', '')}"
    if stub_url:
        env["BENCH_STUB_URL"] = stub_url
    if variant.kind != "none":
        env.update({"OTEL_SERVICE_NAME": service, "OTEL_EXPORTER_OTLP_ENDPOINT": endpoint})
        # Both venvs hold both frameworks; a real service has one, and an installed
        # instrumentation imports its framework at start-up (FastAPI alone is ~0.35 s).
        env["OTEL_PYTHON_DISABLED_INSTRUMENTATIONS"] = _OTHER_FRAMEWORK[variant.framework]
    if variant.kind not in ("none", "ours"):
        # Ours exports metrics every 10 s by default; the SDK's 60 s would never come round
        # in a run this short, and uvicorn re-raises SIGTERM after its graceful shutdown, so
        # the SDK's exit-time flush does not run there (ours flushes on SIGTERM itself).
        env["OTEL_METRIC_EXPORT_INTERVAL"] = "10000"
    if variant.kind == "stock":
        env.update(STOCK_ENV)
    if variant.kind in PEERS:
        env.update(dict(PEERS[variant.kind].env))
    if variant.kind == "ddtrace":
        env.update({"DD_SERVICE": service, "DD_TRACE_AGENT_URL": dd_url or "http://127.0.0.1:9"})
        env["DD_DOGSTATSD_URL"] = f"udp://127.0.0.1:{_free_port()}"  # nothing listens: dropped
    env.update(dict(variant.env))
    return env


@dataclass
class Options:
    wrk: str
    duration: float
    warmup: float
    connections: int
    work_dir: Path
    keep_output: bool = False
    extra: dict[str, Any] = field(default_factory=dict)
    stub_url: str = ""
    dd: DatadogSink | None = None


def measure(variant: Variant, round_no: int, sink: Sink, options: Options) -> dict[str, Any]:
    """One start-load-stop cycle of one variant."""
    port = _free_port()
    service = f"bench-{variant.framework}-{variant.route}-{variant.name}-r{round_no}"
    service = service.replace("+", "-").replace("=", "-")
    output = options.work_dir / f"{service}.out"
    builds = busy_builds()
    load_before = os.getloadavg()[0]
    with output.open("wb") as out:
        started = time.perf_counter()
        process = subprocess.Popen(
            _argv(variant, port),
            env=_env(variant, service, sink.endpoint, options.stub_url, options.dd.endpoint if options.dd else ""),
            cwd=APPS,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        probes, startup = 0, None
        deadline = started + 60
        while time.perf_counter() < deadline and process.poll() is None:
            status = _get(port, variant.probe_path)
            if status is not None:
                probes += 1
                if status == 200:
                    startup = time.perf_counter() - started
                    break
            time.sleep(0.01)
        if startup is None:
            raise RuntimeError(f"{variant.key} did not start:\n{output.read_text(errors='replace')[-3000:]}")
        server_pid = (_children(process.pid) or [process.pid])[0] if variant.framework == "flask" else process.pid
        url = f"http://127.0.0.1:{port}{variant.path}"
        script = ORDER_SCRIPT if variant.route == "order" else None
        warm = (
            run_wrk(options.wrk, url, options.warmup, options.connections, script)
            if options.warmup
            else {"requests": 0}
        )
        cpu_before = _cpu_seconds(server_pid)
        load = run_wrk(options.wrk, url, options.duration, options.connections, script)
        cpu = _cpu_seconds(server_pid) - cpu_before
        rss = _rss_mb(server_pid)
        sent = probes + warm["requests"] + load["requests"]
        dd = options.dd if variant.kind == "ddtrace" else None
        received = _await_telemetry(sink, service, sent, dd) if _exports(variant) else {}
    finally:
        _terminate(process)
    if _exports(variant) and sink.real:
        time.sleep(0.5)  # the final flush at shutdown, then the collector's file flush
        received = _received(sink, service, dd)
    result = {
        "variant": variant.key,
        "framework": variant.framework,
        "name": variant.name,
        "round": round_no,
        "service": service,
        "startup_s": startup,
        "rss_mb": rss,
        "cpu_us_per_req": cpu / max(load["requests"], 1) * 1e6,
        "requests_sent": sent,
        "spans_received": received.get("traces", 0) if sink.real and _exports(variant) else None,
        "logs_received": received.get("logs", 0) if sink.real and _exports(variant) else None,
        "metric_points_received": received.get("metric_points", 0) if sink.real and _exports(variant) else None,
        "metric_names": sorted(sink.names.get(service, ())),
        "busy_builds": builds,
        "loadavg_before": load_before,
        **{k: v for k, v in load.items() if k != "requests"},
        "requests_measured": load["requests"],
    }
    if not options.keep_output:
        output.unlink(missing_ok=True)
    return result


def _exports(variant: Variant) -> bool:
    return variant.kind != "none" and ("OTEL_TRACES_EXPORTER", "none") not in variant.env


def _received(sink: Sink, service: str, dd: DatadogSink | None) -> dict[str, int]:
    """What the collector got from this service; ddtrace's spans come from the agent stand-in."""
    received = sink.received(service)
    if dd is not None:
        received["traces"] = dd.spans(service)
    return received


def _await_telemetry(
    sink: Sink, service: str, sent: int, dd: DatadogSink | None = None, timeout: float = 12
) -> dict[str, int]:
    """Give the batch processors time to export (default delays: spans 5 s, logs 1 s)."""
    if not sink.real:
        return {}
    deadline = time.monotonic() + timeout
    last: dict[str, int] = {}
    stable_since = time.monotonic()
    while time.monotonic() < deadline:
        now = _received(sink, service, dd)
        if now != last:
            last, stable_since = now, time.monotonic()
        elif now.get("traces", 0) >= sent and time.monotonic() - stable_since > 1.5:
            break
        time.sleep(0.5)
    return last


# --- summary ----------------------------------------------------------------------------------


def summarize(runs: list[dict[str, Any]], order: list[Variant] | list[str]) -> list[dict[str, Any]]:
    """Medians over the rounds; the ratios are medians of each round's variant / none pair."""
    by_key: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for run in runs:
        by_key[run["variant"]].append(run)
    rows = []
    for variant in order:
        key, note = (variant.key, variant.note) if isinstance(variant, Variant) else (variant, "")
        mine = by_key.get(key)
        if not mine:
            continue
        row: dict[str, Any] = {"variant": key, "note": note, "rounds": len(mine)}
        for metric in ("rps", "p50_ms", "p99_ms", "startup_s", "rss_mb", "cpu_us_per_req"):
            row[metric] = statistics.median(r[metric] for r in mine)
        spans = [r["spans_received"] for r in mine if r["spans_received"] is not None]
        logs = [r["logs_received"] for r in mine if r["logs_received"] is not None]
        points = [r.get("metric_points_received") for r in mine if r.get("metric_points_received") is not None]
        sent = sum(r["requests_sent"] for r in mine)
        row["spans_per_request"] = sum(spans) / sent if spans else None
        row["logs_per_request"] = sum(logs) / sent if logs else None
        row["metric_points_per_run"] = statistics.median(points) if points else None
        row["metric_names"] = sorted({name for r in mine for name in r.get("metric_names", [])})
        row["errors"] = sum(r["non_2xx"] + r["socket_errors"] for r in mine)
        rows.append(row)
    for row in rows:
        base_key = row["variant"].rsplit("/", 1)[0] + "/none"
        base = next((r for r in rows if r["variant"] == base_key), None)
        if base:
            # Same-round pairs: the machine's load drifts between rounds far more than between
            # two neighbouring runs, so each round's ratio is taken before the median.
            pairs = [
                (mine, other)
                for mine in by_key[row["variant"]]
                for other in by_key[base_key]
                if other["round"] == mine["round"]
            ]
            row["rps_x"] = statistics.median(a["rps"] / b["rps"] for a, b in pairs)
            row["p50_x"] = statistics.median(a["p50_ms"] / b["p50_ms"] for a, b in pairs)
            row["p99_x"] = statistics.median(a["p99_ms"] / b["p99_ms"] for a, b in pairs)
            row["cpu_delta_us"] = statistics.median(a["cpu_us_per_req"] - b["cpu_us_per_req"] for a, b in pairs)
            row["startup_x"] = row["startup_s"] / base["startup_s"]
            row["startup_delta_s"] = row["startup_s"] - base["startup_s"]
            row["rss_x"] = row["rss_mb"] / base["rss_mb"]
            row["rss_delta_mb"] = row["rss_mb"] - base["rss_mb"]
    return rows


def table(rows: list[dict[str, Any]], unavailable: dict[str, str] | None = None) -> str:
    head = (
        "| variant | req/s (x) | p50 ms (x) | p99 ms (x) | start-up s (x, +s) | RSS MB (x, +MB) "
        "| CPU µs/req (+µs) | spans/req | logs/req | metric points/run | errors |"
    )
    lines = [head, "|" + "---|" * 11]
    for name, why in (unavailable or {}).items():
        lines.append(f"| {name} | not run: {why.replace('|', '/')} |" + " |" * 9)
    for r in rows:

        def per(value: float | None) -> str:
            return "n/a" if value is None else f"{value:.3f}"

        points = r.get("metric_points_per_run")
        exported = "n/a" if points is None else f"{points:,.0f} ({len(r.get('metric_names', []))} names)"

        lines.append(
            f"| {r['variant']} | {r['rps']:,.0f} ({r.get('rps_x', 1):.2f}) "
            f"| {r['p50_ms']:.2f} ({r.get('p50_x', 1):.2f}) | {r['p99_ms']:.2f} ({r.get('p99_x', 1):.2f}) "
            f"| {r['startup_s']:.2f} ({r.get('startup_x', 1):.2f}, {r.get('startup_delta_s', 0):+.2f}) "
            f"| {r['rss_mb']:.1f} ({r.get('rss_x', 1):.2f}, {r.get('rss_delta_mb', 0):+.1f}) "
            f"| {r['cpu_us_per_req']:,.0f} ({r.get('cpu_delta_us', 0):+,.0f}) "
            f"| {per(r['spans_per_request'])} | {per(r['logs_per_request'])} "
            f"| {exported} | {r.get('errors', 0)} |"
        )
    return "\n".join(lines)


def machine() -> dict[str, Any]:
    model = ""
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    return {"cores": os.cpu_count(), "cpu": model, "python": platform.python_version(), "kernel": platform.release()}


# --- main ---------------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=3, help="interleaved rounds (default 3)")
    parser.add_argument("--duration", type=float, default=10, help="seconds of measured load per run")
    parser.add_argument("--warmup", type=float, default=2, help="seconds of unmeasured load first")
    parser.add_argument("--connections", type=int, default=8, help="wrk connections (1 wrk thread)")
    parser.add_argument("--frameworks", default="fastapi,flask")
    parser.add_argument("--only", default="", help="comma-separated variant names, e.g. none,ours")
    parser.add_argument("--no-features", action="store_true", help="only none, stock and ours")
    parser.add_argument("--floors", action="store_true", help="also stock and ours with every exporter off")
    parser.add_argument("--quick", action="store_true", help="1 round of 5 s, no features")
    parser.add_argument(
        "--peers",
        action="store_true",
        help=f"also {', '.join(PEERS)} and FastAPI's native telemetry (each peer in benchmarks/.venv-<peer>)",
    )
    parser.add_argument("--routes", default="hello,order", help="hello and/or order (POST /order)")
    parser.add_argument(
        "--env",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="extra variable for `ours` variants (repeatable)",
    )
    parser.add_argument("--keep-output", action="store_true", help="keep each app's stdout in results/")
    parser.add_argument("--stand-in-sink", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--stub-server", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--table", type=Path, metavar="JSON", help="print the table of an earlier run's JSON")
    args = parser.parse_args(argv)
    if args.table:
        earlier = json.loads(args.table.read_text())
        rows = summarize(earlier["runs"], [row["variant"] for row in earlier["summary"]])
        print(table(rows, earlier.get("unavailable")))
        return 0
    if args.stand_in_sink:
        stand_in_sink(args.stand_in_sink)
        return 0
    if args.stub_server:
        stub_server(args.stub_server)
        return 0
    if args.quick:
        args.rounds, args.duration, args.warmup, args.no_features = 1, 5, 1, True

    # A SIGTERM still stops the apps and the collector this run started (the `finally` below).
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    wrk = ensure_wrk()
    ensure_stock_venv()
    RESULTS.mkdir(parents=True, exist_ok=True)
    work_dir = Path(tempfile.mkdtemp(prefix="run-", dir=RESULTS))
    routes = tuple(r for r in args.routes.split(",") if r)
    frameworks = args.frameworks.split(",")
    chosen = variants(frameworks, not args.no_features, work_dir, args.floors, args.peers, routes)
    if args.env:
        extra = tuple(tuple(item.split("=", 1)) for item in args.env)
        chosen = [replace(v, env=v.env + extra) if v.kind == "ours" else v for v in chosen]  # type: ignore[arg-type]
    if args.only:
        wanted = set(args.only.split(","))
        chosen = [v for v in chosen if v.name in wanted]
    unavailable: dict[str, str] = {}
    if args.peers:
        problems = ensure_peers([name for name in PEERS if any(v.kind == name for v in chosen)])
        chosen = [v for v in chosen if v.kind not in problems]
        unavailable = {f"{f}/*/{name}": why for name, why in problems.items() for f in frameworks}
    options = Options(wrk, args.duration, args.warmup, args.connections, work_dir, args.keep_output)

    sink = Sink(work_dir)
    helpers: list[Stub | DatadogSink] = []
    if "order" in routes:
        stub = Stub(work_dir)
        helpers.append(stub)
        options.stub_url = stub.url
    if any(v.kind == "ddtrace" for v in chosen):
        options.dd = DatadogSink(work_dir)
        helpers.append(options.dd)
    if not sink.real:
        print(
            f"!! {COLLECTOR_BIN} is missing: exporting to a stand-in that accepts everything; "
            "received counts are NOT checked (install the backends for real numbers)",
            flush=True,
        )
    runs: list[dict[str, Any]] = []
    try:
        for round_no in range(1, args.rounds + 1):
            for variant in chosen:
                run = measure(variant, round_no, sink, options)
                runs.append(run)
                print(
                    f"[{round_no}/{args.rounds}] {variant.key:<36} {run['rps']:>8,.0f} req/s  "
                    f"p50 {run['p50_ms']:6.2f} ms  p99 {run['p99_ms']:7.2f} ms  start {run['startup_s']:.2f} s  "
                    f"RSS {run['rss_mb']:5.1f} MB  spans {run['spans_received']}/{run['requests_sent']}  "
                    f"logs {run['logs_received']}  metric points {run['metric_points_received']}"
                    + (
                        f"  errors {run['non_2xx'] + run['socket_errors']}"
                        if run["non_2xx"] + run["socket_errors"]
                        else ""
                    )
                    + ("  [BUILD RUNNING]" if run["busy_builds"] else ""),
                    flush=True,
                )
    finally:
        for helper in helpers:
            helper.stop()
        sink.stop()

    rows = summarize(runs, chosen)
    noisy = sum(1 for r in runs if r["busy_builds"])
    report = {
        "date": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "machine": machine(),
        "collector": "otelcol (tests/integration/collector-capture.yaml)" if sink.real else "stand-in (not counted)",
        "settings": {k: v for k, v in vars(args).items() if k != "stand_in_sink"},
        "runs_with_build_running": noisy,
        "peers": {name: PEERS[name].requirements[0] for name in PEERS} if args.peers else {},
        "unavailable": unavailable,
        "summary": rows,
        "runs": runs,
    }
    stamp = dt.datetime.now().strftime("%Y%m%d-%H%M%S")
    path = RESULTS / f"bench-{stamp}.json"
    path.write_text(json.dumps(report, indent=2))
    (RESULTS / "latest.json").write_text(json.dumps(report, indent=2))
    if not args.keep_output:
        shutil.rmtree(work_dir, ignore_errors=True)
    print()
    print(table(rows, unavailable))
    print(f"\n{report['date']} · {machine()['cores']} cores · collector: {report['collector']} · JSON: {path}")
    if noisy:
        print(f"!! {noisy} run(s) overlapped a compiler on this machine: treat those numbers with suspicion")
    return 0


if __name__ == "__main__":
    sys.exit(main())
