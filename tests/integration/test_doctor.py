"""`otel-distro doctor` against the real collector, and the health endpoints of apps run
unmodified under `opentelemetry-instrument`."""

from __future__ import annotations

import json
import subprocess
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.harness import EXAMPLES, VENV_BIN, App, Capture, app_env, free_port, http, launch, stop_app, wait_until

pytestmark = pytest.mark.integration

SERVER = 2  # OTLP SpanKind.SERVER


def doctor(env: dict[str, str], *args: str, cwd: Path | None = None) -> tuple[int, Any]:
    result = subprocess.run(
        [str(VENV_BIN / "otel-distro"), "doctor", "--json", *args],
        env=env,
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=120,
    )
    return result.returncode, json.loads(result.stdout)


def collector(body: Any) -> list[dict[str, Any]]:
    return [f for f in body["findings"] if f["check"] == "collector"]


class TestDoctorAgainstTheCollector:
    def test_reachable_over_http_is_exit_0(self, capture: Capture) -> None:
        code, body = doctor(app_env("it-doctor", capture.endpoint))

        assert body["problems"] == []
        assert code == 0
        [finding] = collector(body)
        assert finding["level"] == "ok"
        assert finding["message"] == f"traces, metrics, logs: 127.0.0.1:{capture.http_port} answers OTLP/HTTP (200)"

    def test_reachable_over_grpc_is_exit_0(self, capture: Capture) -> None:
        env = app_env("it-doctor", f"http://127.0.0.1:{capture.grpc_port}", OTEL_EXPORTER_OTLP_PROTOCOL="grpc")

        code, body = doctor(env)

        assert code == 0, body["problems"]
        assert collector(body)[0]["message"].endswith("answers OTLP/gRPC")

    def test_grpc_protocol_on_the_http_port_says_what_and_how_in_one_line(self, capture: Capture) -> None:
        env = app_env("it-doctor", capture.endpoint, OTEL_EXPORTER_OTLP_PROTOCOL="grpc")

        code, body = doctor(env)

        assert code == 1
        assert body["problems"] == [
            f"traces, metrics, logs: 127.0.0.1:{capture.http_port} speaks HTTP/1.1 (OTLP/HTTP) but "
            "OTEL_EXPORTER_OTLP_PROTOCOL is grpc; fix: set OTEL_EXPORTER_OTLP_PROTOCOL=http/protobuf, "
            "or OTEL_EXPORTER_OTLP_ENDPOINT to the collector's gRPC port (4317 by default)"
        ]

    def test_http_protocol_on_the_grpc_port_says_what_and_how_in_one_line(self, capture: Capture) -> None:
        env = app_env("it-doctor", f"http://127.0.0.1:{capture.grpc_port}")

        code, body = doctor(env)

        assert code == 1
        assert body["problems"] == [
            f"traces, metrics, logs: 127.0.0.1:{capture.grpc_port} speaks gRPC (HTTP/2) but "
            "OTEL_EXPORTER_OTLP_PROTOCOL is http/protobuf; fix: set OTEL_EXPORTER_OTLP_ENDPOINT to the "
            "collector's OTLP/HTTP port (4318 by default), or OTEL_EXPORTER_OTLP_PROTOCOL=grpc"
        ]

    def test_collector_down(self) -> None:
        port = free_port()  # nothing listens there

        code, body = doctor(app_env("it-doctor", f"http://127.0.0.1:{port}"))

        assert code == 1
        assert body["problems"] == [
            f"traces, metrics, logs: nothing listens on 127.0.0.1:{port} (connection refused); fix: start the "
            "collector, or set OTEL_EXPORTER_OTLP_ENDPOINT to where it listens"
        ]

    def test_human_output_ends_with_the_problem_lines(self, capture: Capture) -> None:
        env = app_env("it-doctor", capture.endpoint, OTEL_EXPORTER_OTLP_PROTOCOL="grpc")

        result = subprocess.run(
            [str(VENV_BIN / "otel-distro"), "doctor"], env=env, capture_output=True, text=True, timeout=120
        )

        assert result.returncode == 1
        tail = result.stdout.strip().splitlines()[-2:]
        assert tail[0] == "1 problem:"
        assert "OTEL_EXPORTER_OTLP_PROTOCOL=http/protobuf" in tail[1]

    @pytest.mark.parametrize(("example", "spec"), [("orders_fastapi", "app:app"), ("inventory_flask", "app:app")])
    def test_app_request_ids_active_and_no_duplicate_handlers(self, capture: Capture, example: str, spec: str) -> None:
        code, body = doctor(app_env("it-doctor", capture.endpoint), "--app", spec, cwd=EXAMPLES / example)

        app = {f["message"]: f["level"] for f in body["findings"] if f["check"] == "app"}
        assert app.get("request-ID handling is active (X-Request-ID)") == "ok", app
        assert app.get("no duplicate logging handlers") == "ok", app
        assert code == 0, body["problems"]


