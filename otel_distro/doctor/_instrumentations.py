"""Instrumentations (advice): libraries installed without their instrumentation, and
instrumentations that skip because their library is absent or of another version."""

from __future__ import annotations

from importlib import metadata

from otel_distro.doctor._findings import OK, WARNING, Finding, entry_points
from otel_distro.settings import Settings

__all__ = ["instrumentation_findings"]

# Libraries that bootstrap lists but that need no suggestion here.
_NOT_SUGGESTED = {
    "starlette": "covered by the FastAPI instrumentation",
    "structlog": "otel-distro correlates and exports structlog itself",
    "grpcio": "used by the gRPC exporter",
    "click": "command-line tooling",
    "pydantic": "listed for Tortoise ORM",
    "asgiref": "an ASGI helper",
}


def _installed_version(name: str) -> str | None:
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return None


def instrumentation_findings(settings: Settings) -> list[Finding]:
    # Imported here: about 30 ms that `otel-distro settings` and the other checks do without.
    from opentelemetry.instrumentation.bootstrap_gen import libraries
    from opentelemetry.instrumentation.dependencies import get_dist_dependency_conflicts
    from packaging.requirements import Requirement

    found = []
    for entry in libraries:
        library, instrumentation = Requirement(entry["library"]), Requirement(entry["instrumentation"])
        version = _installed_version(library.name)
        if version is None or library.name in _NOT_SUGGESTED or _installed_version(instrumentation.name):
            continue
        if library.specifier.contains(version, prereleases=True):
            found.append(
                Finding(
                    "instrumentations",
                    WARNING,
                    f"{library.name} {version} is installed but not instrumented",
                    f"pip install '{instrumentation}'",
                )
            )
    for ep in entry_points("opentelemetry_instrumentor"):
        if ep.name in settings.disabled_instrumentations or ep.dist is None:
            continue
        conflict = get_dist_dependency_conflicts(ep.dist)
        if conflict is not None:
            found.append(
                Finding(
                    "instrumentations",
                    WARNING,
                    f"{ep.dist.name} is installed but skipped: {conflict}",
                    f"install the library it instruments, or pip uninstall {ep.dist.name}",
                )
            )
    if settings.disabled_instrumentations:
        disabled = ", ".join(settings.disabled_instrumentations)
        found.append(Finding("instrumentations", OK, f"disabled by OTEL_PYTHON_DISABLED_INSTRUMENTATIONS: {disabled}"))
    if not any(f.level == WARNING for f in found):
        found.append(Finding("instrumentations", OK, "every instrumentable library found is instrumented"))
    return found
