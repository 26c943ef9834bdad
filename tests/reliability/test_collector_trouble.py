"""A collector in trouble: the app keeps serving at the same speed, memory stays bounded, each
exporter warns once, and SIGTERM still exits within OTEL_DISTRO_SHUTDOWN_TIMEOUT.

Four kinds of trouble: a collector that never answers; a fake OTLP/HTTP endpoint answering
503 with Retry-After, 429, or 400 with a body that is not protobuf; and the real collector
restarted under load, after which every span must still arrive (a refused connection is the
easy case; tests/integration)."""

from __future__ import annotations

import os
import socket
import subprocess
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import TypeVar

import pytest

from tests.harness import (
    EXAMPLES,
    REPO,
    App,
    Capture,
    app_env,
    free_port,
    http,
    launch,
    port_open,
    require_binary,
    start_capture,
    stop_app,
    stop_process,
    wait_until,
)
from tests.reliability.load import EXPORTER_LOGGERS, Client, Timed, ms, percentile, rss_kib, warnings_by_logger

pytestmark = pytest.mark.reliability

T = TypeVar("T")

LOGIN = b'{"username": "u", "password": "p"}'
SHUTDOWN_TIMEOUT = 2.0
EXIT_MARGIN = 3.0


@pytest.fixture
def black_hole() -> Iterator[int]:
    """Accepts connections and reads what is sent, never answers: an exporter waits its full timeout."""
    server = socket.create_server(("127.0.0.1", 0))
    held: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        server.settimeout(0.2)
        while not stop.is_set():
            try:
                connection, _ = server.accept()
            except OSError:
                continue
            connection.setblocking(False)
            held.append(connection)

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    try:
        yield server.getsockname()[1]
    finally:
        stop.set()
        thread.join(2)
        for connection in held:
            connection.close()
        server.close()


def _traffic(app: App, count: int) -> None:
    for _ in range(count):
        # Each request: a server span, metrics, and (failed login) two exported log lines.
        assert http("POST", f"{app.url}/login", LOGIN)[0] == 401


def test_memory_is_bounded_and_sigterm_exits_in_time(black_hole: int, tmp_path: Path) -> None:
    port = free_port()
    env = app_env(
        "rel-black-hole",
        f"http://127.0.0.1:{black_hole}",
        OTEL_DISTRO_SHUTDOWN_TIMEOUT="2",
        OTEL_BSP_MAX_QUEUE_SIZE="512",
        OTEL_BLRP_MAX_QUEUE_SIZE="512",
    )
    app = launch(
        ["uvicorn", "app:app", "--port", str(port)], env, EXAMPLES / "orders_fastapi", port, tmp_path / "o.log"
    )
    try:
        _traffic(app, 1500)  # the queues (512 spans, 512 log records) are full long before this
        filled = rss_kib(app)
        _traffic(app, 1500)
        grown = rss_kib(app) - filled
        started = time.monotonic()
    finally:
        code = stop_app(app)
    took = time.monotonic() - started

    assert grown < 4 * 1024, f"RSS grew {grown} KiB over 1,500 more requests with every queue full"
    assert took < 2 + 3, f"SIGTERM to exit took {took:.1f} s with a 2 s shutdown timeout"
    assert code is not None


# --- A collector that answers, with an error ------------------------------------------------


@dataclass(frozen=True)
class Answer:
    status: int
    headers: tuple[tuple[str, str], ...] = ()
    body: bytes = b""


@dataclass(frozen=True)
class Fault:
    answer: Answer
    # Whether the exporter waits and retries (the queues then overflow and the final flush
    # cannot finish in time), or gives the batch up at once.
    retried: bool


HEALTHY = Answer(200, (("Content-Type", "application/x-protobuf"),))
FAULTS = {
    "503 Retry-After": Fault(Answer(503, (("Retry-After", "1"),)), retried=True),
    "429": Fault(Answer(429), retried=True),
    "400 garbage": Fault(
        Answer(400, (("Content-Type", "application/x-protobuf"),), b"\xff\xfe{not: protobuf\x00\r\n"), retried=False
    ),
}


@dataclass
class FakeCollector:
    """OTLP/HTTP endpoint that reads each request whole and gives the current answer."""

    answer: Answer = HEALTHY
    answered: Counter[tuple[str, int]] = field(default_factory=Counter)
    port: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)  # one handler thread per connection

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def faults(self, path: str) -> int:
        return sum(n for (p, status), n in self.answered.items() if p == path and status != 200)


@pytest.fixture
def fake_collector() -> Iterator[FakeCollector]:
    fake = FakeCollector()

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"  # kept alive, as a collector does

        def do_POST(self) -> None:
            self.rfile.read(int(self.headers.get("Content-Length", "0")))
            answer = fake.answer
            self.send_response(answer.status)
            for name, value in answer.headers:
                self.send_header(name, value)
            self.send_header("Content-Length", str(len(answer.body)))
            self.end_headers()
            self.wfile.write(answer.body)
            with fake.lock:
                fake.answered[(self.path, answer.status)] += 1

        def log_message(self, format: str, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    fake.port = server.server_address[1]
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.1}, daemon=True)
    thread.start()
    try:
        yield fake
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


