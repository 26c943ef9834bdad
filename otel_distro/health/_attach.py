"""`OTEL_DISTRO_HEALTH=true`: give every FastAPI and Flask app the endpoints, no code change.

The FastAPI and Flask instrumentations already replace `fastapi.FastAPI` / `flask.Flask` with
a subclass that instruments each new app. Right after they do, we put one more subclass on
top of theirs: it adds the endpoints when the app handles its first call (a lifespan event or
a request), which is after the app's own routes are registered. Paths the app already serves
are left alone: an app's own `/health` wins over ours. Uninstrumenting restores the framework's
original class, which removes this layer too.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Callable
from typing import Any

from otel_distro.health import _report
from otel_distro.settings import Settings

__all__ = ["attach_automatically", "exclude_health_paths"]

_MARK = "_otel_distro_health"
_lock = threading.Lock()


def exclude_health_paths(excluded_urls: str, paths: _report.Paths) -> str:
    """Add the health paths to an instrumentation's `excluded_urls` unless already covered."""
    patterns = [p for p in excluded_urls.split(",") if p]
    for path in paths:
        url = "http://localhost" + path
        if not any(re.search(p, url) for p in patterns):
            patterns.append(re.escape(path) + r"(?:\?|$)")
    return ",".join(patterns)


def _missing(served: Callable[[str], bool], paths: _report.Paths) -> tuple[str, ...]:
    return tuple(name for name, path in paths._asdict().items() if not served(path))


def _add_to_fastapi(app: Any, settings: Settings) -> None:
    from starlette.routing import Match

    from otel_distro.health._fastapi import fastapi_router

    def served(path: str) -> bool:
        scope = {"type": "http", "path": path, "method": "GET", "root_path": "", "query_string": b"", "headers": []}
        return any(route.matches(scope)[0] != Match.NONE for route in app.router.routes)

    only = _missing(served, _report.paths(settings))
    if only:
        app.include_router(fastapi_router(only=only, settings=settings))


def _add_to_flask(app: Any, settings: Settings) -> None:
    from werkzeug.exceptions import NotFound

    from otel_distro.health._flask import flask_blueprint

    adapter = app.url_map.bind("localhost")

    def served(path: str) -> bool:
        try:
            adapter.match(path, "GET")
        except NotFound:
            return False
        except Exception:  # redirects and wrong methods: the app owns that path
            return True
        return True

    only = _missing(served, _report.paths(settings))
    if only:
        app.register_blueprint(flask_blueprint(only=only, settings=settings))


def _ensure(app: Any, add: Callable[[Any, Settings], None], settings: Settings) -> None:
    # Checked without the lock first: every request of the app comes through here, and takes no lock.
    if app.__dict__.get(_MARK):
        return
    with _lock:
        if not app.__dict__.get(_MARK):
            add(app, settings)
            app.__dict__[_MARK] = True


def _fastapi_class(base: type, settings: Settings) -> type:
    async def __call__(self: Any, scope: Any, receive: Any, send: Any) -> None:
        _ensure(self, _add_to_fastapi, settings)
        await base.__call__(self, scope, receive, send)

    return type(base.__name__, (base,), {"__call__": __call__, _MARK: True, "__module__": base.__module__})


def _flask_class(base: type, settings: Settings) -> type:
    def __call__(self: Any, environ: Any, start_response: Any) -> Any:
        _ensure(self, _add_to_flask, settings)
        return base.__call__(self, environ, start_response)

    return type(base.__name__, (base,), {"__call__": __call__, _MARK: True, "__module__": base.__module__})


def attach_automatically(framework: str, settings: Settings) -> None:
    """Layer the endpoint-adding subclass over the (instrumented) framework class."""
    if framework == "fastapi":
        import fastapi

        if not getattr(fastapi.FastAPI, _MARK, False):
            fastapi.FastAPI = _fastapi_class(fastapi.FastAPI, settings)  # type: ignore[misc,assignment]
    elif framework == "flask":
        import flask

        if not getattr(flask.Flask, _MARK, False):
            flask.Flask = _flask_class(flask.Flask, settings)  # type: ignore[misc,assignment]
