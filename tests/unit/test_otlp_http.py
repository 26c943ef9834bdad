"""The OTLP/HTTP exporters send over stdlib `http.client` where `requests` would add nothing."""

from __future__ import annotations

import subprocess
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from opentelemetry.exporter.http.transport._requests import RequestsHTTPTransport
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader, MetricExportResult
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor, SpanExportResult
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from otel_distro import _sdk_compat, otlp_http
from otel_distro.otlp_encoding import encode_span_request
from otel_distro.settings import Settings, load_settings


class _Collector:
    """A local OTLP/HTTP endpoint recording each POST; answers are queued per test."""

    def __init__(self) -> None:
        self.requests: list[tuple[str, dict[str, str], bytes, int]] = []  # path, headers (lower-case), body, port
        self.answers: list[tuple[int, dict[str, str]]] = []
        self.close_after_answer = False
        collector = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                headers = {name.lower(): value for name, value in self.headers.items()}
                collector.requests.append((self.path, headers, body, self.client_address[1]))
                status, headers = collector.answers.pop(0) if collector.answers else (200, {})
                self.send_response(status)
                for name, value in {"Content-Length": "0", **headers}.items():
                    self.send_header(name, value)
                self.end_headers()
                if collector.close_after_answer:
                    self.close_connection = True

            def log_message(self, *args: Any) -> None:
                return None

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()


@pytest.fixture
def collector() -> Iterator[_Collector]:
    running = _Collector()
    yield running
    running.server.shutdown()
    running.server.server_close()


# No proxy, netrc or credential-provider setting, whatever this machine's environment holds.
PLAIN = Settings()


@pytest.fixture(autouse=True)
def _no_netrc(monkeypatch: pytest.MonkeyPatch, tmp_path: Any) -> None:
    monkeypatch.setenv("HOME", str(tmp_path))  # no ~/.netrc


def _spans(count: int = 2) -> list[Any]:
    memory = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(memory))
    tracer = provider.get_tracer("test")
    for n in range(count):
        with tracer.start_as_current_span(f"span-{n}", attributes={"n": n}):
            pass
    return list(memory.get_finished_spans())


class TestTransportChoice:
    def test_plain_http_endpoint_uses_http_client(self) -> None:
        exporter = otlp_http.OTLPSpanExporter(settings=PLAIN, endpoint="http://127.0.0.1:4318/v1/traces")
        assert isinstance(_sdk_compat.exporter_transport(exporter), otlp_http._PlainHTTPTransport)

    def test_default_endpoint_from_the_environment(self, monkeypatch: pytest.MonkeyPatch) -> None:
        monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", "http://collector:4318")
        for exporter in (
            otlp_http.OTLPSpanExporter(settings=PLAIN),
            otlp_http.OTLPLogExporter(settings=PLAIN),
            otlp_http.OTLPMetricExporter(settings=PLAIN),
        ):
            transport = _sdk_compat.exporter_transport(exporter)
            assert isinstance(transport, otlp_http._PlainHTTPTransport)
            assert (transport._host, transport._port) == ("collector", 4318)

    @pytest.mark.parametrize(
        "url",
        [
            "https://collector:4318/v1/traces",
            "http://user:secret@collector:4318/v1/traces",
            "http://collector:notaport/v1/traces",
            "http://collector:4318/v1/my traces",
            "http://collector:4318/v1/tracés",
        ],
    )
    def test_other_endpoints_keep_requests(self, url: str) -> None:
        exporter = otlp_http.OTLPSpanExporter(settings=PLAIN, endpoint=url)
        assert isinstance(_sdk_compat.exporter_transport(exporter), RequestsHTTPTransport)

    @pytest.mark.parametrize(
        "name",
        [
            "http_proxy",
            "HTTP_PROXY",
            "all_proxy",
            "ALL_PROXY",
            "OTEL_PYTHON_EXPORTER_OTLP_HTTP_CREDENTIAL_PROVIDER",
            "OTEL_PYTHON_EXPORTER_OTLP_HTTP_TRACES_CREDENTIAL_PROVIDER",
        ],
    )
    def test_environment_requests_would_use_keeps_requests(self, name: str) -> None:
        settings = load_settings({name: "http://proxy:3128"})
        assert otlp_http.plain_http_transport("http://collector:4318/v1/traces", "traces", settings) is None

    def test_another_signals_credential_provider_does_not_count(self) -> None:
        settings = load_settings({"OTEL_PYTHON_EXPORTER_OTLP_HTTP_LOGS_CREDENTIAL_PROVIDER": "x"})
        assert otlp_http.plain_http_transport("http://collector:4318/v1/traces", "traces", settings) is not None
        assert otlp_http.plain_http_transport("http://collector:4318/v1/logs", "logs", settings) is None

    def test_exporters_use_the_settings_they_are_given(self) -> None:
        settings = load_settings({"HTTP_PROXY": "http://proxy:3128"})
        exporter = otlp_http.OTLPSpanExporter(settings=settings, endpoint="http://127.0.0.1:4318/v1/traces")
        assert isinstance(_sdk_compat.exporter_transport(exporter), RequestsHTTPTransport)

    def test_netrc_keeps_requests(self, tmp_path: Any) -> None:
        (tmp_path / ".netrc").write_text("machine collector login a password b\n")
        assert otlp_http.plain_http_transport("http://collector:4318/v1/traces", "traces", PLAIN) is None

    def test_netrc_variable_keeps_requests(self, tmp_path: Any) -> None:
        netrc = tmp_path / "credentials"
        url = "http://collector:4318/v1/traces"
        settings = load_settings({"NETRC": str(netrc)})
        assert otlp_http.plain_http_transport(url, "traces", settings) is not None  # no such file
        netrc.write_text("machine collector login a password b\n")
        assert otlp_http.plain_http_transport(url, "traces", settings) is None

    def test_a_session_keeps_requests(self) -> None:
        import requests

        exporter = otlp_http.OTLPSpanExporter(
            settings=PLAIN, endpoint="http://collector:4318/v1/traces", session=requests.Session()
        )
        assert isinstance(_sdk_compat.exporter_transport(exporter), RequestsHTTPTransport)

    def test_requests_is_not_imported_for_a_plain_http_endpoint(self) -> None:
        code = (
            "import sys\n"
            "from otel_distro.otlp_http import OTLPLogExporter, OTLPMetricExporter, OTLPSpanExporter\n"
            "from otel_distro.settings import Settings\n"
            "s = Settings()\n"
            "OTLPSpanExporter(settings=s); OTLPLogExporter(settings=s); OTLPMetricExporter(settings=s)\n"
            "print(sorted(m for m in ('requests', 'urllib3') if m in sys.modules))\n"
        )
        env = {"PATH": "/usr/bin:/bin", "HOME": "/nonexistent", "OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:9"}
        out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
        assert out.stdout.strip() == "[]"


