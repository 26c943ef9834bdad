"""Configuration: every setting with its value and source, and the values the settings refused."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any
from urllib.parse import unquote

from otel_distro.doctor._findings import PROBLEM, WARNING, Finding
from otel_distro.settings import SettingProblem, Settings, setting_fields

__all__ = ["config_findings", "sampling_findings", "service_name", "settings_rows"]

MASK = "******"


def _mask_headers(raw: str) -> str:
    """Header names stay readable; values are hidden."""
    shown = []
    for part in raw.split(","):
        name, sep, _ = part.partition("=")
        shown.append(f"{unquote(name.strip())}={MASK}" if sep else MASK)  # no `=`: all of it may be secret
    return ",".join(shown)


def _shown(f: Any, value: Any) -> Any:
    if value is None:
        return None
    if f.metadata.get("secret"):
        return _mask_headers(value) if f.metadata["env"].endswith("_HEADERS") else MASK
    return list(value) if isinstance(value, tuple) else value


def settings_rows(settings: Settings) -> list[dict[str, Any]]:
    """Every setting, its value (secrets masked) and where it came from."""
    return [
        {
            "env": f.metadata["env"],
            "value": _shown(f, getattr(settings, f.name)),
            "source": settings.sources.get(f.name, "default"),
            "secret": bool(f.metadata.get("secret")),
        }
        for f in setting_fields()
    ]


def config_findings(problems: Sequence[SettingProblem], service_name: str | None) -> list[Finding]:
    """The values the settings refused (the ones the configurator warns about), and the service name."""
    found = []
    for problem in problems:
        found.append(
            Finding(
                "config",
                PROBLEM,
                f"{problem.variable}={problem.value} is not valid (expected {problem.expected}); "
                f"the default {problem.fallback} is used",
                f"set {problem.variable} to {problem.expected}, or unset it",
            )
        )
    if not service_name:
        found.append(
            Finding(
                "config",
                PROBLEM,
                "OTEL_SERVICE_NAME is not set: telemetry arrives as `unknown_service`",
                "export OTEL_SERVICE_NAME=<your service>",
            )
        )
    return found


# Samplers that record every request a caller does not ask to drop.
_ALWAYS = ("always_on", "parentbased_always_on")


def sampling_findings(settings: Settings) -> list[Finding]:
    """With HTTP metrics derived from spans, a head sampler that drops spans drops requests from them."""
    if settings.http_metrics != "collector" or (settings.traces_sampler or _ALWAYS[1]).lower() in _ALWAYS:
        return []
    return [
        Finding(
            "config",
            WARNING,
            f"OTEL_DISTRO_HTTP_METRICS=collector derives request metrics from spans, and "
            f"OTEL_TRACES_SAMPLER={settings.traces_sampler} drops some: those requests are not counted",
            "sample in the collector (tail sampling) and unset OTEL_TRACES_SAMPLER, or unset OTEL_DISTRO_HTTP_METRICS",
        )
    ]


def service_name(settings: Settings, environ: Mapping[str, str] | None) -> str | None:
    if settings.service_name or environ is not None:
        return settings.service_name
    # OTEL_RESOURCE_ATTRIBUTES may name the service too; the SDK reads it.
    from opentelemetry.sdk.resources import Resource

    name = str(Resource.create().attributes.get("service.name", ""))
    return None if name.startswith("unknown_service") else name
