"""Logs: one JSON (or console) line per event with trace, span and request IDs, the same
events over OTLP, an optional rotated file, and secrets scrubbed everywhere.

What the distro changes in an app's logging, and nothing more:

* a log-record factory stamps `otel_trace_id`, `otel_span_id` and `otel_request_id` on each
  record (usable in the app's own format strings);
* the root logger gets our handlers: OTLP export, the console line on stdout for records no
  handler of the app printed, the log file if one is configured, the `app.errors`
  counter of logged exceptions, and the breadcrumbs of the current request;
* ERROR lines with an exception are limited per error group (`OTEL_DISTRO_ERROR_EVENTS_PER_MINUTE`)
  on stdout, in the file and over OTLP; the counter still counts every exception;
* if the root logger was at its default WARNING level, it is lowered to
  `OTEL_DISTRO_LOG_LEVEL`;
* `basicConfig`, `dictConfig` and `fileConfig` keep working as if the distro were absent;
* uvicorn's and gunicorn's access lines are replaced by our `request completed` line, and
  uvicorn's report of an exception we already logged (with IDs) is dropped;
* structlog gets our processor chain if the app never configures it, or one processor before
  the app's renderer if it does.
"""

from __future__ import annotations

import logging
import sys

from opentelemetry.sdk._logs import LoggerProvider
from opentelemetry.sdk.resources import Resource

from otel_distro.error_counter import ErrorCounter
from otel_distro.error_events import ErrorEventLimit
from otel_distro.logs import _stdlib, _structlog
from otel_distro.logs._breadcrumbs import BreadcrumbHandler
from otel_distro.logs._context import current_ids, install_record_factory
from otel_distro.logs._event import EventBuilder, EventFormatter, Service, render_console, render_json
from otel_distro.logs._files import SharedRotatingFileHandler
from otel_distro.logs._otlp import OTLPHandler
from otel_distro.logs._stdlib import ConsoleHandler
from otel_distro.logs._structlog import add_otel_context
from otel_distro.request_log import SuppressLoggedErrors
from otel_distro.scrub import Scrubber
from otel_distro.settings import Settings, variable

__all__ = ["OTLPHandler", "add_otel_context", "current_ids", "install_logging"]

_ACCESS_LOGGERS = ("uvicorn.access", "gunicorn.access")
_log = logging.getLogger("otel_distro.logs")


def _service(resource: Resource | None) -> Service:
    attributes = resource.attributes if resource is not None else {}
    return Service(
        str(attributes.get("service.name", "")),
        str(attributes.get("service.version", "")),
        str(attributes.get("deployment.environment.name", "")),
    )


def _json_wanted(settings: Settings) -> bool:
    if settings.log_format == "auto":
        return not (hasattr(sys.stdout, "isatty") and sys.stdout.isatty())
    return settings.log_format == "json"


def install_logging(
    settings: Settings,
    provider: LoggerProvider | None,
    resource: Resource | None = None,
    scrubber: Scrubber | None = None,
    error_counter: ErrorCounter | None = None,
) -> None:
    """Wire stdlib logging and structlog to the IDs, the console, the file and OTLP. Idempotent."""
    level = logging.getLevelName(settings.log_level)
    builder = EventBuilder(_service(resource), scrubber, settings.breadcrumbs)
    json_lines = _json_wanted(settings)
    install_record_factory()

    handlers: list[logging.Handler] = []
    if provider is not None:
        handlers.append(OTLPHandler(provider, builder, level))
    formatter = EventFormatter(builder, json_lines)
    if settings.console_logs == "off":
        # Stand in for logging.lastResort, which our root handler would silence.
        handlers.append(ConsoleHandler(sys.stderr, logging.WARNING, logging.Formatter("%(message)s")))
    else:
        handlers.append(ConsoleHandler(sys.stdout, level, formatter))
    file_handler = _log_file(settings, builder, level)
    if file_handler is not None:
        handlers.append(file_handler)
    limit = _error_event_limit(settings)
    if limit is not None:
        for handler in handlers:
            handler.addFilter(limit)  # the outputs only: the counter and the breadcrumbs see every record
    if settings.breadcrumbs:
        handlers.insert(0, BreadcrumbHandler(settings.breadcrumbs, level))
    if error_counter is not None:
        handlers.append(error_counter)

    silenced = _ACCESS_LOGGERS if settings.access_log != "server" else ()
    app_formatter = formatter if settings.console_logs == "replace" else None
    attached = _stdlib.attach(handlers, level, app_formatter=app_formatter, app_filter=limit, silenced=silenced)
    uvicorn_errors = logging.getLogger("uvicorn.error")
    if not any(isinstance(f, SuppressLoggedErrors) for f in uvicorn_errors.filters):
        uvicorn_errors.addFilter(SuppressLoggedErrors())

    render = None if settings.console_logs == "off" else (render_json if json_lines else render_console)
    # structlog events that never become stdlib records reach the same file through this handler.
    in_use = next((h for h in attached if isinstance(h, SharedRotatingFileHandler)), None)
    _structlog.install(provider, builder, scrubber, level, render, in_use, error_counter, limit)


def _error_event_limit(settings: Settings) -> ErrorEventLimit | None:
    if not settings.error_events_per_minute:
        return None
    return ErrorEventLimit(settings.error_events_per_minute, settings.error_groups_max)


def _log_file(settings: Settings, builder: EventBuilder, level: int) -> SharedRotatingFileHandler | None:
    """The log file's handler, or None (one warning) when its directory cannot be made: console only."""
    if not settings.log_file:
        return None
    setting = variable("log_file")
    try:
        handler = SharedRotatingFileHandler(
            settings.log_file, settings.log_file_max_bytes, settings.log_file_backups, setting
        )
    except OSError as err:
        _log.warning(
            "otel-distro: %s=%r cannot be used (%s); logging to the console only", setting, settings.log_file, err
        )
        return None
    handler.setFormatter(EventFormatter(builder, json_lines=True))
    handler.setLevel(level)
    return handler
