"""Exporters per signal, chosen by settings, and quiet when the collector is away.

Exporters are built without arguments so the standard per-signal variables
(`OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`, `..._HEADERS`, `..._TIMEOUT`, `..._COMPRESSION`) keep
working; settings only choose which exporters exist and the transport.

Each exporter is wrapped so the time of its last successful and last failed export is known
(`pipeline_state()`, shown by the `/health` view). The wrapper runs where export already runs,
on the SDK's background threads, and adds two clock reads per batch: nothing on the request path.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

from opentelemetry.sdk._logs import ReadableLogRecord
from opentelemetry.sdk._logs.export import (
    ConsoleLogRecordExporter,
    LogRecordExporter,
    LogRecordExportResult,
)
from opentelemetry.sdk.metrics.export import (
    ConsoleMetricExporter,
    MetricExporter,
    MetricExportResult,
    MetricsData,
)
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import ConsoleSpanExporter, SpanExporter, SpanExportResult
from opentelemetry.trace import Status

from otel_distro._fork_safe import ForkSafeLock
from otel_distro._sdk_compat import metric_exporter_preferences, span_attribute_dict
from otel_distro.scrub import Scrubber
from otel_distro.settings import Settings

__all__ = [
    "ExporterState",
    "ScrubbingSpanExporter",
    "limit_export_warnings",
    "log_exporters",
    "metric_exporters",
    "pipeline_state",
    "span_exporters",
]

_log = logging.getLogger("otel_distro.exporters")

# Loggers through which the SDK and the OTLP exporters report failed exports.
_EXPORT_LOGGERS = (
    "opentelemetry.exporter.otlp.proto.http.trace_exporter",
    "opentelemetry.exporter.otlp.proto.http.metric_exporter",
    "opentelemetry.exporter.otlp.proto.http._log_exporter",
    "opentelemetry.exporter.otlp.common.http",
    "opentelemetry.exporter.otlp.proto.grpc.exporter",
    "opentelemetry.sdk._shared_internal",
    "opentelemetry.sdk.metrics._internal.export",
)


def _use_grpc(settings: Settings) -> bool:
    if settings.otlp_protocol != "grpc":
        return False
    try:
        import opentelemetry.exporter.otlp.proto.grpc  # noqa: F401
    except ImportError:
        _log.warning(
            "otel-distro: OTEL_EXPORTER_OTLP_PROTOCOL='grpc' needs `pip install otel-distro[grpc]`; "
            "using http/protobuf instead (check the endpoint's port: 4318 for HTTP)"
        )
        return False
    return True


def span_exporters(settings: Settings) -> list[SpanExporter]:
    exporters: list[SpanExporter] = []
    for name in settings.traces_exporter:
        if name == "otlp":
            if _use_grpc(settings):
                from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter

                exporters.append(OTLPSpanExporter())
            else:
                # Upstream's exporter with a faster, byte-identical encoder and, for a plain-HTTP
                # endpoint, a stdlib transport instead of requests (otel_distro.otlp_http).
                from otel_distro.otlp_http import OTLPSpanExporter as HTTPSpanExporter

                exporters.append(HTTPSpanExporter(settings=settings))
        elif name == "console":
            exporters.append(ConsoleSpanExporter())
    return [_RecordingSpanExporter(e, _state_for("traces", e)) for e in exporters]


def metric_exporters(settings: Settings) -> list[MetricExporter]:
    """Push exporters only; the Prometheus pull endpoint lives in `otel_distro.prometheus`."""
    exporters: list[MetricExporter] = []
    for name in settings.metrics_exporter:
        if name == "otlp":
            if _use_grpc(settings):
                from opentelemetry.exporter.otlp.proto.grpc.metric_exporter import OTLPMetricExporter

                exporters.append(OTLPMetricExporter())
            else:
                from otel_distro.otlp_http import OTLPMetricExporter as HTTPMetricExporter

                exporters.append(HTTPMetricExporter(settings=settings))
        elif name == "console":
            exporters.append(ConsoleMetricExporter())
    return [_RecordingMetricExporter(e, _state_for("metrics", e)) for e in exporters]


def log_exporters(settings: Settings) -> list[LogRecordExporter]:
    exporters: list[LogRecordExporter] = []
    for name in settings.logs_exporter:
        if name == "otlp":
            if _use_grpc(settings):
                from opentelemetry.exporter.otlp.proto.grpc._log_exporter import OTLPLogExporter

                exporters.append(OTLPLogExporter())
            else:
                from otel_distro.otlp_http import OTLPLogExporter as HTTPLogExporter

                exporters.append(HTTPLogExporter(settings=settings))
        elif name == "console":
            exporters.append(ConsoleLogRecordExporter())
    return [_RecordingLogExporter(e, _state_for("logs", e)) for e in exporters]


@dataclass
class ExporterState:
    """When one exporter last succeeded and last failed (wall-clock seconds, None for never)."""

    signal: str
    exporter: str
    last_success: float | None = None
    last_failure: float | None = None
    last_error: str | None = None  # exception type, or why the exporter reported failure
    failures: int = 0  # consecutive failed exports since the last success

    def success(self) -> None:
        self.last_success = time.time()
        self.failures = 0

    def failure(self, error: str) -> None:
        self.last_failure = time.time()
        self.last_error = error
        self.failures += 1


_states: dict[str, ExporterState] = {}
_states_lock = ForkSafeLock()  # export threads take it, also a pre-fork master's


def _kind(exporter: object) -> str:
    # Subclasses (ours in otel_distro.otlp_http) are named after the upstream exporter they extend.
    for cls in type(exporter).__mro__:
        if ".otlp." in cls.__module__:
            return "otlp-grpc" if ".grpc." in cls.__module__ else "otlp-http"
    return "console" if type(exporter).__name__.startswith("Console") else type(exporter).__name__


def _state_for(signal: str, exporter: object) -> ExporterState:
    kind = _kind(exporter)
    key = f"{signal}/{kind}"
    with _states_lock:
        state = _states.get(key)
        if state is None:
            state = _states[key] = ExporterState(signal, kind)
        return state


def pipeline_state() -> list[ExporterState]:
    """A snapshot of every exporter's last success and failure, in creation order."""
    with _states_lock:
        return [ExporterState(**vars(state)) for state in _states.values()]


