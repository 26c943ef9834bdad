"""A rate limit per error group on the ERROR events that carry an exception.

A bug hit by every request would otherwise write one stack trace per request to stdout, the
log file and the logs backend. Each group (`error.group.id`) gets a token bucket: bursts of
up to `per_minute` events, then `per_minute` a minute. Events over the limit are not written
or exported; the next event of the group that passes carries `error.events.suppressed`, the
number left out since the group's previous event, so nothing disappears unsaid. The
`app.errors` counter is a separate handler and counts every exception whatever this decides.

Only ERROR-or-above records with an exception are looked at: other records pass at the cost
of one level comparison. Distinct groups are bounded like the counter's: past `max_groups`,
new groups share one bucket.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

from otel_distro.error_counter import OTHER
from otel_distro.error_group import group_id

__all__ = ["DECIDED", "SUPPRESSED", "ErrorEventLimit"]

SUPPRESSED = "error.events.suppressed"
"""On the first event of a group after some were suppressed: how many were."""

DECIDED = "_otel_error_event_passes"
"""The record attribute holding the decision, so every handler follows the first."""


class _Bucket:
    __slots__ = ("suppressed", "tokens", "updated")

    def __init__(self, tokens: float, now: float) -> None:
        self.tokens = tokens
        self.updated = now
        self.suppressed = 0


class ErrorEventLimit(logging.Filter):
    """Admits at most `per_minute` events a minute per error group (bursts up to `per_minute`).

    A filter on each of our output handlers; a record is decided once, by the first of them,
    and the others follow that decision.
    """

    def __init__(self, per_minute: int, max_groups: int, clock: Callable[[], float] = time.monotonic) -> None:
        super().__init__()
        self._capacity = float(per_minute)
        self._per_second = per_minute / 60.0
        self._max_groups = max_groups
        self.clock = clock
        self._buckets: dict[str, _Bucket] = {}
        self._lock = threading.Lock()

    def admit(self, group: str) -> int | None:
        """None when the group's event is to be left out; else how many were left out before it."""
        with self._lock:
            now = self.clock()
            bucket = self._buckets.get(group)
            if bucket is None:
                key = group if len(self._buckets) < self._max_groups else OTHER
                bucket = self._buckets.get(key) or self._buckets.setdefault(key, _Bucket(self._capacity, now))
            return self._take(bucket, now)

    def _take(self, bucket: _Bucket, now: float) -> int | None:
        elapsed = max(now - bucket.updated, 0.0)
        bucket.tokens = min(self._capacity, bucket.tokens + elapsed * self._per_second)
        bucket.updated = now
        if bucket.tokens < 1.0:
            bucket.suppressed += 1
            return None
        bucket.tokens -= 1.0
        suppressed, bucket.suppressed = bucket.suppressed, 0
        return suppressed

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno < logging.ERROR or not record.exc_info:
            return True
        decided = record.__dict__.get(DECIDED)
        if decided is None:
            decided = record.__dict__[DECIDED] = self._decide(record)
        return bool(decided)

    def _decide(self, record: logging.LogRecord) -> bool:
        exc = record.exc_info[1] if record.exc_info else None
        if not isinstance(exc, BaseException):
            return True
        suppressed = self.admit(group_id(exc))
        if suppressed is None:
            return False
        if suppressed:
            record.__dict__[SUPPRESSED] = suppressed
            event = record.__dict__.get("_otel_event")
            if isinstance(event, dict):  # built already by a handler without this filter
                event[SUPPRESSED] = suppressed
        return True
