"""Stdlib log records and structlog events as OpenTelemetry log records."""

from __future__ import annotations

import logging
import sys
import traceback
from collections.abc import Mapping
from typing import Any

from opentelemetry._logs import SeverityNumber
from opentelemetry.context import get_current
from opentelemetry.sdk._logs import LoggerProvider

from otel_distro.logs._context import RECORD_FIELDS, REQUEST_ID
from otel_distro.request_id import SPAN_ATTRIBUTE

# Attributes every LogRecord has; anything else came from `extra=`.
_RESERVED = frozenset(vars(logging.LogRecord("", 0, "", 0, "", (), None))) | {"message", "asctime"}
_SKIP = _RESERVED | frozenset(RECORD_FIELDS) | {"taskName"}

_SEVERITY = {
    logging.DEBUG: (SeverityNumber.DEBUG, "DEBUG"),
    logging.INFO: (SeverityNumber.INFO, "INFO"),
    logging.WARNING: (SeverityNumber.WARN, "WARN"),
    logging.ERROR: (SeverityNumber.ERROR, "ERROR"),
    logging.CRITICAL: (SeverityNumber.FATAL, "FATAL"),
}
_STRUCTLOG_LEVELS = {
    "debug": logging.DEBUG,
    "info": logging.INFO,
    "warning": logging.WARNING,
    "warn": logging.WARNING,
    "error": logging.ERROR,
    "exception": logging.ERROR,
    "critical": logging.CRITICAL,
    "fatal": logging.CRITICAL,
    "msg": logging.INFO,
}


def _severity(levelno: int) -> tuple[SeverityNumber, str]:
    return _SEVERITY.get(levelno) or (SeverityNumber.UNSPECIFIED, logging.getLevelName(levelno))


def attribute_value(value: Any) -> Any:
    """OTLP attributes take primitives and lists of them; everything else becomes text."""
    if isinstance(value, (str, bool, int, float)):
        return value
    if isinstance(value, (list, tuple)) and all(isinstance(v, (str, bool, int, float)) for v in value):
        return list(value)
    return repr(value) if not isinstance(value, bytes) else value.decode("utf-8", "replace")


# structlog keys that OTLP carries elsewhere (trace context, severity, timestamp, body).
_STRUCTLOG_SKIP = frozenset(
    {"event", "exc_info", "timestamp", "level", "trace_id", "span_id", "_record", "_from_structlog"}
)


def structlog_attributes(event_dict: Mapping[str, Any]) -> dict[str, Any]:
    attributes: dict[str, Any] = {}
    for key, value in event_dict.items():
        if key == "request_id":
            attributes[SPAN_ATTRIBUTE] = attribute_value(value)
        elif key not in _STRUCTLOG_SKIP:
            attributes[key] = attribute_value(value)
    return attributes


def exception_attributes(exc_info: Any) -> dict[str, str]:
    if not exc_info or exc_info is True:
        return {}
    exc_type, exc, tb = exc_info
    if exc_type is None:
        return {}
    return {
        "exception.type": exc_type.__name__,
        "exception.message": str(exc),
        "exception.stacktrace": "".join(traceback.format_exception(exc_type, exc, tb)),
    }


class OTLPHandler(logging.Handler):
    """Sends stdlib records to the OpenTelemetry logger provider (and so over OTLP)."""

    def __init__(self, logger_provider: LoggerProvider, level: int = logging.NOTSET) -> None:
        super().__init__(level)
        self._provider = logger_provider

    def emit(self, record: logging.LogRecord) -> None:
        # Our own and the SDK's records would feed back into the exporter that reports them.
        if record.name.startswith(("opentelemetry", "otel_distro")):
            return
        try:
            self._emit(record)
        except Exception:
            self.handleError(record)

    def _emit(self, record: logging.LogRecord) -> None:
        attributes: dict[str, Any] = {}
        if isinstance(record.msg, Mapping) and "event" in record.msg:
            # structlog routed through stdlib: the event dict is the message.
            event = dict(record.msg)
            body: Any = str(event.pop("event"))
            attributes.update(structlog_attributes(event))
        else:
            body = record.getMessage()
        for key, value in vars(record).items():
            if key not in _SKIP:
                attributes[key] = attribute_value(value)
        request_id = getattr(record, REQUEST_ID, "")
        if request_id:
            attributes[SPAN_ATTRIBUTE] = request_id
        attributes["code.function.name"] = record.funcName
        attributes["code.file.path"] = record.pathname
        attributes["code.line.number"] = record.lineno
        attributes.update(exception_attributes(record.exc_info))
        number, text = _severity(record.levelno)
        self._provider.get_logger(record.name).emit(
            timestamp=int(record.created * 1e9),
            context=get_current(),
            severity_number=number,
            severity_text=text,
            body=body,
            attributes=attributes,
        )


def emit_structlog_event(
    provider: LoggerProvider, logger_name: str, method_name: str, event_dict: Mapping[str, Any]
) -> None:
    """Send one structlog event (not routed through stdlib) to the logger provider."""
    levelno = _STRUCTLOG_LEVELS.get(method_name, logging.INFO)
    attributes = structlog_attributes(event_dict)
    exc_info = event_dict.get("exc_info")
    if exc_info is True or isinstance(exc_info, BaseException):
        exc_info = sys.exc_info() if exc_info is True else (type(exc_info), exc_info, exc_info.__traceback__)
    attributes.update(exception_attributes(exc_info))
    number, text = _severity(levelno)
    provider.get_logger(logger_name).emit(
        context=get_current(),
        severity_number=number,
        severity_text=text,
        body=str(event_dict.get("event", "")),
        attributes=attributes,
    )
