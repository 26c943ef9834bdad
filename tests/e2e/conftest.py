"""Fixtures for end-to-end tests against the real backend programs.

The programs come from ``scripts/backends install`` (``.backends/bin``). When
one is missing the tests skip, except under CI (``CI=true``) where a missing
program is a failure: CI must install what it tests against.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "scripts"))

import stack  # noqa: E402  (lives in scripts/, not an installed package)
from tests.harness import backends_unavailable  # noqa: E402

__all__ = ["backends_unavailable", "stack", "started_stack"]


@pytest.fixture(scope="session")
def backend_binary() -> Callable[[str], Path]:
    """Return a function giving the path of a backend program, or skipping/failing without it."""

    def require(name: str) -> Path:
        path = stack.DEFAULT_BIN_DIR / name
        if not os.access(path, os.X_OK):
            backends_unavailable(f"{path.relative_to(REPO)} is missing")
        return path

    return require


@pytest.fixture(scope="session")
def backend_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[stack.Stack]:
    """The collector, Prometheus, Loki and Tempo running on free loopback ports.

    Yields a started ``stack.Stack``: ``.ports``, ``.urls()``,
    ``.otlp_http_url``, ``.prometheus_url``, ``.loki_url``, ``.tempo_url``,
    ``.app_env(service_name)`` (OTEL_* variables for an instrumented app) and
    ``.processes[name].log_path``. Data and logs live in a pytest temp dir.
    """
    yield from started_stack(tmp_path_factory.mktemp("backends"))


def started_stack(data_dir: Path) -> Iterator[stack.Stack]:
    """Start the real programs on free loopback ports, yield the stack, stop it (fixture body)."""
    backends = stack.Stack(bin_dir=stack.DEFAULT_BIN_DIR, data_dir=data_dir, ports=stack.Ports.free())
    missing = backends.missing_binaries()
    if missing:
        backends_unavailable(f"backend programs missing in {stack.DEFAULT_BIN_DIR}: {', '.join(missing)}")
    try:
        backends.start(timeout=120.0)
    except stack.StackError as err:
        pytest.fail(f"backend stack did not start: {err}", pytrace=False)
    try:
        yield backends
    finally:
        backends.stop()
