"""Which server instrumentation runs: ours, unless a setting asks for something only contrib does."""

from __future__ import annotations

from otel_distro.settings import Settings

__all__ = ["CHOSEN", "contrib_reason"]

CHOSEN = "OTEL_DISTRO_HTTP_INSTRUMENTATION=contrib"


def contrib_reason(framework: str, settings: Settings) -> str | None:
    """Why `framework` must use the contrib instrumentation, or None when ours implements every setting asked for."""
    if settings.http_instrumentation == "contrib":
        return CHOSEN
    modes = [mode.strip() for mode in settings.semconv_opt_in.split(",")]
    if "http/dup" in modes:
        return f"OTEL_SEMCONV_STABILITY_OPT_IN={settings.semconv_opt_in} asks for old and new HTTP conventions"
    if "http" not in modes:
        return f"OTEL_SEMCONV_STABILITY_OPT_IN={settings.semconv_opt_in} asks for the old HTTP conventions"
    if settings.capture_headers_server_request:
        return "OTEL_INSTRUMENTATION_HTTP_CAPTURE_HEADERS_SERVER_REQUEST is set (header capture)"
    if settings.capture_headers_server_response:
        return "OTEL_INSTRUMENTATION_HTTP_CAPTURE_HEADERS_SERVER_RESPONSE is set (header capture)"
    if settings.capture_all_methods:
        return "OTEL_PYTHON_INSTRUMENTATION_HTTP_CAPTURE_ALL_METHODS is set (non-standard methods kept)"
    if framework == "fastapi" and set(settings.asgi_exclude_spans) != {"send", "receive"}:
        return "OTEL_DISTRO_ASGI_EXCLUDE_SPANS keeps per-message send/receive spans"
    return None
