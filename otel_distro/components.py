"""The per-process objects built from settings and shared by the distro and configurator."""

from __future__ import annotations

import functools

from otel_distro.request_id import RequestIds
from otel_distro.request_log import RequestLog
from otel_distro.scrub import Scrubber
from otel_distro.settings import get_settings

__all__ = ["request_ids", "scrubber"]


@functools.cache
def scrubber() -> Scrubber | None:
    settings = get_settings()
    return Scrubber(settings.scrub_keys) if settings.scrub else None


@functools.cache
def request_ids() -> RequestIds:
    settings = get_settings()
    log = RequestLog(settings.access_log == "distro", settings.slow_request_threshold, settings.access_log_export)
    return RequestIds(settings.request_id_header, settings.request_id_trust_inbound, on_response=log)
