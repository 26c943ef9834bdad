from __future__ import annotations

import logging
import re
from pathlib import Path

import pytest

from otel_distro.settings import (
    Settings,
    apply_upstream_defaults,
    load_settings,
    markdown_table,
    setting_fields,
)

README = Path(__file__).resolve().parents[2] / "README.md"


class TestLoad:
    def test_defaults_without_environment(self) -> None:
        settings = load_settings({})

        assert settings == Settings()
        assert settings.otlp_protocol == "http/protobuf"
        assert settings.resolved_otlp_endpoint == "http://localhost:4318"
        assert settings.asgi_exclude_spans == ("send", "receive")
        assert set(settings.sources.values()) == {"default"}

    def test_parses_each_kind(self) -> None:
        settings = load_settings(
            {
                "OTEL_SERVICE_NAME": "orders",
                "OTEL_EXPORTER_OTLP_PROTOCOL": "GRPC",
                "OTEL_METRICS_EXPORTER": "otlp, prometheus",
                "OTEL_DISTRO_SHUTDOWN_TIMEOUT": "2.5",
                "OTEL_DISTRO_SERVER_TIMING": "off",
                "OTEL_DISTRO_LOG_LEVEL": "warn",
                "OTEL_DISTRO_ASGI_EXCLUDE_SPANS": "",
                "OTEL_EXPORTER_PROMETHEUS_PORT": "9500",
            }
        )

        assert settings.service_name == "orders"
        assert settings.otlp_protocol == "grpc"
        assert settings.resolved_otlp_endpoint == "http://localhost:4317"
        assert settings.metrics_exporter == ("otlp", "prometheus")
        assert settings.shutdown_timeout == 2.5
        assert settings.server_timing is False
        assert settings.log_level == "WARNING"
        assert settings.asgi_exclude_spans == ()
        assert settings.prometheus_port == 9500
        assert settings.sources["service_name"] == "environment"
        assert settings.sources["environment"] == "default"

    def test_what_the_otlp_http_exporters_need(self) -> None:
        assert not Settings().http_proxy_configured
        assert Settings().otlp_http_credential_provider_for("traces") is None
        for name in ("http_proxy", "HTTP_PROXY", "all_proxy", "ALL_PROXY"):
            assert load_settings({name: "http://proxy:3128"}).http_proxy_configured
        assert not load_settings({"http_proxy": "  "}).http_proxy_configured
        signals = ("traces", "metrics", "logs")
        general = load_settings({"OTEL_PYTHON_EXPORTER_OTLP_HTTP_CREDENTIAL_PROVIDER": "vault"})
        assert [general.otlp_http_credential_provider_for(s) for s in signals] == ["vault"] * 3
        logs = load_settings({"OTEL_PYTHON_EXPORTER_OTLP_HTTP_LOGS_CREDENTIAL_PROVIDER": "vault"})
        assert [logs.otlp_http_credential_provider_for(s) for s in signals] == [None, None, "vault"]

    @pytest.mark.parametrize(
        ("name", "value", "attr"),
        [
            ("OTEL_DISTRO_SHUTDOWN_TIMEOUT", "soon", "shutdown_timeout"),
            ("OTEL_DISTRO_SHUTDOWN_TIMEOUT", "-1", "shutdown_timeout"),
            ("OTEL_EXPORTER_PROMETHEUS_PORT", "70000", "prometheus_port"),
            ("OTEL_DISTRO_SERVER_TIMING", "maybe", "server_timing"),
            ("OTEL_EXPORTER_OTLP_PROTOCOL", "http/json", "otlp_protocol"),
            ("OTEL_TRACES_EXPORTER", "otlp,zipkin", "traces_exporter"),
            ("OTEL_DISTRO_REQUEST_ID_HEADER", "X Request", "request_id_header"),
            ("OTEL_DISTRO_LOG_LEVEL", "LOUD", "log_level"),
        ],
    )
    def test_bad_value_is_one_problem_and_falls_back(
        self, caplog: pytest.LogCaptureFixture, name: str, value: str, attr: str
    ) -> None:
        with caplog.at_level(logging.WARNING, logger="otel_distro.settings"):
            settings = load_settings({name: value})

        assert getattr(settings, attr) == getattr(Settings(), attr)
        assert settings.sources[attr] == "default"
        assert caplog.records == []  # parsing logs nothing: the configurator warns
        [problem] = settings.problems
        message = problem.message
        assert name in message
        assert repr(value) in message
        assert "using the default" in message


