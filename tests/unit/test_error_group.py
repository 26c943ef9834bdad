"""Error group IDs on real tracebacks, the `app.errors` counter, and where the group travels."""

from __future__ import annotations

import json
import logging
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import flask
import pytest
from opentelemetry.sdk._logs import LoggerProvider
from opentelemetry.sdk._logs.export import InMemoryLogRecordExporter
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from otel_distro import http_server
from otel_distro.error_counter import METRIC, OTHER, ErrorCounter, error_type
from otel_distro.error_group import ATTRIBUTE, group_id
from otel_distro.logs import install_logging
from otel_distro.request_id import RequestIds
from otel_distro.request_log import RequestLog
from otel_distro.settings import Settings

_BUGS = """
class OutOfStock(Exception):
    pass


def reserve(sku, n):
    raise OutOfStock(f"not enough {sku!r}: wanted {n}")


def checkout(sku):
    reserve(sku, 3)


def restock(sku):
    reserve(sku, 9)


def refund(sku):
    raise OutOfStock(f"not enough {sku!r}")


def wrapped(sku):
    try:
        reserve(sku, 1)
    except OutOfStock as err:
        raise RuntimeError("order failed") from err


def wrapped_other(sku):
    try:
        {}[sku]
    except KeyError as err:
        raise RuntimeError("order failed") from err


def caught(call, *args):
    try:
        call(*args)
    except Exception as err:
        return err
    raise AssertionError("no exception")
"""


@pytest.fixture
def bugs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    """An application module of its own (outside site-packages) with a few bugs in it."""
    (tmp_path / "shop_bugs.py").write_text(_BUGS)
    monkeypatch.syspath_prepend(str(tmp_path))
    import shop_bugs

    yield shop_bugs
    sys.modules.pop("shop_bugs", None)


def _group_in_subprocess(directory: Path, call: str) -> str:
    code = f"import shop_bugs; from otel_distro.error_group import group_id; print(group_id(shop_bugs.caught({call})))"
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=directory, capture_output=True, text=True, check=True, timeout=60
    )
    return out.stdout.strip()


class TestGroupId:
    def test_is_16_hex_digits(self, bugs: Any) -> None:
        group = group_id(bugs.caught(bugs.checkout, "a"))
        assert len(group) == 16 and int(group, 16) >= 0

    def test_same_bug_from_two_call_paths_is_one_group(self, bugs: Any) -> None:
        assert group_id(bugs.caught(bugs.checkout, "a")) == group_id(bugs.caught(bugs.restock, "b"))

    def test_same_type_in_another_function_is_another_group(self, bugs: Any) -> None:
        assert group_id(bugs.caught(bugs.checkout, "a")) != group_id(bugs.caught(bugs.refund, "a"))

    def test_varying_message_is_one_group(self, bugs: Any) -> None:
        errors = [bugs.caught(bugs.reserve, f"sku-{i}", i) for i in range(5)]
        assert len({str(e) for e in errors}) == 5
        assert len({group_id(e) for e in errors}) == 1

    def test_chained_cause_is_considered(self, bugs: Any) -> None:
        assert group_id(bugs.caught(bugs.wrapped, "a")) != group_id(bugs.caught(bugs.wrapped_other, "a"))
        assert group_id(bugs.caught(bugs.wrapped, "a")) == group_id(bugs.caught(bugs.wrapped, "b"))

    def test_library_frames_are_left_out(self, bugs: Any) -> None:
        # json's own frames sit between the app's function and the raise; only the app's count.
        def parse_twice(text: str) -> Any:
            return json.loads(text)

        first = bugs.caught(parse_twice, "{")
        second = bugs.caught(parse_twice, "[1,")
        files = []
        tb = first.__traceback__
        while tb is not None:
            files.append(tb.tb_frame.f_code.co_filename)
            tb = tb.tb_next
        assert any("json" in f for f in files)
        assert group_id(first) == group_id(second)

    def test_stable_across_processes(self, bugs: Any, tmp_path: Path) -> None:
        here = group_id(bugs.caught(bugs.checkout, "a"))
        assert _group_in_subprocess(tmp_path, "shop_bugs.checkout, 'zz'") == here

    def test_stable_across_edits_elsewhere_in_the_file(self, bugs: Any, tmp_path: Path) -> None:
        here = group_id(bugs.caught(bugs.checkout, "a"))
        edited = tmp_path / "edited"
        edited.mkdir()
        (edited / "shop_bugs.py").write_text('"""Now with a docstring."""\nimport os\n\n\n' + _BUGS)
        assert _group_in_subprocess(edited, "shop_bugs.checkout, 'a'") == here

    def test_computed_once_per_exception(self, bugs: Any) -> None:
        err = bugs.caught(bugs.checkout, "a")
        first = group_id(err)
        err.__traceback__ = None  # a second call must not need the traceback again
        assert group_id(err) == first


