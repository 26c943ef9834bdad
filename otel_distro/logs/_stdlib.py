"""Attach our handler to the root logger once, and keep it there whatever the app does.

`logging.basicConfig` does nothing when the root logger already has a handler, and
`dictConfig` drops root handlers it did not create. Because the distro starts before the
app, both would otherwise break: the app's own console set-up silently vanishes, or our
export stops. We wrap the three stdlib entry points so that the app's configuration is
applied as if we were not there, then put our handler back.
"""

from __future__ import annotations

import functools
import logging
import logging.config
import sys
from collections.abc import Callable
from typing import Any, TypeVar

_F = TypeVar("_F", bound=Callable[..., Any])


class ConsoleFallback(logging.StreamHandler):  # type: ignore[type-arg]
    """Stands in for `logging.lastResort` (WARNING and above to stderr) when the app has no
    handlers, which our own handler on the root logger would otherwise silence."""

    def __init__(self) -> None:
        super().__init__(sys.stderr)
        self.setLevel(logging.WARNING)

    def emit(self, record: logging.LogRecord) -> None:
        # Like lastResort, speak only when no handler of the app's saw the record.
        if not _app_handled(record):
            super().emit(record)


def _app_handled(record: logging.LogRecord) -> bool:
    logger: logging.Logger | None = logging.getLogger(record.name)
    while logger is not None:
        if any(h not in _ours for h in logger.handlers):
            return True
        logger = logger.parent if logger.propagate else None
    return False


_ours: list[logging.Handler] = []


def ours() -> tuple[logging.Handler, ...]:
    return tuple(_ours)


def attach(handler: logging.Handler, level: int) -> None:
    """Add `handler` to the root logger (once per handler class) and open the level to it."""
    root = logging.getLogger()
    if not root.handlers:
        _add(ConsoleFallback())
    if any(type(h) is type(handler) for h in _ours):
        return
    _add(handler)
    # Root defaults to WARNING; records below the logger level never reach any handler.
    if root.level == logging.WARNING and level < logging.WARNING:
        root.setLevel(level)
    _guard_config_functions()


def _add(handler: logging.Handler) -> None:
    _ours.append(handler)
    logging.getLogger().addHandler(handler)


def _reattach() -> None:
    root = logging.getLogger()
    app_has_handlers = any(h not in _ours for h in root.handlers)
    for handler in list(_ours):
        if isinstance(handler, ConsoleFallback) and app_has_handlers:
            _ours.remove(handler)
            root.removeHandler(handler)
        elif handler not in root.handlers:
            root.addHandler(handler)


def _wrap(function: _F, before: Callable[[], None]) -> _F:
    if getattr(function, "_otel_distro", False):
        return function

    @functools.wraps(function)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        before()
        try:
            return function(*args, **kwargs)
        finally:
            _reattach()

    wrapper._otel_distro = True  # type: ignore[attr-defined]
    return wrapper  # type: ignore[return-value]


def _detach_for_basic_config() -> None:
    # basicConfig must see a root logger without our handlers to do its job.
    root = logging.getLogger()
    for handler in _ours:
        root.removeHandler(handler)


def _nothing() -> None:
    return None


def _guard_config_functions() -> None:
    logging.basicConfig = _wrap(logging.basicConfig, _detach_for_basic_config)
    logging.config.dictConfig = _wrap(logging.config.dictConfig, _nothing)
    logging.config.fileConfig = _wrap(logging.config.fileConfig, _nothing)
