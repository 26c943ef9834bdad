"""Span and log-record hand-offs to export that cost the request thread ~2-4 µs, not ~20.

The SDK's `BatchLogRecordProcessor` copies every record on the request thread with
`copy.copy` (`__reduce_ex__` and `copyreg`), wraps it in a frozen dataclass and checks the
process ID, and `BatchSpanProcessor` checks the process ID and its metrics per span. Measured
with `benchmarks/profile.py --in-process --timers` (thread-CPU clocks around each, in the
drive loop): about 20 µs per FastAPI request that logs one line, against about 6 µs here. The
request thread only appends to a bounded deque (the log record shallow-copied through its
`__dict__`, the same copy, its context cleared as the SDK clears it); the signal's export
thread wraps, scrubs, encodes and sends.

What is exported is unchanged: the same span objects and the same `ReadableLogRecord`s reach
the same exporters, in batches of the same sizes (`OTEL_BSP_*`, `OTEL_BLRP_*`: queue size,
batch size, schedule delay), oldest first. As with the SDK, each signal keeps its own thread:
one thread for both was tried and measured (issue #14, part 3). It saved nothing measurable
(a wake-up per 128 items), and it lost log records: with the app saturating the core, one
thread gets half the GIL turns two had, and an export retrying against an unreachable
collector held the other signal back (tests/reliability/test_collector_trouble.py).

What differs from the SDK: a full queue drops its oldest item as the SDK's does, but the
warning is one line per `OTEL_DISTRO_EXPORT_WARNING_INTERVAL` for all signals (the first drop
says so at once; later lines count what was dropped since), where the SDK logs per item and
leaves it to the rate limit. When the SDK's own processor
metrics are on (`OTEL_PYTHON_SDK_INTERNAL_METRICS_ENABLED`), the SDK processors are used, so
those metrics stay the SDK's.
"""

from __future__ import annotations

import collections
import copy
import logging
import os
import threading
import time
import weakref
from collections.abc import Callable, Sequence
from typing import Any, Generic, Protocol, TypeVar

from opentelemetry.context import Context, attach, detach, set_value
from opentelemetry.sdk._logs import LogRecordProcessor, ReadableLogRecord, ReadWriteLogRecord
from opentelemetry.sdk._logs.export import BatchLogRecordProcessor, LogRecordExporter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, Span, SpanProcessor
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter

from otel_distro._fork_safe import ForkSafeLock
from otel_distro._sdk_compat import SUPPRESS_INSTRUMENTATION_KEY, batch_processor_defaults
from otel_distro.settings import Settings

__all__ = ["ExportQueues", "LogQueueProcessor", "SpanQueueProcessor"]

_log = logging.getLogger("otel_distro.exporters.queue")

_T = TypeVar("_T")


class _Exporter(Protocol):
    def export(self, batch: Sequence[Any], /) -> Any: ...

    def shutdown(self) -> Any: ...


# The SDK processors' own defaults and variables (`OTEL_BSP_SCHEDULE_DELAY`, `OTEL_BLRP_SCHEDULE_DELAY`).
def _schedule_delay(processor: type[Any]) -> float:
    return batch_processor_defaults(processor)[0]


# As the SDK processors' `shutdown()`: how long an export in progress may take to finish.
_SHUTDOWN_WAIT = 30.0


class _Drops:
    """Items dropped from full queues, reported in one warning per interval for all signals."""

    def __init__(self, interval: float) -> None:
        self._interval = interval
        self._next = 0.0
        self._lock = ForkSafeLock()  # export threads report drops through it
        self.pending: dict[str, int] = {}

    def dropped(self, name: str, queue_sizes: dict[str, int]) -> None:
        """On the request thread, as the SDK warns: counted, and reported if the interval passed."""
        self.pending[name] += 1
        if time.monotonic() >= self._next:
            self.report(queue_sizes)

    def report(self, queue_sizes: dict[str, int]) -> None:
        """Warn if anything was dropped and the interval passed (also after each export)."""
        if not any(self.pending.values()):
            return
        now = time.monotonic()
        with self._lock:
            if now < self._next:
                return
            self._next = now + self._interval
            dropped = {name: n for name, n in self.pending.items() if n}
            for name in dropped:
                self.pending[name] -= dropped[name]
        _log.warning(
            "otel-distro: export queues full (%s), dropped the oldest %s (collector unreachable or too slow?)",
            ", ".join(f"{queue_sizes[name]} {name}" for name in dropped),
            ", ".join(f"{n} {name}" for name, n in dropped.items()),
        )