def _logins(client: Client, timed: Timed, seconds: float, ids: list[str] | None = None, rate: float = 0) -> None:
    """POST /login (a server span, metrics, two log records) for `seconds`, one request at a time,
    as fast as the app answers or `rate` a second."""
    began = time.monotonic()
    deadline = began + seconds
    sent = 0
    while (now := time.monotonic()) < deadline:
        if rate and now < began + sent / rate:
            time.sleep(began + sent / rate - now)
        sent += 1
        headers = {}
        if ids is not None:
            ids.append(f"login-{len(ids)}")
            headers["X-Request-ID"] = ids[-1]
        client.request(timed, "POST", "/login", LOGIN, headers)


def _launch_orders(service: str, endpoint: str, tmp_path: Path, **extra: str) -> App:
    port = free_port()
    env = app_env(service, endpoint, OTEL_DISTRO_SHUTDOWN_TIMEOUT=str(SHUTDOWN_TIMEOUT), **extra)
    return launch(
        ["uvicorn", "app:app", "--port", str(port)], env, EXAMPLES / "orders_fastapi", port, tmp_path / "out.log"
    )


def _sigterm(app: App) -> tuple[float, int | None]:
    started = time.monotonic()
    code = stop_app(app)
    return time.monotonic() - started, code


WARMUP, PHASE, ROUNDS = 1.0, 1.5, 3  # seconds, and healthy/failing rounds
P50_RATIO, P50_SLACK = 1.5, 0.002  # under trouble, p50 <= 1.5 x healthy p50 + 2 ms


@pytest.mark.parametrize("fault", list(FAULTS))
def test_an_erroring_collector_costs_the_app_no_request_and_no_speed(
    fault: str, fake_collector: FakeCollector, tmp_path: Path
) -> None:
    # Queues of 512 fill within one failing phase: RSS is compared between full queues.
    queues = {"OTEL_BSP_MAX_QUEUE_SIZE": "512", "OTEL_BLRP_MAX_QUEUE_SIZE": "512"}
    app = _launch_orders(f"rel-fault-{fault.split()[0]}", fake_collector.endpoint, tmp_path, **queues)
    client = Client(app.port)
    healthy, troubled = Timed(), Timed()
    began = time.monotonic()
    try:
        _logins(client, Timed(), WARMUP)
        # Healthy and failing phases interleaved, so a busy neighbour slows both alike.
        for round_ in range(ROUNDS):
            fake_collector.answer = HEALTHY
            _logins(client, healthy, PHASE)
            fake_collector.answer = FAULTS[fault].answer
            _logins(client, troubled, PHASE)
            if round_ == 0:
                rss_after_first = rss_kib(app)
        growth = rss_kib(app) - rss_after_first
        client.close()
        took, code = _sigterm(app)  # while the collector still fails
        ran = time.monotonic() - began
    finally:
        stop_app(app)

    p50_healthy, p50_troubled = percentile(healthy.seconds, 50), percentile(troubled.seconds, 50)
    figures = (
        f"{fault}: p50 {ms(p50_healthy)} healthy, {ms(p50_troubled)} failing; "
        f"p99 {ms(percentile(healthy.seconds, 99))} / {ms(percentile(troubled.seconds, 99))}; "
        f"RSS +{growth} KiB; SIGTERM {took:.2f} s; answers {dict(fake_collector.answered)}"
    )
    print(figures)
    sent = healthy.sent + troubled.sent
    assert healthy.served(401) + troubled.served(401) == sent, (figures, healthy.errors + troubled.errors)
    for path in ("/v1/traces", "/v1/metrics", "/v1/logs"):
        assert fake_collector.faults(path) >= 2, f"{path} never met the fault: {figures}"
    assert p50_troubled <= P50_RATIO * p50_healthy + P50_SLACK, figures
    assert growth < 4 * 1024, figures
    assert took < SHUTDOWN_TIMEOUT + EXIT_MARGIN, figures
    assert code is not None
    # One line per exporter logger per OTEL_DISTRO_EXPORT_WARNING_INTERVAL (60 s): the outage is
    # reported, never a line per failed batch or retry. While batches are retried the queues
    # overflow (one "export queues full" line for both) and the final flush is cut off (one line).
    assert ran < 60
    expected = dict.fromkeys(EXPORTER_LOGGERS, 1)
    if FAULTS[fault].retried:
        expected |= {"otel_distro.exporters.queue": 1, "otel_distro.shutdown": 1}
    assert warnings_by_logger(app.output()) == expected


# --- The real collector, restarted under load -----------------------------------------------


