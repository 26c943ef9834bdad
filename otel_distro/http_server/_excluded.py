"""Excluded URLs with contrib's semantics (one regular expression searched in the full URL),
compiled once and answered from a bounded cache, so a repeated URL costs one dict lookup."""

from __future__ import annotations

import logging
from collections.abc import Callable, Hashable

from opentelemetry.util.http import parse_excluded_urls

__all__ = ["ExcludedUrls"]

_MAX_CACHED = 2048
_log = logging.getLogger("otel_distro.http_server")


class ExcludedUrls:
    """`excluded(key, url)`: whether the URL is excluded; `key` identifies the URL cheaply."""

    def __init__(self, excluded_urls: str) -> None:
        self._list = parse_excluded_urls(excluded_urls)  # contrib's own parsing and regex
        self.active = bool(excluded_urls)
        self._cache: dict[Hashable, bool] = {}

    def excluded(self, key: Hashable, url: Callable[[], str]) -> bool:
        """`url` is only called on a cache miss (building it can cost more than the search)."""
        if not self.active:
            return False
        cached = self._cache.get(key)
        if cached is None:
            try:
                full_url = url()
            except Exception as error:  # a URL the framework cannot build must not fail the request
                _log.debug("Could not build the URL to match the excluded URLs: %r", error)
                return False
            cached = bool(self._list.url_disabled(full_url))
            if len(self._cache) >= _MAX_CACHED:  # unbounded paths (IDs in URLs): start over
                self._cache.clear()
            self._cache[key] = cached
        return cached
