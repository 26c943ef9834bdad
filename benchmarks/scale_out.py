"""Throughput of one collector vs the agent -> gateway tier (docs/scale-out.md). Not a test.

    .venv/bin/python benchmarks/scale_out.py                   # single, then 1 agent + 2 gateways
    .venv/bin/python benchmarks/scale_out.py --duration 30 --agents 2 --gateways 3

Every collector is the real `otelcol` (scripts/backends install) on 127.0.0.1: the single
collector and the gateways run collector/config.yaml (tail sampling at 100 %, span metrics,
service graph, redaction; sampled traces go to a `debug` exporter instead of a traces
backend, the metrics and logs backends are a closed port), the agents collector/agent.yaml.
A sender replays pre-encoded OTLP/HTTP protobuf requests (500 spans each: 250 two-span
traces, parent `frontend`, child `backend`, unique trace IDs) as fast as the collectors
answer, from --senders threads. For --duration seconds it counts the spans accepted
(HTTP 200), then waits for the gateways to export them all (their own
otelcol_exporter_sent_spans metric), and reads every collector's CPU time and peak RSS.

On a small machine the sender competes with the collectors for the same cores: compare
the spans per collector CPU-second (the per-core figure), not only spans/s.
"""

from __future__ import annotations

import argparse
import http.client
import os
import random
import sys
import tempfile
import threading
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

import psutil

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from tests.e2e.tiers import Collector, agent, gateway, stop_all  # noqa: E402

SINK_OVERRIDE = """
exporters:
  debug/sink:
    verbosity: basic
service:
  pipelines:
    traces:
      exporters: [debug/sink]
"""

# --memory-queue: the agents' queues in memory instead of on disk (to see what the disk costs;
# an agent restart then loses what it holds).
MEMORY_QUEUE_OVERRIDE = """
exporters:
  load_balancing/traces: &memory
    sending_queue:
      storage: null
  load_balancing/logs: *memory
  load_balancing/metrics: *memory
"""

SPANS_PER_REQUEST = 500


