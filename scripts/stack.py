#!/usr/bin/env python3
"""Run the otel-distro backend stack natively: collector, Prometheus, VictoriaLogs, Jaeger.

No containers: the real programs from ``.backends/bin`` (``scripts/backends
install``) run on the loopback interface with the configuration files of this
repository. The collector and Jaeger read the committed files unchanged, with
addresses, ports and directories passed as environment variables;
VictoriaLogs takes flags; Prometheus cannot expand variables in targets, so it
runs from a generated copy of ``stack/prometheus/prometheus.yml``.

VictoriaLogs (logs) and Jaeger (traces) stand in natively for Loki and Tempo,
which docker-compose.yml runs as images: the collector pipeline is the same
file, with other endpoints.

From the command line (``scripts/backends up|down|status`` runs this)::

    python3 scripts/stack.py up       # fixed ports, data in .backends/data
    python3 scripts/stack.py status
    python3 scripts/stack.py down

From Python (tests)::

    sys.path.insert(0, "<repo>/scripts")
    import stack
    s = stack.Stack(stack.DEFAULT_BIN_DIR, tmp_dir, stack.Ports.free())
    with s:                      # start() ... stop()
        env = s.app_env("my-service")
        s.prometheus_url, s.logs_url, s.traces_url

Standard library only.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import json
import os
import random
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Mapping
from pathlib import Path
from typing import Any

__all__ = [
    "BINARIES",
    "DEFAULT_BIN_DIR",
    "DEFAULT_DATA_DIR",
    "REPO",
    "Ports",
    "Process",
    "Stack",
    "StackError",
    "free_ports",
    "get_json",
    "render_prometheus_config",
]

REPO = Path(__file__).resolve().parent.parent
DEFAULT_BIN_DIR = REPO / ".backends" / "bin"
DEFAULT_DATA_DIR = REPO / ".backends" / "data"
STATE_FILE_NAME = "stack.json"

# Programs the stack needs, keyed by the name used everywhere below.
BINARIES = ("otelcol", "prometheus", "promtool", "victoria-logs", "jaeger")
# Start order: storage first, so the collector finds it.
START_ORDER = ("prometheus", "victoria-logs", "jaeger", "otelcol")
# How long VictoriaLogs keeps logs natively (Prometheus keeps 30 days too).
LOGS_RETENTION = "30d"
# VictoriaLogs makes each OTLP resource attribute a field; these are the stream fields.
LOGS_STREAM_FIELDS = "service.name,deployment.environment.name"
# Ports of programs the stack talks to but does not run (may be in use).
EXTERNAL_PORTS = ("alertmanager",)

# `host:port` targets written in prometheus.yml for docker-compose.
COMPOSE_TARGETS = {
    "prometheus": "localhost:9090",
    "otelcol": "otel-collector:8888",
    "logs-backend": "loki:3100",
    "traces-backend": "tempo:3200",
    "alertmanager": "alertmanager:9093",
}


class StackError(RuntimeError):
    """A program of the stack is missing, failed to start, or never became ready."""


# Ports handed out by free_ports() in this process: never handed out twice, even once closed again.
_handed_out: set[int] = set()
_handed_out_lock = threading.Lock()


def _ephemeral_range() -> tuple[int, int]:
    try:
        low, high = (int(v) for v in Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split())
    except (OSError, ValueError):
        low, high = 32768, 60999  # Linux's default
    return low, high


def _port_pool() -> range:
    """Where free_ports() looks: outside the kernel's ephemeral range.

    A port found free inside that range can be taken, before our program binds it, as the
    local end of any outgoing connection (a collector's exporter, a test's HTTP client);
    a listening port outside it can only be taken by another listener.
    """
    low, high = _ephemeral_range()
    if low - 10000 >= 2000:
        return range(10000, low)
    if 65535 - high >= 2000:
        return range(high + 1, 65536)
    return range(0)  # no room outside it: let the kernel choose


def free_ports(count: int, host: str = "127.0.0.1", consecutive: bool = False) -> list[int]:
    """`count` ports nothing listens on now, none handed out before by this process.

    With ``consecutive``, the ports follow each other (for a program given a base port
    and a range). Candidates start at a random place in the pool, so that two processes
    choosing at once rarely meet.
    """
    pool = _port_pool()
    with _handed_out_lock, contextlib.ExitStack() as held:
        if not pool:
            ports = []
            for _ in range(count):
                sock = held.enter_context(socket.socket(socket.AF_INET, socket.SOCK_STREAM))
                sock.bind((host, 0))
                ports.append(int(sock.getsockname()[1]))
            _handed_out.update(ports)
            return ports
        start = random.randrange(len(pool))
        chosen: list[int] = []
        for step in range(len(pool)):
            port = pool[(start + step) % len(pool)]
            if consecutive and chosen and port != chosen[-1] + 1:
                chosen = []  # wrapped around: start the run again
            if port in _handed_out or not _bindable(held, host, port):
                chosen = [] if consecutive else chosen
                continue
            chosen.append(port)
            if len(chosen) == count:
                _handed_out.update(chosen)
                return chosen
    raise StackError(f"no {count} free port(s) on {host} in {pool.start}-{pool.stop - 1}")


def _bindable(held: contextlib.ExitStack, host: str, port: int) -> bool:
    """Bind (and hold, until the choice is made) `port`; False when something has it."""
    sock = held.enter_context(socket.socket(socket.AF_INET, socket.SOCK_STREAM))
    try:
        sock.bind((host, port))
    except OSError:
        return False
    return True


@dataclasses.dataclass(frozen=True)
class Ports:
    """Every port the stack listens on. Defaults are the fixed ports of ``up``."""

    otlp_grpc: int = 4317
    otlp_http: int = 4318
    collector_health: int = 13133
    collector_metrics: int = 8888
    prometheus: int = 9090
    # VictoriaLogs: OTLP in, LogsQL queries, web UI and its own metrics on one port.
    logs_http: int = 9428
    # Jaeger: OTLP in (offset from the collector's 4317/4318), query API, health, metrics.
    traces_otlp_grpc: int = 4417
    traces_otlp_http: int = 4418
    traces_query_http: int = 16686
    traces_query_grpc: int = 16685
    traces_health: int = 13134
    traces_metrics: int = 8889
    # Where Prometheus sends alerts; the stack does not run Alertmanager itself.
    alertmanager: int = 9093

    @classmethod
    def free(cls, host: str = "127.0.0.1") -> Ports:
        """Ports nothing listens on right now (see free_ports)."""
        names = [f.name for f in dataclasses.fields(cls)]
        return cls(**dict(zip(names, free_ports(len(names), host), strict=True)))


@dataclasses.dataclass
class Process:
    """How to run one program of the stack and how to tell that it is ready."""

    name: str
    argv: list[str]
    env: dict[str, str]
    ready_url: str
    log_path: Path
    popen: subprocess.Popen[bytes] | None = None
    pid: int | None = None


def get_json(
    url: str,
    params: Mapping[str, str] | None = None,
    headers: Mapping[str, str] | None = None,
    timeout: float = 5.0,
) -> tuple[int, Any]:
    """GET ``url`` and return (status, decoded JSON or text); status 0 when unreachable."""
    if params:
        url = f"{url}?{urllib.parse.urlencode(params)}"
    request = urllib.request.Request(url, headers=dict(headers or {}))
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            status, body = response.status, response.read()
    except urllib.error.HTTPError as err:
        status, body = err.code, err.read()
    except (OSError, ValueError):
        return 0, None
    text = body.decode("utf-8", "replace")
    try:
        return status, json.loads(text)
    except ValueError:
        return status, text


def render_prometheus_config(text: str, targets: Mapping[str, str], rules_dir: Path) -> str:
    """Rewrite the compose targets and the relative rules glob of prometheus.yml.

    ``targets`` maps a key of COMPOSE_TARGETS to the ``host:port`` to scrape.
    Raises StackError if the file no longer contains what is rewritten, so a
    change to prometheus.yml cannot silently leave a target unreachable.
    """
    replacements = {f'"{COMPOSE_TARGETS[key]}"': f'"{value}"' for key, value in targets.items()}
    replacements["- rules*.yml"] = f"- {rules_dir}/rules*.yml"
    for old, new in replacements.items():
        if old not in text:
            raise StackError(f"prometheus.yml no longer contains {old}: update stack.py")
        text = text.replace(old, new)
    return text


class Stack:
    """The four programs on one host, with their ports, files and lifecycle."""

    def __init__(
        self,
        bin_dir: Path = DEFAULT_BIN_DIR,
        data_dir: Path = DEFAULT_DATA_DIR,
        ports: Ports | None = None,
        host: str = "127.0.0.1",
        repo: Path = REPO,
    ) -> None:
        self.bin_dir = Path(bin_dir)
        self.data_dir = Path(data_dir)
        self.ports = ports or Ports()
        self.host = host
        self.repo = Path(repo)
        self.processes: dict[str, Process] = {}

    # ---- addresses -------------------------------------------------------
    def _url(self, port: int) -> str:
        return f"http://{self.host}:{port}"

    @property
    def otlp_http_url(self) -> str:
        """Base URL of the collector's OTLP/HTTP receiver (append /v1/traces etc.)."""
        return self._url(self.ports.otlp_http)

    @property
    def otlp_grpc_endpoint(self) -> str:
        return f"{self.host}:{self.ports.otlp_grpc}"

    @property
    def collector_health_url(self) -> str:
        return self._url(self.ports.collector_health) + "/"

    @property
    def collector_metrics_url(self) -> str:
        return self._url(self.ports.collector_metrics) + "/metrics"

    @property
    def prometheus_url(self) -> str:
        return self._url(self.ports.prometheus)

    @property
    def logs_url(self) -> str:
        """VictoriaLogs: LogsQL at /select/logsql/query, web UI at /select/vmui/."""
        return self._url(self.ports.logs_http)

    @property
    def traces_url(self) -> str:
        """Jaeger's query API: /api/v3/traces/{trace_id}, /api/traces?service=...&tags=..."""
        return self._url(self.ports.traces_query_http)

    @property
    def traces_metrics_url(self) -> str:
        return self._url(self.ports.traces_metrics) + "/metrics"

    def urls(self) -> dict[str, str]:
        return {
            "otlp_http": self.otlp_http_url,
            "otlp_grpc": self.otlp_grpc_endpoint,
            "collector_health": self.collector_health_url,
            "collector_metrics": self.collector_metrics_url,
            "prometheus": self.prometheus_url,
            "logs (VictoriaLogs)": self.logs_url,
            "logs UI": self.logs_url + "/select/vmui/",
            "traces (Jaeger API)": self.traces_url,
        }

    def app_env(self, service_name: str | None = None) -> dict[str, str]:
        """Environment for an instrumented app that should export into this stack."""
        env = {
            "OTEL_EXPORTER_OTLP_ENDPOINT": self.otlp_http_url,
            "OTEL_EXPORTER_OTLP_PROTOCOL": "http/protobuf",
        }
        if service_name:
            env["OTEL_SERVICE_NAME"] = service_name
        return env

    # ---- binaries and files ---------------------------------------------
    def binary(self, name: str) -> Path:
        return self.bin_dir / name

    def missing_binaries(self) -> list[str]:
        return [name for name in BINARIES if not os.access(self.binary(name), os.X_OK)]

    def _dir(self, *parts: str) -> Path:
        path = self.data_dir.joinpath(*parts)
        path.mkdir(parents=True, exist_ok=True)
        return path

    def write_prometheus_config(self) -> Path:
        source = self.repo / "stack" / "prometheus" / "prometheus.yml"
        addr = f"{self.host}:"
        text = render_prometheus_config(
            source.read_text(),
            {
                "prometheus": addr + str(self.ports.prometheus),
                "otelcol": addr + str(self.ports.collector_metrics),
                "logs-backend": addr + str(self.ports.logs_http),
                "traces-backend": addr + str(self.ports.traces_metrics),
                "alertmanager": addr + str(self.ports.alertmanager),
            },
            source.parent,
        )
        target = self._dir("prometheus") / "prometheus.yml"
        target.write_text(text)
        return target

    def collector_env(self) -> dict[str, str]:
        """The variables documented at the top of collector/config.yaml."""
        h, p = self.host, self.ports
        return {
            "OTELCOL_OTLP_GRPC_ENDPOINT": f"{h}:{p.otlp_grpc}",
            "OTELCOL_OTLP_HTTP_ENDPOINT": f"{h}:{p.otlp_http}",
            "OTELCOL_HEALTH_CHECK_ENDPOINT": f"{h}:{p.collector_health}",
            "OTELCOL_METRICS_HOST": h,
            "OTELCOL_METRICS_PORT": str(p.collector_metrics),
            "OTELCOL_STORAGE_DIR": str(self._dir("otelcol", "file_storage")),
            "OTELCOL_PROMETHEUS_REMOTE_WRITE_URL": f"{self.prometheus_url}/api/v1/write",
            "OTELCOL_LOGS_OTLP_ENDPOINT": f"{self.logs_url}/insert/opentelemetry",
            "OTELCOL_LOGS_STREAM_FIELDS": LOGS_STREAM_FIELDS,
            "OTELCOL_TRACES_OTLP_ENDPOINT": f"{h}:{p.traces_otlp_grpc}",
        }

    def jaeger_env(self) -> dict[str, str]:
        """The variables documented at the top of stack/jaeger/config.yaml."""
        p = self.ports
        return {
            "JAEGER_HOST": self.host,
            "JAEGER_OTLP_GRPC_PORT": str(p.traces_otlp_grpc),
            "JAEGER_OTLP_HTTP_PORT": str(p.traces_otlp_http),
            "JAEGER_QUERY_HTTP_PORT": str(p.traces_query_http),
            "JAEGER_QUERY_GRPC_PORT": str(p.traces_query_grpc),
            "JAEGER_HEALTH_PORT": str(p.traces_health),
            "JAEGER_METRICS_PORT": str(p.traces_metrics),
            "JAEGER_DATA_DIR": str(self._dir("jaeger")),
        }

    def process_specs(self) -> dict[str, Process]:
        """How each program is launched; writes the generated Prometheus config."""
        logs = self._dir("logs")
        stack_dir = self.repo / "stack"
        specs = [
            Process(
                "prometheus",
                [
                    str(self.binary("prometheus")),
                    f"--config.file={self.write_prometheus_config()}",
                    f"--storage.tsdb.path={self._dir('prometheus', 'tsdb')}",
                    "--storage.tsdb.retention.time=30d",
                    f"--web.listen-address={self.host}:{self.ports.prometheus}",
                    "--web.enable-remote-write-receiver",
                    "--enable-feature=exemplar-storage,native-histograms",
                ],
                {},
                f"{self.prometheus_url}/-/ready",
                logs / "prometheus.log",
            ),
            Process(
                "victoria-logs",
                [
                    str(self.binary("victoria-logs")),
                    f"-storageDataPath={self._dir('victoria-logs')}",
                    f"-httpListenAddr={self.host}:{self.ports.logs_http}",
                    f"-retentionPeriod={LOGS_RETENTION}",
                    "-loggerLevel=WARN",
                ],
                {},
                f"{self.logs_url}/health",
                logs / "victoria-logs.log",
            ),
            Process(
                "jaeger",
                [str(self.binary("jaeger")), f"--config={stack_dir / 'jaeger' / 'config.yaml'}"],
                self.jaeger_env(),
                self._url(self.ports.traces_health) + "/status",
                logs / "jaeger.log",
            ),
            Process(
                "otelcol",
                [str(self.binary("otelcol")), f"--config={self.repo / 'collector' / 'config.yaml'}"],
                self.collector_env(),
                self.collector_health_url,
                logs / "otelcol.log",
            ),
        ]
        return {spec.name: spec for spec in specs}

    # ---- lifecycle -------------------------------------------------------
    def start(self, timeout: float = 120.0, detach: bool = False) -> None:
        """Start every program in order and wait until each one answers ready.

        On any failure the programs already started are stopped again and
        StackError says which one failed, with the end of its log.
        ``detach`` puts the programs in their own session so they outlive
        this Python process (the ``up`` command).
        """
        missing = self.missing_binaries()
        if missing:
            raise StackError(f"missing in {self.bin_dir}: {', '.join(missing)} (run scripts/backends install)")
        busy = self.busy_ports()
        if busy:
            raise StackError(f"ports already in use on {self.host}: {', '.join(busy)}")
        self.processes = self.process_specs()
        try:
            for name in START_ORDER:
                proc = self.processes[name]
                self._launch(proc, detach)
                self._wait_ready(proc, time.monotonic() + timeout)
        except BaseException:
            self.stop()
            raise

    def busy_ports(self) -> list[str]:
        """``name=port`` for each port something else listens on (it would answer our readiness checks)."""
        busy = []
        for name, port in dataclasses.asdict(self.ports).items():
            if name in EXTERNAL_PORTS:
                continue
            with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                try:
                    sock.bind((self.host, port))
                except OSError:
                    busy.append(f"{name}={port}")
        return busy

    def _launch(self, proc: Process, detach: bool) -> None:
        env = {**os.environ, **proc.env}
        with proc.log_path.open("ab") as log:
            proc.popen = subprocess.Popen(
                proc.argv,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                env=env,
                cwd=self.data_dir,
                start_new_session=detach,
            )
        proc.pid = proc.popen.pid

    def _wait_ready(self, proc: Process, deadline: float) -> None:
        while True:
            if proc.popen is not None and proc.popen.poll() is not None:
                code = proc.popen.returncode
                raise StackError(f"{proc.name} exited with {code} before it was ready:\n{self.log_tail(proc)}")
            status, _ = get_json(proc.ready_url, timeout=2.0)
            if status == 200:
                return
            if time.monotonic() > deadline:
                raise StackError(f"{proc.name} not ready at {proc.ready_url}:\n{self.log_tail(proc)}")
            time.sleep(0.5)

    @staticmethod
    def log_tail(proc: Process, lines: int = 30) -> str:
        try:
            return "\n".join(proc.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"

    def stop(self, timeout: float = 20.0) -> None:
        """SIGTERM each program (collector first, so it can flush), then SIGKILL stragglers."""
        for name in reversed(START_ORDER):
            self.stop_program(name, timeout)

    def stop_program(self, name: str, timeout: float = 20.0) -> None:
        """Stop one program of a started stack (outage and restart tests)."""
        proc = self.processes.get(name)
        if proc is not None and proc.pid is not None:
            _terminate(proc.pid, proc.popen, timeout)
            proc.pid, proc.popen = None, None

    def start_program(self, name: str, timeout: float = 120.0) -> None:
        """(Re)start one program of a started stack with its data and wait until it is ready."""
        proc = self.processes[name]
        if proc.pid is not None:
            raise StackError(f"{name} is already running (pid {proc.pid})")
        self._launch(proc, detach=False)
        self._wait_ready(proc, time.monotonic() + timeout)

    def running(self) -> dict[str, bool]:
        """Which programs answer ready right now."""
        return {
            name: get_json(proc.ready_url, timeout=2.0)[0] == 200
            for name, proc in (self.processes or self.process_specs()).items()
        }

    def __enter__(self) -> Stack:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # ---- state file (the CLI's processes outlive the CLI) ----------------
    @property
    def state_file(self) -> Path:
        return self.data_dir / STATE_FILE_NAME

    def save_state(self) -> None:
        state = {
            "host": self.host,
            "ports": dataclasses.asdict(self.ports),
            "pids": {name: proc.pid for name, proc in self.processes.items()},
            "binaries": {name: str(self.binary(name)) for name in self.processes},
            "urls": self.urls(),
        }
        self.state_file.write_text(json.dumps(state, indent=2) + "\n")

    @classmethod
    def from_state(cls, bin_dir: Path, data_dir: Path) -> Stack | None:
        path = Path(data_dir) / STATE_FILE_NAME
        if not path.exists():
            return None
        state = json.loads(path.read_text())
        stack = cls(bin_dir, data_dir, Ports(**state["ports"]), state["host"])
        specs = stack.process_specs()
        for name, pid in state["pids"].items():
            if name in specs and _is_our_process(pid, state["binaries"][name]):
                specs[name].pid = pid
        stack.processes = specs
        return stack


def _is_our_process(pid: int | None, binary: str) -> bool:
    """True if ``pid`` is alive and still runs ``binary`` (guards against PID reuse)."""
    if not pid:
        return False
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        return False
    return bool(cmdline) and cmdline[0].decode(errors="replace") == binary


def _terminate(pid: int, popen: subprocess.Popen[bytes] | None, timeout: float) -> None:
    def alive() -> bool:
        if popen is not None:
            return popen.poll() is None
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return False
        # A detached child of an earlier `up` is reaped by init; a zombie counts as gone.
        with contextlib.suppress(OSError):
            if Path(f"/proc/{pid}/stat").read_text().split(") ", 1)[1].startswith("Z"):
                return False
        return True

    for sig, wait in ((signal.SIGTERM, timeout), (signal.SIGKILL, 5.0)):
        if not alive():
            return
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, sig)
        deadline = time.monotonic() + wait
        while alive() and time.monotonic() < deadline:
            time.sleep(0.2)


