"""A counting stand-in for the Datadog agent's trace intake, for `run.py --peers`.

    python dd_sink.py PORT

Accepts `PUT`/`POST /v0.4/traces` and `/v0.5/traces` (msgpack) and counts the spans per
service (the service of each trace chunk's root span). `GET /counts` returns the counts as
JSON. Everything else the tracer may call (`/info`, telemetry, stats) gets a plain answer and
is counted by path, so nothing blocks or retries. Run with the ddtrace venv's Python, which
has `msgpack`; without it the spans cannot be counted and only the traces are (from the
`X-Datadog-Trace-Count` header), which `/counts` says.

Listens on 127.0.0.1 only.
"""

from __future__ import annotations

import json
import sys
import threading
from collections import defaultdict
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

try:
    import msgpack
except ImportError:  # pragma: no cover - counted from headers then
    msgpack = None

_lock = threading.Lock()
_spans: dict[str, int] = defaultdict(int)
_traces: dict[str, int] = defaultdict(int)
_paths: dict[str, int] = defaultdict(int)
_errors: list[str] = []


def _text(value: Any) -> str:
    return value.decode(errors="replace") if isinstance(value, bytes) else str(value)


def _count_v04(payload: Any) -> list[tuple[str, int]]:
    """v0.4: a list of traces, each a list of span maps."""
    chunks = []
    for trace in payload:
        if not trace:
            continue
        root = next((s for s in trace if not s.get("parent_id")), trace[0])
        chunks.append((_text(root.get("service", "")), len(trace)))
    return chunks


def _count_v05(payload: Any) -> list[tuple[str, int]]:
    """v0.5: [string table, traces]; a span is a 12-item array, service = strings[span[0]]."""
    strings, traces = payload[0], payload[1]
    chunks = []
    for trace in traces:
        if not trace:
            continue
        root = next((s for s in trace if not s[6]), trace[0])  # index 6: parent_id
        chunks.append((_text(strings[root[0]]), len(trace)))
    return chunks


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True  # headers and body go out as two writes: no 40 ms stalls

    def _reply(self, status: int, body: bytes = b"{}", content_type: str = "application/json") -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def _body(self) -> bytes:
        return self.rfile.read(int(self.headers.get("Content-Length", 0) or 0))

    def do_GET(self) -> None:
        if self.path == "/counts":
            with _lock:
                body = {
                    "spans": dict(_spans),
                    "traces": dict(_traces),
                    "paths": dict(_paths),
                    "errors": _errors[-5:],
                    "decoded": msgpack is not None,
                }
            self._reply(200, json.dumps(body).encode())
            return
        with _lock:
            _paths[f"GET {self.path}"] += 1
        self._reply(404, b"404 page not found", "text/plain")  # /info: an agent without it

    def do_PUT(self) -> None:
        path = self.path.split("?", 1)[0]
        data = self._body()
        if path in ("/v0.4/traces", "/v0.5/traces"):
            header_count = int(self.headers.get("X-Datadog-Trace-Count", 0) or 0)
            chunks: list[tuple[str, int]] = []
            if msgpack is not None and data:
                try:
                    payload = msgpack.unpackb(data, raw=False, strict_map_key=False)
                    chunks = _count_v04(payload) if path == "/v0.4/traces" else _count_v05(payload)
                except Exception as exc:
                    with _lock:
                        _errors.append(f"{path}: {exc!r}")
            with _lock:
                _paths[f"PUT {path}"] += 1
                if chunks:
                    for service, spans in chunks:
                        _spans[service] += spans
                        _traces[service] += 1
                else:
                    _traces[""] += header_count
            self._reply(200, b'{"rate_by_service":{}}')
            return
        with _lock:
            _paths[f"{self.command} {path}"] += 1
        self._reply(202 if "telemetry" in path else 200)

    do_POST = do_PUT

    def log_message(self, *args: Any) -> None:
        return None


class Server(ThreadingHTTPServer):
    request_queue_size = 128
    daemon_threads = True


def main() -> None:
    Server(("127.0.0.1", int(sys.argv[1])), Handler).serve_forever()


if __name__ == "__main__":
    main()
