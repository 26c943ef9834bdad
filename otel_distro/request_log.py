"""Per-request log lines: `request completed`, `slow request`, and the one ERROR line for an
unhandled exception. Written when the request ends (our server instrumentation's
`end_request`: the last body byte sent, a streamed body closed, Flask's teardown), inside the
request's trace, so each line carries the trace and request IDs and the whole duration.
Under the contrib instrumentations it is written when the response starts instead (Flask's
response hook; for FastAPI the response propagator, contrib's only per-response call)."""

from __future__ import annotations

import contextlib
import logging
import time
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from otel_distro.request_id import _Active

__all__ = ["LOCAL_ONLY", "LOGGER_NAME", "RequestLog", "SuppressLoggedErrors"]

LOGGER_NAME = "otel_distro.request"
# Record attribute: print and write the line, but do not export it over OTLP.
LOCAL_ONLY = "_otel_local_only"
_MARK = "_otel_distro_logged"


class RequestLog:
    def __init__(self, access: bool, slow_threshold: float, export_access: bool = True) -> None:
        self._log = logging.getLogger(LOGGER_NAME)
        self._access = access
        self._slow = slow_threshold
        self._access_extra = {} if export_access else {LOCAL_ONLY: True}

    def __call__(self, active: _Active, status: int, error: BaseException | None) -> None:
        seconds = time.perf_counter() - active.started
        slow = 0 < self._slow <= seconds
        if not (self._access or slow or error is not None):
            return
        fields = {
            "method": active.method,
            "route": active.route(),
            "status": status,
            "duration_ms": round(seconds * 1000, 1),
        }
        if error is not None and status >= 500 and not getattr(error, _MARK, False):
            self._log.error(
                "unhandled %s in %s %s",
                type(error).__name__,
                fields["method"],
                fields["route"],
                exc_info=error,
                extra=fields,
            )
            _mark(error)
        if slow:
            self._log.warning("slow request", extra=fields)
        elif self._access:
            self._log.info("request completed", extra=fields | self._access_extra)


def _mark(error: BaseException) -> None:
    with contextlib.suppress(AttributeError):  # exceptions without a __dict__
        setattr(error, _MARK, True)


class SuppressLoggedErrors(logging.Filter):
    """Drops a server's own report of an exception we already logged with the request's IDs
    (uvicorn logs `Exception in ASGI application` after the trace has ended)."""

    def filter(self, record: logging.LogRecord) -> bool:
        exc = record.exc_info[1] if record.exc_info else None
        return not (exc is not None and getattr(exc, _MARK, False))
