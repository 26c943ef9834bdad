"""CPU cost per request on the request path, without a server, a socket or a load generator.

    .venv/bin/python benchmarks/request_path.py                    # 5 interleaved rounds
    .venv/bin/python benchmarks/request_path.py --requests 3000 --rounds 3 --frameworks flask
    .venv/bin/python benchmarks/request_path.py --only ours --tree before=/tmp/a --tree after=/tmp/b

`--tree NAME=DIR[,VAR=value...]` adds a variant `ours@NAME` importing `otel_distro` from DIR (for
example a `git archive` of a commit) with those variables, so versions of the code are compared
interleaved in one run.

`benchmarks/apps/drive.py` calls the hello app directly (ASGI scope / WSGI environ) in a loop,
plain or under `opentelemetry-instrument`, exporting to the real collector. Each variant runs
in its own process, interleaved with the others; the table shows the median CPU µs per
request on the request thread and for the whole process (the batch threads' encoding and
export included, after a final flush), each against the uninstrumented app of the same run.

It is steadier than `run.py` (no wrk, no sockets, no scheduler between two processes) and so
the tool to compare two versions of the request path; `run.py` remains the end-to-end
figure. Not a pass/fail test.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import run

VARIANTS = ("none", "stock", "ours", "stock+no-export", "ours+no-export", "ours+access_log=off")


def _variant(framework: str, name: str, trees: dict[str, str] | None = None) -> run.Variant:
    kind = name.split("+")[0].split("@")[0]
    env: tuple[tuple[str, str], ...] = ()
    if "@" in name:
        directory, *pairs = (trees or {})[name.split("@", 1)[1]].split(",")  # DIR[,VAR=value...]
        env = (("PYTHONPATH", directory), *((k, v) for k, _, v in (pair.partition("=") for pair in pairs)))
    if name.endswith("+no-export"):
        env = run._NO_EXPORT
    elif name == "ours+access_log=off":
        env = (("OTEL_DISTRO_ACCESS_LOG", "off"),)
    return run.Variant(framework, name, kind, env)


def measure(variant: run.Variant, requests: int, sink: run.Sink, work_dir: Path) -> dict[str, float]:
    bin_dir = (run.STOCK_VENV if variant.kind == "stock" else run.OURS_VENV) / "bin"
    result = work_dir / "result.json"
    argv = [str(bin_dir / "python"), "drive.py", variant.framework, str(requests), variant.path, str(result)]
    if variant.kind != "none":
        argv = [str(bin_dir / "opentelemetry-instrument"), *argv]
    service = f"path-{variant.framework}-{variant.name}".replace("+", "-").replace("=", "-").replace("@", "-")
    subprocess.run(
        argv,
        env=run._env(variant, service, sink.endpoint),
        cwd=run.APPS,
        stdout=subprocess.DEVNULL,
        check=True,
    )
    measured: dict[str, float] = json.loads(result.read_text())
    return measured


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--requests", type=int, default=5000, help="measured requests per run")
    parser.add_argument("--frameworks", default="fastapi,flask")
    parser.add_argument("--only", default=",".join(VARIANTS), help="comma-separated variant names")
    parser.add_argument("--tree", action="append", default=[], help="NAME=DIR[,VAR=value...], repeatable")
    args = parser.parse_args(argv)

    names = [n for n in args.only.split(",") if n]
    if "none" not in names:
        names.insert(0, "none")
    trees = dict(tree.split("=", 1) for tree in args.tree)
    names += [f"ours@{name}" for name in trees]
    if any(n.startswith("stock") for n in names):
        run.ensure_stock_venv()
    chosen = [_variant(f, n, trees) for f in args.frameworks.split(",") for n in names]
    run.RESULTS.mkdir(parents=True, exist_ok=True)
    work_dir = Path(tempfile.mkdtemp(prefix="path-", dir=run.RESULTS))
    sink = run.Sink(work_dir)
    samples: dict[str, list[dict[str, float]]] = {v.key: [] for v in chosen}
    try:
        for round_no in range(1, args.rounds + 1):
            for variant in chosen:
                got = measure(variant, args.requests, sink, work_dir)
                samples[variant.key].append(got)
                print(
                    f"[{round_no}/{args.rounds}] {variant.key:<28} thread {got['thread_us']:7.1f} µs  "
                    f"process {got['process_us']:7.1f} µs",
                    flush=True,
                )
    finally:
        sink.stop()

    print("\n| variant | request thread µs (x none) | whole process µs (x none) | added µs |")
    print("|---|---|---|---|")
    for variant in chosen:
        thread = statistics.median(s["thread_us"] for s in samples[variant.key])
        process = statistics.median(s["process_us"] for s in samples[variant.key])
        base = next(samples[v.key] for v in chosen if v.framework == variant.framework and v.name == "none")
        base_thread = statistics.median(s["thread_us"] for s in base)
        base_process = statistics.median(s["process_us"] for s in base)
        print(
            f"| {variant.key} | {thread:.0f} ({thread / base_thread:.2f}) "
            f"| {process:.0f} ({process / base_process:.2f}) | {process - base_process:+.0f} |"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
