"""Calls a benchmark app in-process, without a server or a socket, and prints its CPU cost.

    python drive.py fastapi|flask REQUESTS PATH RESULT_FILE

Run by `benchmarks/request_path.py`, plain or under `opentelemetry-instrument`. Prints one
JSON object: CPU µs per request on the request thread, and for the whole process once every
provider has flushed (so encoding and export on the batch threads are counted too).
"""

from __future__ import annotations

import asyncio
import json
import sys
import time
from collections.abc import Callable
from typing import Any


def _asgi_caller(path: str) -> Callable[[int], None]:
    from fastapi_hello import app

    scope: dict[str, Any] = {
        "type": "http",
        "asgi": {"version": "3.0", "spec_version": "2.3"},
        "http_version": "1.1",
        "server": ("127.0.0.1", 8000),
        "client": ("127.0.0.1", 50000),
        "scheme": "http",
        "method": "GET",
        "root_path": "",
        "path": path,
        "raw_path": path.encode(),
        "query_string": b"",
        "headers": [(b"host", b"127.0.0.1:8000"), (b"user-agent", b"wrk"), (b"accept", b"*/*")],
    }
    request = {"type": "http.request", "body": b"", "more_body": False}

    async def receive() -> dict[str, Any]:
        return request

    async def send(message: dict[str, Any]) -> None:
        if message["type"] == "http.response.start" and message["status"] != 200:
            raise RuntimeError(f"status {message['status']}")

    async def many(n: int) -> None:
        for _ in range(n):
            await app(dict(scope), receive, send)

    loop = asyncio.new_event_loop()
    return lambda n: loop.run_until_complete(many(n))


def _wsgi_caller(path: str) -> Callable[[int], None]:
    from flask_hello import app

    environ = {
        "REQUEST_METHOD": "GET",
        "SCRIPT_NAME": "",
        "PATH_INFO": path,
        "QUERY_STRING": "",
        "SERVER_NAME": "127.0.0.1",
        "SERVER_PORT": "8000",
        "SERVER_PROTOCOL": "HTTP/1.1",
        "REMOTE_ADDR": "127.0.0.1",
        "REMOTE_PORT": "50000",
        "HTTP_HOST": "127.0.0.1:8000",
        "HTTP_USER_AGENT": "wrk",
        "HTTP_ACCEPT": "*/*",
        "wsgi.url_scheme": "http",
        "wsgi.version": (1, 0),
        "wsgi.multithread": False,
        "wsgi.multiprocess": False,
        "wsgi.run_once": False,
        "wsgi.errors": sys.stderr,
    }

    def start_response(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Callable[[bytes], None]:
        if not status.startswith("200"):
            raise RuntimeError(f"status {status}")
        return lambda data: None

    def many(n: int) -> None:
        for _ in range(n):
            body = app(dict(environ), start_response)
            for _chunk in body:
                pass
            close = getattr(body, "close", None)
            if close is not None:
                close()

    return many


def _flush() -> None:
    from opentelemetry import metrics, trace
    from opentelemetry._logs import get_logger_provider

    for provider in (trace.get_tracer_provider(), metrics.get_meter_provider(), get_logger_provider()):
        flush = getattr(provider, "force_flush", None)
        if flush is not None:
            flush()


def main() -> None:
    framework, requests = sys.argv[1], int(sys.argv[2])
    path, result_file = sys.argv[3], sys.argv[4]
    call = _asgi_caller(path) if framework == "fastapi" else _wsgi_caller(path)
    call(max(200, requests // 10))  # warm caches, lazy imports, the first export
    _flush()
    process, thread = time.process_time(), time.thread_time()
    call(requests)
    thread = time.thread_time() - thread
    _flush()
    process = time.process_time() - process
    result = {"requests": requests, "thread_us": thread / requests * 1e6, "process_us": process / requests * 1e6}
    with open(result_file, "w") as f:
        json.dump(result, f)


if __name__ == "__main__":
    main()
