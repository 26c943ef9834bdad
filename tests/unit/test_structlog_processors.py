"""The structlog processors one by one (IDs, scrubbing, export) and `add_otel_context`, their
composition; the end-to-end lines are in test_logs.py and test_log_secrets.py."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import pytest
from opentelemetry import context
from opentelemetry.sdk._logs import LoggerProvider
from opentelemetry.sdk._logs.export import InMemoryLogRecordExporter
from opentelemetry.sdk.trace import TracerProvider

from otel_distro.error_events import SUPPRESSED, ErrorEventLimit
from otel_distro.logs import _structlog
from otel_distro.logs._event import EventBuilder, Service
from otel_distro.logs._files import SharedRotatingFileHandler
from otel_distro.logs._otlp import Emitter
from otel_distro.logs._structlog import ExportEvents, ScrubSecrets, add_ids, add_otel_context
from otel_distro.scrub import REDACTED, Scrubber

BUILDER = EventBuilder(Service("svc", "", ""), None)


@pytest.fixture
def no_span() -> Any:
    """An empty context, whatever an earlier test left current."""
    token = context.attach(context.Context())
    yield
    context.detach(token)


class _StructlogLogger:
    """What structlog hands processors: any logger that is not a stdlib one."""

    name = "svc"


def _file(tmp_path: Path) -> SharedRotatingFileHandler:
    return SharedRotatingFileHandler(tmp_path / "app.log", 1 << 20, 1)


def _lines(tmp_path: Path) -> list[dict[str, Any]]:
    path = tmp_path / "app.log"  # opened on the first line written
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


class TestAddIds:
    def test_ids_of_the_current_span(self, tracer_provider: TracerProvider) -> None:
        with tracer_provider.get_tracer("t").start_as_current_span("req") as span:
            event = add_ids(None, "info", {"event": "x"})

        ctx = span.get_span_context()
        assert event["trace_id"] == f"{ctx.trace_id:032x}"
        assert event["span_id"] == f"{ctx.span_id:016x}"

    def test_the_events_own_values_are_kept(self, tracer_provider: TracerProvider) -> None:
        with tracer_provider.get_tracer("t").start_as_current_span("req"):
            event = add_ids(None, "info", {"event": "x", "trace_id": "mine"})

        assert event["trace_id"] == "mine"

    @pytest.mark.usefixtures("no_span")
    def test_nothing_outside_a_span(self) -> None:
        assert add_ids(None, "info", {"event": "x"}) == {"event": "x"}


class TestScrubSecrets:
    def test_sensitive_values_are_replaced(self) -> None:
        event = ScrubSecrets(Scrubber(["pin"]))(None, "info", {"event": "login", "password": "hunter2", "pin": "0000"})

        assert event == {"event": "login", "password": REDACTED, "pin": REDACTED}

    def test_private_keys_and_exc_info_are_left_to_the_renderer(self) -> None:
        error = ValueError("token=abc")
        event = ScrubSecrets(Scrubber())(None, "error", {"_record": "token=abc", "exc_info": error})

        assert event == {"_record": "token=abc", "exc_info": error}


class TestExportEvents:
    def test_written_to_the_file_and_exported(
        self, tmp_path: Path, logger_provider: LoggerProvider, log_records: InMemoryLogRecordExporter
    ) -> None:
        export = ExportEvents(BUILDER, Emitter(logger_provider), _file(tmp_path))

        export(_StructlogLogger(), "warning", {"event": "paid", "amount": 3})

        [line] = _lines(tmp_path)
        assert (line["message"], line["level"], line["amount"]) == ("paid", "WARNING", 3)
        [record] = log_records.get_finished_logs()
        assert record.log_record.body == "paid"

    def test_below_the_level_nothing_is_written(self, tmp_path: Path) -> None:
        export = ExportEvents(BUILDER, None, _file(tmp_path), level=logging.WARNING)

        export(_StructlogLogger(), "info", {"event": "quiet"})

        assert _lines(tmp_path) == []

    def test_stdlib_loggers_are_left_to_stdlib(self, tmp_path: Path) -> None:
        export = ExportEvents(BUILDER, None, _file(tmp_path))

        event = export(logging.getLogger("svc"), "warning", {"event": "via stdlib"})

        assert event == {"event": "via stdlib"}
        assert _lines(tmp_path) == []

    def test_error_events_past_the_limit_are_dropped(self, tmp_path: Path) -> None:
        import structlog

        export = ExportEvents(BUILDER, None, _file(tmp_path), limit=ErrorEventLimit(1, 10))
        error = RuntimeError("card declined")

        export(_StructlogLogger(), "error", {"event": "failed", "exc_info": error})
        with pytest.raises(structlog.DropEvent):
            export(_StructlogLogger(), "error", {"event": "failed", "exc_info": error})

        [line] = _lines(tmp_path)
        assert SUPPRESSED not in line


class TestAddOtelContext:
    @pytest.fixture(autouse=True)
    def _restore(self) -> Any:
        saved = (_structlog._Installed.scrub, _structlog._Installed.export)
        yield
        _structlog._Installed.scrub, _structlog._Installed.export = saved

    def test_ids_then_scrub_then_export(self, tmp_path: Path, tracer_provider: TracerProvider) -> None:
        _structlog._Installed.scrub = ScrubSecrets(Scrubber())
        _structlog._Installed.export = ExportEvents(BUILDER, None, _file(tmp_path))

        with tracer_provider.get_tracer("t").start_as_current_span("req"):
            event = add_otel_context(_StructlogLogger(), "info", {"event": "login", "password": "hunter2"})

        assert event["password"] == REDACTED and event["trace_id"]
        [line] = _lines(tmp_path)
        assert line["password"] == REDACTED and line["trace_id"] == event["trace_id"]

    @pytest.mark.usefixtures("no_span")
    def test_before_install_only_ids(self) -> None:
        _structlog._Installed.scrub = _structlog._Installed.export = None

        assert add_otel_context(_StructlogLogger(), "info", {"password": "hunter2"}) == {"password": "hunter2"}