def _points(reader: InMemoryMetricReader) -> dict[tuple[str, str, str], int]:
    data = reader.get_metrics_data()
    found: dict[tuple[str, str, str], int] = {}
    for resource_metrics in data.resource_metrics if data else ():
        for scope_metrics in resource_metrics.scope_metrics:
            for metric in scope_metrics.metrics:
                if metric.name != METRIC:
                    continue
                assert metric.unit == "{error}"
                for point in metric.data.data_points:  # type: ignore[union-attr]
                    attrs = point.attributes or {}
                    key = (str(attrs[ATTRIBUTE]), str(attrs["error.type"]), str(attrs["http.route"]))
                    found[key] = int(point.value)  # type: ignore[union-attr]
    return found


@pytest.fixture
def reader() -> InMemoryMetricReader:
    return InMemoryMetricReader()


@pytest.fixture
def counting_logger(reader: InMemoryMetricReader) -> Iterator[logging.Logger]:
    counter = ErrorCounter(MeterProvider(metric_readers=[reader], shutdown_on_exit=False), max_groups=2)
    logger = logging.getLogger("test.error_counter")
    logger.addHandler(counter)
    logger.propagate = False
    yield logger
    logger.removeHandler(counter)
    logger.propagate = True


class TestErrorCounter:
    def test_counts_logged_exceptions_by_group_type_and_route(
        self, bugs: Any, counting_logger: logging.Logger, reader: InMemoryMetricReader
    ) -> None:
        for sku in ("a", "b"):
            counting_logger.error("failed", exc_info=bugs.caught(bugs.checkout, sku), extra={"route": "/checkout"})
        counting_logger.error("failed", exc_info=bugs.caught(bugs.restock, "c"), extra={"route": "/restock"})
        group = group_id(bugs.caught(bugs.checkout, "a"))
        kind = error_type(bugs.caught(bugs.checkout, "a"))
        assert kind == "shop_bugs.OutOfStock"
        assert _points(reader) == {(group, kind, "/checkout"): 2, (group, kind, "/restock"): 1}

    def test_one_exception_logged_twice_counts_once(
        self, bugs: Any, counting_logger: logging.Logger, reader: InMemoryMetricReader
    ) -> None:
        err = bugs.caught(bugs.checkout, "a")
        counting_logger.error("server's line", exc_info=err)
        counting_logger.error("our line", exc_info=err)
        assert sum(_points(reader).values()) == 1

    def test_records_without_an_exception_or_below_error_are_not_counted(
        self, bugs: Any, counting_logger: logging.Logger, reader: InMemoryMetricReader
    ) -> None:
        counting_logger.error("no exception")
        counting_logger.warning("a warning", exc_info=bugs.caught(bugs.checkout, "a"))
        assert _points(reader) == {}

    def test_groups_past_the_bound_count_as_other_with_one_warning(
        self,
        bugs: Any,
        counting_logger: logging.Logger,
        reader: InMemoryMetricReader,
        caplog: pytest.LogCaptureFixture,
    ) -> None:
        calls = [bugs.checkout, bugs.refund, bugs.wrapped, bugs.wrapped_other]
        with caplog.at_level(logging.WARNING, logger="otel_distro.errors"):
            for call in calls:
                counting_logger.error("failed", exc_info=bugs.caught(call, "a"))
        points = _points(reader)
        assert len(points) == 4 - 1  # two groups, then _other for both RuntimeErrors
        assert points[(OTHER, "RuntimeError", "")] == 2
        warnings = [r for r in caplog.records if r.name == "otel_distro.errors"]
        assert len(warnings) == 1
        assert "OTEL_DISTRO_ERROR_GROUPS_MAX" in warnings[0].getMessage()


