"""Server spans and HTTP metrics for Flask and FastAPI, following the OpenTelemetry HTTP
semantic conventions (`_semconv`), under our own instrumentation scope
(`otel_distro.http_server.fastapi` / `.flask`, the distro's version).

`instrument("flask" | "fastapi", ...)` replaces the framework's app class, so apps created
afterwards by unmodified code are instrumented; FastAPI's native telemetry is switched off in
them through its public `telemetry` setting. `OTEL_DISTRO_HTTP_INSTRUMENTATION=contrib`, or a
setting only contrib implements (`contrib_reason`), selects the contrib instrumentation instead.
"""

from __future__ import annotations

import importlib
from typing import Any

from otel_distro.http_server._choice import CHOSEN, contrib_reason
from otel_distro.http_server._config import Config
from otel_distro.http_server._excluded import ExcludedUrls
from otel_distro.request_id import RequestIds

__all__ = ["CHOSEN", "contrib_reason", "instrument", "is_instrumented", "uninstrument"]

# framework -> (module, class name, contrib instrumentor's attribute for the original class)
_TARGETS = {
    "flask": ("flask", "Flask", "_original_flask"),
    "fastapi": ("fastapi", "FastAPI", "_original_fastapi"),
}
_originals: dict[str, type] = {}
MARK = "_otel_distro_http_server"


def instrument(
    framework: str,
    *,
    request_ids: RequestIds | None = None,
    excluded_urls: str = "",
    tracer_provider: Any = None,
    meter_provider: Any = None,
    contrib: Any = None,
) -> None:
    """Instrument every app of `framework` created from now on.

    `contrib` is the contrib instrumentor being replaced: it is marked as instrumented, so a
    later `instrument()` of it does nothing and its `uninstrument()` restores the framework.
    """
    module_name, class_name, contrib_attribute = _TARGETS[framework]
    module = importlib.import_module(module_name)
    original = getattr(module, class_name)
    if getattr(original, MARK, False):  # ours already, possibly under the health layer
        return
    config = Config(request_ids, ExcludedUrls(excluded_urls), tracer_provider, meter_provider)
    if framework == "flask":
        from otel_distro.http_server._flask import flask_class

        ours = flask_class(original, config)
    else:
        from otel_distro.http_server._fastapi import fastapi_class

        ours = fastapi_class(original, config)
    setattr(ours, MARK, True)
    setattr(module, class_name, ours)
    _originals[framework] = original
    if contrib is not None:
        setattr(contrib, contrib_attribute, original)
        contrib._is_instrumented_by_opentelemetry = True


def is_instrumented(framework: str) -> bool:
    """Whether apps of `framework` created now get our instrumentation."""
    module_name, class_name, _ = _TARGETS[framework]
    return bool(getattr(getattr(importlib.import_module(module_name), class_name), MARK, False))


def uninstrument(framework: str) -> None:
    """Restore the framework's class (apps already created stay instrumented, as with contrib)."""
    original = _originals.pop(framework, None)
    if original is None:
        return
    module_name, class_name, _ = _TARGETS[framework]
    setattr(importlib.import_module(module_name), class_name, original)
    if framework == "fastapi":
        from otel_distro.http_server._fastapi import untrace_background_tasks

        untrace_background_tasks()
