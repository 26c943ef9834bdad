"""The error group ID: one short, stable name for "the same error at the same place".

`group_id(exc)` is the first 16 hex digits of a SHA-256 over, for the exception and each
exception chained to it (`raise ... from`, or raised while handling another), its type's
qualified name (`module.QualName`) and the application frames of its traceback as
`module:function` (the code's qualified name). What is left out, so that the group does not
move when nothing about the bug changed:

- the message (it often carries IDs, amounts, user input);
- line numbers (an edit elsewhere in the file shifts them);
- frames of installed packages (site-packages), of the standard library and of otel-distro
  itself: the framework's call stack differs between servers, versions and call paths, the
  application's code is what names the bug. When no frame is the application's, all frames count.

Of the application's frames only the innermost counts (the function that raised, or that
called into the library that raised): the same bug reached from two routes is one group,
the same exception type raised in two functions is two.

The ID is cached per code object (module and function names, whether it is the
application's) and on the exception itself, so the span event, the ERROR log line and the
counter of one exception compute it once.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import sysconfig
from types import CodeType, TracebackType

__all__ = ["ATTRIBUTE", "group_id"]

ATTRIBUTE = "error.group.id"
"""The attribute carrying the group on exception span events and ERROR log records."""

# Innermost application frames naming the group: more would split one bug by its callers.
_APP_FRAMES_KEPT = 1
_CHAIN_DEPTH = 5
_CACHED_CODES = 4096
_ON_EXCEPTION = "__otel_error_group__"


def _library_roots() -> tuple[str, ...]:
    paths = sysconfig.get_paths()
    roots = {paths[key] for key in ("stdlib", "platstdlib", "purelib", "platlib") if key in paths}
    roots.add(os.path.dirname(os.path.abspath(__file__)))  # otel-distro's own frames
    return tuple(os.path.join(os.path.abspath(root), "") for root in roots)


_LIBRARY_ROOTS = _library_roots()
# code object -> ("module:qualname", is the application's)
_frames: dict[CodeType, tuple[str, bool]] = {}


def _frame_name(code: CodeType, module: str) -> tuple[str, bool]:
    known = _frames.get(code)
    if known is None:
        filename = code.co_filename
        app = not (
            filename.startswith("<frozen")
            or "site-packages" in filename
            or "dist-packages" in filename
            or os.path.abspath(filename).startswith(_LIBRARY_ROOTS)
        )
        known = (f"{module}:{getattr(code, 'co_qualname', code.co_name)}", app)
        if len(_frames) >= _CACHED_CODES:
            _frames.clear()
        _frames[code] = known
    return known


def _frames_of(tb: TracebackType | None) -> list[str]:
    """The frames naming the exception, innermost last."""
    every: list[str] = []
    app: list[str] = []
    while tb is not None:
        frame = tb.tb_frame
        name, is_app = _frame_name(frame.f_code, str(frame.f_globals.get("__name__", "?")))
        every.append(name)
        if is_app:
            app.append(name)
        tb = tb.tb_next
    return app[-_APP_FRAMES_KEPT:] if app else every


def _chain(exc: BaseException) -> list[BaseException]:
    chain: list[BaseException] = []
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen and len(chain) < _CHAIN_DEPTH:
        chain.append(current)
        seen.add(id(current))
        cause = current.__cause__
        current = cause if cause is not None or current.__suppress_context__ else current.__context__
    return chain


def group_id(exc: BaseException) -> str:
    """The exception's group: 16 hex digits, the same in every process for the same error."""
    cached = getattr(exc, _ON_EXCEPTION, None)
    if isinstance(cached, str):
        return cached
    digest = hashlib.sha256()
    for link in _chain(exc):
        kind = type(link)
        digest.update(f"{kind.__module__}.{kind.__qualname__}\n".encode())
        for name in _frames_of(link.__traceback__):
            digest.update(f" {name}\n".encode())
    group = digest.hexdigest()[:16]
    with contextlib.suppress(AttributeError, TypeError):  # the span event, log line and counter share it
        setattr(exc, _ON_EXCEPTION, group)
    return group
