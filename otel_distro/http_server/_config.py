"""What every instrumented app shares: the request-ID hooks, excluded URLs and providers."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from otel_distro.http_server._excluded import ExcludedUrls
from otel_distro.request_id import RequestIds

__all__ = ["Config"]


@dataclass(frozen=True)
class Config:
    request_ids: RequestIds | None
    excluded: ExcludedUrls
    tracer_provider: Any = None  # None: the global providers, resolved when an app is created
    meter_provider: Any = None