class TestUpstreamDefaults:
    def test_fills_unset_standard_variables(self) -> None:
        env: dict[str, str] = {}
        apply_upstream_defaults(load_settings(env), env)

        assert env["OTEL_SEMCONV_STABILITY_OPT_IN"] == "http"
        assert env["OTEL_EXPORTER_OTLP_ENDPOINT"] == "http://localhost:4318"
        assert env["OTEL_EXPORTER_OTLP_PROTOCOL"] == "http/protobuf"
        assert "service_instance" not in env["OTEL_EXPERIMENTAL_RESOURCE_DETECTORS"]

    def test_user_values_win(self) -> None:
        env = {
            "OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector:4318",
            "OTEL_METRICS_EXEMPLAR_FILTER": "always_on",
        }
        apply_upstream_defaults(load_settings(env), env)

        assert env["OTEL_EXPORTER_OTLP_ENDPOINT"] == "http://collector:4318"
        assert env["OTEL_METRICS_EXEMPLAR_FILTER"] == "always_on"

    def test_export_batches_are_smaller_and_never_exceed_the_queue(self) -> None:
        env: dict[str, str] = {}
        apply_upstream_defaults(load_settings(env), env)
        small = {"OTEL_BLRP_MAX_QUEUE_SIZE": "64"}
        apply_upstream_defaults(load_settings(small), small)

        assert env["OTEL_BSP_MAX_EXPORT_BATCH_SIZE"] == env["OTEL_BLRP_MAX_EXPORT_BATCH_SIZE"] == "128"
        assert small["OTEL_BLRP_MAX_EXPORT_BATCH_SIZE"] == "64"
        assert small["OTEL_BSP_MAX_EXPORT_BATCH_SIZE"] == "128"

    def test_invalid_user_value_is_replaced_by_the_fallback_we_announced(self) -> None:
        env = {"OTEL_EXPORTER_OTLP_PROTOCOL": "carrier-pigeon"}
        apply_upstream_defaults(load_settings(env), env)

        assert env["OTEL_EXPORTER_OTLP_PROTOCOL"] == "http/protobuf"


class TestDocs:
    def test_every_setting_has_env_and_doc(self) -> None:
        names = [f.metadata["env"] for f in setting_fields()]

        assert len(names) == len(set(names))
        assert all(f.metadata["doc"] for f in setting_fields())
        # Ours and upstream OpenTelemetry's; the few system-wide ones are documented as upstream.
        for f in setting_fields():
            assert f.metadata["env"].startswith("OTEL_") or f.metadata["doc"].startswith("Upstream (system-wide)")

    def test_readme_table_matches_the_declaration(self) -> None:
        # Regenerate with: .venv/bin/python scripts/update_readme.py
        assert markdown_table() in README.read_text()


class TestOneReader:
    def test_only_settings_reads_the_environment(self) -> None:
        """Environment -> one typed Settings -> components: no other module of ours reads os.environ."""
        package = Path(__file__).resolve().parents[2] / "otel_distro"
        reads = re.compile(
            r"\bos\.(?:environ|environb|getenv|getenvb|putenv|unsetenv)\b|\bfrom os import\b.*\b(?:environ|getenv)\b"
        )
        offenders = [
            f"{path.relative_to(package)}:{n}"
            for path in sorted(package.rglob("*.py"))
            if path.name != "settings.py" or path.parent != package
            for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1)
            if reads.search(line)
        ]
        assert offenders == []
