"""Every private name of the OpenTelemetry SDK, exporters and contrib that otel-distro uses.

No other module of ours touches one (tests/unit/test_sdk_compat.py scans the package). The
private names serve fast paths: shortcuts through SDK internals on the request thread or
the export threads, each with a public path that gives the same telemetry, slower.

| fast path              | saves                                        | public path instead            |
|------------------------|----------------------------------------------|--------------------------------|
| `METRIC_RECORD`        | per-call Measurement validation and storage  | `Histogram.record` /           |
|                        | look-ups (~10 µs -> ~4 µs per record)        | `UpDownCounter.add`            |
| `LOG_EMIT`             | `Logger.emit`'s attribute re-validation and  | `Logger.emit`                  |
|                        | record layers, per log line                  |                                |
| `OTLP_ENCODE`          | upstream's protobuf object tree per batch    | the upstream exporter's        |
|                        | (our byte-identical encoder is sent instead) | `export`                       |
| `PLAIN_HTTP_TRANSPORT` | importing requests/urllib3 for telemetry;    | upstream's `requests`          |
|                        | a kept-alive `http.client` connection        | transport                      |
| `SPAN_RAW_ATTRIBUTES`  | the mapping proxy's calls while scrubbing    | `ReadableSpan.attributes`      |

Each path's names are resolved, and their shape checked, once: the first time the path is
asked about (`enabled(path)`); what only exists on live objects (a logger's processor, an
instrument's consumer) is checked when our object is built on it. When a name is missing or
its shape changed, the distro logs one INFO line naming the path and uses the public path
from then on. `WRITTEN_FOR` holds the versions these names were checked against; a unit
test fails when the installed ones differ.

A few names have no public path at all (the last section: the suppress-instrumentation
context key, the batch processors' defaults, a metric exporter's preferences, the SDK's
configurator base class): they are here too, so that an upgrade has one file to re-check.
"""

from __future__ import annotations

import enum
import logging
import os
import threading
import weakref
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import fields, is_dataclass
from time import time_ns
from typing import TYPE_CHECKING, Any

from opentelemetry.context import _SUPPRESS_INSTRUMENTATION_KEY

from otel_distro._fork_safe import ForkSafeLock

if TYPE_CHECKING:
    from opentelemetry.exporter.http.transport._base import BaseHTTPResult, BaseHTTPTransport
    from opentelemetry.sdk._configuration import _BaseConfigurator as BaseConfigurator

__all__ = [
    "CONTRIB_VERSION",
    "REQUIRED",
    "REVERIFY_ON_UPGRADE",
    "SDK_VERSION",
    "SUPPRESS_INSTRUMENTATION_KEY",
    "WRITTEN_FOR",
    "BaseConfigurator",
    "BaseHTTPResult",
    "BaseHTTPTransport",
    "FastPath",
    "InstrumentInternals",
    "LoggerInternals",
    "batch_processor_defaults",
    "enabled",
    "exporter_encodes",
    "exporter_is_shut_down",
    "exporter_kwargs",
    "exporter_transport",
    "fall_back",
    "follow_forks",
    "forced_off",
    "instrument_internals",
    "logger_internals",
    "metric_exporter_preferences",
    "renew_metric_locks",
    "renew_metric_locks_after_fork",
    "request_too_large",
    "send_encoded",
    "span_attribute_dict",
]

_log = logging.getLogger("otel_distro.sdk_compat")

