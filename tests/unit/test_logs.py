from __future__ import annotations

import io
import json
import logging
import logging.config
from typing import Any, ClassVar

import pytest
from opentelemetry._logs import SeverityNumber
from opentelemetry.context import get_current
from opentelemetry.sdk._logs import LoggerProvider, LogRecordLimits
from opentelemetry.sdk._logs.export import InMemoryLogRecordExporter, SimpleLogRecordProcessor
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider

from otel_distro.logs import OTLPHandler, install_logging
from otel_distro.logs._context import install_record_factory
from otel_distro.logs._otlp import _NOT_ATTRIBUTES, Emitter, attribute_value
from otel_distro.logs._stdlib import ConsoleHandler
from otel_distro.otlp_encoding import encode_log_request
from otel_distro.request_id import RequestIds
from otel_distro.request_log import RequestLog
from otel_distro.scrub import Scrubber
from otel_distro.settings import Settings

RESOURCE = Resource.create(
    {"service.name": "orders", "service.version": "1.2.3", "deployment.environment.name": "test"}
)
JSON = Settings(log_format="json")


def _bare_root() -> None:
    """A root logger as an app that never configured logging has it.

    Called inside the test body: pytest adds its capture handlers after fixtures ran.
    """
    root = logging.getLogger()
    root.handlers[:] = []
    root.setLevel(logging.WARNING)


def _our_handlers() -> list[type[logging.Handler]]:
    return [type(h) for h in logging.getLogger().handlers if isinstance(h, (OTLPHandler, ConsoleHandler))]


def _request(provider: TracerProvider, request_id: str) -> Any:
    span = provider.get_tracer("t").start_span("req")
    RequestIds("X-Request-ID", trust_inbound=True).wsgi_request_hook(span, {"HTTP_X_REQUEST_ID": request_id})
    return span


class TestRecordFactory:
    def test_stamps_ids_inside_a_span(self, tracer_provider: TracerProvider) -> None:
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
        install_record_factory()
        factory = logging.getLogRecordFactory()
        install_record_factory()

        assert logging.getLogRecordFactory() is factory
        record = logging.getLogger("app").makeRecord("app", logging.INFO, "f", 1, "m", (), None)
        assert (record.otel_trace_id, record.otel_span_id, record.otel_request_id) == ("", "", "")

    def test_app_extra_with_the_plain_names_still_works(self) -> None:
        install_record_factory()
        record = logging.getLogger("app").makeRecord(
            "app", logging.INFO, "f", 1, "m", (), None, extra={"trace_id": "mine", "request_id": "r"}
        )
        assert record.trace_id == "mine"


class TestJsonLines:
    def test_stdlib_line_shape(self, tracer_provider: TracerProvider, capsys: pytest.CaptureFixture[str]) -> None:
        _bare_root()
        install_logging(JSON, None, RESOURCE, Scrubber())
        with tracer_provider.get_tracer("t").start_as_current_span("req") as span:
            RequestIds("X-Request-ID", True).wsgi_request_hook(span, {"HTTP_X_REQUEST_ID": "rid-j"})
            logging.getLogger("app.orders").info("order %s created", 7, extra={"order_id": 7})
            ctx = span.get_span_context()

        line = json.loads(capsys.readouterr().out)
        assert list(line)[:10] == [
            "timestamp", "level", "logger", "message", "trace_id", "span_id", "request_id",
            "service", "service_version", "environment",
        ]  # fmt: skip
        assert line["timestamp"].endswith("Z") and len(line["timestamp"]) == 24
        assert line["level"] == "INFO"
        assert line["logger"] == "app.orders"
        assert line["message"] == "order 7 created"
        assert line["trace_id"] == f"{ctx.trace_id:032x}"
        assert line["span_id"] == f"{ctx.span_id:016x}"
        assert line["request_id"] == "rid-j"
        assert (line["service"], line["service_version"], line["environment"]) == ("orders", "1.2.3", "test")
        assert line["order_id"] == 7

    def test_exception_fields(self, capsys: pytest.CaptureFixture[str]) -> None:
        _bare_root()
        install_logging(JSON, None, RESOURCE, None)
        try:
            raise KeyError("sku")
        except KeyError:
            logging.getLogger("app").exception("lookup failed")

        line = json.loads(capsys.readouterr().out)
        assert line["level"] == "ERROR"
        assert line["exception"]["type"] == "KeyError"
        assert "Traceback" in line["exception"]["stacktrace"]

    def test_structlog_line_has_the_same_shape(
        self, tracer_provider: TracerProvider, capsys: pytest.CaptureFixture[str]
    ) -> None:
        import structlog

        _bare_root()
        structlog.reset_defaults()
        install_logging(JSON, None, RESOURCE, Scrubber())
        with tracer_provider.get_tracer("t").start_as_current_span("req") as span:
            RequestIds("X-Request-ID", True).wsgi_request_hook(span, {"HTTP_X_REQUEST_ID": "rid-s"})
            structlog.get_logger("svc").bind(order_id=9).warning("paid", amount=3, password="hunter2")
            logging.getLogger("svc").warning("paid", extra={"order_id": 9, "amount": 3, "password": "hunter2"})

        first, second = (json.loads(line) for line in capsys.readouterr().out.splitlines())
        assert list(first) == list(second)
        for key in ("level", "message", "trace_id", "span_id", "request_id", "order_id", "amount"):
            assert first[key] == second[key], key
        assert first["password"] == second["password"] == "[REDACTED]"

    def test_console_format(self, capsys: pytest.CaptureFixture[str]) -> None:
        _bare_root()
        install_logging(Settings(log_format="console"), None, RESOURCE, None)
        logging.getLogger("app").warning("careful", extra={"n": 1})

        out = capsys.readouterr().out
        assert "WARNING app: careful n=1" in out
        assert not out.startswith("{")


