"""Hostile X-Request-ID values: CRLF, 10 KB, JSON fragments, quotes, unicode, control
characters, empty. Whatever reaches the app, the response carries one X-Request-ID that is
either the inbound value (when safe: at most 128 of `A-Za-z0-9._:-`) or a fresh 32-hex ID,
never raw input; every console and log-file line still parses; spans carry the same ID.

Requests are written on a raw socket: http.client refuses such headers before sending them.
"""

from __future__ import annotations

import json
import re
import socket
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.harness import EXAMPLES, App, Capture, app_env, free_port, launch, stop_app
from tests.reliability.load import json_lines

pytestmark = pytest.mark.reliability

GENERATED = re.compile(r"[0-9a-f]{32}")
SAFE = re.compile(r"[A-Za-z0-9._:\-]{1,128}")


@dataclass(frozen=True)
class Hostile:
    header: bytes  # raw header lines, CRLF-terminated
    kept: tuple[str, ...] = ()  # safe values a server may hand the app; anything else: a new ID
    valid_http: bool = True  # valid HTTP/1.1: every server must pass it to the app


CASES = {
    "CRLF injection": Hostile(b"X-Request-ID: abc\r\nX-Injected: 1\r\n", kept=("abc",)),
    "bare CR": Hostile(b"X-Request-ID: ab\rX-Injected: 1\r\n", kept=("ab",), valid_http=False),
    "bare LF": Hostile(b"X-Request-ID: ab\nX-Injected: 1\r\n", kept=("ab",), valid_http=False),
    "obs-fold": Hostile(b"X-Request-ID: ab\r\n X-Injected: 1\r\n", valid_http=False),
    "10 KB": Hostile(b"X-Request-ID: " + b"a" * 10240 + b"\r\n", valid_http=False),  # servers may cap headers
    "129 characters": Hostile(b"X-Request-ID: " + b"B" * 129 + b"\r\n"),
    "128 characters": Hostile(b"X-Request-ID: " + b"C" * 128 + b"\r\n", kept=("C" * 128,)),
    "JSON object": Hostile(b'X-Request-ID: {"request_id": "x", "level": "ERROR"}\r\n'),
    "JSON breakout": Hostile(b'X-Request-ID: ","level":"CRITICAL","injected":"1\r\n'),
    "escaped newline": Hostile(b'X-Request-ID: x\\n{"level":"ERROR"}\\r\\n\r\n'),
    "quotes": Hostile(b"X-Request-ID: a'b\"c`d\r\n"),
    "unicode": Hostile("X-Request-ID: zażółć-☃-🚀\u202e\r\n".encode()),
    "latin-1": Hostile(b"X-Request-ID: caf\xe9\r\n"),
    "NUL": Hostile(b"X-Request-ID: ab\x00cd\r\n", valid_http=False),
    "terminal escape": Hostile(b"X-Request-ID: \x1b[31mred\x1b[0m\r\n", valid_http=False),
    "tab and DEL": Hostile(b"X-Request-ID: a\tb\x7f\r\n", valid_http=False),
    "empty": Hostile(b"X-Request-ID: \r\n"),
    "spaces": Hostile(b"X-Request-ID:     \r\n"),
    "twice": Hostile(b"X-Request-ID: first\r\nX-Request-ID: second\r\n", kept=("first",)),
}


@dataclass(frozen=True)
class Server:
    argv: tuple[str, ...]
    directory: str
    request: tuple[str, str, bytes]  # method, path, body
    status: int
    app_lines: int  # lines the app itself logs per request
    app_logger: str


SERVERS = {
    "uvicorn": Server(
        ("uvicorn", "app:app", "--port", "{port}"),
        "orders_fastapi",
        ("POST", "/login", b'{"username": "u", "password": "p"}'),
        401,
        2,  # login attempt, login failed
        "orders",
    ),
    "gunicorn": Server(
        ("gunicorn", "-b", "127.0.0.1:{port}", "app:app"),
        "inventory_flask",
        ("GET", "/items/nope", b""),
        404,
        1,  # unknown sku looked up
        "inventory",
    ),
}


@dataclass
class Answer:
    status: int
    headers: list[tuple[str, str]]
    raw_head: bytes

    def values(self, name: str) -> list[str]:
        return [v for k, v in self.headers if k.lower() == name.lower()]


