"""Our span and log processors: the same OTLP as the SDK's batch processors, bounded, never blocking."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Sequence
from typing import Any

import pytest
from opentelemetry._logs import SeverityNumber
from opentelemetry.exporter.otlp.proto.common._log_encoder import encode_logs
from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
from opentelemetry.sdk._logs import LoggerProvider, ReadableLogRecord
from opentelemetry.sdk._logs.export import BatchLogRecordProcessor, LogRecordExporter, LogRecordExportResult
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter, SpanExportResult
from opentelemetry.sdk.trace.sampling import ParentBased, TraceIdRatioBased
from opentelemetry.trace import Link, SpanKind, Status, StatusCode

from otel_distro.export_queue import ExportQueues, LogQueueProcessor, SpanQueueProcessor
from otel_distro.logs._event import EventBuilder, Service
from otel_distro.logs._otlp import OTLPHandler
from otel_distro.otlp_encoding import encode_log_request, encode_span_request
from otel_distro.settings import Settings
from otel_distro.shutdown import shutdown_within


class _Keep(SpanExporter, LogRecordExporter):
    """Keeps what it is given; optionally blocks (an unreachable collector) until released."""

    def __init__(self, block: threading.Event | None = None) -> None:
        self.items: list[Any] = []
        self.batches: list[int] = []
        self.threads: set[str] = set()
        self.shut = False
        self._block = block

    def export(self, batch: Sequence[Any]) -> Any:
        if self._block is not None:
            self._block.wait()
        self.threads.add(threading.current_thread().name)
        self.items += batch
        self.batches.append(len(batch))
        return (
            SpanExportResult.SUCCESS if batch and isinstance(batch[0], ReadableSpan) else LogRecordExportResult.SUCCESS
        )

    def shutdown(self) -> None:
        self.shut = True

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        return True


def _settings(**kwargs: Any) -> Settings:
    return Settings(**kwargs)


def _workload(tracer_provider: TracerProvider, logger_provider: LoggerProvider) -> None:
    """Spans and log records of every shape the distro sends: attributes of each type, events,
    an exception, links, status, an unsampled span; log records through our
    handler (fast path) and through the SDK's `Logger.emit`."""
    tracer = tracer_provider.get_tracer("otel_distro.test", "1.0")
    builder = EventBuilder(Service("svc", "1.2.3", "test"), None)
    handler = OTLPHandler(logger_provider, builder, logging.INFO)
    stdlib = logging.getLogger("export-queue-test")
    sdk_logger = logger_provider.get_logger("sdk-direct", "2.0")
    for n in range(300):
        links = None
        if n % 5 == 0:
            linked = tracer.start_span("linked")
            linked.end()
            links = [Link(linked.get_span_context(), {"why": "batch"})]
        with tracer.start_as_current_span(
            f"GET /items/{n % 7}",
            kind=SpanKind.SERVER,
            attributes={"http.request.method": "GET", "n": n, "ratio": n / 3, "ok": n % 2 == 0, "tags": ("a", "b")},
            links=links,
        ) as span:
            span.add_event("checkpoint", {"step": n})
            if n % 11 == 0:
                try:
                    raise ValueError(f"bad item {n}")
                except ValueError as err:
                    span.record_exception(err)
                    span.set_status(Status(StatusCode.ERROR, "bad item"))
            record = stdlib.makeRecord(
                stdlib.name, logging.WARNING if n % 3 else logging.INFO, __file__, 1, "item %s", (n,), None,
                extra={"greeting": "world", "count": n, "nested": {"a": [1, 2]}},
            )  # fmt: skip
            handler.handle(record)
            sdk_logger.emit(
                severity_number=SeverityNumber.ERROR,
                severity_text="ERROR",
                body={"event": "direct", "n": n},
                attributes={"k": "v", "n": n},
            )
    unsampled = TracerProvider(sampler=ParentBased(TraceIdRatioBased(0.0)))
    for processor in tracer_provider._active_span_processor._span_processors:
        unsampled.add_span_processor(processor)
    unsampled.get_tracer("t").start_span("never exported").end()


@pytest.fixture
def thread() -> ExportQueues:
    return ExportQueues(_settings())


