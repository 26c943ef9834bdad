"""Our log events as OpenTelemetry log records (and so over OTLP to the logs backend)."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from opentelemetry._logs import SeverityNumber
from opentelemetry.context import get_current
from opentelemetry.sdk._logs import Logger, LoggerProvider
from opentelemetry.trace import get_current_span

from otel_distro import _sdk_compat
from otel_distro.error_group import ATTRIBUTE as ERROR_GROUP
from otel_distro.logs._event import CORE, EventBuilder
from otel_distro.request_id import SPAN_ATTRIBUTE
from otel_distro.request_log import LOCAL_ONLY

_SEVERITY = {
    "DEBUG": (SeverityNumber.DEBUG, "DEBUG"),
    "INFO": (SeverityNumber.INFO, "INFO"),
    "WARNING": (SeverityNumber.WARN, "WARN"),
    "ERROR": (SeverityNumber.ERROR, "ERROR"),
    "CRITICAL": (SeverityNumber.FATAL, "FATAL"),
}
# Carried as trace context, resource or body instead of attributes.
_NOT_ATTRIBUTES = frozenset(CORE) | {"service", "service_version", "environment", "exception"}
# Loggers that report export trouble: exporting their records would feed the failure back.
_FEEDBACK = ("opentelemetry", "otel_distro.exporters", "otel_distro.shutdown")


_PRIMITIVES = (str, bool, int, float)


def attribute_value(value: Any) -> Any:
    """OTLP attributes take primitives and lists of them; everything else becomes text."""
    if type(value) in _PRIMITIVES or isinstance(value, _PRIMITIVES):
        return value
    if isinstance(value, (list, tuple)) and all(isinstance(v, (str, bool, int, float)) for v in value):
        return tuple(value)  # as the SDK's attribute cleaning stores sequences
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    return repr(value)


class Emitter:
    """Hands our log records to the provider's processors, the way `Logger.emit` does, cheaper.

    The SDK's `Logger.emit` re-validates every attribute (`BoundedAttributes`) and builds the
    record through several layers; ours are already plain values, and this path runs on the
    request thread for every log line. The record handed to the processors is the same
    `ReadWriteLogRecord` (attributes as a plain dict, as exporters read it), built in
    `otel_distro._sdk_compat` (fast path `LOG_EMIT`). Whatever this path does not cover (a
    disabled logger, more attributes than the limit, an SDK without those internals) goes
    through `Logger.emit` unchanged.
    """

    def __init__(self, provider: LoggerProvider) -> None:
        self._provider = provider
        self._loggers: dict[str, tuple[Logger, _sdk_compat.LoggerInternals | None]] = {}

    def _logger(self, name: str) -> tuple[Logger, _sdk_compat.LoggerInternals | None]:
        found = self._loggers.get(name)
        if found is None:
            logger: Any = self._provider.get_logger(name)
            found = self._loggers[name] = (logger, _sdk_compat.logger_internals(logger))
        return found

    def emit(self, logger_name: str, event: Mapping[str, Any], created_ns: int | None) -> None:
        attributes = {k: attribute_value(v) for k, v in event.items() if k not in _NOT_ATTRIBUTES}
        if event.get("request_id"):
            attributes[SPAN_ATTRIBUTE] = event["request_id"]
        exception = event.get("exception")
        if isinstance(exception, Mapping):
            for key in ("type", "message", "stacktrace"):
                attributes[f"exception.{key}"] = str(exception[key])
            if "group_id" in exception:
                attributes[ERROR_GROUP] = str(exception["group_id"])
        number, text = _SEVERITY.get(str(event["level"]), (SeverityNumber.UNSPECIFIED, str(event["level"])))
        logger, internals = self._logger(logger_name)
        context = get_current()
        if internals is None or len(attributes) > internals.max_attributes or not internals.is_enabled():
            logger.emit(
                timestamp=created_ns,
                context=context,
                severity_number=number,
                severity_text=text,
                body=event["message"],
                attributes=attributes,
            )
            return
        span_context = get_current_span(context).get_span_context()
        # The record built directly from our plain values: no BoundedAttributes re-validation, no record layers.
        internals.emit(context, span_context, created_ns, number, text, event["message"], attributes)


class OTLPHandler(logging.Handler):
    """Sends stdlib records to the OpenTelemetry logger provider."""

    def __init__(self, logger_provider: LoggerProvider, builder: EventBuilder, level: int = logging.NOTSET) -> None:
        super().__init__(level)
        self._emitter = Emitter(logger_provider)
        self._builder = builder

    def handle(self, record: logging.LogRecord) -> bool:
        # No handler lock: the emitter and the SDK processors are thread-safe already.
        if self.filter(record):
            self.emit(record)
            return True
        return False

    def emit(self, record: logging.LogRecord) -> None:
        if record.name.startswith(_FEEDBACK) or LOCAL_ONLY in record.__dict__:
            return
        try:
            event = self._builder.from_record(record)
            self._emitter.emit(record.name, event, int(record.created * 1e9))
        except Exception:
            self.handleError(record)
