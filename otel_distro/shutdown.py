"""A bounded final flush at exit and on SIGTERM: never a hang, never a silent loss."""

from __future__ import annotations

import atexit
import logging
import signal
import threading
import time
from collections.abc import Callable, Sequence
from types import FrameType
from typing import Any

__all__ = ["register_shutdown", "shutdown_within"]

_log = logging.getLogger("otel_distro.shutdown")
_registered = False


def shutdown_within(shutdowns: Sequence[Callable[[], Any]], timeout: float) -> bool:
    """Run the providers' shutdowns in parallel; give up after `timeout` seconds.

    The threads are daemons, so the interpreter can exit even if an exporter is still
    waiting on an unreachable collector. Returns whether everything finished.
    """
    threads = [threading.Thread(target=_quietly, args=(fn,), daemon=True) for fn in shutdowns]
    for thread in threads:
        thread.start()
    deadline = time.monotonic() + timeout
    for thread in threads:
        thread.join(max(deadline - time.monotonic(), 0))
    finished = not any(t.is_alive() for t in threads)
    if not finished:
        _log.warning(
            "otel-distro: telemetry flush did not finish within %gs (OTEL_DISTRO_SHUTDOWN_TIMEOUT); exiting without it",
            timeout,
        )
    return finished


def _quietly(fn: Callable[[], Any]) -> None:
    try:
        fn()
    except Exception:  # a failing exporter must not turn exit into a crash
        _log.debug("otel-distro: error during telemetry shutdown", exc_info=True)


def _raise_system_exit(signum: int, frame: FrameType | None) -> None:
    # Turning SIGTERM into a normal exit runs atexit, and with it the flush.
    raise SystemExit(128 + signum)


def register_shutdown(shutdowns: Sequence[Callable[[], Any]], timeout: float) -> None:
    """Flush at interpreter exit; make SIGTERM an orderly exit when nobody else handles it.

    Servers such as uvicorn and gunicorn install their own SIGTERM handlers later and exit
    normally, which also runs the flush.
    """
    global _registered
    if _registered:
        return
    _registered = True
    atexit.register(shutdown_within, tuple(shutdowns), timeout)
    if threading.current_thread() is threading.main_thread() and signal.getsignal(signal.SIGTERM) == signal.SIG_DFL:
        signal.signal(signal.SIGTERM, _raise_system_exit)
