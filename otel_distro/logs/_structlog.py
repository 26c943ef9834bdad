"""structlog support: IDs in every event, secrets scrubbed, events exported over OTLP and
written to the log file next to stdlib's lines.

Three processors, each a unit: :func:`add_ids`, :class:`ScrubSecrets` and
:class:`ExportEvents`. :func:`add_otel_context` (public) runs the three as `install` built them
from the settings; it is the one processor we put in structlog's chain.

structlog keeps its processor chain in a global configuration that the app usually sets
after we start. If the app never configures it, we give it our chain (same JSON/console
lines as stdlib). If it does, we add one processor just before the app's renderer, now and
on each later `structlog.configure`, so the app's own chain stays as written.
"""

from __future__ import annotations

import functools
import logging
import sys
from collections.abc import Callable, MutableMapping
from typing import Any

from opentelemetry.sdk._logs import LoggerProvider

from otel_distro.error_counter import ErrorCounter, route_of
from otel_distro.error_events import SUPPRESSED, ErrorEventLimit
from otel_distro.error_group import group_id
from otel_distro.logs._context import current_ids
from otel_distro.logs._event import EventBuilder, render_json
from otel_distro.logs._files import SharedRotatingFileHandler
from otel_distro.logs._otlp import Emitter
from otel_distro.scrub import Scrubber

_LEVELS = {"debug": 10, "info": 20, "warning": 30, "warn": 30, "error": 40, "exception": 40, "critical": 50}


# Left for the app's own renderer, which turns it into text; our events scrub that text.
_NOT_SCRUBBED = frozenset({"exc_info"})


