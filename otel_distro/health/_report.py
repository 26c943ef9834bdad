"""The JSON bodies of the three endpoints, independent of the web framework."""

from __future__ import annotations

import time
from collections.abc import Sequence
from datetime import datetime, timezone
from typing import Any, NamedTuple

from opentelemetry import trace

from otel_distro.exporters import pipeline_state
from otel_distro.health._runner import CheckResult
from otel_distro.settings import Settings

__all__ = ["Paths", "detail", "live", "paths", "ready"]

HEADERS = {"Cache-Control": "no-store"}


class Paths(NamedTuple):
    detail: str
    live: str
    ready: str


def paths(settings: Settings, detail: str | None = None, live: str | None = None, ready: str | None = None) -> Paths:
    """The endpoints' paths: arguments win over settings."""
    return Paths(
        detail or settings.health_path,
        live or settings.health_live_path,
        ready or settings.health_ready_path,
    )


def _process_started() -> float:
    try:
        import psutil  # type: ignore[import-untyped]  # installed with the system-metrics instrumentation

        return float(psutil.Process().create_time())
    except Exception:  # no psutil, or a platform it cannot read: count from first import instead
        return time.time()


_STARTED = _process_started()


def _iso(timestamp: float | None) -> str | None:
    if timestamp is None:
        return None
    return datetime.fromtimestamp(timestamp, timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _service(settings: Settings) -> dict[str, Any]:
    # The SDK resource also reflects OTEL_RESOURCE_ATTRIBUTES; settings are the fallback
    # when the app runs without the distro's providers.
    resource = getattr(trace.get_tracer_provider(), "resource", None)
    attributes = dict(resource.attributes) if resource is not None else {}
    return {
        "name": attributes.get("service.name") or settings.service_name,
        "version": attributes.get("service.version") or settings.service_version,
        "environment": attributes.get("deployment.environment.name") or settings.environment,
        "instance_id": attributes.get("service.instance.id"),
    }


def _exporters() -> list[dict[str, Any]]:
    return [
        {
            "signal": state.signal,
            "exporter": state.exporter,
            "last_success": _iso(state.last_success),
            "last_failure": _iso(state.last_failure),
            "last_error": state.last_error,
            "consecutive_failures": state.failures,
        }
        for state in pipeline_state()
    ]


def _status(results: Sequence[CheckResult]) -> str:
    return "pass" if all(r.ok for r in results) else "fail"


def _code(results: Sequence[CheckResult]) -> int:
    return 200 if all(r.ok for r in results) else 503


def live() -> tuple[int, dict[str, Any]]:
    return 200, {"status": "pass"}


def ready(results: Sequence[CheckResult]) -> tuple[int, dict[str, Any]]:
    body: dict[str, Any] = {"status": _status(results), "checks": {r.name: r.as_dict() for r in results}}
    failing = [r.name for r in results if not r.ok]
    if failing:
        body["failing"] = failing
    return _code(results), body


def detail(results: Sequence[CheckResult], settings: Settings) -> tuple[int, dict[str, Any]]:
    """Checks decide the status; a failing exporter is reported but never makes the service
    unready (telemetry trouble must not take traffic away)."""
    code, body = ready(results)
    return code, {
        "status": body["status"],
        "service": _service(settings),
        "uptime_seconds": round(time.time() - _STARTED, 1),
        "checks": body["checks"],
        **({"failing": body["failing"]} if "failing" in body else {}),
        "telemetry": {"exporters": _exporters()},
    }
