"""Distro: whether another distro or configurator competes with ours."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from otel_distro.distro import ENTRY_POINT as OURS
from otel_distro.doctor._findings import OK, PROBLEM, WARNING, Finding, entry_points
from otel_distro.settings import Settings

__all__ = ["OURS", "distro_findings"]


def distro_findings(settings: Settings, entry_points: Callable[[str], Sequence[Any]] = entry_points) -> list[Finding]:
    """A second distro or configurator makes `opentelemetry-instrument` pick one at random."""
    found = []
    fix = f"export OTEL_PYTHON_DISTRO={OURS} OTEL_PYTHON_CONFIGURATOR={OURS}"
    for group, variable, chosen in (
        ("opentelemetry_distro", "OTEL_PYTHON_DISTRO", settings.python_distro),
        ("opentelemetry_configurator", "OTEL_PYTHON_CONFIGURATOR", settings.python_configurator),
    ):
        kind = group.split("_", 1)[1]
        names = {ep.name: ep.value for ep in entry_points(group)}
        others = sorted(f"{n} ({v})" for n, v in names.items() if n != OURS)
        if OURS not in names:
            found.append(
                Finding("distro", PROBLEM, f"otel-distro's {kind} is not installed here", "pip install otel-distro")
            )
        elif chosen and chosen not in names:
            found.append(Finding("distro", PROBLEM, f"{variable}={chosen} names no installed {kind}", fix))
        elif chosen and chosen != OURS:
            found.append(Finding("distro", WARNING, f"{variable}={chosen}: otel-distro's {kind} is not used", fix))
        elif others and chosen != OURS:
            found.append(Finding("distro", PROBLEM, f"another {kind} competes with ours: {', '.join(others)}", fix))
        else:
            found.append(Finding("distro", OK, f"otel-distro's {kind} is the one loaded"))
    return found