class _Channel(Generic[_T]):
    """One signal's bounded queue (newest items on the left), exporter, schedule and thread."""

    def __init__(
        self,
        name: str,
        exporter: _Exporter,
        queue_size: int,
        batch_size: int,
        delay: float,
        prepare: Callable[[Any], _T] | None,
        drops: _Drops,
        queue_sizes: dict[str, int],
    ) -> None:
        self.name = name
        self.exporter = exporter
        self.queue_size = queue_size
        self.batch_size = min(batch_size, queue_size)
        self.delay = delay
        self.prepare = prepare  # what the request thread queued -> what the exporter takes
        self.queue: collections.deque[Any] = collections.deque(maxlen=queue_size)
        self.closed = False
        self.wake = threading.Event()
        self.lock = threading.Lock()  # one export of this channel at a time (its thread vs force_flush)
        self.thread: threading.Thread | None = None
        self._drops = drops
        self._queue_sizes = queue_sizes
        drops.pending[name] = 0
        queue_sizes[name] = queue_size
        # Held by the processor: while it lives, a forked child restarts this channel.
        reference = weakref.WeakMethod(self.after_fork)

        def after_fork() -> None:
            method = reference()
            if method is not None:
                method()

        os.register_at_fork(after_in_child=after_fork)

    # --- the request thread -------------------------------------------------------------------

    def put(self, item: Any) -> None:
        if self.closed:
            return
        queue = self.queue
        if len(queue) == self.queue_size:
            self._drops.dropped(self.name, self._queue_sizes)  # the deque drops its oldest item (right end)
        queue.appendleft(item)
        if len(queue) >= self.batch_size and not self.wake.is_set():
            self.wake.set()

    # --- the signal's export thread ------------------------------------------------------------

    def start(self) -> None:
        self.thread = threading.Thread(target=self._run, name=f"OtelDistroExport {self.name}", daemon=True)
        self.thread.start()

    def _run(self) -> None:
        # As the SDK's worker: wake on a full batch or after the delay, send, sleep again.
        while not self.closed:
            interrupted = self.wake.wait(self.delay)
            if self.closed:
                return
            try:
                self.export(everything=not interrupted)
                self._drops.report(self._queue_sizes)
            except Exception:  # never let the export thread die
                _log.exception("otel-distro: error in the %s export thread", self.name)
            self.wake.clear()

    def export(self, everything: bool, wait: float = -1) -> None:
        """Export full batches while there are; `everything` also sends the rest. With `wait`,
        give up after that many seconds if another thread is exporting this channel."""
        if not self.lock.acquire(timeout=wait):
            return
        try:
            queue = self.queue
            while queue and (everything or len(queue) >= self.batch_size):
                count = min(self.batch_size, len(queue))
                items = [queue.pop() for _ in range(count)]  # oldest first, as the SDK sends them
                prepare = self.prepare
                batch = [prepare(item) for item in items] if prepare is not None else items
                token = attach(set_value(SUPPRESS_INSTRUMENTATION_KEY, True))
                try:
                    self.exporter.export(batch)
                except Exception:
                    _log.exception("otel-distro: exception while exporting %s", self.name)
                finally:
                    detach(token)
        finally:
            self.lock.release()

    def after_fork(self) -> None:
        # A forked child (pre-fork servers): the parent's thread does not exist here, and the
        # parent exports what it queued. Start empty, with fresh locks and a thread of our own.
        self.queue.clear()
        self.wake = threading.Event()
        self.lock = threading.Lock()
        if self.thread is not None and not self.closed:
            self.start()

    def shutdown(self, timeout: float) -> None:
        """Stop taking items, send what is queued, then shut the exporter down.

        The rest is sent on the caller's thread (the providers shut down in parallel,
        `otel_distro.shutdown`); if this channel's thread is exporting, it gets `timeout`
        seconds. The caller bounds the whole exit."""
        if self.closed:
            return
        self.closed = True
        self.wake.set()
        self.export(everything=True, wait=timeout)
        self.exporter.shutdown()

    def force_flush(self) -> bool:
        if self.closed:
            return False
        self.export(everything=True)  # on the caller's thread, as the SDK does
        return True


