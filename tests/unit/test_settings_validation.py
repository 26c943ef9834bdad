"""A value that cannot be used gives one problem naming the variable, the value and the fallback
(warned once by the configurator, reported by the doctor), and telemetry keeps working: checked
where the value is parsed, not where it is first used."""

from __future__ import annotations

import logging
import re
from pathlib import Path

import pytest

from otel_distro.logs import install_logging
from otel_distro.settings import Settings, load_settings, setting_fields

# Shapes of bad input a deployment produces: typos, units, negative and huge numbers, blank values.
GARBAGE = ("", "   ", "garbage", "-1", "0", "9" * 40, "1e309", "nan", "true,false", "✓", "x" * 5000, "[(", "/a,(b")


def _warnings(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]


def _problems(settings: Settings) -> list[str]:
    return [p.message for p in settings.problems]


class TestExcludedUrls:
    @pytest.mark.parametrize(
        ("variable", "attribute", "fallback"),
        [
            ("OTEL_DISTRO_EXCLUDED_URLS", "excluded_urls", Settings().excluded_urls),
            ("OTEL_PYTHON_EXCLUDED_URLS", "python_excluded_urls", None),
            ("OTEL_PYTHON_FASTAPI_EXCLUDED_URLS", "fastapi_excluded_urls", None),
            ("OTEL_PYTHON_FLASK_EXCLUDED_URLS", "flask_excluded_urls", None),
        ],
    )
    def test_an_invalid_regular_expression_falls_back_with_one_problem(
        self, caplog: pytest.LogCaptureFixture, variable: str, attribute: str, fallback: object
    ) -> None:
        settings = load_settings({variable: "/health,/orders/([0-9]+"})

        assert getattr(settings, attribute) == fallback
        assert _warnings(caplog) == []  # parsing logs nothing: the configurator warns
        [warning] = _problems(settings)
        assert variable in warning and "/orders/([0-9]+" in warning and "instead" in warning

    def test_valid_expressions_are_kept(self) -> None:
        assert load_settings({"OTEL_DISTRO_EXCLUDED_URLS": "/a$, ^/b/[0-9]+"}).excluded_urls == ("/a$", "^/b/[0-9]+")


class TestLogFile:
    def test_a_directory_that_cannot_be_created(self, tmp_path: Path) -> None:
        blocker = tmp_path / "not-a-dir"
        blocker.write_text("")
        value = str(blocker / "logs" / "app.log")

        settings = load_settings({"OTEL_DISTRO_LOG_FILE": value})

        assert settings.log_file is None
        [warning] = _problems(settings)
        assert "OTEL_DISTRO_LOG_FILE" in warning and value in warning

    def test_a_path_that_is_a_directory(self, tmp_path: Path) -> None:
        settings = load_settings({"OTEL_DISTRO_LOG_FILE": str(tmp_path)})

        assert settings.log_file is None
        [warning] = _problems(settings)
        assert "OTEL_DISTRO_LOG_FILE" in warning

    def test_a_missing_directory_is_fine(self, tmp_path: Path) -> None:
        value = str(tmp_path / "new" / "dir" / "app.log")

        settings = load_settings({"OTEL_DISTRO_LOG_FILE": value})

        assert settings.log_file == value
        assert settings.problems == ()

    def test_a_file_that_fails_later_warns_once_and_the_console_keeps_working(
        self, tmp_path: Path, capsys: pytest.CaptureFixture[str]
    ) -> None:
        # Passed the checks at start-up, then unusable: here a directory in its place.
        root = logging.getLogger()
        root.handlers[:] = []
        root.setLevel(logging.WARNING)
        install_logging(Settings(log_file=str(tmp_path), log_format="json"), None)

        for n in range(5):
            logging.getLogger("app").warning("line %d", n)

        captured = capsys.readouterr()
        assert captured.out.count('"message":"line') == 5
        assert "Traceback" not in captured.out + captured.err
        assert (captured.out + captured.err).count("OTEL_DISTRO_LOG_FILE") == 1

    def test_a_file_that_cannot_be_opened_at_start_up_does_not_turn_the_distro_off(
        self, tmp_path: Path, capsys: pytest.CaptureFixture[str]
    ) -> None:
        blocker = tmp_path / "file"
        blocker.write_text("")
        root = logging.getLogger()
        root.handlers[:] = []
        root.setLevel(logging.WARNING)

        install_logging(Settings(log_file=str(blocker / "sub" / "app.log"), log_format="json"), None)
        logging.getLogger("app").warning("still here")

        captured = capsys.readouterr()
        assert '"message":"still here"' in captured.out
        assert captured.err.count("OTEL_DISTRO_LOG_FILE") + captured.out.count("OTEL_DISTRO_LOG_FILE") == 1