_FASTAPI_APP = """
    from fastapi import FastAPI
    from otel_distro import health

    app = FastAPI()
    state = {"ok": True}
    health.add_check("flag", lambda: state["ok"])

    @app.get("/work")
    def work():
        return {"done": True}

    @app.post("/flag/{value}")
    def flag(value: str):
        state["ok"] = value == "up"
        return state
"""

_FLASK_APP = """
    from flask import Flask

    app = Flask(__name__)

    @app.get("/work")
    def work():
        return {"done": True}
"""


@pytest.fixture(scope="module")
def health_apps(capture: Capture, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[App, App]]:
    """A FastAPI app under uvicorn and a Flask app under gunicorn, both with OTEL_DISTRO_HEALTH=true;
    the Flask one at custom paths, which must stay untraced too."""
    root = tmp_path_factory.mktemp("health")
    (root / "fa").mkdir()
    (root / "fl").mkdir()
    (root / "fa" / "app.py").write_text(textwrap.dedent(_FASTAPI_APP))
    (root / "fl" / "app.py").write_text(textwrap.dedent(_FLASK_APP))
    fa_port, fl_port = free_port(), free_port()
    fastapi_app = launch(
        ["uvicorn", "app:app", "--port", str(fa_port)],
        app_env("it-health-fastapi", capture.endpoint, OTEL_DISTRO_HEALTH="true"),
        root / "fa",
        fa_port,
        root / "fa.log",
    )
    flask_app = launch(
        ["gunicorn", "-b", f"127.0.0.1:{fl_port}", "app:app"],
        app_env(
            "it-health-flask",
            capture.endpoint,
            OTEL_DISTRO_HEALTH="true",
            OTEL_DISTRO_HEALTH_PATH="/status",
            OTEL_DISTRO_HEALTH_LIVE_PATH="/ping",
            OTEL_DISTRO_HEALTH_READY_PATH="/ready",
        ),
        root / "fl",
        fl_port,
        root / "fl.log",
    )
    try:
        yield fastapi_app, flask_app
    finally:
        stop_app(fastapi_app)
        stop_app(flask_app)


class TestHealthEndpointsUnderInstrumentation:
    def test_fastapi_endpoints_ready_turns_503_and_back(self, health_apps: tuple[App, App]) -> None:
        app, _ = health_apps

        assert http("GET", f"{app.url}/health/live")[0] == 200
        assert http("GET", f"{app.url}/health/ready")[0] == 200
        http("POST", f"{app.url}/flag/down")
        status, _, body = http("GET", f"{app.url}/health/ready")
        assert status == 503
        assert json.loads(body)["failing"] == ["flag"]
        http("POST", f"{app.url}/flag/up")
        assert http("GET", f"{app.url}/health/ready")[0] == 200

    def test_detailed_view_reports_service_and_exporters(self, health_apps: tuple[App, App]) -> None:
        app, _ = health_apps
        http("GET", f"{app.url}/work")

        def exported() -> Any:
            body = json.loads(http("GET", f"{app.url}/health")[2])
            done = [e for e in body["telemetry"]["exporters"] if e["signal"] == "traces" and e["last_success"]]
            return body if done else None

        body = wait_until(exported, 20, what="a successful trace export in /health")
        assert body["service"]["name"] == "it-health-fastapi"
        assert body["service"]["instance_id"]
        assert body["checks"]["flag"]["status"] == "pass"
        assert {e["exporter"] for e in body["telemetry"]["exporters"]} == {"otlp-http"}

    def test_flask_endpoints_at_custom_paths(self, health_apps: tuple[App, App]) -> None:
        _, app = health_apps

        assert http("GET", f"{app.url}/ping")[0] == 200
        assert http("GET", f"{app.url}/ready")[0] == 200
        assert json.loads(http("GET", f"{app.url}/status")[2])["service"]["name"] == "it-health-flask"

    @pytest.mark.parametrize(
        ("index", "service", "paths"),
        [
            (0, "it-health-fastapi", ["/health", "/health/live", "/health/ready"]),
            (1, "it-health-flask", ["/status", "/ping", "/ready"]),
        ],
    )
    def test_health_requests_are_not_traced_nor_access_logged(
        self, health_apps: tuple[App, App], capture: Capture, index: int, service: str, paths: list[str]
    ) -> None:
        app = health_apps[index]
        for path in paths:
            assert http("GET", f"{app.url}{path}")[0] == 200
        # A traced request after them: once its span arrived, theirs would have too.
        assert http("GET", f"{app.url}/work")[0] == 200
        wait_until(
            lambda: [
                s for s in capture.spans(service) if s.kind == SERVER and s.attributes.get("http.route") == "/work"
            ],
            20,
            what="the /work span",
        )

        routes = {str(s.attributes.get("http.route") or s.name) for s in capture.spans(service) if s.kind == SERVER}
        assert not [r for r in routes if any(p in r for p in paths)], routes
        access = [line for line in app.output().splitlines() if "request completed" in line]
        logged = [line for line in access if any(f'"{p}"' in line or f" {p} " in line for p in paths)]
        assert not logged, logged
