"""One event shape for every log line, whatever produced it, and its two renderings.

A stdlib record or a structlog event becomes an ordered dict: timestamp, level, logger,
message, trace_id, span_id, request_id, service, service_version, environment, then the
event's own fields, then (on an ERROR line in a request) `breadcrumbs`, then `exception` (type,
message, stack trace and error group ID). JSON renders it as one line; console renders it for
people at a terminal.
"""

from __future__ import annotations

import json
import logging
import time
import traceback
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from otel_distro.error_events import DECIDED
from otel_distro.error_group import group_id
from otel_distro.logs._breadcrumbs import render_crumbs
from otel_distro.logs._context import RECORD_FIELDS, current_ids
from otel_distro.request_log import LOCAL_ONLY
from otel_distro.scrub import Scrubber

# Attributes every LogRecord has; anything else came from `extra=`.
RESERVED = frozenset(vars(logging.LogRecord("", 0, "", 0, "", (), None))) | {"message", "asctime", "taskName"}
_SKIP_RECORD = RESERVED | frozenset(RECORD_FIELDS) | {"_otel_event", DECIDED, LOCAL_ONLY}
# structlog keys with a fixed place in the shape, or internal to structlog.
_STRUCTLOG_OWN = frozenset(
    {
        "event",
        "level",
        "logger",
        "timestamp",
        "trace_id",
        "span_id",
        "request_id",
        "exc_info",
        "_record",
        "_from_structlog",
        "_logger",
        "_name",
        "stack_info",
    }
)
CORE = ("timestamp", "level", "logger", "message", "trace_id", "span_id", "request_id")


@dataclass(frozen=True)
class Service:
    name: str
    version: str
    environment: str


_last_second: tuple[int, str] = (-1, "")


def iso_utc(epoch: float) -> str:
    """ISO-8601 UTC with milliseconds: 2026-11-23T09:48:10.126Z."""
    global _last_second
    seconds = int(epoch)
    millis = int((epoch - seconds) * 1000)
    second, text = _last_second  # one tuple read: safe when threads race
    if second != seconds:
        text = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(seconds))
        _last_second = (seconds, text)
    return f"{text}.{millis:03d}Z"


def exception_fields(exc_info: Any) -> dict[str, str] | None:
    if isinstance(exc_info, BaseException):
        exc_info = (type(exc_info), exc_info, exc_info.__traceback__)
    if not isinstance(exc_info, tuple) or exc_info[0] is None:
        return None
    exc_type, exc, tb = exc_info
    fields = {
        "type": exc_type.__name__,
        "message": str(exc),
        "stacktrace": "".join(traceback.format_exception(exc_type, exc, tb)),
    }
    if isinstance(exc, BaseException):
        fields["group_id"] = group_id(exc)
    return fields


