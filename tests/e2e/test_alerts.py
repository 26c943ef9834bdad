"""An alert travels from the real Prometheus through the real Alertmanager to a webhook.

Prometheus of the native stack already evaluates stack/prometheus/rules*.yml and
sends to 127.0.0.1:<ports.alertmanager>; this test starts Alertmanager there with
stack/alertmanager/alertmanager.yml rendered by render.sh (as the container does),
its webhook receiver pointed at a small HTTP server of the test. The always-firing
Watchdog must arrive.
"""

from __future__ import annotations

import json
import os
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from tests.harness import backends_unavailable, free_port, stop_process

from .conftest import REPO, stack
from .test_pipeline import poll

pytestmark = pytest.mark.e2e

ALERTMANAGER_DIR = REPO / "stack" / "alertmanager"
# Prometheus re-sends firing alerts every minute; Alertmanager then waits group_wait (0 s for the Watchdog).
DELIVERY_TIMEOUT = 180.0
# Debian builds read their notification templates (default.tmpl, email.tmpl) from here.
TEMPLATE_DIR = "/usr/share/prometheus/alertmanager"
MISSING_TEMPLATE = f"open {TEMPLATE_DIR}/"


class Webhook:
    """Collects the JSON bodies Alertmanager POSTs."""

    def __init__(self) -> None:
        self.payloads: list[dict[str, Any]] = []
        self.lock = threading.Lock()
        payloads, lock = self.payloads, self.lock

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                with lock:
                    payloads.append(json.loads(body))
                self.send_response(200)
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:  # quiet test output
                return

        self.server = ThreadingHTTPServer(("127.0.0.1", free_port()), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/alerts"

    def received(self) -> list[dict[str, Any]]:
        with self.lock:
            return list(self.payloads)


@pytest.fixture
def webhook() -> Iterator[Webhook]:
    hook = Webhook()
    thread = threading.Thread(target=hook.server.serve_forever, daemon=True)
    thread.start()
    try:
        yield hook
    finally:
        hook.server.shutdown()
        hook.server.server_close()


@pytest.fixture
def alertmanager(
    backend_stack: stack.Stack, backend_binary: Callable[[str], Path], webhook: Webhook, tmp_path: Path
) -> Iterator[str]:
    """The real Alertmanager on the port the stack's Prometheus sends to; yields its URL."""
    binary = backend_binary("alertmanager")
    config = tmp_path / "alertmanager.yml"
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "ALERTMANAGER_RECEIVER": "webhook",
        "ALERTMANAGER_WATCHDOG_RECEIVER": "webhook",
        "ALERTMANAGER_WEBHOOK_URL": webhook.url,
    }
    render = ["sh", str(ALERTMANAGER_DIR / "render.sh"), str(ALERTMANAGER_DIR / "alertmanager.yml"), str(config)]
    subprocess.run(render, env=env, check=True, timeout=30)
    address = f"127.0.0.1:{backend_stack.ports.alertmanager}"
    log = (tmp_path / "alertmanager.log").open("wb")
    process = subprocess.Popen(
        [
            str(binary),
            f"--config.file={config}",
            f"--storage.path={tmp_path / 'data'}",
            f"--web.listen-address={address}",
            # A single instance: no gossip port to bind.
            "--cluster.listen-address=",
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    url = f"http://{address}"
    try:
        wait_ready(url, tmp_path / "alertmanager.log")
        yield url
    finally:
        stop_process(process)
        log.close()


def wait_ready(url: str, log_path: Path, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while stack.get_json(f"{url}/-/ready")[0] != 200:
        log = log_path.read_text(errors="replace")
        if MISSING_TEMPLATE in log:
            # Debian's build reads its notification templates from /usr/share, outside .backends.
            backends_unavailable("alertmanager (Debian build) lacks its templates in " + TEMPLATE_DIR)
        if time.monotonic() > deadline:
            pytest.fail(f"Alertmanager not ready at {url}:\n{log[-3000:]}", pytrace=False)
        time.sleep(0.5)


def test_watchdog_reaches_the_webhook(backend_stack: stack.Stack, alertmanager: str, webhook: Webhook) -> None:
    def watchdog_payloads() -> list[dict[str, Any]]:
        return [p for p in webhook.received() if p.get("commonLabels", {}).get("alertname") == "Watchdog"]

    payloads = poll("the Watchdog alert at the webhook", watchdog_payloads, DELIVERY_TIMEOUT)
    payload = payloads[0]
    assert payload["receiver"] == "webhook"
    assert payload["status"] == "firing"
    # Grouped by service and severity, as alertmanager.yml routes.
    assert set(payload["groupLabels"]) <= {"job", "severity"}
    assert payload["commonLabels"]["severity"] == "none"
    assert payload["alerts"][0]["annotations"]["summary"] == "Alerting pipeline is working"


def test_prometheus_knows_the_alertmanager(backend_stack: stack.Stack, alertmanager: str) -> None:
    def active() -> list[str]:
        status, body = stack.get_json(f"{backend_stack.prometheus_url}/api/v1/alertmanagers")
        if status != 200 or not isinstance(body, dict):
            return []
        return [am["url"] for am in body["data"]["activeAlertmanagers"]]

    urls = poll("Prometheus' active Alertmanagers", active, 60.0)
    assert any(f":{backend_stack.ports.alertmanager}/" in url for url in urls)
