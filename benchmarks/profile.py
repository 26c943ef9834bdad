"""Where the per-request cost of an instrumented variant lives: py-spy under wrk load.

    .venv/bin/python benchmarks/profile.py                         # ours, FastAPI, 10 s
    .venv/bin/python benchmarks/profile.py --variant stock --framework flask

Samples only the thread holding the GIL (`py-spy record --gil`), so the shares are shares of
the one core Python can use: the request path and the export threads compete for it.
Prints self time by area and the heaviest functions (inclusive and self), and writes the
raw collapsed stacks to `benchmarks/results/profile/`. py-spy is installed into the stock venv.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import run


def ensure_py_spy() -> str:
    run.ensure_stock_venv()
    py_spy = run.STOCK_VENV / "bin" / "py-spy"
    if not py_spy.exists():
        subprocess.run(
            [str(run.STOCK_VENV / "bin" / "python"), "-m", "pip", "install", "--quiet", "py-spy"], check=True
        )
    return str(py_spy)


# Where a frame's file lives, first match wins: groups the self time into readable areas.
AREAS = (
    ("otel_distro/logs/", "otel-distro: log events, handlers"),
    ("otel_distro/scrub", "otel-distro: scrubbing"),
    ("otel_distro/request_log", "otel-distro: request-completed line"),
    ("otel_distro/request_id", "otel-distro: request IDs, response headers"),
    ("otel_distro/", "otel-distro: other"),
    ("opentelemetry/exporter/", "OTLP encoding and export"),
    ("opentelemetry/proto/", "OTLP encoding and export"),
    ("google/protobuf", "OTLP encoding and export"),
    ("/requests/", "OTLP HTTP client"),
    ("/urllib3/", "OTLP HTTP client"),
    ("/http/client", "OTLP HTTP client"),
    ("/socket.py", "OTLP HTTP client"),
    ("opentelemetry/sdk/_logs", "SDK logs"),
    ("opentelemetry/sdk/trace", "SDK spans"),
    ("opentelemetry/sdk/metrics", "SDK metrics"),
    ("opentelemetry/sdk/", "SDK other (batching, resources, attributes)"),
    ("opentelemetry/attributes", "SDK other (batching, resources, attributes)"),
    ("opentelemetry/instrumentation/", "contrib instrumentation"),
    ("opentelemetry/util/", "contrib instrumentation"),
    ("opentelemetry/semconv", "contrib instrumentation"),
    ("opentelemetry/", "OpenTelemetry API"),
    ("/logging/", "stdlib logging"),
    ("/json/", "json"),
    ("structlog/", "structlog"),
    ("/threading.py", "threads, locks"),
    ("/queue.py", "threads, locks"),
)


def _frame_name(frame: str) -> str:
    """`function (/long/path/site-packages/pkg/mod.py:123)` -> `function (pkg/mod.py)`."""
    name, _, where = frame.partition(" (")
    path = where.rsplit(":", 1)[0]
    for marker in ("site-packages/", "/lib/python3", "/work/main/"):
        if marker in path:
            path = path.split(marker, 1)[1]
    return f"{name} ({path})"


def _area(frame: str) -> str:
    for marker, area in AREAS:
        if marker in frame:
            return area
    return "app, framework, server, asyncio (uninstrumented work)"


def summarize(collapsed: Path, top: int) -> str:
    inclusive: Counter[str] = Counter()
    own: Counter[str] = Counter()
    areas: Counter[str] = Counter()
    threads: Counter[str] = Counter()
    total = 0
    for line in collapsed.read_text().splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack:
            continue
        count = int(count_text)
        frames = stack.split(";")
        threads[frames[0].split(": ", 1)[-1]] += count
        total += count
        for name in {_frame_name(f) for f in frames[1:]}:
            inclusive[name] += count
        if len(frames) > 1:
            own[_frame_name(frames[-1])] += count
            areas[_area(frames[-1])] += count
    out = [f"{total} samples holding the GIL", "", "by thread:"]
    out += [f"  {100 * n / total:5.1f}%  {t}" for t, n in threads.most_common(8)]
    out += ["", "self time by area:"]
    out += [f"  {100 * n / total:5.1f}%  {a}" for a, n in areas.most_common()]
    out += ["", "inclusive (function and what it calls):"]
    out += [f"  {100 * n / total:5.1f}%  {f}" for f, n in inclusive.most_common(top)]
    out += ["", "self:"]
    out += [f"  {100 * n / total:5.1f}%  {f}" for f, n in own.most_common(top)]
    return "\n".join(out)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--framework", default="fastapi", choices=("fastapi", "flask"))
    parser.add_argument("--variant", default="ours", help="none, stock, ours or a feature variant name")
    parser.add_argument("--duration", type=float, default=10)
    parser.add_argument("--connections", type=int, default=8)
    parser.add_argument("--rate", type=int, default=250, help="py-spy samples per second")
    parser.add_argument("--top", type=int, default=45)
    args = parser.parse_args()

    wrk = run.ensure_wrk()
    py_spy = ensure_py_spy()
    run.RESULTS.mkdir(parents=True, exist_ok=True)
    work_dir = run.RESULTS / "profile"
    work_dir.mkdir(exist_ok=True)
    chosen = [v for v in run.variants([args.framework], True, work_dir) if v.name == args.variant]
    if not chosen:
        sys.exit(f"no variant {args.variant!r}")
    variant = chosen[0]
    sink = run.Sink(work_dir)
    port = run._free_port()
    service = f"profile-{args.framework}-{args.variant}"
    output = (work_dir / f"{service}.out").open("wb")
    process = subprocess.Popen(
        run._argv(variant, port),
        env=run._env(variant, service, sink.endpoint),
        cwd=run.APPS,
        stdout=output,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    stem = f"{args.framework}-{args.variant}".replace("+", "-").replace("=", "-")
    try:
        deadline = time.monotonic() + 60
        while run._get(port, variant.path) != 200:
            if time.monotonic() > deadline or process.poll() is not None:
                sys.exit("the app did not start")
            time.sleep(0.05)
        pid = (run._children(process.pid) or [process.pid])[0] if args.framework == "flask" else process.pid
        url = f"http://127.0.0.1:{port}{variant.path}"
        run.run_wrk(wrk, url, 2, args.connections)  # warm-up
        raw = work_dir / f"{stem}.collapsed"
        spy = subprocess.Popen(
            [py_spy, "record", "--gil", "--threads", "--full-filenames", "--nonblocking",
             "-r", str(args.rate), "-d", str(args.duration), "-p", str(pid), "--format", "raw", "-o", str(raw)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )  # fmt: skip
        load = run.run_wrk(wrk, url, args.duration, args.connections)
        spy.wait(30)
    finally:
        run._terminate(process)
        sink.stop()
    print(f"{variant.key}: {load['rps']:,.0f} req/s while sampled (sampling itself slows it a little)\n")
    print(summarize(raw, args.top))
    print(f"\ncollapsed stacks (for any flame-graph tool): {raw}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
