"""One export thread for spans and log records, and request-thread hand-offs that cost ~1 µs.

The SDK's `BatchSpanProcessor` and `BatchLogRecordProcessor` each start a thread, and on the
request thread the log one pays for `copy.copy` of every record (`__reduce_ex__`, about 20 µs)
plus a frozen-dataclass wrapper and a context attach/detach: measured with
`benchmarks/profile.py --in-process`, the two cost ~39 µs per FastAPI request that logs one line.
Here the request thread only appends to a bounded deque (the log record shallow-copied
through its `__dict__`, the same copy); the one export thread wraps, scrubs, encodes and sends.

What is exported is unchanged: the same span objects and the same `ReadableLogRecord`s
(same fields, context cleared as the SDK does) reach the same exporters, in batches of the
same sizes (`OTEL_BSP_*`, `OTEL_BLRP_*`: queue size, batch size, schedule delay). What differs:

* one thread, woken when a queue holds a full batch or a signal's delay has passed;
* a full queue drops its oldest item as the SDK does, with one warning per
  `OTEL_DISTRO_EXPORT_WARNING_INTERVAL` that counts the dropped items (the SDK warns per item);
* while one signal's export waits on an unreachable collector (the exporter retries for up to
  its timeout, 10 s), the other signal's batches wait too; both queues stay bounded meanwhile,
  and at shutdown each signal sends its rest on the thread shutting it down, in parallel.

When the SDK's own processor metrics are on (`OTEL_PYTHON_SDK_INTERNAL_METRICS_ENABLED`), the
SDK processors are used instead, so those metrics stay the SDK's.
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

from otel_distro._sdk_compat import SUPPRESS_INSTRUMENTATION_KEY, batch_processor_defaults
from otel_distro.settings import Settings

__all__ = ["ExportThread", "LogQueueProcessor", "SpanQueueProcessor"]

_log = logging.getLogger("otel_distro.exporters.queue")

_T = TypeVar("_T")


class _Exporter(Protocol):
    def export(self, batch: Sequence[Any], /) -> Any: ...

    def shutdown(self) -> Any: ...


# The SDK processors' own defaults and variables (`OTEL_BSP_SCHEDULE_DELAY`, `OTEL_BLRP_SCHEDULE_DELAY`).
def _schedule_delay(processor: type[Any]) -> float:
    return batch_processor_defaults(processor)[0]


# As the SDK processors' `shutdown()`: how long the queued items may take to leave.
_SHUTDOWN_WAIT = 30.0


class _Channel(Generic[_T]):
    """One signal's bounded queue, its exporter and its schedule. Newest items on the left."""

    def __init__(
        self,
        name: str,
        exporter: _Exporter,
        queue_size: int,
        batch_size: int,
        delay: float,
        prepare: Callable[[Any], _T] | None,
        warning_interval: float,
    ) -> None:
        self.name = name
        self.exporter = exporter
        self.queue_size = queue_size
        self.batch_size = min(batch_size, queue_size)
        self.delay = delay
        self.prepare = prepare  # what the request thread queued -> what the exporter takes
        self.queue: collections.deque[Any] = collections.deque(maxlen=queue_size)
        self.due = time.monotonic() + delay
        self.closed = False
        self.lock = threading.Lock()  # one export of this channel at a time (worker vs force_flush)
        self._warning_interval = warning_interval
        self._dropped = 0
        self._next_warning = 0.0

    def dropped(self) -> None:
        """Counted on the request thread; reported by the export thread, rate-limited."""
        self._dropped += 1

    def report_drops(self) -> None:
        dropped, self._dropped = self._dropped, 0
        if not dropped:
            return
        now = time.monotonic()
        if now < self._next_warning:
            self._dropped += dropped  # reported with the next warning
            return
        self._next_warning = now + self._warning_interval
        _log.warning(
            "otel-distro: export queue full (%d), dropped the oldest %d %s (collector unreachable or too slow?)",
            self.queue_size,
            dropped,
            self.name,
        )

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
            self.due = time.monotonic() + self.delay
        finally:
            self.lock.release()


