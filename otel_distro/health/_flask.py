"""The endpoints as a Flask blueprint."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from otel_distro.health import _report
from otel_distro.health._access import quiet_access_logs
from otel_distro.health._runner import run_checks
from otel_distro.settings import Settings, get_settings

if TYPE_CHECKING:
    from flask import Blueprint, Response

__all__ = ["flask_blueprint"]


def flask_blueprint(
    *,
    path: str | None = None,
    live_path: str | None = None,
    ready_path: str | None = None,
    only: tuple[str, ...] = ("detail", "live", "ready"),
    settings: Settings | None = None,
) -> Blueprint:
    """A blueprint serving the health endpoints: `app.register_blueprint(flask_blueprint())`.

    Paths default to `OTEL_DISTRO_HEALTH_PATH`, `..._LIVE_PATH` and `..._READY_PATH`.
    """
    from flask import Blueprint, Response

    # Apps call this with no settings to hand: then the process's, resolved once per router.
    settings = settings if settings is not None else get_settings()

    paths = _report.paths(settings, path, live_path, ready_path)
    quiet_access_logs(paths)

    def respond(result: tuple[int, dict[str, Any]]) -> Response:
        status, body = result
        return Response(json.dumps(body), status=status, mimetype="application/json", headers=_report.HEADERS)

    def live() -> Response:
        return respond(_report.live())

    def ready() -> Response:
        return respond(_report.ready(run_checks(settings=settings)))

    def detail() -> Response:
        return respond(_report.detail(run_checks(settings=settings), settings))

    blueprint = Blueprint("otel_distro_health", __name__)
    endpoints = {"detail": (paths.detail, detail), "live": (paths.live, live), "ready": (paths.ready, ready)}
    for name in only:
        route, view = endpoints[name]
        blueprint.add_url_rule(route, name, view_func=view, methods=["GET"])
    return blueprint
