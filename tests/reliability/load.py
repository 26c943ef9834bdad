"""Load for the reliability tests: a kept-alive client that times each request, percentiles,
the app's resident set size, and the warning lines the distro printed."""

from __future__ import annotations

import http.client
import json
import math
import time
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from tests.harness import App

# Loggers of the app itself and of the per-request lines: not the distro's warnings.
APP_LOGGERS = frozenset({"orders", "inventory", "otel_distro.request"})
EXPORTER_LOGGERS = tuple(
    f"opentelemetry.exporter.otlp.proto.http.{name}" for name in ("trace_exporter", "metric_exporter", "_log_exporter")
)


@dataclass
class Timed:
    """What one client saw: each answer's status and how long it took, in seconds."""

    statuses: list[int] = field(default_factory=list)
    seconds: list[float] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)

    @property
    def sent(self) -> int:
        return len(self.statuses) + len(self.errors)

    def served(self, status: int) -> int:
        return self.statuses.count(status)

    def extend(self, other: Timed) -> None:
        self.statuses += other.statuses
        self.seconds += other.seconds
        self.errors += other.errors


class Client:
    """One kept-alive connection, reopened after an error; every request is timed."""

    def __init__(self, port: int, timeout: float = 30) -> None:
        self._port = port
        self._timeout = timeout
        self._connection: http.client.HTTPConnection | None = None

    def request(
        self, timed: Timed, method: str, path: str, body: bytes | None = None, headers: Mapping[str, str] | None = None
    ) -> tuple[int, http.client.HTTPMessage | None, bytes]:
        if self._connection is None:
            self._connection = http.client.HTTPConnection("127.0.0.1", self._port, timeout=self._timeout)
        all_headers = (
            {"Content-Type": "application/json", **(headers or {})} if body is not None else dict(headers or {})
        )
        started = time.perf_counter()
        try:
            self._connection.request(method, path, body=body, headers=all_headers)
            response = self._connection.getresponse()
            content = response.read()
        except (OSError, http.client.HTTPException) as error:
            timed.errors.append(f"{method} {path[:60]}: {error!r}")
            self.close()
            return 0, None, b""
        timed.seconds.append(time.perf_counter() - started)
        timed.statuses.append(response.status)
        if response.will_close:
            self.close()
        return response.status, response.headers, content

    def close(self) -> None:
        if self._connection is not None:
            self._connection.close()
            self._connection = None


def percentile(values: Iterable[float], q: float) -> float:
    """The q-th percentile (0-100), nearest rank."""
    ordered = sorted(values)
    if not ordered:
        raise ValueError("no values")
    rank = max(math.ceil(q / 100 * len(ordered)), 1)
    return ordered[rank - 1]


def ms(seconds: float) -> str:
    return f"{seconds * 1000:.2f} ms"


def rss_kib(app: App) -> int:
    for line in Path(f"/proc/{app.process.pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise AssertionError("no VmRSS")


def json_lines(text: str) -> list[dict[str, object]]:
    """Every line of the distro's console output that is a JSON object (servers print plain lines too)."""
    return [json.loads(line) for line in text.splitlines() if line.startswith("{")]


def warnings_by_logger(text: str) -> Counter[str]:
    """WARNING and worse lines the distro printed, per logger, leaving out the app's own."""
    return Counter(
        str(line["logger"])
        for line in json_lines(text)
        if line.get("level") in ("WARNING", "ERROR", "CRITICAL") and line.get("logger") not in APP_LOGGERS
    )
