"""Keep health probes out of the servers' access logs (`OTEL_DISTRO_ACCESS_LOG=server`).

With the default `distro` access log nothing is needed: health paths are not traced, and our
`request completed` line is written only for traced requests.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping

__all__ = ["HealthAccessFilter", "quiet_access_logs"]

_ACCESS_LOGGERS = ("uvicorn.access", "gunicorn.access")


def _path(record: logging.LogRecord) -> str | None:
    args = record.args
    if isinstance(args, tuple) and len(args) >= 3 and isinstance(args[2], str):
        return args[2]  # uvicorn: (client, method, path?query, http version, status)
    if isinstance(args, Mapping):
        value = args.get("U")  # gunicorn's access-log atoms: U is the path
        return value if isinstance(value, str) else None
    return None


class HealthAccessFilter(logging.Filter):
    def __init__(self) -> None:
        super().__init__()
        self.paths: set[str] = set()

    def filter(self, record: logging.LogRecord) -> bool:
        path = _path(record)
        return path is None or path.split("?", 1)[0] not in self.paths


def quiet_access_logs(paths: Iterable[str]) -> None:
    """Drop access lines for these paths from uvicorn's and gunicorn's access loggers."""
    for name in _ACCESS_LOGGERS:
        logger = logging.getLogger(name)
        found = [f for f in logger.filters if isinstance(f, HealthAccessFilter)]
        access_filter = found[0] if found else HealthAccessFilter()
        if not found:
            logger.addFilter(access_filter)
        access_filter.paths.update(paths)
