"""A log file rotated by size and daily, safe when several worker processes share it.

Every write takes an exclusive `flock` on a sibling lock file, reopens the file if another
process rotated it meanwhile, and rotates only while holding the lock, so no two processes
ever rotate the same file. Costs a lock and one `stat` per line: this is an opt-in feature.

`flock` excludes open file descriptions, not processes: a process forked after the first line
(`gunicorn --preload` when the app logs at import) would share its parent's lock and rotate
at the same time. Each process therefore opens its own lock and stream after a fork.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import fcntl
import logging
import os
import weakref
from pathlib import Path
from typing import IO

_log = logging.getLogger("otel_distro.logs")
_handlers: weakref.WeakSet[SharedRotatingFileHandler] = weakref.WeakSet()


def _forget_inherited_files() -> None:
    for handler in list(_handlers):
        handler._forget_inherited()


os.register_at_fork(after_in_child=_forget_inherited_files)


class SharedRotatingFileHandler(logging.Handler):
    def __init__(self, path: str | os.PathLike[str], max_bytes: int, backups: int, setting: str = "") -> None:
        super().__init__()
        self._path = Path(path)
        self._path.parent.mkdir(parents=True, exist_ok=True)
        self._max_bytes = max_bytes
        self._backups = backups
        self._setting = setting  # the variable that named the file, for the warning
        self._lock_file: IO[str] | None = None
        self._stream: IO[str] | None = None
        self._inode = -1
        self._failing = False  # warned about a failure; quiet until a line is written again
        _handlers.add(self)

    def _forget_inherited(self) -> None:
        """In a forked child: let go of the parent's descriptors, and open our own on the next line."""
        for inherited in (self._stream, self._lock_file):
            if inherited is not None:
                # Closes this process's copy only: the parent's lock stays held if it was
                # (LOCK_UN here would release it). Lines are flushed as written: nothing is pending.
                with contextlib.suppress(OSError):
                    inherited.close()
        self._stream = self._lock_file = None
        self._inode = -1

    def _open(self) -> IO[str]:
        if self._stream is not None:
            self._stream.close()
        self._stream = open(self._path, "a", encoding="utf-8")  # noqa: SIM115
        self._inode = os.fstat(self._stream.fileno()).st_ino
        return self._stream

    def _current(self) -> tuple[IO[str], os.stat_result]:
        """The open stream and the file's state on disk: one `stat` per line, no `tell()`.

        The size comes from the file, not from our stream: other processes append to it too
        (always under the lock, flushed), and a text stream's `tell()` is slow.
        """
        try:
            on_disk: os.stat_result | None = os.stat(self._path)
        except FileNotFoundError:
            on_disk = None
        if self._stream is None or on_disk is None or on_disk.st_ino != self._inode:
            stream = self._open()
            return stream, os.fstat(stream.fileno())
        return self._stream, on_disk

    def _due(self, on_disk: os.stat_result, incoming: int) -> bool:
        size = on_disk.st_size
        if size and size + incoming > self._max_bytes:
            return True
        if size:
            modified = dt.datetime.fromtimestamp(on_disk.st_mtime, dt.timezone.utc).date()
            return modified < dt.datetime.now(dt.timezone.utc).date()
        return False

    def _rotate(self) -> None:
        if self._backups == 0:
            self._path.unlink(missing_ok=True)
            return
        for index in range(self._backups - 1, 0, -1):
            older = Path(f"{self._path}.{index}")
            if older.exists():
                older.replace(f"{self._path}.{index + 1}")
        self._path.replace(f"{self._path}.1")

    def _write(self, line: str) -> None:
        """Append one line under the shared lock, rotating first when it is due."""
        # Opened on demand: `dictConfig` (uvicorn calls it at start-up) closes every handler
        # it replaces, and ours is put back on the root logger afterwards.
        if self._lock_file is None or self._lock_file.closed:
            self._lock_file = open(f"{self._path}.lock", "a")  # noqa: SIM115 - kept until close()
        fcntl.flock(self._lock_file, fcntl.LOCK_EX)
        try:
            stream, on_disk = self._current()
            if self._due(on_disk, len(line.encode("utf-8"))):
                self._rotate()
                stream = self._open()
            stream.write(line)
            stream.flush()
        finally:
            fcntl.flock(self._lock_file, fcntl.LOCK_UN)

    def _written(self, line: str) -> None:
        try:
            self._write(line)
        except OSError as err:
            self._failed(err)
        else:
            self._failing = False

    def _failed(self, err: OSError) -> None:
        # One warning, not a traceback per line; the next line tries again (a full disk frees up).
        if self._failing:
            return
        self._failing = True
        for stream in (self._stream, self._lock_file):
            if stream is not None and not stream.closed:
                with contextlib.suppress(OSError):
                    stream.close()
        self._stream = self._lock_file = None
        _log.warning(
            "otel-distro: cannot write the log file %s%s (%s); logging to the console only until it can",
            self._path,
            f" ({self._setting})" if self._setting else "",
            err,
        )

    def emit(self, record: logging.LogRecord) -> None:
        try:
            line = self.format(record) + "\n"
        except Exception:
            self.handleError(record)
            return
        self._written(line)

    def write_line(self, line: str) -> None:
        """Append a line rendered elsewhere (structlog events that never become stdlib records)."""
        self.acquire()
        try:
            self._written(line + "\n")
        finally:
            self.release()

    def close(self) -> None:
        self.acquire()
        try:
            if self._stream is not None:
                self._stream.close()
                self._stream = None
            if self._lock_file is not None:
                self._lock_file.close()
                self._lock_file = None
        finally:
            self.release()
        super().close()
