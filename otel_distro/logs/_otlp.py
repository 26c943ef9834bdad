"""Our log events as OpenTelemetry log records (and so over OTLP to Loki)."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from opentelemetry._logs import SeverityNumber
from opentelemetry.context import get_current
from opentelemetry.sdk._logs import LoggerProvider

from otel_distro.logs._event import CORE, EventBuilder
from otel_distro.request_id import SPAN_ATTRIBUTE

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
        return list(value)
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    return repr(value)


def emit_event(provider: LoggerProvider, logger_name: str, event: Mapping[str, Any], created_ns: int | None) -> None:
    attributes = {k: attribute_value(v) for k, v in event.items() if k not in _NOT_ATTRIBUTES}
    if event.get("request_id"):
        attributes[SPAN_ATTRIBUTE] = event["request_id"]
    exception = event.get("exception")
    if isinstance(exception, Mapping):
        for key in ("type", "message", "stacktrace"):
            attributes[f"exception.{key}"] = str(exception[key])
    number, text = _SEVERITY.get(str(event["level"]), (SeverityNumber.UNSPECIFIED, str(event["level"])))
    provider.get_logger(logger_name).emit(
        timestamp=created_ns,
        context=get_current(),
        severity_number=number,
        severity_text=text,
        body=event["message"],
        attributes=attributes,
    )


class OTLPHandler(logging.Handler):
    """Sends stdlib records to the OpenTelemetry logger provider."""

    def __init__(self, logger_provider: LoggerProvider, builder: EventBuilder, level: int = logging.NOTSET) -> None:
        super().__init__(level)
        self._provider = logger_provider
        self._builder = builder

    def emit(self, record: logging.LogRecord) -> None:
        if record.name.startswith(_FEEDBACK):
            return
        try:
            event = self._builder.from_record(record)
            emit_event(self._provider, record.name, event, int(record.created * 1e9))
        except Exception:
            self.handleError(record)