SDK_VERSION = "1.45.1"
CONTRIB_VERSION = "0.66b1"
# The distributions whose private names (or, for the encoder, wire format) this module relies on.
WRITTEN_FOR: Mapping[str, str] = {
    "opentelemetry-api": SDK_VERSION,
    "opentelemetry-sdk": SDK_VERSION,
    "opentelemetry-proto": SDK_VERSION,
    "opentelemetry-exporter-otlp-proto-common": SDK_VERSION,
    "opentelemetry-exporter-otlp-proto-http": SDK_VERSION,
    "opentelemetry-exporter-otlp-common": CONTRIB_VERSION,
    "opentelemetry-exporter-http-transport": CONTRIB_VERSION,
}
REVERIFY_ON_UPGRADE = (
    "re-read otel_distro/_sdk_compat.py against the new release: every private name it imports or reads, "
    "the SDK code each fast path replaces (Histogram.record -> MeasurementConsumer -> _ViewInstrumentMatch; "
    "Logger.emit -> ReadWriteLogRecord; the OTLP/HTTP exporters' export and __init__; BoundedAttributes), "
    "and the OTLP protobuf schema our encoder writes (otel_distro/otlp_encoding.py); run tests/unit/"
    "test_sdk_compat.py, test_otlp_encoding.py, test_otlp_http.py, test_http_instrumentation_recorder.py and "
    "test_logs.py; then update WRITTEN_FOR"
)


class FastPath(enum.Enum):
    """One switch per shortcut through SDK internals (see the module doc)."""

    METRIC_RECORD = "metric-record"
    LOG_EMIT = "log-emit"
    OTLP_ENCODE = "otlp-encode"
    PLAIN_HTTP_TRANSPORT = "plain-http-transport"
    SPAN_RAW_ATTRIBUTES = "span-raw-attributes"


class _Incompatible(Exception):
    """An SDK name is missing or no longer has the shape a fast path relies on."""


# Held while a path's names are checked (imports included), possibly on an export thread of a
# pre-fork master at the moment it forks: renewed in the child, or a worker's first check hangs.
_lock = ForkSafeLock()
_state: dict[FastPath, bool] = {}  # resolved paths: True = the fast path may run
_forced: set[FastPath] = set()  # tests only (`forced_off`)


def enabled(path: FastPath) -> bool:
    """Whether `path` may run: its names resolved (once) and nobody turned it off."""
    if path in _forced:
        return False
    state = _state.get(path)
    if state is None:
        failure = None
        with _lock:
            state = _state.get(path)
            if state is None:
                try:
                    _CHECKS[path]()
                    state = _state[path] = True
                except Exception as error:  # whatever a changed SDK raises: the public path, not a crash
                    state = _state[path] = False
                    failure = error
        if failure is not None:  # logged outside the lock: our log handlers may ask about another path
            _announce(path, failure)
    return state


def fall_back(path: FastPath, reason: object) -> None:
    """Turn `path` off for the rest of the process (a live object lacked a name), saying so once."""
    with _lock:
        if _state.get(path) is False:
            return
        _state[path] = False
    _announce(path, reason)


def _announce(path: FastPath, reason: object) -> None:
    _log.info(
        "otel-distro: fast path %r off, using the SDK's public path (same telemetry, more CPU): %s",
        path.value,
        reason,
    )


@contextmanager
def forced_off(*paths: FastPath) -> Iterator[None]:
    """Tests only: these paths report disabled inside the block (objects built inside use the public path)."""
    before = set(_forced)
    _forced.update(paths)
    try:
        yield
    finally:
        _forced.clear()
        _forced.update(before)


def _expect(condition: bool, message: str) -> None:
    if not condition:
        raise _Incompatible(message)


def _field_names(cls: Any) -> tuple[str, ...]:
    _expect(is_dataclass(cls), f"{cls.__qualname__} is no longer a dataclass")
    return tuple(f.name for f in fields(cls))


# --- METRIC_RECORD: http_server._recorder ----------------------------------------------------------

_MEASUREMENT_FIELDS = ("value", "time_unix_nano", "instrument", "context", "attributes")
_metric_names: dict[str, Any] = {}