class TestPlainHTTPTransport:
    def test_sends_what_upstream_sends(self, collector: _Collector) -> None:
        exporter = otlp_http.OTLPSpanExporter(
            settings=PLAIN, endpoint=f"{collector.url}/v1/traces", headers={"x-tenant": "a"}
        )
        spans = _spans()
        assert exporter.export(spans) == SpanExportResult.SUCCESS
        [(path, headers, body, _)] = collector.requests
        assert path == "/v1/traces"
        assert body == encode_span_request(spans)
        assert headers["content-type"] == "application/x-protobuf"
        assert headers["user-agent"].startswith("OTel-OTLP-Exporter-Python/")
        assert headers["x-tenant"] == "a"

    def test_keeps_the_connection_alive(self, collector: _Collector) -> None:
        exporter = otlp_http.OTLPSpanExporter(settings=PLAIN, endpoint=f"{collector.url}/v1/traces")
        for _ in range(3):
            assert exporter.export(_spans(1)) == SpanExportResult.SUCCESS
        assert len({port for *_, port in collector.requests}) == 1

    def test_reconnects_after_the_collector_closed_the_connection(self, collector: _Collector) -> None:
        collector.close_after_answer = True
        exporter = otlp_http.OTLPSpanExporter(settings=PLAIN, endpoint=f"{collector.url}/v1/traces")
        for _ in range(3):
            assert exporter.export(_spans(1)) == SpanExportResult.SUCCESS
        assert len(collector.requests) == 3

    def test_a_forked_worker_opens_its_own_connection(self, collector: _Collector) -> None:
        exporter = otlp_http.OTLPSpanExporter(settings=PLAIN, endpoint=f"{collector.url}/v1/traces")
        assert exporter.export(_spans(1)) == SpanExportResult.SUCCESS
        _sdk_compat.exporter_transport(exporter)._pid = -1  # as seen from a child process after fork
        assert exporter.export(_spans(1)) == SpanExportResult.SUCCESS
        assert len({port for *_, port in collector.requests}) == 2

    def test_retries_as_told_by_retry_after(self, collector: _Collector) -> None:
        collector.answers = [(503, {"retry-after": "0"})]
        exporter = otlp_http.OTLPSpanExporter(settings=PLAIN, endpoint=f"{collector.url}/v1/traces")
        assert exporter.export(_spans(1)) == SpanExportResult.SUCCESS
        assert len(collector.requests) == 2

    def test_a_rejected_batch_fails_without_retry(self, collector: _Collector) -> None:
        collector.answers = [(400, {})]
        exporter = otlp_http.OTLPSpanExporter(settings=PLAIN, endpoint=f"{collector.url}/v1/traces")
        assert exporter.export(_spans(1)) == SpanExportResult.FAILURE
        assert len(collector.requests) == 1

    def test_an_unreachable_collector_is_a_connection_error(self) -> None:
        transport = otlp_http.plain_http_transport("http://127.0.0.1:9/v1/traces", "traces", PLAIN)
        assert transport is not None
        result = transport.request("POST", "http://127.0.0.1:9/v1/traces", data=b"x", timeout=1)
        assert result.status_code is None
        assert transport.is_connection_error(result.error)

    def test_metrics_are_sent_too(self, collector: _Collector) -> None:
        reader = InMemoryMetricReader()
        provider = MeterProvider(metric_readers=[reader])
        provider.get_meter("test").create_counter("hits").add(3)
        data = reader.get_metrics_data()
        assert data is not None
        exporter = otlp_http.OTLPMetricExporter(settings=PLAIN, endpoint=f"{collector.url}/v1/metrics")
        assert exporter.export(data) == MetricExportResult.SUCCESS
        assert [path for path, *_ in collector.requests] == ["/v1/metrics"]
        provider.shutdown()
