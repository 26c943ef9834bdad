"""Agent and gateway collectors on loopback for the scale-out tests (tests/e2e/test_scale_out.py)
and the benchmark (benchmarks/scale_out.py).

A gateway runs collector/config.yaml + collector/gateway.yaml, except that sampled traces go to a `file`
exporter (one JSON line per request) instead of the traces backend, so the spans each
gateway kept can be read back; the other backends point at a closed port (their disk
queues just fill). An agent runs collector/agent.yaml as is, with OTELCOL_GATEWAYS
listing the gateways.
"""

from __future__ import annotations

import hashlib
import os
import signal
import subprocess
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from tests.harness import REPO, free_port, http, require_binary, stop_process, wait_until
from tests.otlp_files import Point, Span, read_points, read_spans

AGENT_CONFIG = REPO / "collector" / "agent.yaml"
GATEWAY_CONFIGS = [REPO / "collector" / "config.yaml", REPO / "collector" / "gateway.yaml"]

# Sampled traces to a file per process run (the file name carries the run number, so a
# restarted gateway never appends to a half-written line of the previous run).
GATEWAY_OVERRIDE = """
exporters:
  file/sampled:
    path: ${env:CAPTURE_DIR}/traces-${env:CAPTURE_RUN}.jsonl
    flush_interval: 100ms
service:
  pipelines:
    traces:
      exporters: [file/sampled]
"""

# The gateways' metrics (span metrics, service graph) to a file as well.
METRICS_OVERRIDE = """
exporters:
  file/metrics:
    path: ${env:CAPTURE_DIR}/metrics-${env:CAPTURE_RUN}.jsonl
    flush_interval: 100ms
service:
  pipelines:
    metrics:
      exporters: [file/metrics]
    metrics/http:
      exporters: [file/metrics]
"""


@dataclass
class Collector:
    """One otelcol process whose ports and directories survive restarts."""

    name: str
    configs: list[Path]
    directory: Path
    env: dict[str, str]
    grpc_port: int = field(default_factory=free_port)
    http_port: int = field(default_factory=free_port)
    health_port: int = field(default_factory=free_port)
    metrics_port: int = field(default_factory=free_port)
    process: subprocess.Popen[bytes] | None = None
    runs: int = 0

    @property
    def grpc_endpoint(self) -> str:
        return f"127.0.0.1:{self.grpc_port}"

    @property
    def http_endpoint(self) -> str:
        return f"http://127.0.0.1:{self.http_port}"

    def full_env(self) -> dict[str, str]:
        return {
            **{k: v for k, v in os.environ.items() if not k.startswith(("OTEL_", "OTELCOL_"))},
            "OTELCOL_OTLP_GRPC_ENDPOINT": self.grpc_endpoint,
            "OTELCOL_OTLP_HTTP_ENDPOINT": f"127.0.0.1:{self.http_port}",
            "OTELCOL_HEALTH_CHECK_ENDPOINT": f"127.0.0.1:{self.health_port}",
            "OTELCOL_METRICS_HOST": "127.0.0.1",
            "OTELCOL_METRICS_PORT": str(self.metrics_port),
            "OTELCOL_STORAGE_DIR": str(self.directory / "storage"),
            "CAPTURE_DIR": str(self.directory),
            "CAPTURE_RUN": str(self.runs),
            **self.env,
        }

    def start(self, timeout: float = 30) -> None:
        otelcol = require_binary("otelcol")
        self.runs += 1
        self.directory.mkdir(parents=True, exist_ok=True)
        args = [str(otelcol), *(f"--config={c}" for c in self.configs)]
        with open(self.directory / f"collector-{self.runs}.log", "wb") as log:
            self.process = subprocess.Popen(args, env=self.full_env(), stdout=log, stderr=subprocess.STDOUT)
        wait_until(self.ready, timeout, what=f"{self.name} healthy")

    def ready(self) -> bool:
        if self.process is not None and self.process.poll() is not None:
            raise AssertionError(f"{self.name} exited ({self.process.returncode}):\n{self.log_tail()}")
        try:
            return http("GET", f"http://127.0.0.1:{self.health_port}/", timeout=1)[0] == 200
        except OSError:
            return False

    def stop(self) -> None:
        if self.process is not None:
            stop_process(self.process, timeout=20)

    def kill(self) -> None:
        """SIGKILL: no shutdown, no flushing (a crash)."""
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait(10)

    def log_tail(self, lines: int = 30) -> str:
        path = self.directory / f"collector-{self.runs}.log"
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:]) if path.exists() else ""

    def spans(self) -> list[Span]:
        return [s for path in sorted(self.directory.glob("traces-*.jsonl")) for s in read_spans(path)]

    def points(self) -> list[Point]:
        return [p for path in sorted(self.directory.glob("metrics-*.jsonl")) for p in read_points(path)]


