"""The rate limit per error group on ERROR events with an exception: the counter stays exact."""

from __future__ import annotations

import json
import logging
import sys
from collections.abc import Callable
from typing import Any

import pytest
from opentelemetry.sdk._logs import LoggerProvider
from opentelemetry.sdk._logs.export import InMemoryLogRecordExporter
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader

from otel_distro.error_counter import ErrorCounter
from otel_distro.error_events import SUPPRESSED, ErrorEventLimit
from otel_distro.error_group import ATTRIBUTE
from otel_distro.logs import install_logging
from otel_distro.settings import Settings

log = logging.getLogger("shop.payments")


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def _charge() -> None:
    raise RuntimeError("card declined")


def _refund() -> None:
    raise KeyError("order")


def _caught(bug: Callable[[], None]) -> BaseException:
    try:
        bug()
    except Exception as err:
        return err
    raise AssertionError("no exception")


class TestErrorEventLimit:
    def test_a_burst_of_the_limit_then_the_limit_per_minute(self) -> None:
        clock = Clock()
        limit = ErrorEventLimit(6, 10, clock)
        assert [limit.admit("g") for _ in range(8)] == [0, 0, 0, 0, 0, 0, None, None]
        clock.now += 10  # one token a 10 s
        assert [limit.admit("g") for _ in range(2)] == [2, None]
        clock.now += 60
        assert [limit.admit("g") for _ in range(7)] == [1, 0, 0, 0, 0, 0, None]

    def test_groups_are_independent(self) -> None:
        limit = ErrorEventLimit(2, 10, Clock())
        assert [limit.admit("noisy") for _ in range(5)] == [0, 0, None, None, None]
        assert [limit.admit("rare") for _ in range(2)] == [0, 0]

    def test_past_the_group_bound_new_groups_share_one_bucket(self) -> None:
        limit = ErrorEventLimit(1, 2, Clock())
        assert [limit.admit(g) for g in ("a", "b", "c", "d", "a")] == [0, 0, 0, None, None]


@pytest.fixture
def reader() -> InMemoryMetricReader:
    return InMemoryMetricReader()


@pytest.fixture
def shop(reader: InMemoryMetricReader, logger_provider: LoggerProvider) -> Callable[..., ErrorEventLimit | None]:
    """`shop(per_minute)`: logging installed (JSON on stdout, OTLP, the counter); its limit on a test clock.

    Called in the test body, so that pytest's capture handlers do not count as the app's.
    """

    def start(per_minute: int = 3) -> ErrorEventLimit | None:
        logging.getLogger().handlers[:] = []
        counter = ErrorCounter(MeterProvider(metric_readers=[reader], shutdown_on_exit=False), 200)
        settings = Settings(log_format="json", error_events_per_minute=per_minute)
        install_logging(settings, logger_provider, None, None, counter)
        limits = {f for h in logging.getLogger().handlers for f in h.filters if isinstance(f, ErrorEventLimit)}
        assert len(limits) <= 1
        limit = next(iter(limits), None)
        if limit is not None:
            limit.clock = Clock()
        return limit

    return start


def _errors(capsys: pytest.CaptureFixture[str]) -> list[dict[str, Any]]:
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    return [line for line in lines if line["level"] == "ERROR"]


def _exported(log_records: InMemoryLogRecordExporter) -> list[dict[str, Any]]:
    return [dict(r.log_record.attributes or {}) for r in log_records.get_finished_logs()]


def _counted(reader: InMemoryMetricReader) -> dict[str, int]:
    data = reader.get_metrics_data()
    found: dict[str, int] = {}
    for resource_metrics in data.resource_metrics if data else ():
        for scope_metrics in resource_metrics.scope_metrics:
            for metric in scope_metrics.metrics:
                for point in metric.data.data_points:  # type: ignore[union-attr]
                    found[str(point.attributes[ATTRIBUTE])] = int(point.value)  # type: ignore[index, union-attr]
    return found


