"""How each instrumentation is switched on: the keyword arguments a demanding user wants.

`opentelemetry-instrument` hands every installed instrumentation to the distro's
`load_instrumentor`; this module decides what that call passes.
"""

from __future__ import annotations

from typing import Any

from otel_distro.request_id import RequestIds
from otel_distro.settings import Settings

__all__ = ["ON_IMPORT", "RUNTIME_METRICS", "instrument_kwargs", "upstream_excluded_urls"]

# Client libraries by entry-point name -> module: instrumented when the app imports the module, since
# loading them at start-up would import requests/urllib3/httpx (50-100 ms each) even in apps that never use them.
ON_IMPORT: dict[str, str] = {"requests": "requests", "urllib3": "urllib3", "httpx": "httpx", "httpx2": "httpx2"}

# Process-level runtime metrics only: host-wide system.* metrics (network connections in
# particular) are costly and belong to a host agent, not to every service process.
RUNTIME_METRICS: dict[str, list[str] | None] = {
    "process.cpu.time": ["user", "system"],
    "process.cpu.utilization": ["user", "system"],
    "process.memory.usage": None,
    "process.memory.virtual": None,
    "process.thread.count": None,
    "process.open_file_descriptor.count": None,
    "process.context_switches": ["involuntary", "voluntary"],
    "cpython.gc.collections": None,
    "cpython.gc.collected_objects": None,
    "cpython.gc.uncollectable_objects": None,
}


def _excluded_urls(settings: Settings, framework_specific: str | None) -> dict[str, Any]:
    # Upstream variables, when the user set them, keep their documented meaning.
    if framework_specific or settings.python_excluded_urls:
        return {}
    return {"excluded_urls": ",".join(settings.excluded_urls)}


def upstream_excluded_urls(name: str, settings: Settings) -> str:
    """The excluded URLs contrib reads from the upstream variables when none are passed."""
    framework_specific = settings.fastapi_excluded_urls if name == "fastapi" else settings.flask_excluded_urls
    return framework_specific or settings.python_excluded_urls or ""


def instrument_kwargs(name: str, settings: Settings, request_ids: RequestIds) -> dict[str, Any]:
    """Keyword arguments for `instrument()` of the instrumentation registered as `name`."""
    if name == "fastapi":
        return {
            "exclude_spans": list(settings.asgi_exclude_spans),
            "server_request_hook": request_ids.asgi_server_request_hook,
            **_excluded_urls(settings, settings.fastapi_excluded_urls),
        }
    if name == "flask":
        return {
            "request_hook": request_ids.wsgi_request_hook,
            "response_hook": request_ids.wsgi_response_hook,
            **_excluded_urls(settings, settings.flask_excluded_urls),
        }
    return {}
