"""The SDK set-up `opentelemetry-instrument` runs after the distro (group
`opentelemetry_configurator`): providers, processors, exporters, propagators, logging.
"""

from __future__ import annotations

import logging
from typing import Any

from opentelemetry import metrics, propagate, trace
from opentelemetry._logs import set_logger_provider
from opentelemetry.instrumentation.propagators import set_global_response_propagator
from opentelemetry.propagators.composite import CompositePropagator
from opentelemetry.sdk._logs import LoggerProvider
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import MetricReader, PeriodicExportingMetricReader
from opentelemetry.sdk.trace import TracerProvider

from otel_distro import _sdk_compat
from otel_distro._sdk_compat import BaseConfigurator
from otel_distro.components import request_ids, scrubber
from otel_distro.error_counter import ErrorCounter
from otel_distro.export_queue import ExportQueues
from otel_distro.exporters import (
    ScrubbingSpanExporter,
    limit_export_warnings,
    log_exporters,
    metric_exporters,
    span_exporters,
)
from otel_distro.helper_process import is_helper_process
from otel_distro.logs import install_logging
from otel_distro.prometheus import prometheus_reader
from otel_distro.request_id import RequestIdPropagator, RequestIdResponsePropagator
from otel_distro.resource import build_resource
from otel_distro.settings import Settings, get_settings
from otel_distro.shutdown import register_shutdown

__all__ = ["OtelConfigurator", "configure_sdk"]

_settings_log = logging.getLogger("otel_distro.settings")


class OtelConfigurator(BaseConfigurator):
    def _configure(self, **kwargs: Any) -> None:
        if is_helper_process():
            return  # a multiprocessing helper, not a service instance: no telemetry of its own
        # Built by opentelemetry-instrument with no arguments: the cached process settings it shares with the distro.
        configure_sdk(get_settings())


def configure_sdk(settings: Settings) -> tuple[TracerProvider, MeterProvider, LoggerProvider]:
    """Build and register the three providers; export runs on the SDK's background threads.

    Warns once per value the settings refused: after logging is installed, so the warnings
    take the app's log format and are exported too; also if building anything fails.
    """
    try:
        return _build(settings)
    finally:
        for problem in settings.problems:
            _settings_log.warning("otel-distro: %s", problem.message)


def _build(settings: Settings) -> tuple[TracerProvider, MeterProvider, LoggerProvider]:
    limit_export_warnings(settings.export_warning_interval)
    resource = build_resource(settings)

    tracer_provider = TracerProvider(resource=resource, shutdown_on_exit=False)
    # Spans and log records: the request thread only queues them (otel_distro.export_queue).
    export_queues = ExportQueues(settings)
    scrub = scrubber(settings)
    for span_exporter in span_exporters(settings):
        # Scrubbing runs in the exporter, on the export thread, not on the request path.
        exporter = ScrubbingSpanExporter(span_exporter, scrub) if scrub else span_exporter
        tracer_provider.add_span_processor(export_queues.span_processor(exporter))
    trace.set_tracer_provider(tracer_provider)

    readers: list[MetricReader] = [
        PeriodicExportingMetricReader(exporter, export_interval_millis=settings.metric_export_interval)
        for exporter in metric_exporters(settings)
    ]
    if "prometheus" in settings.metrics_exporter:
        readers.append(prometheus_reader(settings))
    meter_provider = MeterProvider(resource=resource, metric_readers=readers, shutdown_on_exit=False)
    _sdk_compat.renew_metric_locks_after_fork(meter_provider)  # pre-fork servers: see the function
    metrics.set_meter_provider(meter_provider)

    logger_provider = LoggerProvider(resource=resource, shutdown_on_exit=False)
    exporters = log_exporters(settings)
    for log_exporter in exporters:
        logger_provider.add_log_record_processor(export_queues.log_processor(log_exporter))
    set_logger_provider(logger_provider)
    errors = ErrorCounter(meter_provider, settings.error_groups_max)
    install_logging(settings, logger_provider if exporters else None, resource, scrub, errors)

    ids = request_ids(settings)
    propagate.set_global_textmap(CompositePropagator([propagate.get_global_textmap(), RequestIdPropagator(ids.header)]))
    set_global_response_propagator(RequestIdResponsePropagator(ids, settings.server_timing))

    register_shutdown(
        (tracer_provider.shutdown, meter_provider.shutdown, logger_provider.shutdown),
        settings.shutdown_timeout,
    )
    return tracer_provider, meter_provider, logger_provider