class TestLoggedErrors:
    def test_a_noisy_group_is_limited_on_stdout_and_otlp_and_counted_exactly(
        self,
        shop: Callable[..., ErrorEventLimit | None],
        capsys: pytest.CaptureFixture[str],
        log_records: InMemoryLogRecordExporter,
        reader: InMemoryMetricReader,
    ) -> None:
        shop(3)
        for _ in range(10):
            log.error("charge failed", exc_info=_caught(_charge))
        lines = _errors(capsys)
        assert len(lines) == 3
        assert len(_exported(log_records)) == 3
        group = lines[0]["exception"]["group_id"]
        assert _counted(reader) == {group: 10}

    def test_the_next_event_passing_says_how_many_were_suppressed(
        self,
        shop: Callable[..., ErrorEventLimit | None],
        capsys: pytest.CaptureFixture[str],
        log_records: InMemoryLogRecordExporter,
    ) -> None:
        limit = shop(3)
        assert limit is not None
        for _ in range(10):
            log.error("charge failed", exc_info=_caught(_charge))
        assert isinstance(limit.clock, Clock)
        limit.clock.now += 20  # one token
        log.error("charge failed", exc_info=_caught(_charge))
        lines = _errors(capsys)
        assert [line.get(SUPPRESSED) for line in lines] == [None, None, None, 7]
        assert [a.get(SUPPRESSED) for a in _exported(log_records)] == [None, None, None, 7]

    def test_groups_are_limited_independently(
        self, shop: Callable[..., ErrorEventLimit | None], capsys: pytest.CaptureFixture[str]
    ) -> None:
        shop(2)
        for _ in range(5):
            log.error("charge failed", exc_info=_caught(_charge))
        for _ in range(2):
            log.error("refund failed", exc_info=_caught(_refund))
        assert [line["message"] for line in _errors(capsys)] == ["charge failed"] * 2 + ["refund failed"] * 2

    def test_records_without_an_exception_are_never_limited(
        self, shop: Callable[..., ErrorEventLimit | None], capsys: pytest.CaptureFixture[str]
    ) -> None:
        shop(1)
        for _ in range(20):
            log.error("upstream slow")
        for _ in range(5):
            log.warning("retrying", exc_info=_caught(_charge))
        lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
        assert [line["level"] for line in lines] == ["ERROR"] * 20 + ["WARNING"] * 5
        assert not any(SUPPRESSED in line for line in lines)

    def test_zero_is_no_limit(
        self,
        shop: Callable[..., ErrorEventLimit | None],
        capsys: pytest.CaptureFixture[str],
        log_records: InMemoryLogRecordExporter,
        reader: InMemoryMetricReader,
    ) -> None:
        assert shop(0) is None
        for _ in range(100):
            log.error("charge failed", exc_info=_caught(_charge))
        lines = _errors(capsys)
        assert len(lines) == 100
        assert len(_exported(log_records)) == 100
        assert not any(SUPPRESSED in line for line in lines)
        assert _counted(reader) == {lines[0]["exception"]["group_id"]: 100}

    def test_structlog_events_are_limited_and_counted_exactly(
        self,
        shop: Callable[..., ErrorEventLimit | None],
        capsys: pytest.CaptureFixture[str],
        log_records: InMemoryLogRecordExporter,
        reader: InMemoryMetricReader,
    ) -> None:
        import structlog

        structlog.reset_defaults()
        limit = shop(2)
        assert limit is not None and isinstance(limit.clock, Clock)
        logger = structlog.get_logger("shop")
        for _ in range(5):
            logger.error("charge failed", exc_info=_caught(_charge))
        limit.clock.now += 30
        logger.error("charge failed", exc_info=_caught(_charge))
        lines = _errors(capsys)
        assert [line.get(SUPPRESSED) for line in lines] == [None, None, 3]
        assert [a.get(SUPPRESSED) for a in _exported(log_records)] == [None, None, 3]
        assert _counted(reader) == {lines[0]["exception"]["group_id"]: 6}

    def test_the_apps_console_handler_printing_our_lines_is_limited_too(
        self, logger_provider: LoggerProvider, capsys: pytest.CaptureFixture[str]
    ) -> None:
        logging.getLogger().handlers[:] = []
        settings = Settings(log_format="json", console_logs="replace", error_events_per_minute=2)
        install_logging(settings, logger_provider, None, None, None)
        logging.basicConfig(stream=sys.stdout)
        for _ in range(5):
            log.error("charge failed", exc_info=_caught(_charge))
        assert [line["message"] for line in _errors(capsys)] == ["charge failed"] * 2
