"""Logs: trace, span and request IDs on every record, and records exported over OTLP.

What the distro changes in an app's logging, and nothing more:

* a log-record factory stamps `otel_trace_id`, `otel_span_id` and `otel_request_id` on each
  record (usable in the app's own format strings);
* one handler on the root logger exports records at `OTEL_DISTRO_LOG_LEVEL` and above;
* if the root logger was at its default WARNING level, it is lowered to that level;
* if the app had no handler, a stand-in for Python's last-resort handler keeps printing
  WARNING and above to stderr, as before;
* `basicConfig`, `dictConfig` and `fileConfig` keep working as if the distro were absent;
* structlog, when installed, gets one processor before its renderer that adds
  `trace_id`, `span_id` and `request_id` and exports the event.
"""

from __future__ import annotations

import logging

from opentelemetry.sdk._logs import LoggerProvider

from otel_distro.logs import _stdlib, _structlog
from otel_distro.logs._context import current_ids, install_record_factory
from otel_distro.logs._otlp import OTLPHandler
from otel_distro.logs._structlog import add_otel_context
from otel_distro.settings import Settings

__all__ = ["OTLPHandler", "add_otel_context", "current_ids", "install_logging"]


def install_logging(settings: Settings, provider: LoggerProvider | None) -> None:
    """Wire stdlib logging and structlog to the IDs and, with a provider, to OTLP. Idempotent."""
    level = logging.getLevelName(settings.log_level)
    install_record_factory()
    if provider is not None:
        _stdlib.attach(OTLPHandler(provider, level), level)
    _structlog.install(provider, level)
