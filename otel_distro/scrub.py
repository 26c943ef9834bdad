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
# Longer text is cut (head and tail kept) before it is searched: scrubbing time stays bounded per value.
MAX_TEXT = 32 * 1024
# Containers nested deeper than this are replaced whole: nothing below them is looked at or sent.
MAX_DEPTH = 8
TOO_DEEP = "[REDACTED: nested too deep]"
# Every pattern below is linear: no nested or overlapping repeats, and a word run is consumed once
# (the lookahead-and-backreference pair is an atomic group Python 3.10 can express).
# The rest of a key after a key fragment, then the separator if one follows: `_token"`, `: `.
_KEY_REST = r"""(?=(?P<rest>[\w.-]*))(?P=rest)(?P<sep>["']?[ \t]{0,16}[=:][ \t]{0,16})?"""
# The value after a separator: a scheme and its credentials, a quoted string (its closing quote
# optional: an unclosed one hides the rest of the line), or one token.
_VALUE = r"""(?i:bearer|basic)[ \t]+[^\s,;&"'}]+|"[^"\n]*"?|'[^'\n]*'?|[^\s,;&"'}]+"""
# `scheme://user:password@host`: connection strings quoted in errors and log messages.
_URL_USERINFO = r"(?i)(?<![a-z0-9+.-])([a-z][a-z0-9+.-]{0,31}://)[^\s/@]+@"
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


def _clip(text: str) -> str:
    """At most `MAX_TEXT` characters: the head and the tail, each cut at whitespace so that no
    token (a secret among them) is split into a visible part and a part the scan cannot place."""
    half = MAX_TEXT // 2
    head, tail = text[:half], text[-half:]
    window = head[-512:]
    at = max(window.rfind(" "), window.rfind("\n"), window.rfind("\t"))
    head = head[: len(head) - len(window) + max(at, 0)]
    window = tail[:512]
    found = [i for i in (window.find(" "), window.find("\n"), window.find("\t")) if i >= 0]
    tail = tail[min(found) + 1 :] if found else tail[512:]
    return f"{head}\n...[{len(text) - len(head) - len(tail)} characters cut]...\n{tail}"


def _as_text(value: Any) -> str:
    if isinstance(value, (bytes, bytearray)):
        return bytes(value).decode("utf-8", "replace")
    try:
        return str(value)
    except Exception:  # an app object whose __str__ fails must not fail the log line
        return f"<{type(value).__name__} object>"


class _TextPatterns(NamedTuple):
    """What `Scrubber.text()` searches free text with."""

    fragment: re.Pattern[str]
    key_rest: re.Pattern[str]
    value: re.Pattern[str]
    bearer: re.Pattern[str]
    url_userinfo: re.Pattern[str]
    card_hint: re.Pattern[str]
    card: re.Pattern[str]


class Scrubber:
    """Scrubs mappings and free text; built once from the key fragments."""

    def __init__(self, extra_keys: Iterable[str] = ()) -> None:
        self._extra = tuple(k.lower() for k in extra_keys if k)
        self._hints = _KEY_HINTS + self._extra
        self._key_cache: dict[str, bool] = {}
        # Scrubbed text by input: span attributes and log fields repeat from request to request.
        self._text_cache: dict[str, str] = {}
        self._fragments = "|".join((*DEFAULT_KEYS, *(re.escape(k) for k in self._extra)))
        self._key = re.compile(f"(?i)(?:{self._fragments})")
        # Compiled on first use: a few milliseconds of start-up otherwise.
        self._patterns: _TextPatterns | None = None

    def _text_patterns(self) -> _TextPatterns:
        # Two threads may both compile: harmless, they build equal patterns.
        self._patterns = patterns = _TextPatterns(
            # Searched in the lowered text: several times faster than the case-insensitive `_key`.
            fragment=re.compile(f"(?:{self._fragments})"),
            key_rest=re.compile(_KEY_REST),
            value=re.compile(_VALUE),
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
            if len(self._key_cache) < 4096 and len(key) <= _CACHED_TEXT_LENGTH:  # keys repeat; bound the cache
                self._key_cache[key] = known
        return known

    def text(self, value: str) -> str:
        """Hide values of visible key=value pairs, bearer tokens, URL credentials and card numbers.

        Linear in the length of the text, which is first cut to `MAX_TEXT` characters.
        """
        if not value:
            return value
        cached = self._text_cache.get(value)
        if cached is not None:
            return cached
        patterns = self._patterns or self._text_patterns()
        scrubbed = value if len(value) <= MAX_TEXT else _clip(value)
        # Cheap pre-checks first: most log messages contain no secret at all.
        # `in` on the lowered text: several times faster than one case-insensitive alternation.
        lowered = scrubbed.lower()
        if any(hint in lowered for hint in self._hints):
            scrubbed = self._hide_pairs(scrubbed, lowered, patterns)
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

    def _hide_pairs(self, text: str, lowered: str, patterns: _TextPatterns) -> str:
        """`key=value`, `key: value`, `"key": "value"` with a sensitive key: keep the key, hide the value.

        A scan from key fragment to key fragment; each part of the text is read a bounded number
        of times, whatever it holds (a single backtracking pattern took seconds on 16 KiB).
        """
        key_rest, value_at = patterns.key_rest.match, patterns.value.match
        # Positions in the lowered text are the original's unless lowering changed the length (rare).
        fragment, haystack = (
            (patterns.fragment.search, lowered) if len(lowered) == len(text) else (self._key.search, text)
        )
        parts: list[str] = []
        copied = position = 0
        while (found := fragment(haystack, position)) is not None:
            rest = key_rest(text, found.end())
            assert rest is not None  # every group in it may be empty
            position = rest.end()
            if rest.group("sep") is None:
                continue  # not a key (no separator after this word): the whole word is skipped
            value = value_at(text, position)
            if value is None:
                continue
            parts += (text[copied:position], REDACTED)
            copied = position = value.end()
        if not parts:
            return text
        parts.append(text[copied:])
        return "".join(parts)

    def value(self, key: str, value: Any) -> Any:
        """The value as it may leave the process under this key."""
        if self.is_sensitive(key):
            return REDACTED
        return self._any(value, 0)

    def _any(self, value: Any, depth: int) -> Any:
        """Strings scrubbed, containers of any shape walked (to `MAX_DEPTH`), other objects as scrubbed text."""
        kind = type(value)
        if kind is str:
            return self.text(value)
        if kind is int or kind is float or kind is bool or value is None:
            return value
        if depth >= MAX_DEPTH:
            return TOO_DEEP
        if isinstance(value, Mapping):
            return self.mapping(value, depth + 1)
        if isinstance(value, (list, tuple, set, frozenset)):
            items = [self._any(item, depth + 1) for item in value]
            return tuple(items) if isinstance(value, tuple) else items
        if isinstance(value, (int, float)):  # bool, IntEnum and other subclasses: no text to hide
            return value
        return self.text(_as_text(value))

    def mapping(self, data: Mapping[Any, Any], depth: int = 0) -> dict[Any, Any]:
        # `value()` for each item, with the common cases inlined: this runs for every span and log event.
        is_sensitive, text = self.is_sensitive, self.text
        scrubbed: dict[Any, Any] = {}
        for key, value in data.items():
            kind = type(value)
            if is_sensitive(key if type(key) is str else str(key)):
                scrubbed[key] = REDACTED
            elif kind is str:
                scrubbed[key] = text(value)
            elif kind is int or kind is float or kind is bool or value is None:
                scrubbed[key] = value
            else:
                scrubbed[key] = self._any(value, depth)
        return scrubbed