class TestScrubbing:
    def test_secrets_never_reach_stdout_or_otlp(
        self,
        capsys: pytest.CaptureFixture[str],
        logger_provider: LoggerProvider,
        log_records: InMemoryLogRecordExporter,
    ) -> None:
        _bare_root()
        install_logging(JSON, logger_provider, RESOURCE, Scrubber(["pin"]))
        logging.getLogger("app").info(
            "login user=bob password=hunter2", extra={"password": "hunter2", "pin": "0000", "user": "bob"}
        )

        out = capsys.readouterr().out
        record = log_records.get_finished_logs()[0].log_record
        exported = f"{record.body} {dict(record.attributes or {})}"
        for text in (out, exported):
            assert "hunter2" not in text and "0000" not in text
            assert "[REDACTED]" in text
        assert json.loads(out)["user"] == "bob"


class TestOTLPHandler:
    def test_exports_message_extra_ids_and_exception(
        self,
        tracer_provider: TracerProvider,
        logger_provider: LoggerProvider,
        log_records: InMemoryLogRecordExporter,
    ) -> None:
        _bare_root()
        install_logging(JSON, logger_provider, RESOURCE, None)
        log = logging.getLogger("app.orders")
        with tracer_provider.get_tracer("t").start_as_current_span("req") as span:
            RequestIds("X-Request-ID", True).wsgi_request_hook(span, {"HTTP_X_REQUEST_ID": "rid-2"})
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
        assert not {"trace_id", "span_id", "service", "message"} & set(attrs)
        assert not any(k.startswith("otel_") for k in attrs)
        assert second.severity_text == "ERROR"
        assert second.attributes is not None
        assert second.attributes["exception.type"] == "ValueError"
        assert "no stock" in str(second.attributes["exception.stacktrace"])

    @pytest.mark.parametrize("export", [False, True])
    def test_access_line_is_exported_only_when_asked(
        self,
        tracer_provider: TracerProvider,
        logger_provider: LoggerProvider,
        log_records: InMemoryLogRecordExporter,
        capsys: pytest.CaptureFixture[str],
        export: bool,
    ) -> None:
        _bare_root()
        install_logging(JSON, logger_provider, RESOURCE, None)
        ids = RequestIds("X-Request-ID", True, on_response=RequestLog(True, 0, export_access=export))
        with tracer_provider.get_tracer("t").start_as_current_span("GET /") as span:
            ids.wsgi_request_hook(span, {"REQUEST_METHOD": "GET", "PATH_INFO": "/", "HTTP_X_REQUEST_ID": "rid-3"})
            ids.wsgi_response_hook(span, "200 OK", [])

        [line] = [json.loads(out) for out in capsys.readouterr().out.splitlines()]
        assert (line["message"], line["request_id"], line["status"]) == ("request completed", "rid-3", 200)
        assert "_otel_local_only" not in line
        exported = [r.log_record.body for r in log_records.get_finished_logs()]
        assert exported == (["request completed"] if export else [])

    def test_info_is_exported_and_export_failures_are_not(
        self, logger_provider: LoggerProvider, log_records: InMemoryLogRecordExporter
    ) -> None:
        _bare_root()
        install_logging(JSON, logger_provider, RESOURCE, None)
        logging.getLogger("app").info("kept")
        logging.getLogger("opentelemetry.exporter.otlp").warning("would loop")

        assert [r.log_record.body for r in log_records.get_finished_logs()] == ["kept"]

    def test_level_setting_is_respected(
        self, logger_provider: LoggerProvider, log_records: InMemoryLogRecordExporter
    ) -> None:
        _bare_root()
        install_logging(Settings(log_level="ERROR", log_format="json"), logger_provider, RESOURCE, None)
        logging.getLogger("app").warning("dropped")
        logging.getLogger("app").error("kept")

        assert [r.log_record.body for r in log_records.get_finished_logs()] == ["kept"]


