"""structlog support: IDs in every event, secrets scrubbed, events exported over OTLP and
written to the log file next to stdlib's lines.

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


class _State:
    errors: ErrorCounter | None = None
    limit: ErrorEventLimit | None = None
    emitter: Emitter | None = None
    builder: EventBuilder | None = None
    scrubber: Scrubber | None = None
    level = logging.INFO
    file: SharedRotatingFileHandler | None = None


# Left for the app's own renderer, which turns it into text; our events scrub that text.
_NOT_SCRUBBED = frozenset({"exc_info"})


def add_otel_context(logger: Any, method_name: str, event_dict: MutableMapping[str, Any]) -> Any:
    """structlog processor: add `trace_id`, `span_id`, `request_id`, scrub, then export and write
    the event to the log file.

    Events whose logger is a stdlib logger reach the OTLP and file handlers through stdlib
    instead, so nothing is sent or written twice.
    """
    _add_ids(event_dict)
    if _State.scrubber is not None:
        _scrub(_State.scrubber, event_dict)
    if not isinstance(logger, logging.Logger):
        level = _LEVELS.get(method_name, 20)
        exc = _exception(event_dict) if level >= logging.ERROR else None
        if exc is not None and _State.errors is not None:
            _State.errors.count_once(exc, route_of(event_dict))
        if exc is not None and _State.limit is not None:
            _limit(_State.limit, exc, event_dict)
        if level >= _State.level:
            _export(logger, method_name, event_dict)
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


def _add_ids(event_dict: MutableMapping[str, Any]) -> None:
    trace_id, span_id, request_id = current_ids()
    if trace_id:
        event_dict.setdefault("trace_id", trace_id)
        event_dict.setdefault("span_id", span_id)
    if request_id:
        event_dict.setdefault("request_id", request_id)


def _scrub(scrubber: Scrubber, event_dict: MutableMapping[str, Any]) -> None:
    for key, value in list(event_dict.items()):
        if not key.startswith("_") and key not in _NOT_SCRUBBED:
            event_dict[key] = scrubber.value(key, value)


def _export(logger: Any, method_name: str, event_dict: MutableMapping[str, Any]) -> None:
    builder, emitter, file = _State.builder, _State.emitter, _State.file
    if builder is None or (emitter is None and file is None):
        return
    event = builder.from_structlog(method_name, event_dict, getattr(logger, "name", None))
    if emitter is not None:
        emitter.emit(event["logger"], event, None)
    if file is not None:
        file.write_line(render_json(event))


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
    _State.emitter = Emitter(provider) if provider is not None else None
    _State.builder, _State.scrubber, _State.level, _State.file = builder, scrubber, level, file
    _State.errors, _State.limit = errors, limit
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
