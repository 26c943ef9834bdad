"""Breadcrumbs: the last log records of the current request, attached to its ERROR line.

A handler on the root logger keeps each record of a request (at the export level or above)
in that request's own list; nothing is formatted then. Only when an exception is logged are
the previous records (up to the limit) rendered as short lines, scrubbed, and added to the
ERROR event as `breadcrumbs`, so a sampled-out trace still shows what the request did.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence

from otel_distro.request_id import request_crumbs
from otel_distro.request_log import LOGGER_NAME

__all__ = ["BreadcrumbHandler", "render_crumbs"]


class BreadcrumbHandler(logging.Handler):
    """Remembers each request's records, at most `2 * limit` of them at a time."""

    def __init__(self, limit: int, level: int = logging.NOTSET) -> None:
        super().__init__(level)
        self.limit = limit

    def handle(self, record: logging.LogRecord) -> bool:
        # No lock, no formatting: a list append per record, on the request's own list.
        request_id = record.__dict__.get("otel_request_id")
        if not request_id or record.name == LOGGER_NAME:  # our access line ends the request anyway
            return False
        crumbs = request_crumbs(request_id)
        if crumbs is None:
            return False
        crumbs.append(record)
        if len(crumbs) > 2 * self.limit:
            del crumbs[: -(self.limit + 1)]  # the limit, and this record if it is the ERROR one
        return True

    def emit(self, record: logging.LogRecord) -> None:  # handle() does the work
        pass


def _line(record: logging.LogRecord) -> str:
    try:
        message = record.getMessage()
    except Exception:  # a record whose arguments do not fit its message: as logging prints it
        message = str(record.msg)
    seconds = int(record.created)
    clock = time.strftime("%H:%M:%S", time.gmtime(seconds))
    millis = int((record.created - seconds) * 1000)
    return f"{clock}.{millis:03d} {record.levelname} {record.name}: {message}"


def render_crumbs(request_id: str, limit: int, before: object | None = None) -> Sequence[str]:
    """The request's last `limit` records before `before` (the ERROR record itself), as lines."""
    crumbs = request_crumbs(request_id) if request_id and limit else None
    if not crumbs:
        return ()
    earlier = [r for r in crumbs if r is not before][-limit:]
    return [_line(r) for r in earlier]