def gateway(
    directory: Path,
    name: str,
    sampling_percent: int = 100,
    slow_ms: int = 1000,
    decision_wait: str = "2s",
    override_text: str = GATEWAY_OVERRIDE,
    capture_metrics: bool = False,
) -> Collector:
    directory.mkdir(parents=True, exist_ok=True)
    overrides = []
    for text in (override_text, METRICS_OVERRIDE) if capture_metrics else (override_text,):
        path = directory / f"gateway-override-{hashlib.sha256(text.encode()).hexdigest()[:8]}.yaml"
        path.write_text(text)
        overrides.append(path)
    dead = f"127.0.0.1:{free_port()}"
    return Collector(
        name,
        [*GATEWAY_CONFIGS, *overrides],
        directory / name,
        {
            "OTELCOL_GATEWAY_ID": name,
            "OTELCOL_PROMETHEUS_REMOTE_WRITE_URL": f"http://{dead}/api/v1/write",
            "OTELCOL_LOGS_OTLP_ENDPOINT": f"http://{dead}/otlp",
            "OTELCOL_TRACES_OTLP_ENDPOINT": dead,
            "OTELCOL_TAIL_SAMPLING_PERCENT": str(sampling_percent),
            "OTELCOL_TAIL_SAMPLING_SLOW_MS": str(slow_ms),
            "OTELCOL_TAIL_SAMPLING_DECISION_WAIT": decision_wait,
            "OTELCOL_LOG_LEVEL": "warn",
        },
    )


def agent(directory: Path, name: str, gateways: Iterable[Collector], configs: Sequence[Path] = ()) -> Collector:
    return Collector(
        name,
        [AGENT_CONFIG, *configs],
        directory / name,
        {"OTELCOL_GATEWAYS": ",".join(g.grpc_endpoint for g in gateways), "OTELCOL_LOG_LEVEL": "warn"},
    )


def stop_all(collectors: Iterable[Collector]) -> None:
    for c in collectors:
        c.stop()


# ---------------------------------------------------------------------------------------
# the generator: traces whose parent span comes from one service (through agent A) and
# whose child span comes from another service (through agent B), like a real call
# ---------------------------------------------------------------------------------------
@dataclass
class Sent:
    """What the generator sent: trace ID -> span IDs, and the kind of each trace."""

    spans: dict[str, set[str]] = field(default_factory=dict)
    kind: dict[str, str] = field(default_factory=dict)

    def of_kind(self, *kinds: str) -> set[str]:
        return {t for t, k in self.kind.items() if k in kinds}

    def merge(self, other: Sent) -> None:
        self.spans.update(other.spans)
        self.kind.update(other.kind)


