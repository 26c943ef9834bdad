"""structlog support: IDs in every event, and events exported over OTLP.

structlog keeps its processor chain in a global configuration that the app usually sets
after we start. We add one processor just before the app's renderer, now and again on
each later `structlog.configure`, so the app's own chain stays as written.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import MutableMapping
from typing import Any

from opentelemetry.sdk._logs import LoggerProvider

from otel_distro.logs._context import current_ids
from otel_distro.logs._otlp import emit_structlog_event

_provider: LoggerProvider | None = None
_level = logging.INFO
_LEVELS = {"debug": 10, "info": 20, "warning": 30, "warn": 30, "error": 40, "exception": 40, "critical": 50}


def add_otel_context(logger: Any, method_name: str, event_dict: MutableMapping[str, Any]) -> Any:
    """structlog processor: add `trace_id`, `span_id` and `request_id`, and export the event.

    Events whose logger is a stdlib logger are exported by the stdlib handler instead, so
    nothing is sent twice.
    """
    trace_id, span_id, request_id = current_ids()
    if trace_id:
        event_dict.setdefault("trace_id", trace_id)
        event_dict.setdefault("span_id", span_id)
    if request_id:
        event_dict.setdefault("request_id", request_id)
    if _provider is not None and not isinstance(logger, logging.Logger) and _LEVELS.get(method_name, 20) >= _level:
        name = str(event_dict.get("logger") or getattr(logger, "name", None) or "structlog")
        emit_structlog_event(_provider, name, method_name, event_dict)
    return event_dict


def _with_ours(processors: list[Any]) -> list[Any]:
    chain = [p for p in processors if p is not add_otel_context]
    # The last processor renders (or hands over to stdlib); we go right before it.
    chain.insert(max(len(chain) - 1, 0), add_otel_context)
    return chain


def install(provider: LoggerProvider | None, level: int) -> bool:
    """Hook into structlog if it is installed; returns whether it was."""
    global _provider, _level
    try:
        import structlog
    except ImportError:
        return False
    _provider, _level = provider, level
    config = structlog.get_config()
    structlog.configure(processors=_with_ours(list(config["processors"])))
    if not getattr(structlog.configure, "_otel_distro", False):
        original = structlog.configure

        @functools.wraps(original)
        def configure(*args: Any, **kwargs: Any) -> None:
            if kwargs.get("processors") is not None:
                kwargs["processors"] = _with_ours(list(kwargs["processors"]))
            original(*args, **kwargs)

        configure._otel_distro = True  # type: ignore[attr-defined]
        structlog.configure = configure
    return True