_R = TypeVar("_R")


def _recorded(state: ExporterState, export: Callable[[], _R], success: _R) -> _R:
    """Run one export and record its outcome (on the export thread, never the request's)."""
    try:
        result = export()
    except Exception as err:
        state.failure(type(err).__name__)
        raise
    if result == success:
        state.success()
    else:
        state.failure("export failed (see the exporter's warning in the log)")
    return result


class _RecordingSpanExporter(SpanExporter):
    """Records the outcome of each export; adds no work to the request path."""

    def __init__(self, inner: SpanExporter, state: ExporterState) -> None:
        self._inner = inner
        self._state = state

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        return _recorded(self._state, lambda: self._inner.export(spans), SpanExportResult.SUCCESS)

    def shutdown(self) -> None:
        self._inner.shutdown()

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        return self._inner.force_flush(timeout_millis)


class _RecordingMetricExporter(MetricExporter):
    def __init__(self, inner: MetricExporter, state: ExporterState) -> None:
        # The periodic reader reads the exporter's preferences: pass the inner one's through.
        super().__init__(**metric_exporter_preferences(inner))
        self._inner = inner
        self._state = state

    def export(self, metrics_data: MetricsData, timeout_millis: float = 10_000, **kwargs: Any) -> MetricExportResult:
        return _recorded(
            self._state,
            lambda: self._inner.export(metrics_data, timeout_millis=timeout_millis, **kwargs),
            MetricExportResult.SUCCESS,
        )

    def force_flush(self, timeout_millis: float = 10_000) -> bool:
        return self._inner.force_flush(timeout_millis=timeout_millis)

    def shutdown(self, timeout_millis: float = 30_000, **kwargs: Any) -> None:
        self._inner.shutdown(timeout_millis=timeout_millis, **kwargs)


