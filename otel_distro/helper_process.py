"""Processes that are not service instances, though they start with the app's environment.

`opentelemetry-instrument` puts its `sitecustomize` on `PYTHONPATH`, so every Python process the
app starts runs our start-up, helpers included. multiprocessing's resource tracker (started by
`uvicorn --workers`, by any use of a multiprocessing lock or shared memory) is one: telemetry
there would show a phantom instance exporting its own runtime metrics. It is recognised by the
command line multiprocessing gives it (`sys.orig_argv`: nothing read from the environment).
Spawned workers (`multiprocessing.spawn`) serve requests and are instances: not skipped.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence

__all__ = ["is_helper_process"]

# What multiprocessing passes to `python -c` for each helper (CPython 3.8+).
_HELPER_COMMANDS = ("from multiprocessing.resource_tracker import main",)


def is_helper_process(argv: Sequence[str] | None = None) -> bool:
    """Whether this process (or one started as `argv`) is a multiprocessing helper."""
    if argv is None:
        argv = getattr(sys, "orig_argv", ())
    try:
        command = argv[list(argv).index("-c", 1) + 1]
    except (ValueError, IndexError):
        return False
    return command.startswith(_HELPER_COMMANDS)
