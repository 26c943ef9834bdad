from __future__ import annotations

import io
import logging
import logging.config
from typing import Any

import pytest
from opentelemetry.sdk._logs import LoggerProvider
from opentelemetry.sdk._logs.export import InMemoryLogRecordExporter
from opentelemetry.sdk.trace import TracerProvider

from otel_distro.logs import OTLPHandler, install_logging
from otel_distro.logs._context import install_record_factory
from otel_distro.logs._stdlib import ConsoleFallback
from otel_distro.request_id import RequestIds
from otel_distro.settings import Settings


def _our_handlers() -> list[logging.Handler]:
    return [h for h in logging.getLogger().handlers if isinstance(h, (OTLPHandler, ConsoleFallback))]


def _bare_root() -> None:
    """A root logger as an app that never configured logging has it.

    Called inside the test body: pytest adds its capture handlers after fixtures ran.
    """
    root = logging.getLogger()
    root.handlers[:] = []
    root.setLevel(logging.WARNING)


class TestRecordFactory:
    def test_stamps_ids_inside_a_span(self, tracer_provider: TracerProvider) -> None:
        _bare_root()
        install_record_factory()
        hooks = RequestIds("X-Request-ID", trust_inbound=True)
        with tracer_provider.get_tracer("t").start_as_current_span("req") as span:
            hooks.wsgi_request_hook(span, {"HTTP_X_REQUEST_ID": "rid-1"})
            record = logging.getLogger("app").makeRecord("app", logging.INFO, "f", 1, "m", (), None)
            ctx = span.get_span_context()

        assert record.otel_trace_id == f"{ctx.trace_id:032x}"
        assert record.otel_span_id == f"{ctx.span_id:016x}"
        assert record.otel_request_id == "rid-1"

    def test_empty_outside_a_span_and_idempotent(self) -> None:
        _bare_root()
        install_record_factory()
        factory = logging.getLogRecordFactory()
        install_record_factory()

        assert logging.getLogRecordFactory() is factory
        record = logging.getLogger("app").makeRecord("app", logging.INFO, "f", 1, "m", (), None)
        assert (record.otel_trace_id, record.otel_span_id, record.otel_request_id) == ("", "", "")

    def test_app_extra_with_the_plain_names_still_works(self) -> None:
        _bare_root()
        install_record_factory()
        record = logging.getLogger("app").makeRecord(
            "app", logging.INFO, "f", 1, "m", (), None, extra={"trace_id": "mine", "request_id": "r"}
        )
        assert record.trace_id == "mine"


class TestOTLPHandler:
    def test_exports_message_extra_ids_and_exception(
        self,
        tracer_provider: TracerProvider,
        logger_provider: LoggerProvider,
        log_records: InMemoryLogRecordExporter,
    ) -> None:
        _bare_root()
        install_logging(Settings(), logger_provider)
        hooks = RequestIds("X-Request-ID", trust_inbound=True)
        log = logging.getLogger("app.orders")
        with tracer_provider.get_tracer("t").start_as_current_span("req") as span:
            hooks.wsgi_request_hook(span, {"HTTP_X_REQUEST_ID": "rid-2"})
            log.info("order %s created", 7, extra={"order_id": 7, "items": ["a", "b"], "obj": object()})
            try:
                raise ValueError("no stock")
            except ValueError:
                log.exception("failed")
            ctx = span.get_span_context()

        first, second = (r.log_record for r in log_records.get_finished_logs())
        assert first.body == "order 7 created"
        assert first.severity_text == "INFO"
        assert first.trace_id == ctx.trace_id and first.span_id == ctx.span_id
        attrs = dict(first.attributes or {})
        assert attrs["order_id"] == 7
        assert attrs["items"] == ("a", "b")
        assert attrs["obj"].startswith("<object")
        assert attrs["request.id"] == "rid-2"
        assert not any(k.startswith("otel_") for k in attrs)
        assert second.severity_text == "ERROR"
        assert second.attributes is not None
        assert second.attributes["exception.type"] == "ValueError"
        assert "no stock" in str(second.attributes["exception.stacktrace"])

    def test_info_is_exported_and_sdk_records_are_not(
        self, logger_provider: LoggerProvider, log_records: InMemoryLogRecordExporter
    ) -> None:
        _bare_root()
        install_logging(Settings(), logger_provider)
        logging.getLogger("app").info("kept")
        logging.getLogger("opentelemetry.exporter.otlp").warning("would loop")

        assert [r.log_record.body for r in log_records.get_finished_logs()] == ["kept"]

    def test_level_setting_is_respected(
        self, logger_provider: LoggerProvider, log_records: InMemoryLogRecordExporter
    ) -> None:
        _bare_root()
        install_logging(Settings(log_level="ERROR"), logger_provider)
        logging.getLogger("app").warning("dropped")
        logging.getLogger("app").error("kept")

        assert [r.log_record.body for r in log_records.get_finished_logs()] == ["kept"]


