"""Attach our handlers to the root logger once, and keep them there whatever the app does.

`logging.basicConfig` does nothing when the root logger already has a handler, and
`dictConfig` drops root handlers it did not create. Because the distro starts before the
app, both would otherwise break: the app's own console set-up silently vanishes, or our
export stops. We wrap the three stdlib entry points so that the app's configuration is
applied as if we were not there, then re-apply our part.
"""

from __future__ import annotations

import functools
import logging
import logging.config
from collections.abc import Callable, Iterable
from typing import IO, Any, ClassVar, TypeVar

_F = TypeVar("_F", bound=Callable[..., Any])


class ConsoleHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """Prints only records that no handler of the app printed, so no line appears twice.

    With our JSON/console formatter it is the distro's stdout output; with WARNING and a
    bare formatter it stands in for `logging.lastResort`, which our root handler would
    otherwise silence.
    """

    def __init__(self, stream: IO[str], level: int, formatter: logging.Formatter) -> None:
        super().__init__(stream)
        self.setLevel(level)
        self.setFormatter(formatter)

    def handle(self, record: logging.LogRecord) -> bool:
        # Decided before the handler lock is taken: most records were printed by the app.
        if _app_handled(record):
            return False
        return super().handle(record)


class _Policy:
    ours: ClassVar[list[logging.Handler]] = []
    app_formatter: ClassVar[logging.Formatter | None] = None  # set on the app's console handlers
    app_filter: ClassVar[logging.Filter | None] = None  # with it, since they print our lines then
    silenced: ClassVar[tuple[str, ...]] = ()  # loggers whose lines ours replace


def _app_handled(record: logging.LogRecord) -> bool:
    logger: logging.Logger | None = logging.getLogger(record.name)
    while logger is not None:
        if any(h not in _Policy.ours for h in logger.handlers):
            return True
        logger = logger.parent if logger.propagate else None
    return False


def attach(
    handlers: Iterable[logging.Handler],
    level: int,
    app_formatter: logging.Formatter | None = None,
    app_filter: logging.Filter | None = None,
    silenced: tuple[str, ...] = (),
) -> list[logging.Handler]:
    """Add our handlers to the root logger (once per handler class) and open the level.

    Returns the handlers in use: those of an earlier call where one of the same class was attached.
    """
    root = logging.getLogger()
    for handler in handlers:
        if not any(type(h) is type(handler) for h in _Policy.ours):
            _Policy.ours.append(handler)
            root.addHandler(handler)
    _Policy.app_formatter = app_formatter
    _Policy.app_filter = app_filter if app_formatter is not None else None
    _Policy.silenced = silenced
    # Root defaults to WARNING; records below the logger level never reach any handler.
    if root.level == logging.WARNING and level < logging.WARNING:
        root.setLevel(level)
    _reapply()
    _guard_config_functions()
    return list(_Policy.ours)


def _reapply() -> None:
    root = logging.getLogger()
    for handler in _Policy.ours:
        if handler not in root.handlers:
            root.addHandler(handler)
    if _Policy.app_formatter is not None:
        for handler in root.handlers:
            if handler not in _Policy.ours and type(handler) is logging.StreamHandler:
                handler.setFormatter(_Policy.app_formatter)
                if _Policy.app_filter is not None:
                    handler.addFilter(_Policy.app_filter)
    for name in _Policy.silenced:
        logging.getLogger(name).disabled = True


def _wrap(function: _F, before: Callable[[], None]) -> _F:
    if getattr(function, "_otel_distro", False):
        return function

    @functools.wraps(function)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        before()
        try:
            return function(*args, **kwargs)
        finally:
            _reapply()

    wrapper._otel_distro = True  # type: ignore[attr-defined]
    return wrapper  # type: ignore[return-value]


def _detach_for_basic_config() -> None:
    # basicConfig must see a root logger without our handlers to do its job.
    root = logging.getLogger()
    for handler in _Policy.ours:
        root.removeHandler(handler)


def _nothing() -> None:
    return None


def _guard_config_functions() -> None:
    logging.basicConfig = _wrap(logging.basicConfig, _detach_for_basic_config)
    logging.config.dictConfig = _wrap(logging.config.dictConfig, _nothing)
    logging.config.fileConfig = _wrap(logging.config.fileConfig, _nothing)
