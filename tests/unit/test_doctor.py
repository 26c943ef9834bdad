"""`otel-distro doctor` against a fake environment and local fake collectors (the real
collector is in tests/integration/test_doctor.py)."""

from __future__ import annotations

import http.server
import json
import logging
import threading
from collections.abc import Iterator
from concurrent import futures
from types import SimpleNamespace
from typing import Any

import pytest

from otel_distro import cli, doctor
from otel_distro.doctor import _collector as collector
from otel_distro.settings import load_settings
from tests.harness import free_port

SECRET = "s3cr3t-token-value"
QUIET = {"OTEL_SERVICE_NAME": "svc", "OTEL_PYTHON_DISTRO": "otel_distro", "OTEL_PYTHON_CONFIGURATOR": "otel_distro"}


class _OTLPHandler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_POST(self) -> None:
        known = self.path in ("/v1/traces", "/v1/metrics", "/v1/logs")
        auth_ok = self.server.token is None or self.headers.get("Authorization") == self.server.token  # type: ignore[attr-defined]
        self.send_response(401 if not auth_ok else 200 if known else 404)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture(scope="module")
def http_port() -> Iterator[int]:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _OTLPHandler)
    server.token = None  # type: ignore[attr-defined]
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield server.server_address[1]
    server.shutdown()


@pytest.fixture(scope="module")
def grpc_port() -> Iterator[int]:
    import grpc

    class Export(grpc.GenericRpcHandler):  # type: ignore[misc]
        def service(self, details: Any) -> Any:
            if details.method.endswith("/Export"):
                return grpc.unary_unary_rpc_method_handler(lambda request, context: b"")
            return None

    server = grpc.server(futures.ThreadPoolExecutor(2))
    server.add_generic_rpc_handlers((Export(),))
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    yield port
    server.stop(None)


def _collector(env: dict[str, str]) -> list[doctor.Finding]:
    return doctor.collector_findings(load_settings(env), timeout=3)


class TestConfiguration:
    def test_every_setting_with_value_and_source(self) -> None:
        report = doctor.diagnose({"OTEL_SERVICE_NAME": "orders"}, network=False)

        rows = {r["env"]: r for r in report.settings}
        assert rows["OTEL_SERVICE_NAME"] == {
            "env": "OTEL_SERVICE_NAME",
            "value": "orders",
            "source": "environment",
            "secret": False,
        }
        assert rows["OTEL_EXPORTER_OTLP_PROTOCOL"]["source"] == "default"
        assert rows["OTEL_TRACES_EXPORTER"]["value"] == ["otlp"]

    def test_bad_env_value_is_a_problem_naming_variable_value_and_fix(self) -> None:
        report = doctor.diagnose({**QUIET, "OTEL_DISTRO_SHUTDOWN_TIMEOUT": "soon"}, network=False)

        [problem] = report.problems
        assert problem.check == "config"
        assert "OTEL_DISTRO_SHUTDOWN_TIMEOUT='soon' is not valid" in problem.line()
        assert "fix: set OTEL_DISTRO_SHUTDOWN_TIMEOUT to a number from 0 to 300" in problem.line()
        assert report.exit_code() == 1

    def test_missing_service_name_is_a_problem(self) -> None:
        report = doctor.diagnose({}, network=False)

        assert any("OTEL_SERVICE_NAME is not set" in p.message for p in report.problems)

    @pytest.mark.parametrize(
        ("sampler", "warned"),
        [(None, False), ("always_on", False), ("parentbased_always_on", False), ("parentbased_traceidratio", True)],
    )
    def test_span_derived_http_metrics_with_a_dropping_sampler_warn(self, sampler: str | None, warned: bool) -> None:
        env = {**QUIET, "OTEL_DISTRO_HTTP_METRICS": "collector"}
        if sampler:
            env["OTEL_TRACES_SAMPLER"] = sampler
        report = doctor.diagnose(env, network=False)

        def sampling_warnings(report: doctor.Report) -> list[doctor.Finding]:
            return [f for f in report.findings if f.level == "warning" and "OTEL_TRACES_SAMPLER" in f.message]

        assert len(sampling_warnings(report)) == warned
        in_process = doctor.diagnose({**env, "OTEL_DISTRO_HTTP_METRICS": "process"}, network=False)
        assert sampling_warnings(in_process) == []  # the process counts every request itself

    def test_secret_headers_are_masked_everywhere(self) -> None:
        env = {**QUIET, "OTEL_EXPORTER_OTLP_HEADERS": f"Authorization=Bearer%20{SECRET},X-Tenant=acme"}

        report = doctor.diagnose(env, network=False)

        rows = {r["env"]: r for r in report.settings}
        assert rows["OTEL_EXPORTER_OTLP_HEADERS"]["value"] == "Authorization=******,X-Tenant=******"
        assert rows["OTEL_EXPORTER_OTLP_HEADERS"]["secret"] is True
        assert SECRET not in report.render()
        assert SECRET not in json.dumps(report.as_json())

    def test_settings_command_masks_secrets_too(
        self, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
    ) -> None:
        monkeypatch.setenv("OTEL_EXPORTER_OTLP_HEADERS", f"authorization={SECRET}")

        assert cli.main(["settings"]) == 0

        out = capsys.readouterr().out
        assert SECRET not in out
        assert "OTEL_EXPORTER_OTLP_HEADERS='authorization=******'  (environment)" in out


