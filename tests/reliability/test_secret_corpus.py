"""Secrets an app lets slip, in every shape it does, never leave the process.

A corpus of distinct secrets goes in through query strings, headers, request bodies, log
messages, `extra=` containers, structlog keyword arguments, nested lists and dicts, exception
messages and stack traces, connection strings, span attributes, events and recorded
exceptions; then stdout, the log file and everything the real collector received are searched
for each one. Run twice: with the distro's HTTP instrumentation, and with contrib's capturing
the sensitive request headers on spans.
"""

from __future__ import annotations

import json
import secrets
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.harness import App, Capture, app_env, free_port, http, launch, stop_app, wait_until

pytestmark = pytest.mark.reliability

APPS = Path(__file__).parent / "apps"
HEADERS = "authorization,x-api-key,cookie"


def _corpus(count: int) -> list[str]:
    # Distinct, and unlike anything else in the outputs: a hit is a leak.
    return [f"SECRET{n:02d}x{secrets.token_hex(6)}" for n in range(count)]


@dataclass
class Run:
    app: App
    capture: Capture
    log_dir: Path
    service: str
    corpus: list[str]

    def outputs(self) -> dict[str, str]:
        found = {"stdout": self.app.output()}
        found["log file"] = "\n".join(
            p.read_text() for p in sorted(self.log_dir.glob("app.log*")) if p.suffix != ".lock"
        )
        for path in sorted(self.capture.directory.glob("*.jsonl")):
            found[f"collector {path.name}"] = path.read_text()
        return found


@pytest.fixture(scope="module", params=["distro", "contrib+headers"])
def run(request: pytest.FixtureRequest, capture: Capture, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Run]:
    mode = request.param
    service = f"rel-secrets-{mode.replace('+', '-')}"
    tmp = tmp_path_factory.mktemp(service)
    port = free_port()
    extra = {"OTEL_INSTRUMENTATION_HTTP_CAPTURE_HEADERS_SERVER_REQUEST": HEADERS} if mode != "distro" else {}
    env = app_env(service, capture.endpoint, OTEL_DISTRO_LOG_FILE=str(tmp / "logs" / "app.log"), **extra)
    app = launch(["uvicorn", "leaky_app:app", "--port", str(port)], env, APPS, port, tmp / "stdout.log")
    corpus = _corpus(24)
    try:
        _send(app, corpus)
        # Everything exported: the spans of all three requests and the last log line of /leak.
        wait_until(lambda: len([s for s in capture.spans(service) if s.kind == 2]) >= 3, 30, what="server spans")
        wait_until(
            lambda: [r for r in capture.logs(service) if r.body == "structlog exception"], 30, what="last log line"
        )
    finally:
        stop_app(app)
    yield Run(app, capture, tmp / "logs", service, corpus)


def _send(app: App, s: list[str]) -> None:
    payload = {"form": f"user=ann&password={s[0]}", "s": s[:16]}  # a body is never recorded as such
    status, _, body = http(
        "POST",
        f"{app.url}/leak",
        json.dumps(payload).encode(),
        {"Authorization": f"Bearer {s[16]}", "X-Api-Key": s[17], "Cookie": f"session={s[18]}; theme=dark"},
    )
    assert (status, json.loads(body)) == (200, {"leaked": 16})
    assert http("GET", f"{app.url}/fail?token={s[19]}")[0] == 500
    status = http("GET", f"{app.url}/oauth/callback?access_token={s[20]}&client_secret={s[21]}")[0]
    assert status == 200
    # Asked for, answered 404: the path and query go to the access line only.
    assert http("GET", f"{app.url}/reset?password={s[22]}&api_key={s[23]}")[0] == 404


def test_no_secret_reaches_stdout_the_log_file_or_the_collector(run: Run) -> None:
    outputs = run.outputs()
    assert outputs["log file"] and any(k.startswith("collector") for k in outputs)
    leaks = [(n, where) for n, secret in enumerate(run.corpus) for where, text in outputs.items() if secret in text]

    assert leaks == [], f"secrets found (corpus index, where): {leaks}"


def test_what_was_scrubbed_is_still_there_with_its_key(run: Run) -> None:
    # Scrubbing hides values, not the events: the lines and spans that carried secrets are present.
    lines = [json.loads(line) for line in run.outputs()["log file"].splitlines()]
    messages = {line["message"] for line in lines}
    assert {"accounts", "structlog kwargs", "login failed", "refresh failed", "structlog exception"} <= messages
    accounts = next(line for line in lines if line["message"] == "accounts")
    assert accounts["accounts"] == [{"user": "ann", "password": "[REDACTED]"}]
    failed = next(line for line in lines if line["message"] == "login failed")
    assert "Traceback" in failed["exception"]["stacktrace"]
    assert "password=[REDACTED]" in failed["exception"]["stacktrace"]


def test_a_long_path_next_to_a_key_word_does_not_stall_the_server(capture: Capture, tmp_path: Path) -> None:
    # `GET /reset-password/<4 KB>` (a 404) held the event loop 2-3.6 s while its access line was scrubbed.
    port = free_port()
    env = app_env("rel-stall", capture.endpoint)
    app = launch(["uvicorn", "leaky_app:app", "--port", str(port)], env, APPS, port, tmp_path / "stdout.log")
    try:
        http("GET", f"{app.url}/oauth/callback?access_token=warm&client_secret=up")
        worst = 0.0
        for size in (1024, 4096, 8000):
            start = time.perf_counter()
            status = http("GET", f"{app.url}/reset-password/{'a' * size}", timeout=30)[0]
            worst = max(worst, time.perf_counter() - start)
            assert status == 404
    finally:
        stop_app(app)
    assert worst < 0.5, f"the slowest 404 took {worst:.2f} s"
