"""The `app.errors` counter: every exception logged at ERROR or above, by error group,
exception type and route, with a bound on distinct groups.

It is a logging handler at ERROR level on the root logger (beside our other handlers), so
records below ERROR never reach it and the request path pays nothing while nothing fails;
structlog events that never become stdlib records are counted by our structlog processor.
An exception is counted once however many ERROR lines report it (the server's line and ours).
"""

from __future__ import annotations

import contextlib
import logging
import threading
from collections.abc import Mapping
from typing import Any

from opentelemetry.metrics import MeterProvider
from opentelemetry.trace import get_current_span

from otel_distro._version import __version__
from otel_distro.error_group import ATTRIBUTE, group_id

__all__ = ["METRIC", "OTHER", "ErrorCounter", "error_type"]

METRIC = "app.errors"
OTHER = "_other"
_COUNTED = "__otel_error_counted__"
_log = logging.getLogger("otel_distro.errors")


def error_type(exc: BaseException) -> str:
    """The exception's fully qualified type (`error.type`); builtins by their bare name."""
    kind = type(exc)
    return kind.__qualname__ if kind.__module__ == "builtins" else f"{kind.__module__}.{kind.__qualname__}"


def route_of(fields: Mapping[str, Any]) -> str:
    """The event's `route` field (our request line has one), else the current span's `http.route`."""
    route = fields.get("route")
    if isinstance(route, str):
        return route
    attributes = getattr(get_current_span(), "attributes", None) or {}
    value = attributes.get("http.route")
    return value if isinstance(value, str) else ""


class ErrorCounter(logging.Handler):
    """Counts each logged exception once in `app.errors` (unit `{error}`)."""

    def __init__(self, meter_provider: MeterProvider, max_groups: int) -> None:
        super().__init__(logging.ERROR)
        meter = meter_provider.get_meter("otel_distro", __version__)
        self._counter = meter.create_counter(
            METRIC, unit="{error}", description="Exceptions logged at ERROR or above, by error group."
        )
        self._max_groups = max_groups
        self._groups: set[str] = set()
        self._lock = threading.Lock()
        self._warned = False

    def handle(self, record: logging.LogRecord) -> bool:
        # No handler lock: the counter is thread-safe and the group set has its own.
        exc = record.exc_info[1] if record.exc_info else None
        if exc is None or record.name == _log.name:
            return False
        return self.count_once(exc, route_of(record.__dict__))

    def count_once(self, exc: BaseException, route: str) -> bool:
        """Count `exc` unless an earlier line about it was counted; whether it was counted now."""
        if getattr(exc, _COUNTED, False):
            return False
        with contextlib.suppress(AttributeError, TypeError):
            setattr(exc, _COUNTED, True)
        self.count(exc, route)
        return True

    def emit(self, record: logging.LogRecord) -> None:  # handle() does the work
        pass

    def count(self, exc: BaseException, route: str) -> None:
        attributes = {ATTRIBUTE: self._bounded(group_id(exc)), "error.type": error_type(exc), "http.route": route}
        self._counter.add(1, attributes)

    def _bounded(self, group: str) -> str:
        if group in self._groups:
            return group
        with self._lock:
            if len(self._groups) < self._max_groups:
                self._groups.add(group)
                return group
            warn, self._warned = not self._warned, True
        if warn:
            _log.warning(
                "otel-distro: more than %d distinct error groups in this process; new ones are counted as %r "
                "in %s (OTEL_DISTRO_ERROR_GROUPS_MAX)",
                self._max_groups,
                OTHER,
                METRIC,
            )
        return OTHER