class TestEmitter:
    """The lean path must hand the processors what `Logger.emit` would have."""

    EVENT: ClassVar[dict[str, Any]] = {
        "timestamp": "2026-11-23T09:48:10.126Z",
        "level": "WARNING",
        "logger": "app.orders",
        "message": "slow",
        "trace_id": "",
        "span_id": "",
        "request_id": "rid-9",
        "service": "orders",
        "order_id": 7,
        "items": ["a", "b"],
        "price": 1.5,
        "ok": True,
        "raw": b"bytes",
        "obj": None,
    }

    def _both(self, tracer_provider: TracerProvider, limits: LogRecordLimits | None = None) -> tuple[Any, Any]:
        exporter = InMemoryLogRecordExporter()
        provider = LoggerProvider(
            resource=RESOURCE, shutdown_on_exit=False, **({"log_record_limits": limits} if limits else {})
        )
        provider.add_log_record_processor(SimpleLogRecordProcessor(exporter))
        with tracer_provider.get_tracer("t").start_as_current_span("req"):
            Emitter(provider).emit("app.orders", self.EVENT, 1_700_000_000_000_000_000)
            attributes = {k: attribute_value(v) for k, v in self.EVENT.items() if k not in _NOT_ATTRIBUTES}
            attributes["request.id"] = "rid-9"
            provider.get_logger("app.orders").emit(
                timestamp=1_700_000_000_000_000_000,
                context=get_current(),
                severity_number=SeverityNumber.WARN,
                severity_text="WARN",
                body="slow",
                attributes=attributes,
            )
        ours, sdk = exporter.get_finished_logs()
        return ours, sdk

    def test_same_record_as_the_sdk_logger(self, tracer_provider: TracerProvider) -> None:
        ours, sdk = self._both(tracer_provider)

        for name in ("timestamp", "trace_id", "span_id", "trace_flags", "severity_text", "severity_number", "body"):
            assert getattr(ours.log_record, name) == getattr(sdk.log_record, name), name
        assert dict(ours.log_record.attributes) == dict(sdk.log_record.attributes)
        assert ours.log_record.event_name == sdk.log_record.event_name
        assert ours.resource is sdk.resource
        assert ours.instrumentation_scope == sdk.instrumentation_scope
        assert ours.dropped_attributes == sdk.dropped_attributes == 0
        ours.log_record.observed_timestamp = sdk.log_record.observed_timestamp
        assert encode_log_request([ours]) == encode_log_request([sdk])

    @pytest.mark.filterwarnings("ignore::opentelemetry.sdk._logs.LogRecordDroppedAttributesWarning")
    def test_limits_beyond_the_lean_path_go_through_the_sdk(self, tracer_provider: TracerProvider) -> None:
        ours, sdk = self._both(tracer_provider, LogRecordLimits(max_attributes=3))

        assert len(ours.log_record.attributes) == len(sdk.log_record.attributes) == 3
        assert ours.dropped_attributes == sdk.dropped_attributes > 0