def _check_metric_record() -> None:
    from opentelemetry.sdk.metrics._internal import instrument
    from opentelemetry.sdk.metrics._internal._view_instrument_match import _hash_attributes, _ViewInstrumentMatch
    from opentelemetry.sdk.metrics._internal.measurement import Measurement
    from opentelemetry.sdk.metrics._internal.metric_reader_storage import MetricReaderStorage

    _expect(_field_names(Measurement) == _MEASUREMENT_FIELDS, "Measurement's fields changed")
    _expect(callable(MetricReaderStorage._get_or_init_view_instrument_match), "no view-instrument-match lookup")
    _expect(callable(_ViewInstrumentMatch.consume_measurement), "no _ViewInstrumentMatch.consume_measurement")
    for cls in (instrument.Histogram, instrument.UpDownCounter):
        _expect(callable(cls._is_enabled), f"{cls.__name__} has no _is_enabled")
    _metric_names.update(
        Measurement=Measurement,
        hash_attributes=_hash_attributes,
        instruments=(instrument.Histogram, instrument.UpDownCounter),
    )


class InstrumentInternals:
    """The private parts of one SDK histogram or up-down counter the recorder's fast path uses.

    `Recorder` keeps, per attribute set, the aggregations the SDK created for it, and hands
    them measurements directly (`record`), skipping `Measurement.__post_init__`'s attribute
    cleaning and every reader storage's hashing of the attribute set.
    """

    __slots__ = ("_consumer", "_filter", "_instrument", "is_enabled")

    def __init__(self, instrument: Any, consumer: Any) -> None:
        self._instrument = instrument
        self._consumer = consumer
        self._filter = consumer._sdk_config.exemplar_filter
        self.is_enabled: Callable[[], bool] = instrument._is_enabled  # bound once: one look-up less per call
        if not isinstance(consumer._reader_storages, Mapping):
            raise AttributeError("_reader_storages is no longer a mapping")

    def aggregations(self, attributes: Mapping[str, Any]) -> tuple[object, list[Any]] | None:
        """(storages, the aggregations the SDK made for `attributes` in each), right after the SDK recorded them.

        None when one is missing (not created: nothing to cache) or the internals changed (the
        fast path is then off).
        """
        hash_attributes = _metric_names["hash_attributes"]
        try:
            storages = self._consumer._reader_storages
            found = []
            for storage in storages.values():
                for match in storage._get_or_init_view_instrument_match(self._instrument):
                    keys = match._view._attribute_keys
                    kept = attributes if keys is None else {k: v for k, v in attributes.items() if k in keys}
                    aggregation = match._attributes_aggregation.get(hash_attributes(kept))
                    if aggregation is None:
                        return None
                    found.append(aggregation)
        except (AttributeError, TypeError) as error:
            fall_back(FastPath.METRIC_RECORD, f"metric storage internals changed ({error})")
            return None
        return storages, found

    def record(
        self, storages: object, aggregations: list[Any], value: float, attributes: Mapping[str, Any], context: Any
    ) -> bool:
        """What `MeasurementConsumer.consume_measurement` and each `_ViewInstrumentMatch` do, minus the look-ups.

        False, recording nothing, when the reader storages are no longer `storages` (the
        aggregations learnt from them may be stale).
        """
        if self._consumer._reader_storages is not storages:
            return False
        # Without `__init__`: `__post_init__` would re-clean attributes the cache key already vetted.
        measurement = object.__new__(_metric_names["Measurement"])
        now = time_ns()
        setattr_ = object.__setattr__  # the frozen dataclass's fields, as its `__init__` sets them
        setattr_(measurement, "value", value)
        setattr_(measurement, "time_unix_nano", now)
        setattr_(measurement, "instrument", self._instrument)
        setattr_(measurement, "context", context)
        setattr_(measurement, "attributes", attributes)
        sample = self._filter.should_sample(value, now, attributes, context)
        for aggregation in aggregations:
            aggregation.aggregate(measurement, sample)
        return True


