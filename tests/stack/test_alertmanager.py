"""stack/alertmanager: the template renders from the environment into a configuration the real
Alertmanager accepts, and routes alerts by service and severity to the chosen receiver."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.harness import require_binary
from tests.stack.queries import REPO

ALERTMANAGER_DIR = REPO / "stack" / "alertmanager"
TEMPLATE = ALERTMANAGER_DIR / "alertmanager.yml"
RENDER = ALERTMANAGER_DIR / "render.sh"


def render(tmp_path: Path, env: Mapping[str, str] | None = None) -> Path:
    """Run render.sh as the container does, with only ``env`` set (plus PATH)."""
    output = tmp_path / "alertmanager.yml"
    subprocess.run(
        ["sh", str(RENDER), str(TEMPLATE), str(output)],
        env={"PATH": os.environ.get("PATH", "/usr/bin:/bin"), **(env or {})},
        check=True,
        timeout=30,
    )
    return output


def load(path: Path) -> dict[str, Any]:
    document: dict[str, Any] = yaml.safe_load(path.read_text())
    return document


def receiver(config: Mapping[str, Any], name: str) -> dict[str, Any]:
    found: dict[str, Any] = next(r for r in config["receivers"] if r["name"] == name)
    return found


def amtool(*args: str) -> str:
    result = subprocess.run(
        [str(require_binary("amtool")), *args], capture_output=True, text=True, timeout=60, check=False
    )
    assert result.returncode == 0, f"amtool {' '.join(args)}:\n{result.stdout}\n{result.stderr}"
    return result.stdout


class TestTemplate:
    def test_template_is_yaml_with_harmless_defaults(self, tmp_path: Path) -> None:
        config = load(render(tmp_path))
        assert config["route"]["receiver"] == "none"
        assert receiver(config, "none") == {"name": "none"}, "the default receiver must send nothing"
        assert "${" not in render(tmp_path).read_text().split("\nglobal:", 1)[1]

    def test_environment_fills_the_placeholders(self, tmp_path: Path) -> None:
        env = {
            "ALERTMANAGER_RECEIVER": "slack",
            "SLACK_WEBHOOK_URL": "https://hooks.example.invalid/T0/B0/x",
            "SLACK_CHANNEL": "#ops",
            "ALERTMANAGER_WEBHOOK_URL": "http://127.0.0.1:5001/hook",
            "SMTP_SMARTHOST": "mail.example.invalid:587",
            "SMTP_TO": "oncall@example.invalid",
            "SMTP_REQUIRE_TLS": "false",
        }
        config = load(render(tmp_path, env))
        assert config["route"]["receiver"] == "slack"
        assert receiver(config, "slack")["slack_configs"][0]["api_url"] == env["SLACK_WEBHOOK_URL"]
        assert receiver(config, "slack")["slack_configs"][0]["channel"] == "#ops"
        assert receiver(config, "webhook")["webhook_configs"][0]["url"] == env["ALERTMANAGER_WEBHOOK_URL"]
        assert receiver(config, "email")["email_configs"][0]["to"] == env["SMTP_TO"]
        assert config["global"]["smtp_smarthost"] == env["SMTP_SMARTHOST"]
        assert config["global"]["smtp_require_tls"] is False

    def test_values_are_escaped_and_never_expanded_twice(self, tmp_path: Path) -> None:
        password = 'p"a\\ss${HOME}'
        config = load(render(tmp_path, {"SMTP_AUTH_PASSWORD": password}))
        assert config["global"]["smtp_auth_password"] == password

    def test_rendered_file_is_private(self, tmp_path: Path) -> None:
        # It may hold webhook URLs and the SMTP password.
        assert render(tmp_path).stat().st_mode & 0o077 == 0

    def test_render_runs_the_command_after_rendering(self, tmp_path: Path) -> None:
        output = tmp_path / "out.yml"
        result = subprocess.run(
            ["sh", str(RENDER), str(TEMPLATE), str(output), "cat", str(output)],
            capture_output=True,
            text=True,
            check=True,
            timeout=30,
        )
        assert "receivers:" in result.stdout

    def test_grouping_by_service_and_severity(self, tmp_path: Path) -> None:
        route = load(render(tmp_path))["route"]
        assert route["group_by"] == ["job", "severity"]
        watchdog = route["routes"][0]
        assert watchdog["matchers"] == ['alertname="Watchdog"']


class TestRealAlertmanager:
    def test_amtool_accepts_defaults(self, tmp_path: Path) -> None:
        amtool("check-config", str(render(tmp_path)))

    def test_amtool_accepts_every_receiver_choice(self, tmp_path: Path) -> None:
        for choice in ("none", "webhook", "slack", "email"):
            path = render(tmp_path, {"ALERTMANAGER_RECEIVER": choice, "ALERTMANAGER_WATCHDOG_RECEIVER": choice})
            amtool("check-config", str(path))

    @pytest.mark.parametrize(
        ("labels", "receiver_name"),
        [
            (["alertname=HighHttpErrorRatio", "job=orders", "severity=critical"], "webhook"),
            (["alertname=CollectorQueueFilling", "job=otel-collector", "severity=warning"], "webhook"),
            (["alertname=Watchdog", "severity=none"], "slack"),
        ],
    )
    def test_routes(self, tmp_path: Path, labels: list[str], receiver_name: str) -> None:
        path = render(tmp_path, {"ALERTMANAGER_RECEIVER": "webhook", "ALERTMANAGER_WATCHDOG_RECEIVER": "slack"})
        amtool("config", "routes", "test", f"--config.file={path}", f"--verify.receivers={receiver_name}", *labels)
