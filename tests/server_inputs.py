"""What a server hands an app, built once for the tests that call ASGI and WSGI apps and
middlewares directly: an ASGI HTTP scope, a WSGI environ."""

from __future__ import annotations

import io
import sys
from collections.abc import Iterable
from typing import Any

__all__ = ["asgi_scope", "wsgi_environ"]


def asgi_scope(
    method: str = "GET",
    path: str = "/",
    headers: Iterable[tuple[str | bytes, str | bytes]] = (),
    host: str = "127.0.0.1:8000",
    **changes: Any,
) -> dict[str, Any]:
    """The scope a server such as uvicorn passes for `method path`, plus `headers` after `Host`;
    `changes` replace keys, and a key changed to None is left out."""

    def raw(value: str | bytes) -> bytes:
        return value if isinstance(value, bytes) else value.encode("latin-1")

    scope: dict[str, Any] = {
        "type": "http",
        "asgi": {"version": "3.0", "spec_version": "2.3"},
        "http_version": "1.1",
        "server": ("127.0.0.1", 8000),
        "client": ("127.0.0.1", 50000),
        "scheme": "http",
        "method": method,
        "root_path": "",
        "path": path,
        "raw_path": path.encode(),
        "query_string": b"",
        "headers": [(b"host", host.encode()), *((raw(k), raw(v)) for k, v in headers)],
    }
    scope.update(changes)
    return {k: v for k, v in scope.items() if v is not None}


def wsgi_environ(method: str, path: str, headers: tuple[tuple[str, str], ...] = (), **changes: Any) -> dict[str, Any]:
    environ: dict[str, Any] = {
        "REQUEST_METHOD": method,
        "SCRIPT_NAME": "",
        "PATH_INFO": path,
        "QUERY_STRING": "",
        "SERVER_NAME": "127.0.0.1",
        "SERVER_PORT": "8000",
        "SERVER_PROTOCOL": "HTTP/1.1",
        "REMOTE_ADDR": "127.0.0.1",
        "REMOTE_PORT": "50000",
        "HTTP_HOST": "127.0.0.1:8000",
        "wsgi.url_scheme": "http",
        "wsgi.version": (1, 0),
        "wsgi.input": io.BytesIO(b""),
        "wsgi.errors": sys.stderr,
        "wsgi.multithread": False,
        "wsgi.multiprocess": False,
        "wsgi.run_once": False,
    }
    for name, value in headers:
        key = name.upper().replace("-", "_")
        environ[key if key in ("CONTENT_TYPE", "CONTENT_LENGTH") else "HTTP_" + key] = value
    environ.update(changes)
    return environ