def instrument_internals(instrument: Any) -> InstrumentInternals | None:
    """The fast path's view of an SDK instrument; None: record through its public method."""
    if not enabled(FastPath.METRIC_RECORD):
        return None
    if not isinstance(instrument, _metric_names["instruments"]):
        return None  # the API's no-op instruments, another SDK: nothing to shortcut
    try:
        return InstrumentInternals(instrument, instrument._measurement_consumer)
    except AttributeError as error:
        fall_back(FastPath.METRIC_RECORD, f"SDK instrument internals changed ({error})")
        return None


# --- LOG_EMIT: logs._otlp.Emitter ------------------------------------------------------------------

_API_LOG_RECORD_FIELDS = frozenset(
    {
        "timestamp",
        "observed_timestamp",
        "context",
        "trace_id",
        "span_id",
        "trace_flags",
        "severity_text",
        "severity_number",
        "body",
        "attributes",
        "event_name",
        "exception",
    }
)
_WRITABLE_FIELDS = ("log_record", "resource", "instrumentation_scope", "limits")
_log_names: dict[str, Any] = {}


def _check_log_emit() -> None:
    from opentelemetry._logs import LogRecord
    from opentelemetry.sdk._logs import Logger, LogRecordLimits, ReadWriteLogRecord

    _expect(set(vars(LogRecord())) == _API_LOG_RECORD_FIELDS, "the API LogRecord's attributes changed")
    _expect(_field_names(ReadWriteLogRecord) == _WRITABLE_FIELDS, "ReadWriteLogRecord's fields changed")
    limits = LogRecordLimits()
    _expect(
        hasattr(limits, "max_log_record_attributes") and hasattr(limits, "max_log_record_attribute_length"),
        "LogRecordLimits' attributes changed",
    )
    _expect(callable(Logger._is_enabled), "the SDK Logger has no _is_enabled")
    _log_names.update(LogRecord=LogRecord, ReadWriteLogRecord=ReadWriteLogRecord, Logger=Logger)


class LoggerInternals:
    """What `Logger.emit` hands the processors, built directly from our already-plain values.

    Saves `BoundedAttributes`' re-validation of every attribute and the record's layers of
    constructors; the record is the same `ReadWriteLogRecord` (attributes a plain dict, as
    exporters read them).
    """

    __slots__ = ("_logger", "_metrics", "_on_emit", "is_enabled", "limits", "max_attributes")

    def __init__(self, logger: Any) -> None:
        self._logger = logger
        self._on_emit = logger._multi_log_record_processor.on_emit
        self._metrics = logger._logger_metrics
        self.limits = logger._log_record_limits
        self.is_enabled: Callable[[], bool] = logger._is_enabled
        # Records with more attributes, or limits on their length, go through `Logger.emit`.
        length_limited = self.limits.max_log_record_attribute_length is not None
        self.max_attributes: int = -1 if length_limited else (self.limits.max_log_record_attributes or 0)

    def emit(
        self,
        context: Any,
        span_context: Any,
        timestamp: int | None,
        severity_number: Any,
        severity_text: str,
        body: Any,
        attributes: dict[str, Any],
    ) -> None:
        logger = self._logger
        # Without `__init__`/`__post_init__`: they would re-validate what is already clean.
        record = object.__new__(_log_names["LogRecord"])
        record.timestamp = timestamp
        record.observed_timestamp = time_ns()
        record.context = context
        record.trace_id = span_context.trace_id
        record.span_id = span_context.span_id
        record.trace_flags = span_context.trace_flags
        record.severity_text = severity_text
        record.severity_number = severity_number
        record.body = body
        record.attributes = attributes
        record.event_name = None
        record.exception = None
        writable = object.__new__(_log_names["ReadWriteLogRecord"])
        writable.log_record = record
        writable.resource = logger.resource
        writable.instrumentation_scope = logger.instrumentation_scope
        writable.limits = self.limits
        self._metrics.emit_log()
        self._on_emit(writable)


