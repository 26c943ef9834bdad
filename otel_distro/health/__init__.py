"""Health endpoints for FastAPI and Flask: liveness, readiness with your checks, and a
detailed view including the telemetry pipeline.

Add them with one line::

    app.include_router(otel_distro.health.fastapi_router())      # FastAPI
    app.register_blueprint(otel_distro.health.flask_blueprint())  # Flask

or with `OTEL_DISTRO_HEALTH=true` under `opentelemetry-instrument`. Register checks with
:func:`add_check`; ``/health/ready`` runs them concurrently, each with a timeout.
"""

from __future__ import annotations

# The framework modules import FastAPI or Flask only when their function is called: an app
# pays for neither framework it does not use.
from otel_distro.health._fastapi import fastapi_router
from otel_distro.health._flask import flask_blueprint
from otel_distro.health._registry import add_check, remove_check
from otel_distro.health._runner import CheckResult, run_checks, run_checks_async

__all__ = [
    "CheckResult",
    "add_check",
    "fastapi_router",
    "flask_blueprint",
    "remove_check",
    "run_checks",
    "run_checks_async",
]
