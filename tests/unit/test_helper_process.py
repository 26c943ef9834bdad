"""Helper processes multiprocessing starts are not service instances: our start-up skips them."""

from __future__ import annotations

import pytest

from otel_distro.helper_process import is_helper_process

_PY = "/usr/bin/python3"


class TestIsHelperProcess:
    @pytest.mark.parametrize(
        "argv",
        [
            # as multiprocessing starts it, with the interpreter flags it passes on
            [_PY, "-c", "from multiprocessing.resource_tracker import main;main(7)"],
            [_PY, "-B", "-s", "-c", "from multiprocessing.resource_tracker import main;main(12)"],
            [_PY, "-W", "ignore", "-c", "from multiprocessing.resource_tracker import main;main(3)"],
        ],
    )
    def test_resource_tracker(self, argv: list[str]) -> None:
        assert is_helper_process(argv)

    @pytest.mark.parametrize(
        "argv",
        [
            [_PY, "app.py"],
            ["/venv/bin/python", "/venv/bin/uvicorn", "app:app", "--workers", "2"],
            # uvicorn's and multiprocessing's spawned workers serve requests: they are instances
            [_PY, "-c", "from multiprocessing.spawn import spawn_main; spawn_main(tracker_fd=5, pipe_handle=7)",
             "--multiprocessing-fork"],
            [_PY, "-c", "print('from multiprocessing.resource_tracker import main')"],
            [_PY, "-m", "multiprocessing.resource_tracker"],
            [_PY],
            [],
        ],
    )  # fmt: skip
    def test_everything_else(self, argv: list[str]) -> None:
        assert not is_helper_process(argv)

    def test_this_process_is_not_one(self) -> None:
        assert not is_helper_process()
