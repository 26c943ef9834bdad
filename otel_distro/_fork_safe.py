"""Locks that our background threads take, renewed in a forked child.

A pre-fork server (gunicorn) forks its workers while the master's export threads run. A
plain lock that one of them held at that instant stays held forever in the child, whose
first use of it then hangs: a worker that boots and never answers, or never exports again.
These are ours (the SDK's metric locks are renewed by `_sdk_compat.renew_metric_locks_after_fork`).
Not for the request path's hot locks (one extra call per acquire): for locks taken at first
use, on export threads and on warnings.
"""

from __future__ import annotations

import encodings.idna  # noqa: F401  (see below)
import os
import threading
import weakref
from types import TracebackType

__all__ = ["ForkSafeLock"]

# Imported here, before any export thread runs: the first connection a process makes
# (socket.getaddrinfo) imports the `idna` codec. Made first by a master's export thread while
# gunicorn forks, that import leaves its module lock held in the worker, whose own first use
# of the codec (its first connection; werkzeug building a request's URL) then hangs, or fails
# with "unknown encoding: idna" for the rest of its life: every request a 500, nothing exported.


class ForkSafeLock:
    """A `threading.Lock` that a forked child gets fresh (released), whoever held it in the parent."""

    __slots__ = ("__weakref__", "_lock")

    def __init__(self) -> None:
        self._lock = threading.Lock()
        _locks.add(self)

    def acquire(self, blocking: bool = True, timeout: float = -1) -> bool:
        return self._lock.acquire(blocking, timeout)

    def release(self) -> None:
        self._lock.release()

    def locked(self) -> bool:
        return self._lock.locked()

    def renew_after_fork(self) -> None:
        """In a forked child only: a fresh lock, whatever state the parent's was in."""
        self._lock = threading.Lock()

    def __enter__(self) -> bool:
        return self._lock.acquire()

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, traceback: TracebackType | None
    ) -> None:
        self._lock.release()


_locks: weakref.WeakSet[ForkSafeLock] = weakref.WeakSet()


def _renew_in_child() -> None:
    # Only the forking thread exists in the child: nobody can be holding the new locks.
    for lock in list(_locks):
        lock.renew_after_fork()


os.register_at_fork(after_in_child=_renew_in_child)
