"""What a failed check may tell the outside world: the exception type and a short,
scrubbed message. Health endpoints are usually unauthenticated, and connection errors love to
quote connection strings."""

from __future__ import annotations

from otel_distro.scrub import Scrubber

__all__ = ["MAX_MESSAGE", "describe"]

MAX_MESSAGE = 200


def error_type(err: BaseException) -> str:
    kind = type(err)
    return kind.__qualname__ if kind.__module__ == "builtins" else f"{kind.__module__}.{kind.__qualname__}"


def scrub_message(text: str, scrubber: Scrubber) -> str:
    text = scrubber.text(text)
    text = " ".join(text.split())  # one line
    return text if len(text) <= MAX_MESSAGE else text[: MAX_MESSAGE - 1] + "…"


def describe(err: BaseException, scrubber: Scrubber) -> tuple[str, str]:
    """`(type, message)` safe to return in a health response."""
    return error_type(err), scrub_message(str(err), scrubber)