def logger_internals(logger: Any) -> LoggerInternals | None:
    """The fast path's view of an SDK logger; None: emit through `Logger.emit`."""
    if not enabled(FastPath.LOG_EMIT) or not isinstance(logger, _log_names["Logger"]):
        return None
    try:
        return LoggerInternals(logger)
    except AttributeError as error:
        fall_back(FastPath.LOG_EMIT, f"SDK logger internals changed ({error})")
        return None


# --- OTLP_ENCODE: otlp_http exporters sending our encoder's bytes ---------------------------------

_export_names: dict[str, Any] = {}


_EXPORTER_ATTRIBUTES = ("_shutdown", "_max_request_size", "_metrics", "_client")


def _check_otlp_encode() -> None:
    from opentelemetry.exporter.otlp.proto.http import _common

    too_large = _common._is_request_too_large
    _expect(too_large(b"xx", 1) and not too_large(b"xx", 0), "_is_request_too_large changed")
    _export_names["is_request_too_large"] = too_large


def exporter_encodes(exporter: Any) -> bool:
    """Whether this upstream exporter (just built) may send our encoder's bodies through its own client."""
    if not enabled(FastPath.OTLP_ENCODE):
        return False
    missing = [name for name in _EXPORTER_ATTRIBUTES if not hasattr(exporter, name)]
    if missing or not callable(getattr(exporter._client, "export", None)):
        fall_back(
            FastPath.OTLP_ENCODE,
            f"{type(exporter).__name__}'s internals changed (missing {missing or 'client.export'})",
        )
        return False
    if not callable(getattr(exporter._metrics, "export_operation", None)):
        fall_back(FastPath.OTLP_ENCODE, f"{type(exporter).__name__}'s metrics have no export_operation")
        return False
    return True


def exporter_is_shut_down(exporter: Any) -> bool:
    return bool(exporter._shutdown)


def request_too_large(exporter: Any, body: bytes) -> bool:
    """Upstream's own check (`max_request_size`), so that upstream's export drops and reports it."""
    return bool(_export_names["is_request_too_large"](body, exporter._max_request_size))


_HTTP_RESPONSE_STATUS_CODE = "http.response.status_code"


def send_encoded(exporter: Any, body: bytes, count: int) -> bool:
    """POST an encoded batch through the exporter's own client and metrics, as its `export` does."""
    with exporter._metrics.export_operation(count) as result:
        sent = exporter._client.export(body)
        if not sent.success:
            result.error = sent.error
            if sent.status_code is not None:
                result.error_attrs = {_HTTP_RESPONSE_STATUS_CODE: sent.status_code}
            return False
    return True


# --- PLAIN_HTTP_TRANSPORT: otlp_http's stdlib transport -------------------------------------------


