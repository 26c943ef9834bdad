"""The entry point `opentelemetry-instrument` loads first (group `opentelemetry_distro`)."""

from __future__ import annotations

import logging
from typing import Any

import wrapt  # opentelemetry-instrumentation's own dependency
from opentelemetry.instrumentation.distro import BaseDistro

from otel_distro import _sdk_compat
from otel_distro.components import request_ids
from otel_distro.helper_process import is_helper_process
from otel_distro.instrumentors import ON_IMPORT, RUNTIME_METRICS, instrument_kwargs, upstream_excluded_urls
from otel_distro.settings import Settings, apply_upstream_defaults, get_settings

__all__ = ["OtelDistro", "instrument"]

_log = logging.getLogger("otel_distro.http_server")
_settings_log = logging.getLogger("otel_distro.settings")  # the configurator's, for the same warnings
_said: set[str] = set()


class OtelDistro(BaseDistro):  # type: ignore[misc]
    """Sets our defaults for the standard variables, then tunes each instrumentation."""

    # Built by opentelemetry-instrument with no arguments: the cached process settings it shares with the configurator.

    def _configure(self, **kwargs: Any) -> None:
        if is_helper_process():
            return
        settings = get_settings()
        # Instrumentations and exporters read these themselves, so they must be in place
        # before any of them is imported.
        apply_upstream_defaults(settings)
        warn_if_no_configurator_will(settings)

    def load_instrumentor(self, entry_point: Any, **kwargs: Any) -> None:
        if is_helper_process():
            return
        instrument(entry_point, get_settings(), **kwargs)


ENTRY_POINT = "otel_distro"  # our distro's and configurator's entry-point name (pyproject.toml)


def warn_if_no_configurator_will(settings: Settings) -> None:
    """Our configurator warns once per refused value (after logging is set up); with another
    configurator chosen it never runs, so the distro says them here, once each."""
    if settings.python_configurator and settings.python_configurator != ENTRY_POINT:
        for problem in settings.problems:
            _settings_log.warning("otel-distro: %s", problem.message)


def instrument(entry_point: Any, settings: Settings, **kwargs: Any) -> None:
    """Switch one instrumentation on, tuned by `settings` (`kwargs` go to its `instrument()`)."""
    name = entry_point.name
    if name == "system_metrics":
        if settings.runtime_metrics:
            instrumentor = entry_point.load()(config=RUNTIME_METRICS)
            instrumentor.instrument(**kwargs)
            _sdk_compat.follow_forks(instrumentor)
        return
    kwargs.update(instrument_kwargs(name, settings, request_ids(settings)))
    if name in ON_IMPORT:
        # At once if the app already imported the module, else right after its import does.
        wrapt.register_post_import_hook(lambda _module: _instrument_quietly(entry_point, kwargs), ON_IMPORT[name])
        return
    if name not in ("fastapi", "flask"):
        entry_point.load()().instrument(**kwargs)
        return
    # Imported here, after _configure: nothing of ours may read exporter settings earlier.
    from otel_distro.health import _attach, _report

    if "excluded_urls" in kwargs:  # health endpoints at custom paths stay untraced too
        kwargs["excluded_urls"] = _attach.exclude_health_paths(kwargs["excluded_urls"], _report.paths(settings))
    _instrument_server(name, entry_point.load()(), settings, kwargs)
    if settings.health:
        _attach.attach_automatically(name, settings)


def _instrument_server(name: str, contrib: Any, settings: Settings, kwargs: dict[str, Any]) -> None:
    """Ours unless a setting needs contrib; the contrib instrumentor is marked either way."""
    from otel_distro import http_server

    if settings.http_metrics == "collector":
        # Rate, errors and duration come from the collector's span metrics: no HTTP metrics here.
        from opentelemetry.metrics import NoOpMeterProvider

        kwargs = {**kwargs, "meter_provider": NoOpMeterProvider()}
    reason = http_server.contrib_reason(name, settings)
    if reason is None:
        excluded_urls = kwargs.get("excluded_urls", upstream_excluded_urls(name, settings))
        http_server.instrument(
            name,
            request_ids=request_ids(settings),
            excluded_urls=excluded_urls,
            tracer_provider=kwargs.get("tracer_provider"),
            meter_provider=kwargs.get("meter_provider"),
            contrib=contrib,
        )
        return
    if reason != http_server.CHOSEN and reason not in _said:
        _said.add(reason)
        _log.info("otel-distro: Flask/FastAPI use the contrib HTTP instrumentation because %s", reason)
    contrib.instrument(**kwargs)


def _instrument_quietly(entry_point: Any, kwargs: dict[str, Any]) -> None:
    # Runs inside the app's own import statement: a failure is logged, never raised into the app.
    try:
        entry_point.load()().instrument(**kwargs)
    except Exception:
        logging.getLogger("otel_distro.distro").exception("otel-distro: instrumenting %s failed", entry_point.name)