class TestSameOTLPAsTheSDK:
    def test_spans_and_logs_encode_to_the_same_bytes(self, thread: ExportQueues) -> None:
        """Both processors on the same providers see the same spans and records: what reaches
        the exporters must encode identically, with our encoder and upstream's."""
        resource = Resource.create({"service.name": "svc"})
        tracer_provider = TracerProvider(resource=resource, shutdown_on_exit=False)
        logger_provider = LoggerProvider(resource=resource, shutdown_on_exit=False)
        sdk_spans, our_spans, sdk_logs, our_logs = _Keep(), _Keep(), _Keep(), _Keep()
        tracer_provider.add_span_processor(BatchSpanProcessor(sdk_spans))
        tracer_provider.add_span_processor(thread.span_processor(our_spans))
        logger_provider.add_log_record_processor(BatchLogRecordProcessor(sdk_logs))
        logger_provider.add_log_record_processor(thread.log_processor(our_logs))

        _workload(tracer_provider, logger_provider)
        tracer_provider.force_flush()
        logger_provider.force_flush()

        assert len(our_spans.items) == len(sdk_spans.items) == 300 + 60  # the linked spans too
        assert len(our_logs.items) == len(sdk_logs.items) == 600
        assert encode_span_request(our_spans.items) == encode_span_request(sdk_spans.items)
        assert encode_spans(our_spans.items).SerializeToString() == encode_spans(sdk_spans.items).SerializeToString()
        assert encode_log_request(our_logs.items) == encode_log_request(sdk_logs.items)
        assert encode_logs(our_logs.items).SerializeToString() == encode_logs(sdk_logs.items).SerializeToString()
        for ours, theirs in zip(our_logs.items, sdk_logs.items, strict=True):
            assert isinstance(ours, ReadableLogRecord)
            assert vars(ours.log_record) == vars(theirs.log_record)
            assert ours.to_json() == theirs.to_json()
            assert ours.dropped_attributes == theirs.dropped_attributes
            assert ours.log_record.context == theirs.log_record.context == {}  # the request's context let go
        tracer_provider.shutdown()
        logger_provider.shutdown()

    def test_metrics_are_not_touched(self, thread: ExportQueues) -> None:
        """Metrics keep their periodic reader: the same workload records the same points with the
        SDK's processors or ours (the processors record nothing, unlike with the SDK's internal
        metrics on, where the SDK processors are kept)."""

        def points(use_ours: bool) -> list[tuple[str, Any, Any]]:
            reader = InMemoryMetricReader()
            meter_provider = MeterProvider(metric_readers=[reader], shutdown_on_exit=False)
            tracer_provider = TracerProvider(shutdown_on_exit=False)
            logger_provider = LoggerProvider(shutdown_on_exit=False)
            spans, logs = _Keep(), _Keep()
            if use_ours:
                tracer_provider.add_span_processor(thread.span_processor(spans))
                logger_provider.add_log_record_processor(thread.log_processor(logs))
            else:
                tracer_provider.add_span_processor(BatchSpanProcessor(spans))
                logger_provider.add_log_record_processor(BatchLogRecordProcessor(logs))
            histogram = meter_provider.get_meter("m").create_histogram("http.server.request.duration", "s")
            for n in range(50):
                histogram.record(n / 100, {"http.route": f"/r{n % 3}"})
            _workload(tracer_provider, logger_provider)
            data = reader.get_metrics_data()
            assert data is not None
            return sorted(
                (m.name, sorted(p.attributes.items()), (p.count, p.sum, tuple(p.bucket_counts)))  # type: ignore[union-attr]
                for rm in data.resource_metrics
                for sm in rm.scope_metrics
                for m in sm.metrics
                for p in m.data.data_points
            )

        assert points(use_ours=True) == points(use_ours=False)

    def test_sdk_processor_metrics_keep_the_sdk_processors(self) -> None:
        thread = ExportQueues(_settings(sdk_internal_metrics=True))
        assert isinstance(thread.span_processor(_Keep()), BatchSpanProcessor)
        assert isinstance(thread.log_processor(_Keep()), BatchLogRecordProcessor)


class TestThreads:
    def test_spans_and_logs_leave_on_their_own_thread_in_batches(self) -> None:
        thread = ExportQueues(_settings(span_export_batch=16, log_export_batch=16))
        spans, logs = _Keep(), _Keep()
        tracer_provider = TracerProvider(shutdown_on_exit=False)
        logger_provider = LoggerProvider(shutdown_on_exit=False)
        tracer_provider.add_span_processor(thread.span_processor(spans))
        logger_provider.add_log_record_processor(thread.log_processor(logs))
        before = {t.name for t in threading.enumerate()}
        tracer = tracer_provider.get_tracer("t")
        logger = logger_provider.get_logger("l")
        for _ in range(64):
            tracer.start_span("s").end()
            logger.emit(body="line")
        deadline = time.monotonic() + 5
        while (len(spans.items) < 64 or len(logs.items) < 64) and time.monotonic() < deadline:
            time.sleep(0.01)
        assert len(spans.items) == len(logs.items) == 64
        assert spans.threads == {"OtelDistroExport spans"}
        assert logs.threads == {"OtelDistroExport log records"}
        assert spans.batches == logs.batches == [16, 16, 16, 16]
        assert not any(t.name.startswith("OtelBatch") for t in threading.enumerate() if t.name not in before)
        tracer_provider.shutdown()
        logger_provider.shutdown()
        assert spans.shut and logs.shut

    def test_less_than_a_batch_leaves_after_the_schedule_delay(self, monkeypatch: pytest.MonkeyPatch) -> None:
        monkeypatch.setenv("OTEL_BSP_SCHEDULE_DELAY", "50")
        thread = ExportQueues(_settings())
        spans = _Keep()
        tracer_provider = TracerProvider(shutdown_on_exit=False)
        tracer_provider.add_span_processor(thread.span_processor(spans))
        tracer_provider.get_tracer("t").start_span("s").end()
        deadline = time.monotonic() + 5
        while not spans.items and time.monotonic() < deadline:
            time.sleep(0.01)
        assert len(spans.items) == 1
        tracer_provider.shutdown()


