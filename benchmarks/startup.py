"""Start-up and memory benchmark: uninstrumented vs otel-distro, interleaved.

    .venv/bin/python benchmarks/startup.py                      # both frameworks, 7 rounds
    .venv/bin/python benchmarks/startup.py --rounds 11 --frameworks fastapi
    .venv/bin/python benchmarks/startup.py --also OTEL_METRICS_EXPORTER=none   # + a third variant

For each round it starts every variant once (none, ours, none, ours, ...: drift on a shared
machine hits both alike), times process start to the first 200 from `GET /hello`, sends a
few more requests, reads the server process's RSS from /proc and stops it. Telemetry goes to
the real collector (`.backends/bin/otelcol`) as in `benchmarks/run.py`, or to its stand-in.
Prints medians, and ours as a delta and a ratio against the uninstrumented run of the same
invocation. Processes, environment and command lines are `benchmarks/run.py`'s.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from run import APPS, Sink, Variant, _argv, _children, _env, _free_port, _get, _rss_mb, _terminate


def measure(variant: Variant, round_no: int, sink: Sink, requests: int) -> tuple[float, float]:
    """(seconds to the first 200, RSS in MB after `requests` more) for one start of `variant`."""
    port = _free_port()
    service = f"startup-{variant.framework}-{variant.name}-r{round_no}".replace("+", "-")
    started = time.perf_counter()
    process = subprocess.Popen(
        _argv(variant, port),
        env=_env(variant, service, sink.endpoint),
        cwd=APPS,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        startup = None
        while time.perf_counter() - started < 60 and process.poll() is None:
            if _get(port, variant.path) == 200:
                startup = time.perf_counter() - started
                break
            time.sleep(0.005)
        if startup is None:
            raise RuntimeError(f"{variant.key} did not start (exit code {process.poll()})")
        for _ in range(requests):
            _get(port, variant.path)
        pid = (_children(process.pid) or [process.pid])[0] if variant.framework == "flask" else process.pid
        return startup, _rss_mb(pid)
    finally:
        _terminate(process)


def _medians(runs: list[tuple[float, float]]) -> tuple[float, float]:
    return statistics.median(t for t, _ in runs), statistics.median(m for _, m in runs)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--frameworks", default="fastapi,flask")
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--requests", type=int, default=20, help="requests after the first 200, before RSS")
    parser.add_argument(
        "--also",
        action="append",
        default=[],
        metavar="VAR=VALUE[;VAR=VALUE]",
        help="an extra variant: ours with these variables (repeatable)",
    )
    args = parser.parse_args(argv)
    frameworks = args.frameworks.split(",")
    chosen: list[Variant] = []
    for framework in frameworks:
        chosen += [Variant(framework, "none", "none"), Variant(framework, "ours", "ours")]
        for n, extra in enumerate(args.also, 1):
            env = tuple(tuple(pair.split("=", 1)) for pair in extra.split(";"))
            chosen.append(Variant(framework, f"ours+{n}", "ours", env, note=extra))
    results: dict[str, list[tuple[float, float]]] = {v.key: [] for v in chosen}
    with tempfile.TemporaryDirectory(prefix="startup-") as work:
        sink = Sink(Path(work))
        try:
            for round_no in range(args.rounds):
                for variant in chosen:
                    results[variant.key].append(measure(variant, round_no, sink, args.requests))
                print(f"round {round_no + 1}/{args.rounds} done", file=sys.stderr)
        finally:
            sink.stop()
    print(f"{'variant':<22} {'start-up s':>10} {'delta s':>8} {'ratio':>6} {'RSS MB':>7} {'delta MB':>9}")
    baselines = {v.framework: v.key for v in chosen if v.name == "none"}
    for variant in chosen:
        base_t, base_m = _medians(results[baselines[variant.framework]])
        t, m = _medians(results[variant.key])
        row = f"{variant.key:<22} {t:10.3f} {t - base_t:+8.3f} {t / base_t:6.2f} {m:7.1f} {m - base_m:+9.1f}"
        print(f"{row}  {variant.note}".rstrip())
    return 0


if __name__ == "__main__":
    sys.exit(main())
