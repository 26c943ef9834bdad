from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.harness import Capture, start_capture, stop_process


@pytest.fixture(scope="session")
def capture(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Capture]:
    """The real collector (built by scripts/backends) capturing OTLP to files.

    Shared by the session: tests tell their data apart by a unique service name.
    """
    collector = start_capture(tmp_path_factory.mktemp("capture"))
    try:
        yield collector
    finally:
        assert collector.process is not None
        stop_process(collector.process)