# ---- command line -----------------------------------------------------------
def _print_urls(stack: Stack) -> None:
    for key, url in stack.urls().items():
        print(f"  {key:18} {url}")
    print("  app environment:")
    for key, value in stack.app_env().items():
        print(f"    export {key}={value}")


def cmd_up(args: argparse.Namespace) -> int:
    existing = Stack.from_state(args.bin_dir, args.data_dir)
    if existing is not None and any(p.pid for p in existing.processes.values()):
        if all(p.pid for p in existing.processes.values()) and all(existing.running().values()):
            print("stack already up:")
            _print_urls(existing)
            return 0
        print("stack partly running; run `down` first:")
        _print_status(existing)
        return 1
    stack = Stack(args.bin_dir, args.data_dir, Ports(), args.host)
    try:
        stack.start(timeout=args.timeout, detach=True)
    except StackError as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    stack.save_state()
    print(f"stack up (logs in {stack.data_dir / 'logs'}):")
    _print_urls(stack)
    return 0


def cmd_down(args: argparse.Namespace) -> int:
    stack = Stack.from_state(args.bin_dir, args.data_dir)
    if stack is None:
        print("stack not running (no state file)")
        return 0
    stack.stop()
    stack.state_file.unlink(missing_ok=True)
    print("stack down")
    return 0


def _print_status(stack: Stack) -> bool:
    ready = stack.running()
    for name, proc in stack.processes.items():
        state = "ready" if ready[name] else ("running, not ready" if proc.pid else "stopped")
        pid = f"pid {proc.pid}" if proc.pid else ""
        print(f"  {name:11} {state:19} {pid:12} {proc.ready_url}")
    return all(ready.values())


def cmd_status(args: argparse.Namespace) -> int:
    stack = Stack.from_state(args.bin_dir, args.data_dir)
    if stack is None:
        print("stack not running (no state file)")
        return 1
    ok = _print_status(stack)
    return 0 if ok else 1


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="stack.py", description=__doc__.split("\n\n")[0])
    parser.add_argument("command", choices=["up", "down", "status"])
    parser.add_argument("--bin-dir", type=Path, default=DEFAULT_BIN_DIR)
    parser.add_argument("--data-dir", type=Path, default=DEFAULT_DATA_DIR)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--timeout", type=float, default=120.0, help="seconds to wait for each program")
    args = parser.parse_args(argv)
    args.data_dir.mkdir(parents=True, exist_ok=True)
    return {"up": cmd_up, "down": cmd_down, "status": cmd_status}[args.command](args)


if __name__ == "__main__":
    sys.exit(main())