class TestCoexistence:
    def test_installing_twice_adds_each_handler_once(self, logger_provider: LoggerProvider) -> None:
        _bare_root()
        install_logging(JSON, logger_provider, RESOURCE, None)
        install_logging(JSON, logger_provider, RESOURCE, None)

        assert sorted(h.__name__ for h in _our_handlers()) == ["ConsoleHandler", "OTLPHandler"]

    def test_unconfigured_app_gets_json_lines_on_stdout(self, capsys: pytest.CaptureFixture[str]) -> None:
        _bare_root()
        install_logging(Settings(), None, RESOURCE, None)  # stdout is not a terminal here: JSON
        logging.getLogger("app").info("one")
        logging.getLogger("app").warning("two")

        out = capsys.readouterr().out.splitlines()
        assert [json.loads(line)["message"] for line in out] == ["one", "two"]

    def test_console_off_keeps_python_default_behaviour(self, capsys: pytest.CaptureFixture[str]) -> None:
        _bare_root()
        install_logging(Settings(console_logs="off"), None, RESOURCE, None)
        logging.getLogger("app").info("quiet as before")
        logging.getLogger("app").warning("loud as before")

        captured = capsys.readouterr()
        assert (captured.out, captured.err) == ("", "loud as before\n")

    def test_basic_config_after_us_configures_the_app_and_we_stay_quiet(
        self,
        logger_provider: LoggerProvider,
        log_records: InMemoryLogRecordExporter,
        capsys: pytest.CaptureFixture[str],
    ) -> None:
        _bare_root()
        install_logging(JSON, logger_provider, RESOURCE, None)
        stream = io.StringIO()
        logging.basicConfig(stream=stream, level=logging.DEBUG, format="%(levelname)s %(message)s")
        logging.getLogger("app").debug("debug line")
        logging.getLogger("app").warning("warn line")

        # The app's handler prints each line once; we print nothing extra; export continues.
        assert stream.getvalue() == "DEBUG debug line\nWARNING warn line\n"
        assert capsys.readouterr().out == ""
        assert [r.log_record.body for r in log_records.get_finished_logs()] == ["warn line"]

    def test_replace_mode_gives_app_console_handlers_our_format(self) -> None:
        _bare_root()
        install_logging(Settings(console_logs="replace", log_format="json"), None, RESOURCE, None)
        stream = io.StringIO()
        logging.basicConfig(stream=stream, format="%(message)s")
        logging.getLogger("app").warning("shaped")

        assert json.loads(stream.getvalue())["message"] == "shaped"

    def test_dict_config_replacing_root_handlers_keeps_export(
        self, logger_provider: LoggerProvider, log_records: InMemoryLogRecordExporter
    ) -> None:
        _bare_root()
        install_logging(JSON, logger_provider, RESOURCE, None)
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
        assert sorted(h.__name__ for h in _our_handlers()) == ["ConsoleHandler", "OTLPHandler"]

    def test_app_handler_added_directly_silences_ours(self, capsys: pytest.CaptureFixture[str]) -> None:
        _bare_root()
        install_logging(JSON, None, RESOURCE, None)
        stream = io.StringIO()
        logging.getLogger("app").addHandler(logging.StreamHandler(stream))
        try:
            logging.getLogger("app").warning("once")
        finally:
            logging.getLogger("app").handlers.clear()

        assert stream.getvalue() == "once\n"
        assert capsys.readouterr().out == ""

    def test_server_access_loggers_are_replaced_by_default(self) -> None:
        _bare_root()
        install_logging(JSON, None, RESOURCE, None)
        logging.config.dictConfig({"version": 1, "disable_existing_loggers": False, "loggers": {"uvicorn.access": {}}})

        assert logging.getLogger("uvicorn.access").disabled


class TestStructlogWithAppConfig:
    def test_app_chain_kept_with_ids_and_export(
        self,
        tracer_provider: TracerProvider,
        logger_provider: LoggerProvider,
        log_records: InMemoryLogRecordExporter,
    ) -> None:
        import structlog

        output: list[dict[str, Any]] = []

        def capture(logger: Any, method: str, event_dict: dict[str, Any]) -> str:
            output.append(dict(event_dict))
            return "rendered"

        install_logging(JSON, logger_provider, RESOURCE, Scrubber())
        # The app configures structlog after the distro started: our processor survives.
        structlog.configure(processors=[structlog.processors.add_log_level, capture])
        with tracer_provider.get_tracer("t").start_as_current_span("req") as span:
            RequestIds("X-Request-ID", True).wsgi_request_hook(span, {"HTTP_X_REQUEST_ID": "rid-s"})
            structlog.get_logger("svc").info("paid", amount=3, token="abc")
            ctx = span.get_span_context()

        [event] = output
        assert event["trace_id"] == f"{ctx.trace_id:032x}"
        assert event["span_id"] == f"{ctx.span_id:016x}"
        assert event["request_id"] == "rid-s"
        assert event["token"] == "[REDACTED]"
        [exported] = [r.log_record for r in log_records.get_finished_logs()]
        assert exported.body == "paid"
        assert exported.trace_id == ctx.trace_id
        assert exported.attributes is not None
        assert exported.attributes["amount"] == 3
        assert exported.attributes["request.id"] == "rid-s"