class TestCoexistence:
    def test_installing_twice_adds_one_handler(self, logger_provider: LoggerProvider) -> None:
        _bare_root()
        install_logging(Settings(), logger_provider)
        install_logging(Settings(), logger_provider)

        assert [type(h) for h in _our_handlers()].count(OTLPHandler) == 1

    def test_console_output_of_an_unconfigured_app_is_unchanged(
        self, logger_provider: LoggerProvider, capsys: pytest.CaptureFixture[str]
    ) -> None:
        _bare_root()
        install_logging(Settings(), logger_provider)
        log = logging.getLogger("app")
        log.info("quiet as before")
        log.warning("loud as before")

        assert capsys.readouterr().err == "loud as before\n"

    def test_basic_config_after_us_still_configures_the_app(
        self,
        logger_provider: LoggerProvider,
        log_records: InMemoryLogRecordExporter,
    ) -> None:
        _bare_root()
        install_logging(Settings(), logger_provider)
        stream = io.StringIO()
        logging.basicConfig(stream=stream, level=logging.DEBUG, format="%(levelname)s %(message)s")
        logging.getLogger("app").debug("debug line")
        logging.getLogger("app").warning("warn line")

        # The app's handler prints exactly once; ours still exports, at our level.
        assert stream.getvalue() == "DEBUG debug line\nWARNING warn line\n"
        assert [r.log_record.body for r in log_records.get_finished_logs()] == ["warn line"]
        assert not any(isinstance(h, ConsoleFallback) for h in logging.getLogger().handlers)

    def test_dict_config_replacing_root_handlers_keeps_export(
        self,
        logger_provider: LoggerProvider,
        log_records: InMemoryLogRecordExporter,
    ) -> None:
        _bare_root()
        install_logging(Settings(), logger_provider)
        stream = io.StringIO()
        config: dict[str, Any] = {
            "version": 1,
            "disable_existing_loggers": False,
            "handlers": {"s": {"class": "logging.StreamHandler", "stream": stream}},
            "root": {"handlers": ["s"], "level": "INFO"},
        }
        logging.config.dictConfig(config)
        logging.getLogger("app").info("line")

        assert stream.getvalue() == "line\n"
        assert [r.log_record.body for r in log_records.get_finished_logs()] == ["line"]
        assert [type(h) for h in _our_handlers()] == [OTLPHandler]

    def test_app_handler_added_directly_silences_the_fallback(
        self, logger_provider: LoggerProvider, capsys: pytest.CaptureFixture[str]
    ) -> None:
        _bare_root()
        install_logging(Settings(), logger_provider)
        stream = io.StringIO()
        logging.getLogger("app").addHandler(logging.StreamHandler(stream))
        try:
            logging.getLogger("app").warning("once")
        finally:
            logging.getLogger("app").handlers.clear()

        assert stream.getvalue() == "once\n"
        assert capsys.readouterr().err == ""


class TestStructlog:
    def test_events_get_ids_and_are_exported(
        self,
        tracer_provider: TracerProvider,
        logger_provider: LoggerProvider,
        log_records: InMemoryLogRecordExporter,
    ) -> None:
        _bare_root()
        structlog = pytest.importorskip("structlog")
        output: list[dict[str, Any]] = []

        def capture(logger: Any, method: str, event_dict: dict[str, Any]) -> str:
            output.append(dict(event_dict))
            return "rendered"

        saved = structlog.get_config()
        try:
            install_logging(Settings(), logger_provider)
            # The app configures structlog after the distro started: our processor survives.
            structlog.configure(processors=[structlog.processors.add_log_level, capture])
            hooks = RequestIds("X-Request-ID", trust_inbound=True)
            with tracer_provider.get_tracer("t").start_as_current_span("req") as span:
                hooks.wsgi_request_hook(span, {"HTTP_X_REQUEST_ID": "rid-s"})
                structlog.get_logger("svc").info("paid", amount=3)
                ctx = span.get_span_context()
        finally:
            structlog.configure(**{k: v for k, v in saved.items() if k != "cache_logger_on_first_use"})

        [event] = output
        assert event["trace_id"] == f"{ctx.trace_id:032x}"
        assert event["span_id"] == f"{ctx.span_id:016x}"
        assert event["request_id"] == "rid-s"
        [exported] = [r.log_record for r in log_records.get_finished_logs()]
        assert exported.body == "paid"
        assert exported.trace_id == ctx.trace_id
        assert exported.attributes is not None
        assert exported.attributes["amount"] == 3
        assert exported.attributes["request.id"] == "rid-s"
