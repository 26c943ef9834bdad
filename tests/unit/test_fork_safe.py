"""Locks our background threads take are free in a forked child (pre-fork servers)."""

from __future__ import annotations

import os
import threading
from collections.abc import Callable

from otel_distro import _sdk_compat
from otel_distro._fork_safe import ForkSafeLock


def _in_child(body: Callable[[], bool], timeout: float = 5.0) -> int:
    """Runs `body` in a forked child; its exit status: 0 passed, 1 failed, 2 hung past `timeout`."""
    pid = os.fork()
    if pid == 0:  # the child: never return into pytest
        try:
            done = threading.Event()
            result: list[bool] = []

            def run() -> None:
                result.append(body())
                done.set()

            threading.Thread(target=run, daemon=True).start()
            os._exit(0 if done.wait(timeout) and result == [True] else (1 if result else 2))
        except BaseException:
            os._exit(1)
    return os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1])


def _held_during_fork(lock: ForkSafeLock | threading.Lock, body: Callable[[], bool]) -> int:
    """Another thread holds `lock` while this one forks (a master's export thread, mid-check)."""
    holding, release = threading.Event(), threading.Event()

    def hold() -> None:
        with lock:
            holding.set()
            release.wait(10)

    holder = threading.Thread(target=hold)
    holder.start()
    assert holding.wait(5)
    try:
        return _in_child(body)
    finally:
        release.set()
        holder.join(5)


class TestForkSafeLock:
    def test_a_lock_held_by_another_thread_at_fork_is_free_in_the_child(self) -> None:
        lock = ForkSafeLock()
        assert _held_during_fork(lock, lambda: lock.acquire(timeout=2)) == 0

    def test_a_plain_lock_is_not(self) -> None:
        # The hazard itself, so the test above cannot pass for the wrong reason.
        lock = threading.Lock()
        assert _held_during_fork(lock, lambda: lock.acquire(timeout=1)) == 1

    def test_works_as_a_lock(self) -> None:
        lock = ForkSafeLock()
        with lock:
            assert lock.locked()
            assert not lock.acquire(blocking=False)
        assert not lock.locked()


class TestSdkCompatAcrossFork:
    def test_a_path_check_in_progress_at_fork_does_not_hang_the_child(self) -> None:
        path = _sdk_compat.FastPath.SPAN_RAW_ATTRIBUTES
        known = _sdk_compat._state.pop(path, None)
        try:
            # The child checks the path itself while the parent's check still holds the lock.
            assert _held_during_fork(_sdk_compat._lock, lambda: _sdk_compat.enabled(path)) == 0
        finally:
            if known is not None:
                _sdk_compat._state[path] = known