class TestEverySetting:
    @pytest.mark.parametrize("field", setting_fields(), ids=lambda f: f.metadata["env"])
    def test_garbage_is_accepted_silently_or_refused_with_exactly_one_problem(self, field: object) -> None:
        variable = field.metadata["env"]  # type: ignore[attr-defined]
        for raw in GARBAGE:
            settings = load_settings({variable: raw})
            warnings = _problems(settings)
            if settings.sources[field.name] == "environment":  # type: ignore[attr-defined]
                assert warnings == [], (variable, raw)
            else:
                assert len(warnings) == 1, (variable, raw, warnings)
                assert variable in warnings[0]
                assert len(warnings[0]) < 600, "the warning quotes a bounded part of the value"
                if raw.strip() and len(raw) < 100:
                    assert repr(raw) in warnings[0] or re.escape(raw) in warnings[0], (variable, raw)


class TestProblems:
    def test_a_problem_names_variable_value_expectation_and_fallback(self) -> None:
        [problem] = load_settings({"OTEL_DISTRO_SHUTDOWN_TIMEOUT": "soon"}).problems

        assert (problem.attribute, problem.variable, problem.value) == (
            "shutdown_timeout",
            "OTEL_DISTRO_SHUTDOWN_TIMEOUT",
            "'soon'",
        )
        assert problem.expected == "a number from 0 to 300"
        assert problem.fallback == "5.0"
        assert problem.message == (
            "OTEL_DISTRO_SHUTDOWN_TIMEOUT='soon' is not valid (expected a number from 0 to 300); "
            "using the default 5.0 instead"
        )

    def test_problems_do_not_change_equality(self) -> None:
        assert load_settings({"OTEL_DISTRO_LOG_LEVEL": "LOUD"}) == Settings()


class TestConfiguratorWarns:
    """The process's settings are parsed once; the configurator warns once per problem."""

    def _configure(self, monkeypatch: pytest.MonkeyPatch, env: dict[str, str], build: object) -> None:
        from otel_distro import configurator

        monkeypatch.setattr(configurator, "_build", build)
        configurator.configure_sdk(load_settings(env))

    def test_one_warning_per_problem(self, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
        env = {"OTEL_DISTRO_LOG_LEVEL": "LOUD", "OTEL_DISTRO_BREADCRUMBS": "-1", "OTEL_SERVICE_NAME": "svc"}

        self._configure(monkeypatch, env, lambda settings: None)

        warnings = _warnings(caplog)
        assert len(warnings) == 2
        assert warnings[0].startswith("otel-distro: OTEL_DISTRO_LOG_LEVEL='LOUD' is not valid")
        assert "OTEL_DISTRO_BREADCRUMBS='-1'" in warnings[1]
        assert {r.name for r in caplog.records} == {"otel_distro.settings"}

    def test_warned_even_when_building_fails(
        self, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
    ) -> None:
        def broken(settings: Settings) -> None:
            raise RuntimeError("no exporter")

        with pytest.raises(RuntimeError):
            self._configure(monkeypatch, {"OTEL_DISTRO_LOG_LEVEL": "LOUD"}, broken)

        [warning] = _warnings(caplog)
        assert "OTEL_DISTRO_LOG_LEVEL" in warning


class TestAnotherConfiguratorChosen:
    """With another configurator, ours never runs: the distro warns instead, once per problem."""

    @pytest.mark.parametrize(("configurator", "warned"), [("vendor", 1), ("otel_distro", 0), (None, 0)])
    def test_the_distro_warns_only_when_ours_will_not(
        self, caplog: pytest.LogCaptureFixture, configurator: str | None, warned: int
    ) -> None:
        from otel_distro import distro

        env = {"OTEL_DISTRO_LOG_LEVEL": "LOUD", "OTEL_SERVICE_NAME": "svc"}
        if configurator:
            env["OTEL_PYTHON_CONFIGURATOR"] = configurator
        distro.warn_if_no_configurator_will(load_settings(env))

        warnings = _warnings(caplog)
        assert len(warnings) == warned
        assert all(w.startswith("otel-distro: OTEL_DISTRO_LOG_LEVEL='LOUD' is not valid") for w in warnings)