class _MissingBase:
    """Stands in for a transport base class this exporter release lacks (the path is then off)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        raise _Incompatible("the OTLP/HTTP exporter's transport interface is missing")


def _transport_bases() -> tuple[Any, Any]:
    try:
        from opentelemetry.exporter.http.transport._base import BaseHTTPResult, BaseHTTPTransport
    except ImportError:
        return _MissingBase, _MissingBase
    return BaseHTTPResult, BaseHTTPTransport


if not TYPE_CHECKING:
    BaseHTTPResult, BaseHTTPTransport = _transport_bases()

_TRANSPORT_KEYWORD = "_transport"
_RESULT_FIELDS = ("status_code", "reason", "error")
_TRANSPORT_METHODS = frozenset({"request", "close", "is_connection_error"})


def _check_plain_http_transport() -> None:
    import inspect

    from opentelemetry.exporter.otlp.proto.http import _common
    from opentelemetry.exporter.otlp.proto.http._log_exporter import OTLPLogExporter
    from opentelemetry.exporter.otlp.proto.http.metric_exporter import OTLPMetricExporter
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

    _expect(_transport_bases()[1] is not _MissingBase, "no opentelemetry.exporter.http.transport._base")
    _expect(_field_names(BaseHTTPResult) == _RESULT_FIELDS, "BaseHTTPResult's fields changed")
    _expect(BaseHTTPTransport.__abstractmethods__ <= _TRANSPORT_METHODS, "BaseHTTPTransport has new abstract methods")
    for cls in (OTLPSpanExporter, OTLPLogExporter, OTLPMetricExporter):
        parameter = inspect.signature(cls.__init__).parameters.get(_TRANSPORT_KEYWORD)
        _expect(parameter is not None, f"{cls.__name__} takes no {_TRANSPORT_KEYWORD}")
    resolve = _common._resolve_endpoint
    _expect(len(inspect.signature(resolve).parameters) == 2, "_resolve_endpoint's signature changed")
    _export_names["resolve_endpoint"] = resolve


def exporter_kwargs(
    kwargs: dict[str, Any],
    endpoint_variable: str,
    default_path: str,
    transport_for: Callable[[str], BaseHTTPTransport | None],
) -> dict[str, Any]:
    """`kwargs` for an upstream OTLP/HTTP exporter, with our transport when `transport_for` gives one.

    The endpoint is upstream's own resolution (the argument, the signal's variable, or the
    base variable plus `default_path`).
    """
    if not enabled(FastPath.PLAIN_HTTP_TRANSPORT) or kwargs.get("session") is not None or _TRANSPORT_KEYWORD in kwargs:
        return kwargs
    url = kwargs.get("endpoint") or _export_names["resolve_endpoint"](endpoint_variable, default_path)
    return {**kwargs, _TRANSPORT_KEYWORD: transport_for(url)}


def exporter_transport(exporter: Any) -> Any:
    """The transport an upstream OTLP/HTTP exporter sends through (for tests and diagnostics)."""
    return exporter._client._transport


# --- SPAN_RAW_ATTRIBUTES: exporters.ScrubbingSpanExporter ------------------------------------------


def _check_span_raw_attributes() -> None:
    from opentelemetry.attributes import BoundedAttributes
    from opentelemetry.sdk.trace import ReadableSpan

    probe = ReadableSpan(name="probe", attributes=BoundedAttributes(attributes={"k": "v"}))
    raw: Any = probe._attributes
    _expect(isinstance(raw, BoundedAttributes), "ReadableSpan no longer keeps BoundedAttributes in _attributes")
    _expect(isinstance(raw._dict, dict) and raw._dict == {"k": "v"}, "BoundedAttributes no longer keeps _dict")


def span_attribute_dict(span: Any) -> Mapping[str, Any] | None:
    """The span's attributes for reading: the SDK's own dict (no mapping-proxy calls) when the path is on."""
    if enabled(FastPath.SPAN_RAW_ATTRIBUTES):
        attributes = getattr(span, "_attributes", None)  # spans built by hand may hold a plain dict
        if attributes is not None:
            return getattr(attributes, "_dict", attributes)  # type: ignore[no-any-return]
    return span.attributes  # type: ignore[no-any-return]


# --- required names: no public path ---------------------------------------------------------------

# The context key the SDK's own export threads set so that exporting does not trace itself.
SUPPRESS_INSTRUMENTATION_KEY = _SUPPRESS_INSTRUMENTATION_KEY


def batch_processor_defaults(processor_class: Any) -> tuple[float, float]:
    """(schedule delay, export timeout) in seconds, as upstream's batch processor reads them from its variables."""
    return (
        processor_class._default_schedule_delay_millis() / 1e3,
        processor_class._default_export_timeout_millis() / 1e3,
    )


def metric_exporter_preferences(exporter: Any) -> dict[str, Any]:
    """A metric exporter's temporality and aggregation preferences, for a wrapper to pass on."""
    return {
        "preferred_temporality": exporter._preferred_temporality,
        "preferred_aggregation": exporter._preferred_aggregation,
    }


