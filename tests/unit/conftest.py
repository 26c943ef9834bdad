"""Unit-test fixtures: fresh SDK providers with in-memory exporters, and restored globals."""

from __future__ import annotations

import logging
import logging.config
from collections.abc import Iterator

import pytest
from opentelemetry.sdk._logs import LoggerProvider
from opentelemetry.sdk._logs.export import InMemoryLogRecordExporter, SimpleLogRecordProcessor
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from otel_distro.logs import _stdlib


@pytest.fixture(autouse=True)
def _restore_logging() -> Iterator[None]:
    """Every test starts and ends with the stdlib logging globals it found."""
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    factory = logging.getLogRecordFactory()
    functions = (logging.basicConfig, logging.config.dictConfig, logging.config.fileConfig)
    ours = list(_stdlib._Policy.ours)
    policy = (_stdlib._Policy.app_formatter, _stdlib._Policy.app_filter, _stdlib._Policy.silenced)
    structlog_config = _structlog_config()
    yield
    root.handlers[:] = handlers
    root.setLevel(level)
    logging.setLogRecordFactory(factory)
    logging.basicConfig, logging.config.dictConfig, logging.config.fileConfig = functions
    _stdlib._Policy.ours[:] = ours
    _stdlib._Policy.app_formatter, _stdlib._Policy.app_filter, _stdlib._Policy.silenced = policy
    if structlog_config is not None:
        import structlog

        structlog.reset_defaults()
        structlog.configure(**structlog_config)
    # dictConfig's disable_existing_loggers would otherwise leak into later tests.
    for logger in logging.Logger.manager.loggerDict.values():
        if isinstance(logger, logging.Logger):
            logger.disabled = False


def _structlog_config() -> dict[str, object] | None:
    try:
        import structlog
    except ImportError:
        return None
    return {k: v for k, v in structlog.get_config().items() if k != "cache_logger_on_first_use"}


@pytest.fixture
def spans() -> InMemorySpanExporter:
    return InMemorySpanExporter()


@pytest.fixture
def tracer_provider(spans: InMemorySpanExporter) -> TracerProvider:
    provider = TracerProvider(shutdown_on_exit=False)
    provider.add_span_processor(SimpleSpanProcessor(spans))
    return provider


@pytest.fixture
def log_records() -> InMemoryLogRecordExporter:
    return InMemoryLogRecordExporter()


@pytest.fixture
def logger_provider(log_records: InMemoryLogRecordExporter) -> LoggerProvider:
    provider = LoggerProvider(shutdown_on_exit=False)
    provider.add_log_record_processor(SimpleLogRecordProcessor(log_records))
    return provider
