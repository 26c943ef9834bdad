"""The registered checks: a name, a callable (sync or async) and an optional timeout."""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

__all__ = ["Check", "add_check", "registered", "remove_check"]


@dataclass(frozen=True)
class Check:
    name: str
    fn: Callable[[], Any]
    timeout: float | None  # seconds; None means OTEL_DISTRO_HEALTH_CHECK_TIMEOUT


_checks: dict[str, Check] = {}
_lock = threading.Lock()


def add_check(name: str, fn: Callable[[], Any], timeout: float | None = None) -> None:
    """Register a readiness check (a later one with the same name replaces it).

    `fn` takes no argument and may be a plain function or an `async def`. It fails by raising
    or by returning `False`; anything else passes. Checks run concurrently on every readiness
    probe, each bounded by `timeout` seconds.
    """
    if not name:
        raise ValueError("a health check needs a name")
    if not callable(fn):
        raise TypeError(f"health check {name!r} is not callable")
    if timeout is not None and timeout <= 0:
        raise ValueError(f"health check {name!r}: timeout must be positive")
    with _lock:
        _checks[name] = Check(name, fn, timeout)


def remove_check(name: str) -> None:
    """Unregister a check; unknown names are ignored."""
    with _lock:
        _checks.pop(name, None)


def registered() -> list[Check]:
    """The checks, in registration order."""
    with _lock:
        return list(_checks.values())
