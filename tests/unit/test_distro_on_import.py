"""Client-library instrumentations wait for the app to import their library."""

from __future__ import annotations

import importlib
import logging
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any

import pytest

from otel_distro import distro
from otel_distro.instrumentors import ON_IMPORT

_LOAD = """
import sys
from importlib.metadata import entry_points
from otel_distro.distro import OtelDistro

distro = OtelDistro()
for ep in entry_points(group="opentelemetry_instrumentor"):
    if ep.name in ("requests", "urllib3"):
        distro.load_instrumentor(ep, skip_dep_check=True)
"""

_INSTRUMENTED = """
from opentelemetry.instrumentation.requests import RequestsInstrumentor
from opentelemetry.instrumentation.urllib3 import URLLib3Instrumentor
print(RequestsInstrumentor().is_instrumented_by_opentelemetry, URLLib3Instrumentor().is_instrumented_by_opentelemetry)
"""


def _run(code: str) -> list[str]:
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return out.stdout.splitlines()


def test_requests_is_instrumented_when_the_app_imports_it() -> None:
    code = (
        _LOAD
        + "print(sorted(m for m in ('requests', 'urllib3', 'httpx') if m in sys.modules))\n"
        + "import requests\n"
        + _INSTRUMENTED
    )
    assert _run(code) == ["[]", "True True"]


def test_an_already_imported_library_is_instrumented_at_once() -> None:
    code = "import requests\n" + _LOAD + _INSTRUMENTED
    assert _run(code) == ["True True"]


def test_every_client_library_installed_waits_for_its_module() -> None:
    from importlib.metadata import entry_points

    installed = {ep.name for ep in entry_points(group="opentelemetry_instrumentor")}
    assert {"requests", "urllib3", "httpx"} <= set(ON_IMPORT)
    assert installed - set(ON_IMPORT) <= {"fastapi", "flask", "system_metrics"}


class _EntryPoint:
    def __init__(self, name: str, instrumentor: Any) -> None:
        self.name = name
        self._instrumentor = instrumentor

    def load(self) -> Any:
        return self._instrumentor


def _fake_library(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    module = f"otel_distro_fake_{uuid.uuid4().hex}"
    (tmp_path / f"{module}.py").write_text("VALUE = 1\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setitem(distro.ON_IMPORT, "fake", module)
    return module


def test_kwargs_reach_the_instrumentor_on_import(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    module = _fake_library(tmp_path, monkeypatch)
    calls: list[dict[str, Any]] = []

    class Instrumentor:
        def instrument(self, **kwargs: Any) -> None:
            calls.append(kwargs)

    distro.OtelDistro().load_instrumentor(_EntryPoint("fake", Instrumentor), skip_dep_check=True, tracer_provider="tp")
    assert calls == []
    importlib.import_module(module)
    assert calls == [{"skip_dep_check": True, "tracer_provider": "tp"}]


def test_a_failing_instrumentation_never_breaks_the_apps_import(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    module = _fake_library(tmp_path, monkeypatch)

    class Instrumentor:
        def instrument(self, **kwargs: Any) -> None:
            raise RuntimeError("broken instrumentation")

    distro.OtelDistro().load_instrumentor(_EntryPoint("fake", Instrumentor), skip_dep_check=True)
    with caplog.at_level(logging.ERROR, logger="otel_distro.distro"):
        assert importlib.import_module(module).VALUE == 1
    [record] = caplog.records
    assert record.name == "otel_distro.distro"
    assert record.exc_info is not None and "broken instrumentation" in str(record.exc_info[1])
