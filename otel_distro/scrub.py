"""Secret scrubbing: replace sensitive values, keep their keys so readers see what was removed.

Applied to log fields and messages (stdout and OTLP) and to span attributes before export.
The collector's redaction/transform processors are the second line of defence.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import Any, NamedTuple

__all__ = ["DEFAULT_KEYS", "REDACTED", "Scrubber"]

REDACTED = "[REDACTED]"

# Key fragments matched case-insensitively anywhere in a key (`X-Api-Key`, `user_password`).
DEFAULT_KEYS: tuple[str, ...] = (
    "password",
    "passwd",
    "pwd",
    "secret",
    "token",
    "api[-_.]?key",
    "access[-_.]?key",
    "private[-_.]?key",
    "authorization",
    "auth[-_.]?token",
    "cookie",
    "session",
    "csrf",
    "xsrf",
    "credential",
    "credit[-_.]?card",
    "card[-_.]?number",
    "cvv",
    "cvc",
    "ssn",
    "jwt",
    "bearer",
    "signature",
)

# The free-text patterns are compiled on a Scrubber's first `text()` (see `_TextPatterns`), not at import.
# 13-19 digits, optionally grouped by spaces or dashes: candidate card numbers (Luhn-checked).
_CARD = r"\b(?:\d[ -]?){12,18}\d\b"
# Cheap hints checked before the full patterns: most text contains no secret at all.
_CARD_HINT = r"\d{4}[ -]?\d{4}[ -]?\d{4}"
_KEY_HINTS = (
    "pass",
    "pwd",
    "secret",
    "token",
    "key",
    "auth",
    "cookie",
    "session",
    "csrf",
    "xsrf",
    "credential",
    "card",
    "cvv",
    "cvc",
    "ssn",
    "jwt",
    "bearer",
    "basic",
    "signature",
)
_TEXT_CACHE_SIZE = 4096
_CACHED_TEXT_LENGTH = 256
# `scheme://user:password@host`: connection strings quoted in errors and log messages.
_URL_USERINFO = r"(?i)\b([a-z][a-z0-9+.-]*://)[^\s/@]+@"
_BEARER = r"(?i)\b(bearer|basic)\s+[A-Za-z0-9._~+/=-]{8,}"


def _luhn(digits: str) -> bool:
    total = 0
    for i, ch in enumerate(reversed(digits)):
        n = int(ch)
        if i % 2:
            n = n * 2 - 9 if n > 4 else n * 2
        total += n
    return total % 10 == 0


def _mask_card(match: re.Match[str]) -> str:
    digits = re.sub(r"\D", "", match.group(0))
    return REDACTED if 13 <= len(digits) <= 19 and _luhn(digits) else match.group(0)


class _TextPatterns(NamedTuple):
    """What `Scrubber.text()` searches free text with."""

    hint: re.Pattern[str]
    pair: re.Pattern[str]
    bearer: re.Pattern[str]
    url_userinfo: re.Pattern[str]
    card_hint: re.Pattern[str]
    card: re.Pattern[str]


class Scrubber:
    """Scrubs mappings and free text; built once from the key fragments."""

    def __init__(self, extra_keys: Iterable[str] = ()) -> None:
        self._extra = tuple(k.lower() for k in extra_keys if k)
        self._key_cache: dict[str, bool] = {}
        # Scrubbed text by input: span attributes and log fields repeat from request to request.
        self._text_cache: dict[str, str] = {}
        self._fragments = "|".join((*DEFAULT_KEYS, *(re.escape(k) for k in self._extra)))
        self._key = re.compile(f"(?i)(?:{self._fragments})")
        # Compiled on first use: a few milliseconds of start-up otherwise.
        self._patterns: _TextPatterns | None = None

    def _text_patterns(self) -> _TextPatterns:
        # Two threads may both compile: harmless, they build equal patterns.
        fragments = self._fragments
        self._patterns = patterns = _TextPatterns(
            # One case-insensitive search instead of lowering the text and testing each hint.
            hint=re.compile("|".join(re.escape(h) for h in _KEY_HINTS + self._extra), re.IGNORECASE),
            # key=value, key: value, "key": "value" inside text: keep the key, hide the value.
            pair=re.compile(
                rf"""(?ix)
                (?P<key>["']?[\w.-]*(?:{fragments})[\w.-]*["']?\s*[=:]\s*)
                (?P<value>(?:bearer|basic)\s+[^\s,;&"'}}]+|"[^"]*"|'[^']*'|[^\s,;&"'}}]+)
                """
            ),
            bearer=re.compile(_BEARER),
            url_userinfo=re.compile(_URL_USERINFO),
            card_hint=re.compile(_CARD_HINT),
            card=re.compile(_CARD),
        )
        return patterns

    def is_sensitive(self, key: str) -> bool:
        known = self._key_cache.get(key)
        if known is None:
            known = self._key.search(key) is not None
            if len(self._key_cache) < 4096:  # keys repeat; bound the cache anyway
                self._key_cache[key] = known
        return known

    def text(self, value: str) -> str:
        """Hide values of visible key=value pairs, bearer tokens, URL credentials and card numbers."""
        if not value:
            return value
        cached = self._text_cache.get(value)
        if cached is not None:
            return cached
        patterns = self._patterns or self._text_patterns()
        scrubbed = value
        # Cheap pre-checks first: most log messages contain no secret at all.
        if patterns.hint.search(scrubbed) is not None:
            scrubbed = patterns.pair.sub(lambda m: m.group("key") + REDACTED, scrubbed)
            scrubbed = patterns.bearer.sub(lambda m: m.group(1) + " " + REDACTED, scrubbed)
        if "://" in scrubbed and "@" in scrubbed:
            scrubbed = patterns.url_userinfo.sub(lambda m: m.group(1) + REDACTED + "@", scrubbed)
        if patterns.card_hint.search(scrubbed):
            scrubbed = patterns.card.sub(_mask_card, scrubbed)
        if len(value) <= _CACHED_TEXT_LENGTH:
            if len(self._text_cache) >= _TEXT_CACHE_SIZE:
                self._text_cache.clear()
            self._text_cache[value] = scrubbed
        return scrubbed

    def value(self, key: str, value: Any) -> Any:
        if self.is_sensitive(key):
            return REDACTED
        if isinstance(value, str):
            return self.text(value)
        if isinstance(value, Mapping):
            return self.mapping(value)
        if isinstance(value, (list, tuple)):
            return type(value)(self.text(v) if isinstance(v, str) else v for v in value)
        return value

    def mapping(self, data: Mapping[str, Any]) -> dict[str, Any]:
        # `value()` for each item, with the common cases inlined: this runs for every span and log event.
        is_sensitive, text = self.is_sensitive, self.text
        scrubbed: dict[str, Any] = {}
        for key, value in data.items():
            kind = type(value)
            if is_sensitive(key if type(key) is str else str(key)):
                scrubbed[key] = REDACTED
            elif kind is str:
                scrubbed[key] = text(value)
            elif kind is int or kind is float or kind is bool or value is None:
                scrubbed[key] = value
            else:
                scrubbed[key] = self.value(str(key), value)
        return scrubbed
