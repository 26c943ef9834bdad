"""Optional `/metrics` endpoint for Prometheus servers that scrape services directly.

Every process serves its own metrics on the first free port from
`OTEL_EXPORTER_PROMETHEUS_PORT` within `OTEL_DISTRO_PROMETHEUS_PORT_RANGE`; a pre-fork
worker does so again after the fork. Each worker is therefore its own scrape target
(its own `instance` label and `service_instance_id` on `target_info`), and no worker's
series overwrite another's.
"""

from __future__ import annotations

import logging
import os

from opentelemetry.sdk.metrics.export import MetricReader

from otel_distro.settings import Settings

__all__ = ["prometheus_reader", "serve_metrics"]

_log = logging.getLogger("otel_distro.prometheus")
_served_port: dict[int, int] = {}  # pid -> port


def serve_metrics(settings: Settings) -> int | None:
    """Start the HTTP endpoint for this process; returns the port, or None if none was free."""
    from prometheus_client import start_http_server

    pid = os.getpid()
    if pid in _served_port:
        return _served_port[pid]
    first = settings.prometheus_port
    last = min(first + settings.prometheus_port_range - 1, 65535)
    for port in range(first, last + 1):
        try:
            start_http_server(port, addr=settings.prometheus_host)
        except OSError:
            continue
        _served_port[pid] = port
        _log.info("otel-distro: serving Prometheus metrics on http://%s:%d/metrics", settings.prometheus_host, port)
        return port
    _log.warning(
        "otel-distro: no free port for /metrics in %d-%d on %s (process %d); its metrics cannot be "
        "scraped. Raise OTEL_DISTRO_PROMETHEUS_PORT_RANGE or use OTLP.",
        first,
        last,
        settings.prometheus_host,
        pid,
    )
    return None


def prometheus_reader(settings: Settings) -> MetricReader:
    from opentelemetry.exporter.prometheus import PrometheusMetricReader

    reader = PrometheusMetricReader()
    serve_metrics(settings)
    if hasattr(os, "register_at_fork"):
        os.register_at_fork(after_in_child=lambda: serve_metrics(settings))
    return reader
