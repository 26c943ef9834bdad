"""Where the per-request cost of an instrumented variant lives: py-spy under wrk load.

    .venv/bin/python benchmarks/profile.py                         # ours, FastAPI, 10 s
    .venv/bin/python benchmarks/profile.py --variant stock --framework flask
    .venv/bin/python benchmarks/profile.py --route order           # the realistic route
    .venv/bin/python benchmarks/profile.py --in-process            # no server: µs per request
    .venv/bin/python benchmarks/profile.py --in-process --timers --source /tmp/a --source /tmp/b

`--in-process` samples `benchmarks/apps/drive.py` (the app called in a loop, as
`request_path.py` does) instead of a server under wrk, and turns every share into µs per
request: request thread and export threads apart, and the candidate cuts of issue #14
(export processors, HTTP metric recording, the log record's OTLP conversion) summed up.
Sampling spreads time by where samples land; `--timers` measures the candidates instead:
thread-CPU clocks around each candidate function (patched on its class) in the same loop,
interleaved runs, medians, each `--source` (a `git archive` of a version) side by side.

Samples only the thread holding the GIL (`py-spy record --gil`), so the shares are shares of
the one core Python can use: the request path and the export threads compete for it.
Prints self time by area and the heaviest functions (inclusive and self), and writes the
raw collapsed stacks to `benchmarks/results/profile/`. py-spy is installed into the stock venv.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import run


def ensure_py_spy() -> str:
    found = shutil.which("py-spy")
    if found:
        return found
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
    if "/otel_distro/" in path:  # a snapshot elsewhere (--source)
        path = "otel_distro/" + path.split("/otel_distro/", 1)[1]
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


# Inclusive cost of these functions (first match in a stack), per candidate cut: what it
# could save on the request thread if that work left it or went away.
CANDIDATES = (
    ("export processors: span on_end (request thread)", "on_end (opentelemetry/sdk/trace/export/"),
    ("export processors: log on_emit (request thread)", "on_emit (opentelemetry/sdk/_logs/_internal/export/"),
    ("export processors: ours, span on_end (request thread)", "SpanQueueProcessor.on_end (otel_distro/export_queue.py"),
    ("export processors: ours, log on_emit (request thread)", "LogQueueProcessor.on_emit (otel_distro/export_queue.py"),
    ("HTTP metrics: Recorder.record (request thread)", "Recorder.record (otel_distro/http_server/_recorder.py"),
    ("log record to OTLP: Emitter.emit (request thread)", "Emitter.emit (otel_distro/logs/_otlp.py"),
    ("log event: EventBuilder.from_record (request thread)", "EventBuilder.from_record (otel_distro/logs/_event.py"),
    ("log line: render_json (request thread)", "render_json (otel_distro/logs/_event.py"),
)


# Frames only the export threads run (the batch workers, the metric reader).
_EXPORT_FRAMES = ("otel_distro/export_queue.py", "opentelemetry/sdk/_shared_internal/", "_ticker (")


def summarize_in_process(collapsed: Path, process_us: float, top: int) -> str:
    """µs per request by thread, candidate and function; `process_us` is the measured whole-process
    CPU per request, spread over the samples taken while the requests ran (start-up left out)."""
    inclusive: dict[str, Counter[str]] = {"request": Counter(), "export": Counter()}
    candidates: Counter[str] = Counter()
    threads: Counter[str] = Counter()
    total = 0
    for line in collapsed.read_text().splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack:
            continue
        count = int(count_text)
        frames = stack.split(";")
        thread = frames[0].split(": ", 1)[-1]
        if thread == "MainThread":
            if not any("many (" in f and "drive.py" in f for f in frames):
                continue  # start-up, warm-up flush, the final flush: not per request
            where = "request"
        elif thread.startswith(("Otel", "otel")) or any(marker in f for f in frames for marker in _EXPORT_FRAMES):
            where = "export"  # py-spy does not always get a thread's name: known by its frames then
        else:
            continue  # start-up threads
        threads[f"{where}: {thread}"] += count
        total += count
        names = {_frame_name(f) for f in frames[1:]}
        for name in names:
            inclusive[where][name] += count
        if where == "request":
            for label, marker in CANDIDATES:
                if any(marker in name for name in names):
                    candidates[label] += count
    if not total:
        return "no samples"
    per_sample = process_us / total

    def us(n: int) -> str:
        return f"{n * per_sample:7.1f} µs"

    out = [f"{total} samples, {process_us:.0f} µs CPU per request (whole process, measured without py-spy)", ""]
    out += ["by thread:"] + [f"  {us(n)}  {t}" for t, n in threads.most_common()]
    out += ["", "candidate cuts, request thread (inclusive):"] + [
        f"  {us(n)}  {c}" for c, n in candidates.most_common()
    ]
    for where in ("request", "export"):
        out += ["", f"{where} thread(s), inclusive:"]
        out += [f"  {us(n)}  {f}" for f, n in inclusive[where].most_common(top)]
    return "\n".join(out)


# Candidate functions timed by --timers: (module, class, method, label). Missing ones are skipped.
TIMERS = (
    ("opentelemetry.sdk.trace.export", "BatchSpanProcessor", "on_end", "export hand-off, span: SDK BatchSpanProcessor"),
    ("opentelemetry.sdk._logs.export", "BatchLogRecordProcessor", "on_emit", "export hand-off, log: SDK processor"),
    ("otel_distro.export_queue", "SpanQueueProcessor", "on_end", "export hand-off, span: ours"),
    ("otel_distro.export_queue", "LogQueueProcessor", "on_emit", "export hand-off, log: ours"),
    ("otel_distro.http_server._recorder", "Recorder", "record", "HTTP metrics: Recorder.record"),
    ("otel_distro.logs._otlp", "Emitter", "emit", "log to OTLP: Emitter.emit (hand-off included)"),
    ("otel_distro.logs._otlp", "OTLPHandler", "emit", "log to OTLP: OTLPHandler.emit (event included)"),
    ("otel_distro.logs._event", "EventBuilder", "from_record", "log event: EventBuilder.from_record"),
    ("otel_distro.logs._stdlib", "ConsoleHandler", "handle", "stdout line: ConsoleHandler.handle"),
)


def _timed_child(framework: str, requests: int, path: str, result_file: str) -> None:
    """In the instrumented process (started with the auto-instrumentation on PYTHONPATH)."""
    import importlib

    totals: dict[str, list[int]] = {}

    def patch(owner: Any, name: str, label: str) -> None:
        original = getattr(owner, name)
        acc = totals[label] = [0, 0]
        clock = time.thread_time_ns

        def timed(*args: Any, **kwargs: Any) -> Any:
            started = clock()
            try:
                return original(*args, **kwargs)
            finally:
                acc[0] += clock() - started
                acc[1] += 1

        setattr(owner, name, timed)

    for module, cls, method, label in TIMERS:
        try:
            patch(getattr(importlib.import_module(module), cls), method, label)
        except (ImportError, AttributeError):
            continue

    class _Probe:
        def noop(self) -> None:
            return None

    patch(_Probe, "noop", "timer overhead")
    probe = _Probe()
    for _ in range(20000):
        probe.noop()
    overhead = totals.pop("timer overhead")
    per_call_ns = overhead[0] / overhead[1]

    sys.path.insert(0, str(run.APPS))
    import drive  # type: ignore[import-not-found]

    call = drive._asgi_caller(path) if framework == "fastapi" else drive._wsgi_caller(path)
    call(max(200, requests // 10))
    drive._flush()
    for acc in totals.values():
        acc[0] = acc[1] = 0
    process, thread = time.process_time(), time.thread_time()
    call(requests)
    thread = time.thread_time() - thread
    drive._flush()
    process = time.process_time() - process
    result: dict[str, Any] = {"thread_us": thread / requests * 1e6, "process_us": process / requests * 1e6}
    result["timers"] = {
        label: [max(ns - calls * per_call_ns, 0) / requests / 1e3, calls / requests]
        for label, (ns, calls) in totals.items()
        if calls
    }
    Path(result_file).write_text(json.dumps(result))


def timers(args: argparse.Namespace, env: dict[str, str], auto: Path, work_dir: Path) -> None:
    sources = args.source or [""]
    runs: dict[str, list[dict[str, Any]]] = {source: [] for source in sources}
    result = work_dir / "timers.json"
    for round_no in range(args.runs):
        for source in sources:
            directory, *pairs = source.split(",")  # DIR[,VAR=value...]: a version and its own variables
            run_env = {**env, **dict(pair.split("=", 1) for pair in pairs)}
            run_env["PYTHONPATH"] = os.pathsep.join([str(auto), *([directory] if directory else []), str(run.APPS)])
            argv = [str(run.OURS_VENV / "bin" / "python"), str(Path(__file__).resolve()), "--timed-child",
                    args.framework, str(args.requests), "/hello", str(result)]  # fmt: skip
            subprocess.run(argv, env=run_env, cwd=run.APPS, stdout=subprocess.DEVNULL, check=True)
            runs[source].append(json.loads(result.read_text()))
            print(
                f"[{round_no + 1}/{args.runs}] {source or 'work tree'}: {runs[source][-1]['thread_us']:.0f} µs",
                flush=True,
            )
    for source, results in runs.items():
        print(f"\n{source or 'work tree'}: medians of {len(results)} runs, µs per request (calls per request)")
        for key in ("thread_us", "process_us"):
            print(f"  {statistics.median(r[key] for r in results):7.1f}  {key}")
        labels = dict.fromkeys(label for r in results for label in r["timers"])
        for label in labels:
            values = [r["timers"][label] for r in results if label in r["timers"]]
            print(f"  {statistics.median(v[0] for v in values):7.2f}  ({values[0][1]:.2f})  {label}")


def _unsampled_process_us(argv: list[str], env: dict[str, str], work_dir: Path) -> float:
    result = work_dir / "in-process-plain.json"
    subprocess.run([*argv[:-1], str(result)], env=env, cwd=run.APPS, stdout=subprocess.DEVNULL, check=True)
    return float(json.loads(result.read_text())["process_us"])


def in_process(args: argparse.Namespace) -> int:
    py_spy = ensure_py_spy()
    run.RESULTS.mkdir(parents=True, exist_ok=True)
    work_dir = run.RESULTS / "profile"
    work_dir.mkdir(exist_ok=True)
    env_pairs = tuple(tuple(pair.split("=", 1)) for pair in args.env)
    variant = run.Variant(args.framework, args.variant, "ours", env_pairs)
    sink = run.Sink(work_dir)
    env = run._env(variant, f"profile-in-process-{args.framework}", sink.endpoint)
    # What opentelemetry-instrument does, without its exec (py-spy would lose the process).
    auto = run.OURS_VENV / "lib" / f"python{sys.version_info[0]}.{sys.version_info[1]}" / "site-packages"
    auto = auto / "opentelemetry" / "instrumentation" / "auto_instrumentation"
    if args.timers:
        try:
            timers(args, env, auto, work_dir)
        finally:
            sink.stop()
        return 0
    source = args.source[0] if args.source else None
    env["PYTHONPATH"] = os.pathsep.join([str(auto), *([source] if source else []), str(run.APPS)])
    tag = Path(source).name if source else "tree"
    stem = f"in-process-{args.framework}-{args.variant}-{tag}".replace("+", "-").replace("=", "-")
    raw = work_dir / f"{stem}.collapsed"
    result = work_dir / f"{stem}.json"
    argv = [
        str(run.OURS_VENV / "bin" / "python"),
        "drive.py",
        args.framework,
        str(args.requests),
        "/hello",
        str(result),
    ]
    try:
        process_us = statistics.median(_unsampled_process_us(argv, env, work_dir) for _ in range(args.plain_runs))
        subprocess.run(
            [py_spy, "record", "--gil", "--threads", "--full-filenames", "-r", str(args.rate),
             "--format", "raw", "-o", str(raw), "--", *argv],
            env=env, cwd=run.APPS, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=True,
        )  # fmt: skip
    finally:
        sink.stop()
    print(f"{variant.key} in-process, {args.requests} requests, env {dict(env_pairs) or '-'}\n")
    print(summarize_in_process(raw, process_us, args.top))
    print(f"\ncollapsed stacks: {raw}")
    return 0


def main() -> int:
    if len(sys.argv) == 6 and sys.argv[1] == "--timed-child":
        _timed_child(sys.argv[2], int(sys.argv[3]), sys.argv[4], sys.argv[5])
        return 0
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--framework", default="fastapi", choices=("fastapi", "flask"))
    parser.add_argument("--variant", default="ours", help="none, stock, ours or a feature variant name")
    parser.add_argument("--route", default="hello", choices=("hello", "order"), help="server mode: the route driven")
    parser.add_argument("--duration", type=float, default=10)
    parser.add_argument("--connections", type=int, default=8)
    parser.add_argument("--rate", type=int, default=250, help="py-spy samples per second")
    parser.add_argument("--top", type=int, default=45)
    parser.add_argument("--in-process", action="store_true", help="drive.py under py-spy, µs per request")
    parser.add_argument("--requests", type=int, default=30000, help="--in-process: requests sampled")
    parser.add_argument("--plain-runs", type=int, default=3, help="--in-process: unsampled runs for the CPU figure")
    parser.add_argument("--env", action="append", default=[], help="--in-process: VAR=value for ours (repeatable)")
    parser.add_argument(
        "--source",
        action="append",
        default=[],
        help="--in-process: import otel_distro from DIR[,VAR=value...] (repeatable)",
    )
    parser.add_argument("--timers", action="store_true", help="--in-process: time the candidate functions instead")
    parser.add_argument("--runs", type=int, default=5, help="--timers: interleaved runs per source")
    args = parser.parse_args()
    if args.in_process:
        return in_process(args)

    wrk = run.ensure_wrk()
    py_spy = ensure_py_spy()
    run.RESULTS.mkdir(parents=True, exist_ok=True)
    work_dir = run.RESULTS / "profile"
    work_dir.mkdir(exist_ok=True)
    routes = (args.route,)
    chosen = [v for v in run.variants([args.framework], True, work_dir, routes=routes) if v.name == args.variant]
    if not chosen:
        sys.exit(f"no variant {args.variant!r}")
    variant = chosen[0]
    sink = run.Sink(work_dir)
    stub = run.Stub(work_dir) if args.route == "order" else None
    script = run.ORDER_SCRIPT if args.route == "order" else None
    port = run._free_port()
    service = f"profile-{args.framework}-{args.variant}"
    output = (work_dir / f"{service}.out").open("wb")
    process = subprocess.Popen(
        run._argv(variant, port),
        env=run._env(variant, service, sink.endpoint, stub.url if stub else ""),
        cwd=run.APPS,
        stdout=output,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    stem = f"{args.framework}-{args.variant}".replace("+", "-").replace("=", "-")
    try:
        deadline = time.monotonic() + 60
        while run._get(port, variant.probe_path) != 200:
            if time.monotonic() > deadline or process.poll() is not None:
                sys.exit("the app did not start")
            time.sleep(0.05)
        pid = (run._children(process.pid) or [process.pid])[0] if args.framework == "flask" else process.pid
        url = f"http://127.0.0.1:{port}{variant.path}"
        run.run_wrk(wrk, url, 2, args.connections, script)  # warm-up
        raw = work_dir / f"{stem}.collapsed"
        seconds = str(max(1, round(args.duration)))  # py-spy takes whole seconds only
        spy = subprocess.Popen(
            [py_spy, "record", "--gil", "--threads", "--full-filenames", "--nonblocking",
             "-r", str(args.rate), "-d", seconds, "-p", str(pid), "--format", "raw", "-o", str(raw)],
            stdout=subprocess.DEVNULL,
            stderr=None,
        )  # fmt: skip
        load = run.run_wrk(wrk, url, args.duration, args.connections, script)
        spy.wait(30)
    finally:
        run._terminate(process)
        sink.stop()
        if stub is not None:
            stub.stop()
    print(f"{variant.key}: {load['rps']:,.0f} req/s while sampled (sampling itself slows it a little)\n")
    print(summarize(raw, args.top))
    print(f"\ncollapsed stacks (for any flame-graph tool): {raw}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
