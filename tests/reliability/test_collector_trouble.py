"""A collector that never answers: memory stays bounded under traffic, and SIGTERM still exits
within OTEL_DISTRO_SHUTDOWN_TIMEOUT (a refused connection is the easy case; tests/integration)."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.harness import EXAMPLES, App, app_env, free_port, http, launch, stop_app

pytestmark = pytest.mark.reliability


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


def _rss_kib(app: App) -> int:
    for line in Path(f"/proc/{app.process.pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise AssertionError("no VmRSS")


def _traffic(app: App, count: int) -> None:
    for _ in range(count):
        # Each request: a server span, metrics, and (failed login) two exported log lines.
        assert http("POST", f"{app.url}/login", b'{"username": "u", "password": "p"}')[0] == 401


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
        filled = _rss_kib(app)
        _traffic(app, 1500)
        grown = _rss_kib(app) - filled
        started = time.monotonic()
    finally:
        code = stop_app(app)
    took = time.monotonic() - started

    assert grown < 4 * 1024, f"RSS grew {grown} KiB over 1,500 more requests with every queue full"
    assert took < 2 + 3, f"SIGTERM to exit took {took:.1f} s with a 2 s shutdown timeout"
    assert code is not None