class ExportQueues:
    """The span and log-record processors of a process: cheap hand-offs, a thread per signal."""

    def __init__(self, settings: Settings) -> None:
        self._settings = settings
        self._channels: list[_Channel[Any]] = []
        self._drops = _Drops(settings.export_warning_interval)
        self._queue_sizes: dict[str, int] = {}

    def sdk_processor_metrics(self) -> bool:
        """The SDK's processor metrics are on: its processors must stay in place to record them."""
        return self._settings.sdk_internal_metrics

    def span_processor(self, exporter: SpanExporter) -> SpanProcessor:
        if self.sdk_processor_metrics():
            return BatchSpanProcessor(exporter)
        settings = self._settings
        channel: _Channel[ReadableSpan] = self._channel(
            "spans", exporter, settings.span_queue, settings.span_export_batch, BatchSpanProcessor, None
        )
        return SpanQueueProcessor(channel)

    def log_processor(self, exporter: LogRecordExporter) -> LogRecordProcessor:
        if self.sdk_processor_metrics():
            return BatchLogRecordProcessor(exporter)
        settings = self._settings
        channel: _Channel[ReadableLogRecord] = self._channel(
            "log records", exporter, settings.log_queue, settings.log_export_batch, BatchLogRecordProcessor, _readable
        )
        return LogQueueProcessor(channel)

    def _channel(
        self, name: str, exporter: Any, queue: int, batch: int, sdk_class: type[Any], prepare: Any
    ) -> _Channel[Any]:
        if any(c.name == name for c in self._channels):
            name = f"{name} {len(self._channels)}"  # a second exporter for the same signal
        channel: _Channel[Any] = _Channel(
            name, exporter, queue, batch, _schedule_delay(sdk_class), prepare, self._drops, self._queue_sizes
        )
        self._channels.append(channel)
        channel.start()
        return channel

    def _after_fork(self) -> None:
        """What each channel's fork handler runs in a forked child (for tests)."""
        for channel in self._channels:
            channel.after_fork()


_Queued = tuple[Any, Any, Any, Any]  # API record (copy), resource, scope, limits


def _readable(queued: _Queued) -> ReadableLogRecord:
    record, resource, scope, limits = queued
    return ReadableLogRecord(
        log_record=record,
        resource=resource if resource is not None else Resource.create({}),
        instrumentation_scope=scope,
        limits=limits,
    )


class SpanQueueProcessor(SpanProcessor):
    """`BatchSpanProcessor`'s behaviour with a cheaper hand-off."""

    def __init__(self, channel: _Channel[ReadableSpan]) -> None:
        self._channel = channel
        self._put = channel.put
        self.span_exporter = channel.exporter

    def on_start(self, span: Span, parent_context: Context | None = None) -> None:
        pass

    def _on_ending(self, span: Span) -> None:
        pass

    def on_end(self, span: ReadableSpan) -> None:
        context = span.context
        if context is not None and context.trace_flags.sampled:
            self._put(span)

    def shutdown(self) -> None:
        self._channel.shutdown(_SHUTDOWN_WAIT)

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        return self._channel.force_flush()


class LogQueueProcessor(LogRecordProcessor):
    """`BatchLogRecordProcessor`'s behaviour with a cheaper hand-off.

    The SDK copies the API record (`copy.copy`) and clears the copy's context, so the queue
    does not keep the request's context alive; the same copy is made here through `__dict__`.
    """

    def __init__(self, channel: _Channel[ReadableLogRecord]) -> None:
        self._channel = channel
        self._put = channel.put

    def on_emit(self, log_record: ReadWriteLogRecord) -> None:
        record = log_record.log_record
        fields = getattr(record, "__dict__", None)
        if fields is not None:
            copied = object.__new__(type(record))
            copied.__dict__.update(fields)
        else:  # a record class of another shape: the SDK's own copy
            copied = copy.copy(record)
        copied.context = Context()
        self._put((copied, log_record.resource, log_record.instrumentation_scope, log_record.limits))

    def shutdown(self) -> None:
        self._channel.shutdown(_SHUTDOWN_WAIT)

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        return self._channel.force_flush()