class TestJSON:
    def test_json_output_and_exit_status(
        self, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
    ) -> None:
        for name, value in {**QUIET, "OTEL_DISTRO_LOG_LEVEL": "LOUD", "OTEL_EXPORTER_OTLP_HEADERS": SECRET}.items():
            monkeypatch.setenv(name, value)

        code = cli.main(["doctor", "--json", "--offline"])

        out = capsys.readouterr().out
        body = json.loads(out)
        assert code == 1
        assert body["ok"] is False
        assert set(body) == {"ok", "settings", "findings", "problems"}
        assert {"env", "value", "source", "secret"} == set(body["settings"][0])
        assert {"check", "level", "message", "fix"} == set(body["findings"][0])
        assert [p for p in body["problems"] if p.startswith("OTEL_DISTRO_LOG_LEVEL='LOUD' is not valid")]
        assert SECRET not in out

    def test_healthy_is_exit_0(self, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
        for name, value in QUIET.items():
            monkeypatch.setenv(name, value)

        assert cli.main(["doctor", "--offline"]) == 0
        assert "No problems found." in capsys.readouterr().out


class TestCollector:
    def test_reachable_http(self, http_port: int) -> None:
        [finding] = _collector({"OTEL_EXPORTER_OTLP_ENDPOINT": f"http://127.0.0.1:{http_port}"})

        assert finding.level == "ok"
        assert finding.message == f"traces, metrics, logs: 127.0.0.1:{http_port} answers OTLP/HTTP (200)"

    def test_reachable_grpc(self, grpc_port: int) -> None:
        env = {"OTEL_EXPORTER_OTLP_ENDPOINT": f"http://127.0.0.1:{grpc_port}", "OTEL_EXPORTER_OTLP_PROTOCOL": "grpc"}

        [finding] = _collector(env)

        assert finding.level == "ok"
        assert "answers OTLP/gRPC" in finding.message

    def test_http_protocol_on_a_grpc_port(self, grpc_port: int) -> None:
        [finding] = _collector({"OTEL_EXPORTER_OTLP_ENDPOINT": f"http://127.0.0.1:{grpc_port}"})

        assert finding.level == "problem"
        assert "speaks gRPC (HTTP/2) but OTEL_EXPORTER_OTLP_PROTOCOL is http/protobuf" in finding.message
        assert "OTEL_EXPORTER_OTLP_PROTOCOL=grpc" in (finding.fix or "")

    def test_grpc_protocol_on_an_http_port(self, http_port: int) -> None:
        env = {"OTEL_EXPORTER_OTLP_ENDPOINT": f"http://127.0.0.1:{http_port}", "OTEL_EXPORTER_OTLP_PROTOCOL": "grpc"}

        [finding] = _collector(env)

        assert finding.level == "problem"
        assert "speaks HTTP/1.1 (OTLP/HTTP) but OTEL_EXPORTER_OTLP_PROTOCOL is grpc" in finding.message
        assert "set OTEL_EXPORTER_OTLP_PROTOCOL=http/protobuf" in (finding.fix or "")

    def test_down(self) -> None:
        port = free_port()

        [finding] = _collector({"OTEL_EXPORTER_OTLP_ENDPOINT": f"http://127.0.0.1:{port}"})

        assert finding.level == "problem"
        assert finding.message == f"traces, metrics, logs: nothing listens on 127.0.0.1:{port} (connection refused)"

    def test_endpoint_with_the_signal_path_gets_404_and_the_fix(self, http_port: int) -> None:
        [finding] = _collector({"OTEL_EXPORTER_OTLP_ENDPOINT": f"http://127.0.0.1:{http_port}/v1/traces"})

        assert finding.message == (
            f"traces, metrics, logs: 127.0.0.1:{http_port}/v1/traces/v1/<signal> answered 404: "
            "no OTLP/HTTP receiver at that path"
        )
        assert finding.fix == (
            f"set OTEL_EXPORTER_OTLP_ENDPOINT=http://127.0.0.1:{http_port}: the exporter appends /v1/<signal> itself"
        )

    def test_per_signal_endpoint_and_exporters_switched_off(self, http_port: int) -> None:
        env = {
            "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": f"http://127.0.0.1:{http_port}/v1/traces",
            "OTEL_METRICS_EXPORTER": "none",
            "OTEL_LOGS_EXPORTER": "console",
        }

        [finding] = _collector(env)

        assert finding.message.startswith("traces: ")
        assert finding.level == "ok"

    def test_credentials_wanted(self, http_port: int) -> None:
        settings = load_settings({"OTEL_EXPORTER_OTLP_ENDPOINT": f"http://127.0.0.1:{http_port}"})
        target = doctor.collector_targets(settings, "http/protobuf")[0]
        server_token = "Bearer ok"

        finding = collector._http_status(target, 401)

        assert "wants credentials" in finding.message
        assert "OTEL_EXPORTER_OTLP_HEADERS" in (finding.fix or "")
        assert doctor.parse_headers(f"Authorization={server_token.replace(' ', '%20')}") == [
            ("authorization", server_token)
        ]

    @pytest.mark.parametrize(
        ("url", "protocol", "wanted", "fix"),
        [
            (
                "http://collector:4317",
                "http/protobuf",
                "http/protobuf",
                "OTEL_EXPORTER_OTLP_ENDPOINT=http://collector:4318",
            ),
            ("http://collector:4318", "grpc", "grpc", "OTEL_EXPORTER_OTLP_ENDPOINT=http://collector:4317"),
            (
                "http://collector:9000",
                "grpc",
                "grpc",
                "OTEL_EXPORTER_OTLP_ENDPOINT to the collector's gRPC port (4317 by default)",
            ),
        ],
    )
    def test_port_fix_is_exact_for_the_standard_ports(self, url: str, protocol: str, wanted: str, fix: str) -> None:
        target = doctor.Target(("traces",), protocol, url, "OTEL_EXPORTER_OTLP_ENDPOINT")

        assert collector._other_port_fix(target, wanted) == fix

    def test_grpc_without_the_grpc_exporter_is_a_problem(self) -> None:
        settings = load_settings(
            {"OTEL_EXPORTER_OTLP_PROTOCOL": "grpc", "OTEL_EXPORTER_OTLP_ENDPOINT": f"http://127.0.0.1:{free_port()}"}
        )

        found = doctor.collector_findings(settings, timeout=1, grpc_installed=False)

        assert "the gRPC exporter is not installed" in found[0].message


class TestDistros:
    def _eps(self, **groups: list[str]) -> Any:
        return lambda group: [SimpleNamespace(name=n, value=f"{n}:X") for n in groups.get(group, [])]

    def test_competing_distro_is_a_problem_with_the_fix(self) -> None:
        eps = self._eps(opentelemetry_distro=["distro", "otel_distro"], opentelemetry_configurator=["otel_distro"])

        found = doctor.distro_findings(load_settings({}), eps)

        [problem] = [f for f in found if f.level == "problem"]
        assert "another distro competes with ours: distro (distro:X)" in problem.message
        assert problem.fix == "export OTEL_PYTHON_DISTRO=otel_distro OTEL_PYTHON_CONFIGURATOR=otel_distro"

    def test_choosing_ours_settles_it(self) -> None:
        eps = self._eps(opentelemetry_distro=["distro", "otel_distro"], opentelemetry_configurator=["x", "otel_distro"])

        found = doctor.distro_findings(load_settings(QUIET), eps)

        assert {f.level for f in found} == {"ok"}

    def test_naming_an_absent_distro_is_a_problem(self) -> None:
        eps = self._eps(opentelemetry_distro=["otel_distro"], opentelemetry_configurator=["otel_distro"])

        found = doctor.distro_findings(load_settings({"OTEL_PYTHON_DISTRO": "typo"}), eps)

        assert "OTEL_PYTHON_DISTRO=typo names no installed distro" in found[0].message


class TestLogging:
    def test_two_handlers_printing_to_one_place(self) -> None:
        root = logging.getLogger()
        root.handlers[:] = [logging.StreamHandler()]
        app = logging.getLogger("doctor.test.app")
        app.addHandler(logging.StreamHandler())
        try:
            found = doctor.logging_findings()
        finally:
            app.handlers.clear()

        [problem] = [f for f in found if "doctor.test.app" in f.message]
        assert (
            problem.message
            == "records reaching logger 'doctor.test.app' and the root logger are printed twice to stderr"
        )
        assert "propagate = False" in (problem.fix or "")

    def test_otel_logging_handler_next_to_ours(self) -> None:
        from opentelemetry.sdk._logs import LoggerProvider, LoggingHandler

        root = logging.getLogger()
        root.handlers[:] = [LoggingHandler(logger_provider=LoggerProvider(shutdown_on_exit=False))]

        found = doctor.logging_findings()

        assert any("exported twice" in f.message for f in found)

    def test_clean(self) -> None:
        logging.getLogger().handlers[:] = [logging.StreamHandler()]

        assert [f.level for f in doctor.logging_findings()] == ["ok"]


class TestInstrumentations:
    def test_findings_are_advice_not_problems(self) -> None:
        found = doctor.instrumentation_findings(load_settings({}))

        assert found
        assert {f.level for f in found} <= {"ok", "warning"}
        assert not [f for f in found if "structlog" in f.message]  # handled by otel-distro itself
