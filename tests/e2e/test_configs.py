"""The stack's configuration files, checked by the real programs that read them."""

from __future__ import annotations

import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest

from .conftest import REPO

pytestmark = pytest.mark.e2e

CHECK_TIMEOUT = 120


def run_check(argv: list[str | Path]) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(
        [str(arg) for arg in argv],
        capture_output=True,
        text=True,
        timeout=CHECK_TIMEOUT,
        cwd=REPO,
        check=False,
    )
    assert result.returncode == 0, f"{argv[0]} rejected the config:\n{result.stdout}\n{result.stderr}"
    return result


def test_collector_config_validates(backend_binary: Callable[[str], Path]) -> None:
    run_check([backend_binary("otelcol"), "validate", f"--config={REPO / 'collector' / 'config.yaml'}"])


def test_prometheus_config_checks(backend_binary: Callable[[str], Path]) -> None:
    # Also checks whatever rules*.yml files the glob matches (it may match none).
    run_check([backend_binary("promtool"), "check", "config", REPO / "stack" / "prometheus" / "prometheus.yml"])


def test_jaeger_config_validates(backend_binary: Callable[[str], Path]) -> None:
    run_check([backend_binary("jaeger"), "validate", f"--config={REPO / 'stack' / 'jaeger' / 'config.yaml'}"])


def test_jaeger_config_fails_validation_when_broken(backend_binary: Callable[[str], Path], tmp_path: Path) -> None:
    """The check above can fail: a misspelt setting is refused."""
    broken = tmp_path / "jaeger.yaml"
    text = (REPO / "stack" / "jaeger" / "config.yaml").read_text()
    broken.write_text(text.replace("ephemeral: false", "ephemeral_: false"))
    result = subprocess.run(
        [str(backend_binary("jaeger")), "validate", f"--config={broken}"],
        capture_output=True,
        text=True,
        timeout=CHECK_TIMEOUT,
        check=False,
    )
    assert result.returncode != 0, result.stderr
    assert "ephemeral_" in result.stderr