class ExportThread:
    """The one thread that exports every channel (spans, log records) of a process."""

    def __init__(self, settings: Settings) -> None:
        self._settings = settings
        self._channels: list[_Channel[Any]] = []
        self._wake = threading.Event()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        reference = weakref.WeakMethod(self._after_fork)

        def after_fork() -> None:
            method = reference()
            if method is not None:
                method()

        os.register_at_fork(after_in_child=after_fork)

    def sdk_processor_metrics(self) -> bool:
        """The SDK's processor metrics are on: its processors must stay in place to record them."""
        return self._settings.sdk_internal_metrics

    def span_processor(self, exporter: SpanExporter) -> SpanProcessor:
        if self.sdk_processor_metrics():
            return BatchSpanProcessor(exporter)
        settings = self._settings
        channel: _Channel[ReadableSpan] = _Channel(
            "spans",
            exporter,
            settings.span_queue,
            settings.span_export_batch,
            _schedule_delay(BatchSpanProcessor),
            None,
            settings.export_warning_interval,
        )
        self._add(channel)
        return SpanQueueProcessor(self, channel)

    def log_processor(self, exporter: LogRecordExporter) -> LogRecordProcessor:
        if self.sdk_processor_metrics():
            return BatchLogRecordProcessor(exporter)
        settings = self._settings
        channel: _Channel[ReadableLogRecord] = _Channel(
            "log records",
            exporter,
            settings.log_queue,
            settings.log_export_batch,
            _schedule_delay(BatchLogRecordProcessor),
            _readable,
            settings.export_warning_interval,
        )
        self._add(channel)
        return LogQueueProcessor(self, channel)

    # --- the request thread's side -----------------------------------------------------------

    def put(self, channel: _Channel[Any], item: Any) -> None:
        queue = channel.queue
        if channel.closed:
            return
        if len(queue) == channel.queue_size:
            channel.dropped()  # the deque drops its oldest item (right end) on the append
        queue.appendleft(item)
        if len(queue) >= channel.batch_size and not self._wake.is_set():
            self._wake.set()

    # --- the export thread -----------------------------------------------------------------------

    def _add(self, channel: _Channel[Any]) -> None:
        with self._lock:
            self._channels.append(channel)
            if self._thread is None:
                self._start()

    def _start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="OtelDistroExport", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while True:
            try:
                if not self._once():
                    return
            except Exception:  # never let the one export thread die
                _log.exception("otel-distro: error in the export thread")
                time.sleep(1)

    def _once(self) -> bool:
        """One round: send full or due batches, sleep. False once every channel is closed."""
        open_channels = [c for c in self._channels if not c.closed]
        if not open_channels:
            return False
        now = time.monotonic()
        for channel in open_channels:
            if len(channel.queue) >= channel.batch_size:
                channel.export(everything=False)
            elif now >= channel.due:
                channel.export(everything=True)  # less than a batch: all of it
            channel.report_drops()
        timeout = min(c.due for c in open_channels) - time.monotonic()
        if timeout > 0:
            self._wake.wait(timeout)
        self._wake.clear()
        return True

    def _after_fork(self) -> None:
        # A forked child (pre-fork servers): the parent's thread does not exist here, and the
        # parent exports what it queued. Start empty, with fresh locks and a thread of our own.
        self._wake = threading.Event()
        self._lock = threading.Lock()
        for channel in self._channels:
            channel.queue.clear()
            channel.lock = threading.Lock()
            channel.due = time.monotonic() + channel.delay
        if self._thread is not None and any(not c.closed for c in self._channels):
            self._start()

    def shutdown(self, channel: _Channel[Any], timeout: float) -> None:
        """Stop taking items, send what is queued, then shut the exporter down.

        The final export runs on the caller's thread (the providers shut down in parallel,
        `otel_distro.shutdown`), as each SDK processor's own thread would run it: the other
        signal's export, retrying against an unreachable collector on the export thread, must
        not hold this one back. If this channel's own export is in progress, it gets `timeout`
        seconds; the caller bounds the whole exit."""
        if channel.closed:
            return
        channel.closed = True
        self._wake.set()
        channel.export(everything=True, wait=timeout)
        channel.exporter.shutdown()

    def force_flush(self, channel: _Channel[Any]) -> bool:
        if channel.closed:
            return False
        channel.export(everything=True)  # on the caller's thread, as the SDK does
        return True


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
    """`BatchSpanProcessor`'s behaviour on the shared export thread."""

    def __init__(self, thread: ExportThread, channel: _Channel[ReadableSpan]) -> None:
        self._thread = thread
        self._channel = channel
        self.span_exporter = channel.exporter

    def on_start(self, span: Span, parent_context: Context | None = None) -> None:
        pass

    def _on_ending(self, span: Span) -> None:
        pass

    def on_end(self, span: ReadableSpan) -> None:
        context = span.context
        if context is not None and context.trace_flags.sampled:
            self._thread.put(self._channel, span)

    def shutdown(self) -> None:
        self._thread.shutdown(self._channel, _SHUTDOWN_WAIT)

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        return self._thread.force_flush(self._channel)


class LogQueueProcessor(LogRecordProcessor):
    """`BatchLogRecordProcessor`'s behaviour on the shared export thread.

    The SDK copies the API record (`copy.copy`) and clears the copy's context, so the queue
    does not keep the request's context alive; the same copy is made here through `__dict__`.
    """

    def __init__(self, thread: ExportThread, channel: _Channel[ReadableLogRecord]) -> None:
        self._thread = thread
        self._channel = channel

    def on_emit(self, log_record: ReadWriteLogRecord) -> None:
        record = log_record.log_record
        fields = getattr(record, "__dict__", None)
        if fields is not None:
            copied = object.__new__(type(record))
            copied.__dict__.update(fields)
        else:  # a record class of another shape: the SDK's own copy
            copied = copy.copy(record)
        copied.context = Context()
        queued = (copied, log_record.resource, log_record.instrumentation_scope, log_record.limits)
        self._thread.put(self._channel, queued)

    def shutdown(self) -> None:
        self._thread.shutdown(self._channel, _SHUTDOWN_WAIT)

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        return self._thread.force_flush(self._channel)