class Generator:
    """Two OTel SDK tracer providers, `frontend` exporting to one agent, `backend` to another."""

    def __init__(self, frontend_endpoint: str, backend_endpoint: str) -> None:
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
        from opentelemetry.sdk.resources import Resource
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import BatchSpanProcessor

        self.providers = []
        # The backend is marked as a service run with OTEL_DISTRO_HTTP_METRICS=collector, so the
        # gateways also derive `http.server.request.duration` from its server spans.
        resources = {
            "frontend": {"service.name": "frontend"},
            "backend": {"service.name": "backend", "otel_distro.http_metrics": "collector"},
        }
        for service, endpoint in (("frontend", frontend_endpoint), ("backend", backend_endpoint)):
            provider = TracerProvider(resource=Resource.create(resources[service]), shutdown_on_exit=False)
            provider.add_span_processor(
                BatchSpanProcessor(
                    OTLPSpanExporter(endpoint=f"{endpoint}/v1/traces", timeout=10),
                    max_queue_size=100_000,
                    max_export_batch_size=512,
                    schedule_delay_millis=100,
                )
            )
            self.providers.append(provider)
        self.frontend = self.providers[0].get_tracer("scale-out")
        # The scope the distro's FastAPI instrumentation reports under (what the gateways' filter keeps).
        self.backend = self.providers[1].get_tracer("otel_distro.http_server.fastapi")

    def send(self, count: int, error_every: int = 0, slow_every: int = 0, slow_seconds: float = 0.8) -> Sent:
        """`count` traces of two spans; every `error_every`-th has an error on the child span,
        every `slow_every`-th lasts `slow_seconds` (by its timestamps: nothing sleeps)."""
        from opentelemetry import trace
        from opentelemetry.trace import SpanKind, Status, StatusCode

        sent = Sent()
        for i in range(count):
            kind = "fast"
            if error_every and i % error_every == 0:
                kind = "error"
            elif slow_every and i % slow_every == 1:
                kind = "slow"
            start = time.time_ns()
            duration = int((slow_seconds if kind == "slow" else 0.005) * 1e9)
            parent = self.frontend.start_span("GET /checkout", kind=SpanKind.CLIENT, start_time=start)
            child = self.backend.start_span(
                "POST /charge",
                context=trace.set_span_in_context(parent),
                kind=SpanKind.SERVER,
                start_time=start + 1_000_000,
                attributes={"http.request.method": "POST", "http.route": "/charge", "url.scheme": "http"},
            )
            child.set_attribute("http.response.status_code", 500 if kind == "error" else 200)
            if kind == "error":
                child.set_status(Status(StatusCode.ERROR, "card declined"))
            child.end(end_time=start + duration - 1_000_000)
            parent.end(end_time=start + duration)
            trace_id = f"{parent.get_span_context().trace_id:032x}"
            sent.spans[trace_id] = {
                f"{parent.get_span_context().span_id:016x}",
                f"{child.get_span_context().span_id:016x}",
            }
            sent.kind[trace_id] = kind
        return sent

    def flush(self, timeout_s: float = 60) -> None:
        for provider in self.providers:
            if not provider.force_flush(int(timeout_s * 1000)):
                raise AssertionError("the generator could not flush its spans to the agents")

    def shutdown(self) -> None:
        for provider in self.providers:
            provider.shutdown()


def send_traces(frontend_endpoint: str, backend_endpoint: str, count: int, **kinds: int) -> Sent:
    """One Generator's `send(count, **kinds)`, flushed to the agents and shut down."""
    generator = Generator(frontend_endpoint, backend_endpoint)
    try:
        sent = generator.send(count, **kinds)
        generator.flush()
    finally:
        generator.shutdown()
    return sent


def spans_by_trace(gateways: Iterable[Collector]) -> dict[str, dict[str, set[str]]]:
    """trace ID -> gateway name -> span IDs that gateway exported."""
    out: dict[str, dict[str, set[str]]] = {}
    for g in gateways:
        for s in g.spans():
            out.setdefault(s.trace_id, {}).setdefault(g.name, set()).add(s.span_id)
    return out


def delivered(gateways: Sequence[Collector], sent: Sent, traces: Iterable[str] | None = None) -> bool:
    """Whether every span of the given traces (default: all sent) reached some gateway."""
    seen = spans_by_trace(gateways)
    for trace_id in sent.spans if traces is None else traces:
        got = set().union(*seen.get(trace_id, {}).values())
        if not sent.spans[trace_id] <= got:
            return False
    return True


def wait_delivered(
    gateways: Sequence[Collector], sent: Sent, timeout: float, traces: Iterable[str] | None = None
) -> None:
    wanted = list(sent.spans if traces is None else traces)
    wait_until(
        lambda: delivered(gateways, sent, wanted),
        timeout,
        interval=0.5,
        what=f"all spans of {len(wanted)} traces on the gateways",
    )
