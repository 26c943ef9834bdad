"""Our log events as OpenTelemetry log records (and so over OTLP to the logs backend)."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from time import time_ns
from typing import Any

from opentelemetry._logs import LogRecord, SeverityNumber
from opentelemetry.context import get_current
from opentelemetry.sdk._logs import Logger, LoggerProvider, ReadWriteLogRecord
from opentelemetry.trace import get_current_span

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
    `ReadWriteLogRecord` (attributes as a plain dict, as exporters read it). Whatever this
    path does not cover (a disabled logger, more attributes than the limit) goes through
    `Logger.emit` unchanged.
    """

    def __init__(self, provider: LoggerProvider) -> None:
        self._provider = provider
        self._loggers: dict[str, Logger] = {}

    def _logger(self, name: str) -> Logger:
        logger = self._loggers.get(name)
        if logger is None:
            logger = self._loggers[name] = self._provider.get_logger(name)  # type: ignore[assignment]
        return logger  # type: ignore[return-value]

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
        logger = self._logger(logger_name)
        context = get_current()
        processor: Any = getattr(logger, "_multi_log_record_processor", None)
        limits: Any = getattr(logger, "_log_record_limits", None)
        fast = (
            processor is not None
            and limits is not None
            and logger._is_enabled()
            and len(attributes) <= (limits.max_log_record_attributes or 0)
            and limits.max_log_record_attribute_length is None
        )
        if not fast:
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
        record = LogRecord.__new__(LogRecord)
        record.timestamp = created_ns
        record.observed_timestamp = time_ns()
        record.context = context
        record.trace_id = span_context.trace_id
        record.span_id = span_context.span_id
        record.trace_flags = span_context.trace_flags
        record.severity_text = text
        record.severity_number = number
        record.body = event["message"]
        record.attributes = attributes
        record.event_name = None
        record.exception = None
        writable = ReadWriteLogRecord.__new__(ReadWriteLogRecord)
        writable.log_record = record
        writable.resource = logger.resource
        writable.instrumentation_scope = logger.instrumentation_scope
        writable.limits = limits
        logger._logger_metrics.emit_log()
        processor.on_emit(writable)


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