class _RecordingLogExporter(LogRecordExporter):
    def __init__(self, inner: LogRecordExporter, state: ExporterState) -> None:
        self._inner = inner
        self._state = state

    def export(self, batch: Sequence[ReadableLogRecord]) -> LogRecordExportResult:
        return _recorded(self._state, lambda: self._inner.export(batch), LogRecordExportResult.SUCCESS)

    def shutdown(self) -> None:
        self._inner.shutdown()  # type: ignore[no-untyped-call]

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        return self._inner.force_flush(timeout_millis)


class _RateLimit(logging.Filter):
    """Lets one warning through per interval and counts the ones it held back."""

    def __init__(self, interval: float) -> None:
        super().__init__()
        self._interval = interval
        self._next = 0.0
        self._held = 0
        self._lock = ForkSafeLock()  # export threads log through it

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno < logging.WARNING:
            return True
        now = time.monotonic()
        with self._lock:
            if now < self._next:
                self._held += 1
                return False
            self._next = now + self._interval
            held, self._held = self._held, 0
        if held:
            record.msg = f"{record.msg} [{held} similar messages suppressed]"
        return True


def limit_export_warnings(interval: float) -> list[tuple[logging.Logger, logging.Filter]]:
    """At most one export warning per exporter logger per interval; returns what was added."""
    added: list[tuple[logging.Logger, logging.Filter]] = []
    if interval <= 0:
        return added
    for name in _EXPORT_LOGGERS:
        logger = logging.getLogger(name)
        if any(isinstance(f, _RateLimit) for f in logger.filters):
            continue
        limiter = _RateLimit(interval)
        logger.addFilter(limiter)
        added.append((logger, limiter))
    return added


_CLEAN_PAIRS = 8192


class ScrubbingSpanExporter(SpanExporter):
    """Scrubs span and event attributes (captured headers included) before export."""

    def __init__(self, inner: SpanExporter, scrubber: Scrubber) -> None:
        self._inner = inner
        self._scrubber = scrubber
        # (key, value) pairs already found clean: most repeat from span to span.
        self._clean: set[tuple[str, Any]] = set()

    def _attributes(self, attributes: Any) -> dict[str, Any] | None:
        """The scrubbed attributes, or None when nothing had to change."""
        clean, scrubbed = self._clean, None
        for key, value in attributes.items():
            try:
                if (key, value) in clean:
                    continue
                hashable = True
            except TypeError:  # an unhashable value: checked every time
                hashable = False
            new = self._scrubber.value(key, value)
            if new == value:
                if hashable:
                    if len(clean) >= _CLEAN_PAIRS:
                        clean.clear()
                    clean.add((key, value))
                continue
            if scrubbed is None:
                scrubbed = dict(attributes)
            scrubbed[key] = new
        return scrubbed

    def _scrubbed(self, span: ReadableSpan) -> ReadableSpan:
        """The span as it may leave the process: its name, attributes, events (recorded exceptions'
        messages and stack traces) and status description scrubbed like log lines."""
        text = self._scrubber.text
        # The SDK's own dict rather than the read-only proxy `attributes` returns: no Mapping-protocol calls.
        attributes = span_attribute_dict(span)
        cleaned = self._attributes(attributes) if attributes else None
        events = span.events
        if any(e.attributes for e in events):
            from opentelemetry.sdk.trace import Event

            events = tuple(
                Event(e.name, self._scrubber.mapping(dict(e.attributes or {})), e.timestamp) for e in span.events
            )
        name = text(span.name)
        status = span.status
        if status.description:
            description = text(status.description)
            if description != status.description:
                status = Status(status.status_code, description)
        if cleaned is None and events is span.events and name == span.name and status is span.status:
            return span
        return ReadableSpan(
            name=name,
            context=span.context,
            parent=span.parent,
            resource=span.resource,
            attributes=cleaned if cleaned is not None else span.attributes,
            events=events,
            links=span.links,
            kind=span.kind,
            status=status,
            start_time=span.start_time,
            end_time=span.end_time,
            instrumentation_scope=span.instrumentation_scope,
        )

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        return self._inner.export([self._scrubbed(span) for span in spans])

    def shutdown(self) -> None:
        self._inner.shutdown()

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        return self._inner.force_flush(timeout_millis)