class TestStructlogErrors:
    def test_structlog_exception_is_counted_once_with_its_group(
        self, bugs: Any, reader: InMemoryMetricReader, capsys: pytest.CaptureFixture[str]
    ) -> None:
        import structlog

        structlog.reset_defaults()
        meter_provider = MeterProvider(metric_readers=[reader], shutdown_on_exit=False)
        install_logging(Settings(log_format="json"), None, None, None, ErrorCounter(meter_provider, 200))
        log = structlog.get_logger("shop")
        err = bugs.caught(bugs.checkout, "a")
        try:
            raise err
        except type(err):
            log.exception("checkout failed", route="/checkout")
            log.error("and again", exc_info=True)
        log.info("fine")

        group = group_id(err)
        assert _points(reader) == {(group, "shop_bugs.OutOfStock", "/checkout"): 1}
        lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
        assert [line["exception"]["group_id"] for line in lines if "exception" in line] == [group, group]


class TestWhereTheGroupTravels:
    def test_flask_span_event_log_line_otlp_record_and_counter_agree(
        self,
        bugs: Any,
        tracer_provider: TracerProvider,
        spans: InMemorySpanExporter,
        logger_provider: LoggerProvider,
        log_records: InMemoryLogRecordExporter,
        reader: InMemoryMetricReader,
        capsys: pytest.CaptureFixture[str],
    ) -> None:
        meter_provider = MeterProvider(metric_readers=[reader], shutdown_on_exit=False)
        root = logging.getLogger()
        root.handlers[:] = []
        install_logging(
            Settings(log_format="json"),
            logger_provider,
            Resource.create({"service.name": "shop"}),
            None,
            ErrorCounter(meter_provider, 200),
        )
        ids = RequestIds("X-Request-ID", True, on_response=RequestLog(False, 60.0))
        http_server.instrument("flask", request_ids=ids, tracer_provider=tracer_provider, meter_provider=meter_provider)
        try:
            app = flask.Flask("shop")

            @app.get("/checkout/<sku>")
            def checkout_route(sku: str) -> str:
                bugs.checkout(sku)
                return "ok"

            @app.get("/restock/<sku>")
            def restock_route(sku: str) -> str:
                bugs.restock(sku)
                return "ok"

            @app.get("/refund/<sku>")
            def refund_route(sku: str) -> str:
                bugs.refund(sku)
                return "ok"

            client = app.test_client()
            for path in ("/checkout/a", "/restock/b", "/checkout/c", "/refund/d"):
                assert client.get(path).status_code == 500
        finally:
            http_server.uninstrument("flask")

        events = [
            (s.attributes or {}).get("http.route", "")
            and next(e for e in s.events if e.name == "exception").attributes[ATTRIBUTE]  # type: ignore[index]
            for s in spans.get_finished_spans()
        ]
        same, different = events[0], events[3]
        assert events == [same, same, same, different] and same != different
        lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
        assert [line["exception"]["group_id"] for line in lines if line["level"] == "ERROR"] == events
        exported = [r.log_record for r in log_records.get_finished_logs() if r.log_record.severity_text == "ERROR"]
        assert [(r.attributes or {})[ATTRIBUTE] for r in exported] == events
        kind = "shop_bugs.OutOfStock"
        assert _points(reader) == {
            (same, kind, "/checkout/<sku>"): 2,
            (same, kind, "/restock/<sku>"): 1,
            (different, kind, "/refund/<sku>"): 1,
        }
