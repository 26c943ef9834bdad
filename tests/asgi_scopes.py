"""One builder of ASGI HTTP scopes for the tests that call ASGI apps and middlewares directly."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

__all__ = ["asgi_scope"]


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