# --- fork safety the SDK lacks ----------------------------------------------------------
#
# A pre-fork server (gunicorn) forks its workers at any moment, also while the master's metric
# reader thread collects or exports. The SDK holds its metric locks across that work (the
# reader's export lock across the whole HTTP export; the measurement consumer's and reader
# storage's locks across a collection; each series' aggregation and exemplar reservoir lock
# while reading it), and after a fork it only renews the provider's own two locks. A worker
# forked then inherits a lock held by a thread it does not have: its reader waits forever and
# the worker never exports a metric again, or its request thread hangs on its first new series
# or exemplar. tests/unit/test_fork_safe.py forks in the middle of an export and a collection.
_RLOCK_TYPE = type(threading.RLock())
_said_fork_locks = False


def renew_metric_locks_after_fork(provider: Any) -> None:
    """Replace, in every forked child, each metric lock of `provider` by a free one."""
    ref = weakref.ref(provider)

    def renew() -> None:
        alive = ref()
        if alive is not None:
            renew_metric_locks(alive)

    os.register_at_fork(after_in_child=renew)


def renew_metric_locks(provider: Any) -> bool:
    """Free locks in place of the SDK's (the child's one thread holds none of them yet); False,
    with one INFO line, when the SDK's shape changed and they could not all be reached."""
    global _said_fork_locks
    try:
        consumer = provider._measurement_consumer
        _renew(consumer)
        for reader in provider._metric_readers:
            _renew(reader, "_lock", "_export_lock")
        for storage in consumer._reader_storages.values():
            _renew(storage)
            for matches in list(storage._instrument_view_instrument_matches.values()):
                for match in matches:
                    _renew(match)
                    for aggregation in list(match._attributes_aggregation.values()):
                        _renew(aggregation)
                        reservoir = getattr(aggregation, "_reservoir", None)
                        if reservoir is not None:
                            _renew(reservoir)
    except (AttributeError, TypeError) as error:
        if not _said_fork_locks:
            _said_fork_locks = True
            _log.info("otel-distro: could not renew the SDK's metric locks after a fork (%s)", error)
        return False
    return True


def _renew(owner: Any, *names: str) -> None:
    for name in names or ("_lock",):
        old = getattr(owner, name, None)
        if old is not None:
            setattr(owner, name, threading.RLock() if isinstance(old, _RLOCK_TYPE) else threading.Lock())


def follow_forks(system_metrics: Any) -> None:
    """Contrib's system-metrics instrumentation reads `process.*` from a `psutil.Process` of the
    pid it was instrumented in: in a pre-fork server's workers, the master's CPU, memory and
    threads. After a fork it is made to read the child's own."""
    ref = weakref.ref(system_metrics)

    def renew() -> None:
        alive = ref()
        if alive is not None and hasattr(alive, "_proc"):
            import psutil  # type: ignore[import-untyped]  # installed with that instrumentation

            alive._proc = psutil.Process(os.getpid())

    os.register_at_fork(after_in_child=renew)


# Imported on first use (module `__getattr__`): only the configurator needs it, and it imports the whole SDK.
REQUIRED: Mapping[str, tuple[str, str]] = {
    "BaseConfigurator": ("opentelemetry.sdk._configuration", "_BaseConfigurator"),
}


def __getattr__(name: str) -> Any:
    if name not in REQUIRED:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    import importlib

    module, attribute = REQUIRED[name]
    value = getattr(importlib.import_module(module), attribute)
    globals()[name] = value
    return value


_CHECKS: dict[FastPath, Callable[[], None]] = {
    FastPath.METRIC_RECORD: _check_metric_record,
    FastPath.LOG_EMIT: _check_log_emit,
    FastPath.OTLP_ENCODE: _check_otlp_encode,
    FastPath.PLAIN_HTTP_TRANSPORT: _check_plain_http_transport,
    FastPath.SPAN_RAW_ATTRIBUTES: _check_span_raw_attributes,
}