def _capture_on(ports: Capture, directory: Path) -> Capture:
    """A new collector on the same ports, writing to `directory` (its file exporter truncates)."""
    directory.mkdir()
    env = {
        **os.environ,
        "CAPTURE_DIR": str(directory),
        "CAPTURE_HTTP_PORT": str(ports.http_port),
        "CAPTURE_GRPC_PORT": str(ports.grpc_port),
    }
    log = open(directory / "collector.log", "wb")  # noqa: SIM115 - lives as long as the process
    process = subprocess.Popen(
        [str(require_binary("otelcol")), f"--config={REPO / 'tests' / 'integration' / 'collector-capture.yaml'}"],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    capture = Capture(directory, ports.http_port, ports.grpc_port, process)
    wait_until(lambda: port_open(capture.http_port), 30, what="restarted collector")
    return capture


def _by_request_id(captures: list[Capture], service: str) -> tuple[Counter[str], Counter[str]]:
    """Server spans and log records (two per login) the collectors wrote, per request ID."""
    spans = Counter(
        str(span.attributes.get("request.id"))
        for capture in captures
        for span in capture.spans(service)
        if span.kind == 2
    )
    logs = Counter(str(record.attributes.get("request.id")) for capture in captures for record in capture.logs(service))
    return spans, logs


def _lost(ids: list[str], received: Counter[str], each: int = 1) -> list[str]:
    return [i for i in ids if received[i] < each]


# 150 requests a second make 150 spans and 300 log records a second; the exporter waits at most
# about 3.6 s (retries after 1 and 3 s, +-20 %) for a collector away 1.5 s: the default queues
# of 2,048 hold that, so nothing may be lost.
RESTART_RATE, OUTAGE = 150, 1.5


def test_a_collector_restart_under_load_loses_no_span_and_no_log_record(tmp_path: Path) -> None:
    (tmp_path / "before").mkdir()
    captures = [start_capture(tmp_path / "before")]
    service = "rel-restart"
    app = _launch_orders(service, captures[0].endpoint, tmp_path)
    client = Client(app.port)
    healthy, restarting = Timed(), Timed()
    ids: list[str] = []
    restarted = threading.Event()
    outage: list[float] = []

    def restart() -> None:
        first = captures[0]
        assert first.process is not None
        began = time.monotonic()
        stop_process(first.process)
        time.sleep(max(OUTAGE - (time.monotonic() - began), 0))  # a redeploy's gap: every exporter fails
        captures.append(_capture_on(first, tmp_path / "after"))
        outage.append(time.monotonic() - began)
        restarted.set()

    try:
        _logins(client, Timed(), WARMUP, ids, RESTART_RATE)
        _logins(client, healthy, 2 * PHASE, ids, RESTART_RATE)
        restarter = threading.Thread(target=restart, daemon=True)
        restarter.start()
        deadline = time.monotonic() + 60
        while not restarted.is_set() and time.monotonic() < deadline:
            _logins(client, restarting, 0.1, ids, RESTART_RATE)
        _logins(client, restarting, 2 * PHASE, ids, RESTART_RATE)  # retried batches meet the new collector
        restarter.join(30)
        assert restarted.is_set(), "the collector did not come back"
        spans, logs = _settled(
            lambda: _by_request_id(captures, service),
            lambda found: not _lost(ids, found[0]) and not _lost(ids, found[1], 2),
            30,
        )
        client.close()
        took, code = _sigterm(app)
    finally:
        stop_app(app)
        for capture in captures:
            if capture.process is not None:
                stop_process(capture.process)

    lost_spans, lost_logs = _lost(ids, spans), _lost(ids, logs, 2)
    p50_healthy, p50_restarting = percentile(healthy.seconds, 50), percentile(restarting.seconds, 50)
    figures = (
        f"restart: collector away {outage[0]:.2f} s at {RESTART_RATE}/s; of {len(ids)} requests "
        f"{len(lost_spans)} spans ({100 * len(lost_spans) / len(ids):.2f} %) lost, "
        f"{len(lost_logs)} missing a log record, "
        f"{sum(spans.values()) - len(spans)} spans duplicated; "
        f"p50 {ms(p50_healthy)} healthy, {ms(p50_restarting)} restarting; SIGTERM {took:.2f} s"
    )
    print(figures)
    sent = healthy.sent + restarting.sent
    assert healthy.served(401) + restarting.served(401) == sent, (figures, healthy.errors + restarting.errors)
    assert (lost_spans, lost_logs) == ([], []), f"{figures}; first lost {lost_spans[:3]} {lost_logs[:3]}"
    assert p50_restarting <= P50_RATIO * p50_healthy + P50_SLACK, figures
    assert took < SHUTDOWN_TIMEOUT + EXIT_MARGIN, figures
    assert code is not None
    # Each exporter met the refused connection and reported it once; nothing overflowed.
    assert warnings_by_logger(app.output()) == dict.fromkeys(EXPORTER_LOGGERS, 1), figures


def _settled(probe: Callable[[], T], done: Callable[[T], bool], timeout: float) -> T:
    """Poll `probe` until `done` says so or `timeout` passes; the last answer either way."""
    deadline = time.monotonic() + timeout
    while True:
        found = probe()
        if done(found) or time.monotonic() > deadline:
            return found
        time.sleep(0.5)