class TestUnreachableCollector:
    def test_request_thread_never_waits_and_memory_stays_bounded(self, caplog: pytest.LogCaptureFixture) -> None:
        blocked = threading.Event()
        thread = ExportQueues(_settings(span_queue=100, span_export_batch=10, export_warning_interval=60.0))
        spans = _Keep(block=blocked)
        processor = thread.span_processor(spans)
        assert isinstance(processor, SpanQueueProcessor)
        tracer_provider = TracerProvider(shutdown_on_exit=False)
        tracer_provider.add_span_processor(processor)
        tracer = tracer_provider.get_tracer("t")
        with caplog.at_level(logging.WARNING, "otel_distro.exporters.queue"):
            started = time.perf_counter()
            for _ in range(5000):
                tracer.start_span("s").end()
            elapsed = time.perf_counter() - started
            assert elapsed < 2.0  # the exporter is stuck: nothing waited for it
            assert len(processor._channel.queue) <= 100
            blocked.set()
            tracer_provider.force_flush()
            deadline = time.monotonic() + 5  # reported by the export thread after its export returns

            def warnings() -> list[str]:
                return [r.getMessage() for r in caplog.records if "export queues full" in r.getMessage()]

            while not warnings() and time.monotonic() < deadline:
                time.sleep(0.01)
        # The newest spans are kept, as the SDK's queue keeps them.
        assert 0 < len(spans.items) <= 110
        assert len(warnings()) == 1, warnings()  # one warning per interval, counting the drops
        assert "(100 spans)" in warnings()[0] and "spans" in warnings()[0].split("dropped the oldest")[1]

    def test_shutdown_is_bounded_by_the_caller(self) -> None:
        never = threading.Event()
        thread = ExportQueues(_settings())
        spans, logs = _Keep(block=never), _Keep(block=never)
        tracer_provider = TracerProvider(shutdown_on_exit=False)
        logger_provider = LoggerProvider(shutdown_on_exit=False)
        tracer_provider.add_span_processor(thread.span_processor(spans))
        span_processor = thread.log_processor(logs)
        assert isinstance(span_processor, LogQueueProcessor)
        logger_provider.add_log_record_processor(span_processor)
        tracer_provider.get_tracer("t").start_span("s").end()
        logger_provider.get_logger("l").emit(body="line")
        started = time.monotonic()
        finished = shutdown_within((tracer_provider.shutdown, logger_provider.shutdown), 0.5)
        assert not finished
        assert time.monotonic() - started < 1.5
        never.set()

    def test_nothing_is_taken_after_shutdown(self, thread: ExportQueues) -> None:
        spans = _Keep()
        tracer_provider = TracerProvider(shutdown_on_exit=False)
        tracer_provider.add_span_processor(thread.span_processor(spans))
        tracer_provider.get_tracer("t").start_span("before").end()
        tracer_provider.shutdown()
        assert [s.name for s in spans.items] == ["before"]
        assert spans.shut


class TestFork:
    def test_a_forked_child_starts_empty_with_a_thread_of_its_own(self) -> None:
        blocked = threading.Event()
        queues = ExportQueues(_settings())
        spans = _Keep(block=blocked)
        tracer_provider = TracerProvider(shutdown_on_exit=False)
        tracer_provider.add_span_processor(queues.span_processor(spans))
        tracer_provider.get_tracer("t").start_span("parent's").end()
        channel = queues._channels[0]
        parents = channel.thread
        queues._after_fork()  # what os.register_at_fork runs in the child
        assert channel.thread is not parents and channel.thread is not None and channel.thread.is_alive()
        assert not channel.queue  # the parent exports what it queued
        blocked.set()
        tracer_provider.get_tracer("t").start_span("child's").end()
        tracer_provider.shutdown()
        assert [s.name for s in spans.items] == ["child's"]

    def test_a_real_fork_exports_from_the_child_once_only_the_processors_are_left(self) -> None:
        """configure_sdk keeps no reference to ExportQueues: the processors alone must carry the fork."""
        import gc
        import os

        spans = _Keep()
        tracer_provider = TracerProvider(shutdown_on_exit=False)
        tracer_provider.add_span_processor(ExportQueues(_settings(span_export_batch=1)).span_processor(spans))
        gc.collect()
        read, write = os.pipe()
        pid = os.fork()
        if pid == 0:  # the child: its own thread must send the span without a flush
            try:
                tracer_provider.get_tracer("t").start_span("child's").end()
                deadline = time.monotonic() + 5
                while not spans.items and time.monotonic() < deadline:
                    time.sleep(0.01)
                os.write(write, ",".join(spans.threads).encode() or b"-")
            finally:
                os._exit(0)
        os.close(write)
        with os.fdopen(read, "rb") as pipe:
            answer = pipe.read().decode()
        os.waitpid(pid, 0)
        assert answer == "OtelDistroExport spans"
        tracer_provider.shutdown()
