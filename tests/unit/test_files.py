from __future__ import annotations

import logging
import logging.config
import multiprocessing
import os
from pathlib import Path

import pytest

from otel_distro.logs._files import SharedRotatingFileHandler


def _record(message: str) -> logging.LogRecord:
    return logging.LogRecord("t", logging.INFO, "f", 1, message, (), None)


def _write(path: str, count: int, tag: str) -> None:
    handler = SharedRotatingFileHandler(path, max_bytes=2000, backups=50)
    for i in range(count):
        handler.emit(_record(f"{tag}-{i:04d}-" + "x" * 40))
    handler.close()


_inherited: SharedRotatingFileHandler | None = None


def _write_inherited(count: int, tag: str) -> None:
    assert _inherited is not None
    for i in range(count):
        _inherited.emit(_record(f"{tag}-{i:04d}-" + "x" * 40))


class TestSharedRotatingFileHandler:
    def test_rotates_by_size_and_keeps_the_newest_backups(self, tmp_path: Path) -> None:
        path = tmp_path / "logs" / "app.log"
        handler = SharedRotatingFileHandler(path, max_bytes=200, backups=2)
        for i in range(30):
            handler.emit(_record(f"line {i:02d} " + "x" * 20))
        handler.close()

        assert sorted(p.name for p in path.parent.iterdir() if p.suffix != ".lock") == [
            "app.log", "app.log.1", "app.log.2",
        ]  # fmt: skip
        assert all(p.stat().st_size <= 200 for p in path.parent.glob("app.log*"))
        assert "line 29" in path.read_text()

    def test_rotates_daily(self, tmp_path: Path) -> None:
        path = tmp_path / "app.log"
        path.write_text("yesterday\n")
        os.utime(path, (0, 86400 * 365))  # a day long past
        handler = SharedRotatingFileHandler(path, max_bytes=10**6, backups=3)
        handler.emit(_record("today"))
        handler.close()

        assert path.read_text() == "today\n"
        assert (tmp_path / "app.log.1").read_text() == "yesterday\n"

    def test_several_processes_lose_no_line(self, tmp_path: Path) -> None:
        path = str(tmp_path / "app.log")
        workers = [multiprocessing.Process(target=_write, args=(path, 200, f"w{n}")) for n in range(3)]
        for worker in workers:
            worker.start()
        for worker in workers:
            worker.join(60)

        lines = [line for p in tmp_path.glob("app.log*") if p.suffix != ".lock" for line in p.read_text().splitlines()]
        assert len(lines) == 600
        assert len(set(lines)) == 600

    def test_keeps_writing_after_dict_config_closed_it(self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
        # uvicorn runs dictConfig at start-up, which closes every root handler it replaces;
        # the distro puts ours back, and it must still write (it used to fail every line).
        from otel_distro.logs import install_logging
        from otel_distro.settings import Settings

        path = tmp_path / "app.log"
        root = logging.getLogger()
        root.handlers[:] = []
        install_logging(Settings(log_file=str(path), log_format="json", console_logs="off"), None)
        logging.config.dictConfig({"version": 1, "disable_existing_loggers": False, "root": {"level": "INFO"}})
        errors: list[logging.LogRecord] = []
        monkeypatch.setattr(logging.Handler, "handleError", lambda self, record: errors.append(record))

        logging.getLogger("app").warning("after dictConfig")

        assert not errors
        assert "after dictConfig" in path.read_text()

    def test_workers_forked_after_the_first_line_lose_no_line(self, tmp_path: Path) -> None:
        # gunicorn --preload: the master logs at import (opening the file and its lock), then forks.
        global _inherited
        path = tmp_path / "app.log"
        _inherited = SharedRotatingFileHandler(path, max_bytes=2000, backups=1000)
        _inherited.emit(_record("master-0000"))
        fork = multiprocessing.get_context("fork")
        workers = [fork.Process(target=_write_inherited, args=(300, f"w{n}")) for n in range(3)]
        for worker in workers:
            worker.start()
        for worker in workers:
            worker.join(60)
        _inherited.close()

        lines = [line for p in tmp_path.glob("app.log*") if p.suffix != ".lock" for line in p.read_text().splitlines()]
        assert [w.exitcode for w in workers] == [0, 0, 0]
        assert len(set(lines)) == len(lines) == 901
