"""No secret leaves the process through a log line: stdout, the log file and OTLP alike.

Each test logs the secret one way an app does (message, exception message, stack trace,
`extra=` containers, structlog keyword arguments) and greps every output for it.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from opentelemetry.sdk._logs import LoggerProvider
from opentelemetry.sdk._logs.export import InMemoryLogRecordExporter
from opentelemetry.sdk.resources import Resource

from otel_distro.logs import install_logging
from otel_distro.scrub import REDACTED, Scrubber
from otel_distro.settings import Settings

RESOURCE = Resource.create({"service.name": "orders"})
SECRET = "hunter2-XYZZY"


class _Outputs:
    def __init__(self, capsys: pytest.CaptureFixture[str], log_file: Path, records: InMemoryLogRecordExporter) -> None:
        self._capsys, self._file, self._records = capsys, log_file, records

    def stdout(self) -> str:
        return self._capsys.readouterr().out

    def file(self) -> str:
        return self._file.read_text() if self._file.exists() else ""

    def otlp(self) -> str:
        return "\n".join(
            f"{r.log_record.body} {dict(r.log_record.attributes or {})}" for r in self._records.get_finished_logs()
        )

    def all(self) -> dict[str, str]:
        return {"stdout": self.stdout(), "file": self.file(), "otlp": self.otlp()}


@pytest.fixture
def outputs(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    logger_provider: LoggerProvider,
    log_records: InMemoryLogRecordExporter,
) -> Callable[[], _Outputs]:
    """Installs the distro's logging; called in the test body, after pytest added its own handlers."""

    def install() -> _Outputs:
        root = logging.getLogger()
        root.handlers[:] = []
        root.setLevel(logging.WARNING)
        log_file = tmp_path / "app.log"
        try:
            import structlog

            structlog.reset_defaults()
        except ImportError:
            pass
        install_logging(Settings(log_format="json", log_file=str(log_file)), logger_provider, RESOURCE, Scrubber())
        return _Outputs(capsys, log_file, log_records)

    return install


def _assert_no_leak(
    found: dict[str, str], secret: str = SECRET, expect: tuple[str, ...] = ("stdout", "file", "otlp")
) -> None:
    for where in expect:
        assert found[where], f"nothing reached {where}"
        assert secret not in found[where], f"the secret reached {where}: {found[where][:2000]}"
        assert REDACTED in found[where], where


def _login() -> None:
    raise RuntimeError(f"database login failed: password={SECRET}")


class TestStackTraces:
    def test_exception_message_and_stack_trace(self, outputs: Callable[[], _Outputs]) -> None:
        out = outputs()
        try:
            _login()
        except RuntimeError:
            logging.getLogger("app").exception("login failed")

        found = out.all()
        _assert_no_leak(found)
        line = json.loads(found["stdout"])
        assert "Traceback" in line["exception"]["stacktrace"]
        assert "_login()" in line["exception"]["stacktrace"]  # the trace is kept, only the value hidden

    def test_url_with_an_api_key_in_a_chained_exception(self, outputs: Callable[[], _Outputs]) -> None:
        out = outputs()
        try:
            try:
                raise ConnectionError(f"GET https://api.example.org/v1/rates?api_key={SECRET}&x=1 failed")
            except ConnectionError as err:
                raise ValueError("rates unavailable") from err
        except ValueError:
            logging.getLogger("app").exception("refresh failed")

        _assert_no_leak(out.all())

    def test_exception_passed_as_exc_info(self, outputs: Callable[[], _Outputs]) -> None:
        out = outputs()
        try:
            _login()
        except RuntimeError as err:
            logging.getLogger("app").error("login failed", exc_info=err)

        _assert_no_leak(out.all())

    def test_structlog_exception(self, outputs: Callable[[], _Outputs]) -> None:
        out = outputs()
        import structlog

        try:
            _login()
        except RuntimeError:
            structlog.get_logger("svc").exception("login failed")

        _assert_no_leak(out.all())


class TestContainersInFields:
    def test_stdlib_extra_list_of_dicts(self, outputs: Callable[[], _Outputs]) -> None:
        out = outputs()
        logging.getLogger("app").warning(
            "accounts loaded", extra={"accounts": [{"user": "ann", "password": SECRET}], "n": 1}
        )

        found = out.all()
        _assert_no_leak(found)
        assert json.loads(found["stdout"])["accounts"] == [{"user": "ann", "password": REDACTED}]

    def test_structlog_nested_kwargs(self, outputs: Callable[[], _Outputs]) -> None:
        out = outputs()
        import structlog

        structlog.get_logger("svc").warning("synced", batch={"items": [("a", {"token": SECRET})]})

        _assert_no_leak(out.all())

    def test_an_object_whose_text_holds_a_secret(self, outputs: Callable[[], _Outputs]) -> None:
        out = outputs()

        class Dsn:
            def __str__(self) -> str:
                return f"postgres://app:{SECRET}@db:5432/orders"

            __repr__ = __str__

        logging.getLogger("app").warning("connecting", extra={"dsn": Dsn()})

        _assert_no_leak(out.all())


class TestStructlogReachesTheFile:
    def test_structlog_and_stdlib_lines_share_the_file(self, outputs: Callable[[], _Outputs]) -> None:
        out = outputs()
        import structlog

        for n in range(3):
            structlog.get_logger("svc").info("from structlog", seq=n)
            logging.getLogger("app").info("from stdlib", extra={"seq": n})

        lines: list[dict[str, Any]] = [json.loads(line) for line in out.file().splitlines()]
        assert [(line["message"], line["seq"]) for line in lines] == [
            (message, n) for n in range(3) for message in ("from structlog", "from stdlib")
        ]
        assert {line["logger"] for line in lines} == {"svc", "app"}
