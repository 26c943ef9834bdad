"""The endpoints as a FastAPI router."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from otel_distro.health import _report
from otel_distro.health._access import quiet_access_logs
from otel_distro.health._runner import run_checks_async
from otel_distro.settings import Settings, get_settings

if TYPE_CHECKING:
    from fastapi import APIRouter
    from fastapi.responses import JSONResponse

__all__ = ["fastapi_router"]


def fastapi_router(
    *,
    path: str | None = None,
    live_path: str | None = None,
    ready_path: str | None = None,
    include_in_schema: bool = False,
    only: tuple[str, ...] = ("detail", "live", "ready"),
    settings: Settings | None = None,
) -> APIRouter:
    """A router serving the health endpoints: `app.include_router(fastapi_router())`.

    Paths default to `OTEL_DISTRO_HEALTH_PATH`, `..._LIVE_PATH` and `..._READY_PATH`.
    """
    from fastapi import APIRouter
    from fastapi.responses import JSONResponse

    # Apps call this with no settings to hand: then the process's, resolved once per router.
    settings = settings if settings is not None else get_settings()

    paths = _report.paths(settings, path, live_path, ready_path)
    quiet_access_logs(paths)

    def respond(result: tuple[int, dict[str, Any]]) -> JSONResponse:
        return JSONResponse(result[1], status_code=result[0], headers=_report.HEADERS)

    async def live() -> JSONResponse:
        return respond(_report.live())

    async def ready() -> JSONResponse:
        return respond(_report.ready(await run_checks_async(settings=settings)))

    async def detail() -> JSONResponse:
        return respond(_report.detail(await run_checks_async(settings=settings), settings))

    router = APIRouter()
    endpoints = {"detail": (paths.detail, detail), "live": (paths.live, live), "ready": (paths.ready, ready)}
    for name in only:
        route, endpoint = endpoints[name]
        router.add_api_route(
            route,
            endpoint,
            methods=["GET", "HEAD"],
            include_in_schema=include_in_schema,
            name=f"otel_distro_health_{name}",
        )
    return router
