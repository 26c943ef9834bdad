"""The resource every signal carries: who is emitting, from which process."""

from __future__ import annotations

import logging

from opentelemetry.sdk.resources import Resource

from otel_distro._version import __version__
from otel_distro.settings import Settings

__all__ = ["HTTP_METRICS_ATTRIBUTE", "build_resource"]

HTTP_METRICS_ATTRIBUTE = "otel_distro.http_metrics"

_log = logging.getLogger("otel_distro.resource")
_warned_no_service_name = False


def build_resource(settings: Settings) -> Resource:
    """Build the resource from settings and the SDK's detectors.

    `Resource.create` applies `OTEL_RESOURCE_ATTRIBUTES`/`OTEL_SERVICE_NAME` and the
    process/host/OS detectors; the SDK adds a `service.instance.id` per process and renews
    it (with the PID) after a fork, so every worker of a pre-fork server is its own instance.
    """
    attributes: dict[str, str] = {
        "telemetry.distro.name": "otel-distro",
        "telemetry.distro.version": __version__,
    }
    if settings.service_version:
        attributes["service.version"] = settings.service_version
    if settings.environment:
        attributes["deployment.environment.name"] = settings.environment
    if settings.http_metrics == "collector":
        # Tells the collector (collector/config.yaml, filter/http_metrics_from_spans) that this
        # process records no HTTP server metric, so it derives one from the server spans.
        attributes[HTTP_METRICS_ATTRIBUTE] = "collector"
    resource = Resource.create(attributes)
    _warn_if_unnamed(resource)
    return resource


def _warn_if_unnamed(resource: Resource) -> None:
    global _warned_no_service_name
    name = str(resource.attributes.get("service.name", ""))
    if name.startswith("unknown_service") and not _warned_no_service_name:
        _warned_no_service_name = True
        _log.warning(
            "otel-distro: OTEL_SERVICE_NAME is not set; telemetry is reported as %r. "
            "Set OTEL_SERVICE_NAME=<your service> to find it in dashboards.",
            name,
        )