def add_ids(logger: Any, method_name: str, event_dict: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
    """structlog processor: the current `trace_id`, `span_id` and `request_id` (values the event
    already has are kept); nothing outside a span."""
    trace_id, span_id, request_id = current_ids()
    if trace_id:
        event_dict.setdefault("trace_id", trace_id)
        event_dict.setdefault("span_id", span_id)
    if request_id:
        event_dict.setdefault("request_id", request_id)
    return event_dict


class ScrubSecrets:
    """structlog processor: sensitive values of the event replaced, before anything renders it."""

    def __init__(self, scrubber: Scrubber) -> None:
        self._scrubber = scrubber

    def __call__(self, logger: Any, method_name: str, event_dict: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
        for key, item in list(event_dict.items()):
            if not key.startswith("_") and key not in _NOT_SCRUBBED:
                event_dict[key] = self._scrubber.value(key, item)
        return event_dict


class ExportEvents:
    """structlog processor: an event of a structlog (not stdlib) logger counted in `app.errors`
    when it carries an exception, dropped past its error group's limit, and otherwise exported
    over OTLP and written to the log file at or above `level`.

    Events whose logger is a stdlib logger reach the counter, the limit, OTLP and the file through
    stdlib's handlers instead, so nothing is counted, sent or written twice.
    """

    def __init__(
        self,
        builder: EventBuilder,
        emitter: Emitter | None = None,
        file: SharedRotatingFileHandler | None = None,
        level: int = logging.INFO,
        errors: ErrorCounter | None = None,
        limit: ErrorEventLimit | None = None,
    ) -> None:
        self._builder, self._emitter, self._file = builder, emitter, file
        self._level, self._errors, self._limit = level, errors, limit

    def __call__(self, logger: Any, method_name: str, event_dict: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
        if isinstance(logger, logging.Logger):
            return event_dict
        level = _LEVELS.get(method_name, 20)
        # Only ERROR events are looked at for an exception: nothing to count or limit below.
        exc = _exception(event_dict) if level >= logging.ERROR else None
        if exc is not None and self._errors is not None:
            self._errors.count_once(exc, route_of(event_dict))
        if exc is not None and self._limit is not None:
            _limit(self._limit, exc, event_dict)
        # The event is built (most of the cost) only when an output takes it.
        if level >= self._level and (self._emitter is not None or self._file is not None):
            event = self._builder.from_structlog(method_name, event_dict, getattr(logger, "name", None))
            if self._emitter is not None:
                self._emitter.emit(event["logger"], event, None)
            if self._file is not None:
                self._file.write_line(render_json(event))
        return event_dict


class _Installed:
    """The units `install` built from the settings; `add_otel_context` runs them."""

    scrub: ScrubSecrets | None = None
    export: ExportEvents | None = None


def add_otel_context(logger: Any, method_name: str, event_dict: MutableMapping[str, Any]) -> Any:
    """structlog processor: :func:`add_ids`, then :class:`ScrubSecrets`, then :class:`ExportEvents`,
    as `install_logging` configured them (IDs only before it ran)."""
    event_dict = add_ids(logger, method_name, event_dict)
    scrub, export = _Installed.scrub, _Installed.export
    if scrub is not None:
        event_dict = scrub(logger, method_name, event_dict)
    if export is not None:
        event_dict = export(logger, method_name, event_dict)
    return event_dict


def _exception(event_dict: MutableMapping[str, Any]) -> BaseException | None:
    exc_info = event_dict.get("exc_info")
    if exc_info is True:
        exc_info = sys.exc_info()
    exc = exc_info[1] if isinstance(exc_info, tuple) else exc_info
    return exc if isinstance(exc, BaseException) else None


def _limit(limit: ErrorEventLimit, exc: BaseException, event_dict: MutableMapping[str, Any]) -> None:
    """Drop the event (stdout, file and OTLP alike) past its group's limit, after it was counted."""
    import structlog

    suppressed = limit.admit(group_id(exc))
    if suppressed is None:
        raise structlog.DropEvent
    if suppressed:
        event_dict[SUPPRESSED] = suppressed


def _renderer(builder: EventBuilder, render: Callable[[Any], str]) -> Callable[..., str]:
    def render_event(logger: Any, method_name: str, event_dict: MutableMapping[str, Any]) -> str:
        return render(builder.from_structlog(method_name, event_dict, getattr(logger, "name", None)))

    return render_event


def _named_print_logger(*args: Any) -> Any:
    """structlog's PrintLogger, remembering the name given to `get_logger(name)`."""
    import structlog

    logger = structlog.PrintLogger(sys.stdout)
    logger.name = str(args[0]) if args else "structlog"
    return logger


def _with_ours(processors: list[Any]) -> list[Any]:
    chain = [p for p in processors if p is not add_otel_context]
    # The last processor renders (or hands over to stdlib); we go right before it.
    chain.insert(max(len(chain) - 1, 0), add_otel_context)
    return chain


def install(
    provider: LoggerProvider | None,
    builder: EventBuilder,
    scrubber: Scrubber | None,
    level: int,
    render: Callable[[Any], str] | None,
    file: SharedRotatingFileHandler | None = None,
    errors: ErrorCounter | None = None,
    limit: ErrorEventLimit | None = None,
) -> bool:
    """Hook into structlog if it is installed; returns whether it was."""
    try:
        import structlog
    except ImportError:
        return False
    _Installed.scrub = ScrubSecrets(scrubber) if scrubber is not None else None
    emitter = Emitter(provider) if provider is not None else None
    _Installed.export = ExportEvents(builder, emitter, file, level, errors, limit)
    if render is not None and not structlog.is_configured():
        structlog.configure(
            processors=[
                structlog.contextvars.merge_contextvars,
                structlog.processors.StackInfoRenderer(),
                structlog.dev.set_exc_info,
                add_otel_context,
                _renderer(builder, render),
            ],
            logger_factory=_named_print_logger,
        )
    else:
        structlog.configure(processors=_with_ours(list(structlog.get_config()["processors"])))
    if not getattr(structlog.configure, "_otel_distro", False):
        original = structlog.configure

        @functools.wraps(original)
        def configure(*args: Any, **kwargs: Any) -> None:
            if kwargs.get("processors") is not None:
                kwargs["processors"] = _with_ours(list(kwargs["processors"]))
            original(*args, **kwargs)

        configure._otel_distro = True  # type: ignore[attr-defined]
        structlog.configure = configure
    return True