def _send(port: int, server: Server, header: bytes) -> Answer:
    method, path, body = server.request
    request = (
        (
            f"{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n"
            f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n"
        ).encode()
        + header
        + b"\r\n"
        + body
    )
    with socket.create_connection(("127.0.0.1", port), timeout=10) as connection:
        connection.sendall(request)
        data = b""
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and (chunk := connection.recv(65536)):
            data += chunk
    head = data.partition(b"\r\n\r\n")[0]
    lines = head.split(b"\r\n")
    headers = [tuple(x.strip() for x in line.decode("latin-1").split(":", 1)) for line in lines[1:]]
    return Answer(int(lines[0].split()[1]), headers, head)  # type: ignore[arg-type]


@dataclass
class Run:
    app: App
    answers: dict[str, Answer]
    log_file: Path
    server: Server
    service: str
    capture: Capture


@pytest.fixture(scope="module", params=list(SERVERS))
def run(request: pytest.FixtureRequest, capture: Capture, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Run]:
    server = SERVERS[request.param]
    service = f"rel-hostile-ids-{request.param}"
    tmp = tmp_path_factory.mktemp(service)
    port = free_port()
    env = app_env(service, capture.endpoint, OTEL_DISTRO_LOG_FILE=str(tmp / "app.log"))
    argv = [part.format(port=port) for part in server.argv]
    app = launch(argv, env, EXAMPLES / server.directory, port, tmp / "stdout.log")
    try:
        try:
            answers = {name: _send(port, server, case.header) for name, case in CASES.items()}
        except OSError as err:
            pytest.fail(f"{request.param} did not answer ({err}); its output:\n{app.output()[-3000:]}", pytrace=False)
        reached = [a.values("X-Request-ID")[0] for a in answers.values() if a.values("X-Request-ID")]
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and len(_span_ids(capture, service)) < len(reached):
            time.sleep(0.3)
    finally:
        stop_app(app)
    yield Run(app, answers, tmp / "app.log", server, service, capture)


def _span_ids(capture: Capture, service: str) -> list[str]:
    return [str(s.attributes.get("request.id")) for s in capture.spans(service) if s.kind == 2]


def _reached_app(answer: Answer) -> bool:
    return bool(answer.values("X-Request-ID"))


def test_the_response_carries_the_safe_inbound_id_or_a_fresh_one(run: Run) -> None:
    generated = []
    for name, answer in run.answers.items():
        case = CASES[name]
        assert b"\n" not in answer.raw_head.replace(b"\r\n", b""), f"{name}: a raw line break in {answer.raw_head!r}"
        assert answer.values("X-Injected") == [], name
        if not _reached_app(answer):
            # Refused by the server's parser before the app (and the distro) saw it.
            assert not case.valid_http and answer.status in (400, 431), (name, answer.status)
            continue
        assert answer.status == run.server.status, (name, answer.status)
        (request_id,) = answer.values("X-Request-ID")
        if request_id in case.kept:
            continue
        assert GENERATED.fullmatch(request_id), f"{name}: {request_id!r} is neither kept nor generated"
        generated.append(request_id)
    assert len(set(generated)) == len(generated), "a generated ID was reused"
    reached = [name for name, answer in run.answers.items() if _reached_app(answer)]
    print(f"{run.service}: {len(reached)} of {len(CASES)} reached the app, {len(generated)} got a new ID")
    assert {name for name, case in CASES.items() if case.valid_http} <= set(reached)


def _returned_ids(run: Run) -> list[str]:
    return [a.values("X-Request-ID")[0] for a in run.answers.values() if _reached_app(a)]


def test_every_console_and_log_file_line_still_parses(run: Run) -> None:
    for line in run.app.output().splitlines():
        # The servers' own start-up lines are plain text; every other line is one JSON object.
        plain = re.match(r"(INFO|WARNING|ERROR):  |\[\d{4}-\d\d-\d\d ", line)
        assert plain or isinstance(json.loads(line), dict), line[:300]
    file_lines = run.log_file.read_text().splitlines()
    assert file_lines
    for line in file_lines:
        assert isinstance(json.loads(line), dict), line[:300]

    returned = _returned_ids(run)
    for where, lines in (("stdout", json_lines(run.app.output())), ("log file", [json.loads(x) for x in file_lines])):
        assert all(line.get("level") != "CRITICAL" for line in lines), where
        ids = [str(line["request_id"]) for line in lines if line.get("logger") == run.server.app_logger]
        # Each request's own lines carry the ID its response returned, and nothing else does.
        assert sorted(ids) == sorted(returned * run.server.app_lines), where


def test_spans_carry_the_returned_id(run: Run) -> None:
    assert sorted(_span_ids(run.capture, run.service)) == sorted(_returned_ids(run))
