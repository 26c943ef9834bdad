"""The per-process objects built from settings and shared by the distro and configurator."""

from __future__ import annotations

import functools

from otel_distro.request_id import RequestIds
from otel_distro.request_log import RequestLog
from otel_distro.scrub import Scrubber
from otel_distro.settings import Settings

__all__ = ["request_ids", "scrubber"]


# Cached per settings (a frozen, hashable value): the distro's request hooks and the
# configurator's propagators must share one RequestIds, and one Scrubber per process keeps its
# key and text caches warm for every caller instead of recompiling and refilling them.
@functools.cache
def scrubber(settings: Settings) -> Scrubber | None:
    return Scrubber(settings.scrub_keys) if settings.scrub else None


@functools.cache
def request_ids(settings: Settings) -> RequestIds:
    log = RequestLog(settings.access_log == "distro", settings.slow_request_threshold, settings.access_log_export)
    return RequestIds(settings.request_id_header, settings.request_id_trust_inbound, on_response=log)