def encode_requests(count: int, seed: int) -> list[bytes]:
    from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
    from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue
    from opentelemetry.proto.resource.v1.resource_pb2 import Resource
    from opentelemetry.proto.trace.v1.trace_pb2 import ResourceSpans, ScopeSpans, Span

    rnd = random.Random(seed)
    now = time.time_ns()
    bodies = []
    for _ in range(count):
        request = ExportTraceServiceRequest()
        front = ResourceSpans(
            resource=Resource(attributes=[KeyValue(key="service.name", value=AnyValue(string_value="frontend"))])
        )
        back = ResourceSpans(
            resource=Resource(attributes=[KeyValue(key="service.name", value=AnyValue(string_value="backend"))])
        )
        front_spans, back_spans = ScopeSpans(), ScopeSpans()
        for _ in range(SPANS_PER_REQUEST // 2):
            trace_id = rnd.randbytes(16)
            parent_id, child_id = rnd.randbytes(8), rnd.randbytes(8)
            attrs = [
                KeyValue(key="http.request.method", value=AnyValue(string_value="GET")),
                KeyValue(key="http.response.status_code", value=AnyValue(int_value=200)),
                KeyValue(key="url.path", value=AnyValue(string_value="/checkout")),
            ]
            front_spans.spans.append(
                Span(
                    trace_id=trace_id,
                    span_id=parent_id,
                    name="GET /checkout",
                    kind=Span.SPAN_KIND_CLIENT,
                    start_time_unix_nano=now,
                    end_time_unix_nano=now + 5_000_000,
                    attributes=attrs,
                )
            )
            back_spans.spans.append(
                Span(
                    trace_id=trace_id,
                    span_id=child_id,
                    parent_span_id=parent_id,
                    name="GET /checkout",
                    kind=Span.SPAN_KIND_SERVER,
                    start_time_unix_nano=now + 1_000_000,
                    end_time_unix_nano=now + 4_000_000,
                    attributes=attrs,
                )
            )
        front.scope_spans.append(front_spans)
        back.scope_spans.append(back_spans)
        request.resource_spans.extend([front, back])
        bodies.append(request.SerializeToString())
    return bodies


@dataclass
class Sender:
    ports: list[int]
    bodies: list[bytes]
    interval: float = 0.0  # seconds between one thread's requests (0: as fast as answered)
    accepted: int = 0
    refused: int = 0
    stop: threading.Event = field(default_factory=threading.Event)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def run(self, index: int) -> None:
        port = self.ports[index % len(self.ports)]
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        i = index
        next_at = time.monotonic()
        while not self.stop.is_set():
            if self.interval:
                next_at += self.interval
                delay = next_at - time.monotonic()
                if delay > 0:
                    time.sleep(delay)
            body = self.bodies[i % len(self.bodies)]
            i += 7
            try:
                conn.request("POST", "/v1/traces", body, {"Content-Type": "application/x-protobuf"})
                response = conn.getresponse()
                response.read()
                ok = response.status == 200
            except OSError:
                conn.close()
                conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
                ok = False
            with self.lock:
                if ok:
                    self.accepted += SPANS_PER_REQUEST
                else:
                    self.refused += SPANS_PER_REQUEST
        conn.close()


def metric_sum(collector: Collector, prefix: str, label: str = "") -> float:
    """Sum of the collector's own metric series named `prefix...` (and carrying `label`)."""
    text = urllib.request.urlopen(f"http://127.0.0.1:{collector.metrics_port}/metrics", timeout=5).read().decode()
    total = 0.0
    for line in text.splitlines():
        if line.startswith(prefix) and label in line:
            total += float(line.rsplit(" ", 1)[1])
    return total


def sent_spans(collector: Collector, exporter: str) -> float:
    return metric_sum(collector, "otelcol_exporter_sent_spans", f'exporter="{exporter}"')


# Traces the tail-sampling processor evicted before deciding (its buffer, num_traces, was full).
TOO_EARLY = "otelcol_processor_tail_sampling_sampling_trace_dropped_too_early"


def cpu_seconds(collector: Collector) -> float:
    assert collector.process is not None
    t = psutil.Process(collector.process.pid).cpu_times()
    return t.user + t.system


def run_setup(label: str, workdir: Path, agents_n: int, gateways_n: int, args: argparse.Namespace) -> dict[str, object]:
    gateways = [
        gateway(workdir, f"gateway-{i + 1}", decision_wait=args.decision_wait, override_text=SINK_OVERRIDE)
        for i in range(gateways_n)
    ]
    extra = []
    if args.memory_queue:
        extra.append(workdir / "agent-memory-queue.yaml")
        extra[0].parent.mkdir(parents=True, exist_ok=True)
        extra[0].write_text(MEMORY_QUEUE_OVERRIDE)
    agents = [agent(workdir, f"agent-{i + 1}", gateways, configs=extra) for i in range(agents_n)]
    collectors = [*gateways, *agents]
    entry = agents or gateways
    try:
        for c in collectors:
            c.start()
        bodies = encode_requests(args.requests, seed=hash(label) & 0xFFFF)
        interval = args.senders * SPANS_PER_REQUEST / args.rate if args.rate else 0.0
        sender = Sender([c.http_port for c in entry], bodies, interval)
        threads = [threading.Thread(target=sender.run, args=(i,), daemon=True) for i in range(args.senders)]
        me = psutil.Process()
        for t in threads:
            t.start()
        time.sleep(args.warmup)
        with sender.lock:
            accepted0 = sender.accepted
        cpu0 = {c.name: cpu_seconds(c) for c in collectors}
        me0 = me.cpu_times().user + me.cpu_times().system
        t0 = time.monotonic()
        peak_rss = {c.name: 0 for c in collectors}
        while time.monotonic() - t0 < args.duration:
            for c in collectors:
                assert c.process is not None
                peak_rss[c.name] = max(peak_rss[c.name], psutil.Process(c.process.pid).memory_info().rss)
            time.sleep(0.5)
        elapsed = time.monotonic() - t0
        with sender.lock:
            accepted = sender.accepted - accepted0
        cpu = {c.name: cpu_seconds(c) - cpu0[c.name] for c in collectors}
        me_cpu = me.cpu_times().user + me.cpu_times().system - me0
        sender.stop.set()
        for t in threads:
            t.join(35)
        # Everything accepted must come out of the gateways (tail sampling keeps 100 %).
        total_accepted = sender.accepted
        deadline = time.monotonic() + 120
        exported = 0.0
        while time.monotonic() < deadline:
            exported = sum(sent_spans(g, "debug/sink") for g in gateways)
            if exported >= total_accepted:
                break
            time.sleep(1)
        return {
            "setup": label,
            "spans_per_s": accepted / elapsed,
            "collector_cpu_cores": sum(cpu.values()) / elapsed,
            "spans_per_cpu_s": accepted / max(sum(cpu.values()), 1e-9),
            "sender_cpu_cores": me_cpu / elapsed,
            "cpu": {k: v / elapsed for k, v in cpu.items()},
            "rss_mib": {k: v / 2**20 for k, v in peak_rss.items()},
            "accepted_total": total_accepted,
            "exported_total": exported,
            "refused_total": sender.refused,
            "traces_dropped_too_early": sum(metric_sum(g, TOO_EARLY) for g in gateways),
        }
    finally:
        stop_all([*agents, *gateways])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--duration", type=float, default=20, help="measured seconds per setup")
    parser.add_argument("--warmup", type=float, default=5)
    parser.add_argument("--senders", type=int, default=4, help="sending threads")
    parser.add_argument("--requests", type=int, default=800, help="distinct pre-encoded requests (500 spans each)")
    parser.add_argument("--agents", type=int, default=1)
    parser.add_argument("--gateways", type=int, default=2)
    parser.add_argument("--rate", type=float, default=0, help="offered spans/s (default: as fast as accepted)")
    parser.add_argument("--memory-queue", action="store_true", help="agents queue in memory, not on disk")
    parser.add_argument("--skip-single", action="store_true", help="measure the tier only")
    parser.add_argument("--decision-wait", default="2s", help="the gateways' tail-sampling decision_wait")
    args = parser.parse_args()
    if not os.access(REPO / ".backends" / "bin" / "otelcol", os.X_OK):
        print("otelcol missing: run `scripts/backends install otelcol`", file=sys.stderr)
        return 1

    print(f"machine: {os.cpu_count()} CPUs, otelcol {REPO / '.backends/bin/otelcol'}")
    results = []
    with tempfile.TemporaryDirectory(prefix="scale-out-bench-") as tmp:
        if not args.skip_single:
            results.append(run_setup("single collector", Path(tmp) / "single", 0, 1, args))
        label = f"{args.agents} agent(s) + {args.gateways} gateways" + (" (memory q)" if args.memory_queue else "")
        results.append(run_setup(label, Path(tmp) / "tier", args.agents, args.gateways, args))

    print()
    print(f"{'setup':<28} {'spans/s':>9} {'coll. CPU':>9} {'spans/CPU-s':>11} {'sender CPU':>10}  exported/accepted")
    for r in results:
        print(
            f"{r['setup']:<28} {r['spans_per_s']:>9.0f} {r['collector_cpu_cores']:>9.2f} "
            f"{r['spans_per_cpu_s']:>11.0f} {r['sender_cpu_cores']:>10.2f}  "
            f"{r['exported_total']:.0f}/{r['accepted_total']} (refused {r['refused_total']}, "
            f"traces evicted unsampled {r['traces_dropped_too_early']:.0f})"
        )
    for r in results:
        per = ", ".join(
            f"{name} {r['cpu'][name]:.2f} cores {r['rss_mib'][name]:.0f} MiB"  # type: ignore[index]
            for name in r["cpu"]  # type: ignore[union-attr]
        )
        print(f"  {r['setup']}: {per}")
    print(f"\n{' '.join(sys.argv)}  (duration {args.duration:g}s, {args.senders} senders, rate {args.rate or 'max'})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