class EventBuilder:
    """Turns records and structlog events into the shared shape, scrubbed once."""

    def __init__(self, service: Service, scrubber: Scrubber | None, breadcrumbs: int = 0) -> None:
        self._service = service
        self._scrubber = scrubber
        self._breadcrumbs = breadcrumbs

    def _add_exception(self, event: dict[str, Any], exc_info: Any, level: str, before: object | None) -> None:
        """`exception`, after the request's `breadcrumbs` when an ERROR line carries one."""
        exception = self._exception(exc_info)
        if not exception:
            return
        if self._breadcrumbs and level in ("ERROR", "CRITICAL"):
            lines = render_crumbs(str(event["request_id"]), self._breadcrumbs, before)
            if lines:
                event["breadcrumbs"] = [self._scrub_text(line) for line in lines]
        event["exception"] = exception

    def _scrub_text(self, text: str) -> str:
        return self._scrubber.text(text) if self._scrubber else text

    def _fields(self, items: Mapping[str, Any]) -> dict[str, Any]:
        return self._scrubber.mapping(items) if self._scrubber else dict(items)

    def _exception(self, exc_info: Any) -> dict[str, str] | None:
        """The exception's type, message and stack trace; the trace is scrubbed like the message,
        since it repeats the message and quotes the source lines around it."""
        exception = exception_fields(exc_info)
        if exception is not None and self._scrubber is not None:
            exception["message"] = self._scrubber.text(exception["message"])
            exception["stacktrace"] = self._scrubber.text(exception["stacktrace"])
        return exception

    def _base(self, created: float, level: str, logger: str, message: str, ids: tuple[str, str, str]) -> dict[str, Any]:
        return {
            "timestamp": iso_utc(created),
            "level": level,
            "logger": logger,
            "message": self._scrub_text(message),
            "trace_id": ids[0],
            "span_id": ids[1],
            "request_id": ids[2],
            "service": self._service.name,
            "service_version": self._service.version,
            "environment": self._service.environment,
        }

    def from_record(self, record: logging.LogRecord) -> dict[str, Any]:
        """The record's event, built once per record and shared by all our handlers."""
        cached: dict[str, Any] | None = record.__dict__.get("_otel_event")
        if cached is not None:
            return cached
        ids = (
            getattr(record, "otel_trace_id", ""),
            getattr(record, "otel_span_id", ""),
            getattr(record, "otel_request_id", ""),
        )
        extra = {k: v for k, v in vars(record).items() if k not in _SKIP_RECORD}
        if isinstance(record.msg, Mapping) and "event" in record.msg:
            # structlog routed through stdlib: the event dict is the message.
            message = str(record.msg["event"])
            extra.update({k: v for k, v in record.msg.items() if k not in _STRUCTLOG_OWN})
        else:
            message = record.getMessage()
        event = self._base(record.created, record.levelname, record.name, message, ids)
        event.update(self._fields(extra))
        self._add_exception(event, record.exc_info, record.levelname, record)
        record._otel_event = event
        return event

    def from_structlog(
        self, method_name: str, event_dict: Mapping[str, Any], logger_name: str | None = None
    ) -> dict[str, Any]:
        trace_id, span_id, request_id = current_ids()
        ids = (
            str(event_dict.get("trace_id", trace_id)),
            str(event_dict.get("span_id", span_id)),
            str(event_dict.get("request_id", request_id)),
        )
        level = str(event_dict.get("level", method_name)).upper()
        level = {"WARN": "WARNING", "EXCEPTION": "ERROR", "MSG": "INFO", "FATAL": "CRITICAL"}.get(level, level)
        logger = str(event_dict.get("logger") or logger_name or "structlog")
        event = self._base(time.time(), level, logger, str(event_dict.get("event", "")), ids)
        event.update(self._fields({k: v for k, v in event_dict.items() if k not in _STRUCTLOG_OWN}))
        exc_info = event_dict.get("exc_info")
        if exc_info is True:
            import sys

            exc_info = sys.exc_info()
        self._add_exception(event, exc_info, level, None)
        return event


def render_json(event: Mapping[str, Any]) -> str:
    return json.dumps(event, default=str, ensure_ascii=False, separators=(",", ":"))


_SHORT = {
    "trace_id",
    "span_id",
    "service",
    "service_version",
    "environment",
    "timestamp",
    "level",
    "logger",
    "message",
    "exception",
    "request_id",
}


def render_console(event: Mapping[str, Any]) -> str:
    """`HH:MM:SS.mmm LEVEL logger: message key=value ... [request_id trace_id]`."""
    parts = [
        f"{str(event['timestamp'])[11:23]} {event['level']:<7} {event['logger']}: {event['message']}",
        *(f"{k}={v!r}" if isinstance(v, str) else f"{k}={v}" for k, v in event.items() if k not in _SHORT),
    ]
    if event.get("request_id") or event.get("trace_id"):
        parts.append(f"[request_id={event.get('request_id') or '-'} trace_id={event.get('trace_id') or '-'}]")
    line = " ".join(parts)
    exception = event.get("exception")
    if isinstance(exception, Mapping):
        line += "\n" + str(exception["stacktrace"]).rstrip()
    return line


class EventFormatter(logging.Formatter):
    """A stdlib Formatter producing our JSON or console lines."""

    def __init__(self, builder: EventBuilder, json_lines: bool) -> None:
        super().__init__()
        self._builder = builder
        self._render = render_json if json_lines else render_console

    def format(self, record: logging.LogRecord) -> str:
        return self._render(self._builder.from_record(record))
