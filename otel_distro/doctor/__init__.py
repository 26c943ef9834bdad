"""`otel-distro doctor`: why is nothing arriving?

Each check returns findings: a one-line message, a one-line fix, and a level. `problem`s make
the command exit non-zero; `warning`s are advice; `ok` lines say what was verified. Settings
are parsed once, by `otel_distro.settings` (nothing here reads the environment); the network,
installed packages and the app are looked at by one module per check family:

* `_config`: every setting, its value and source; the values the settings refused;
* `_distros`: another distro or configurator competing with ours;
* `_collector`: an empty export to each collector address (on the wire of `_probe`:
  TCP, TLS, and HTTP/1.1 versus HTTP/2 told apart from the first bytes);
* `_instrumentations`: libraries without their instrumentation, instrumentations skipped;
* `_app`: the app itself (`--app`), its request IDs and its log handlers.
"""

from __future__ import annotations

from collections.abc import Mapping

from otel_distro.doctor._app import app_findings, logging_findings
from otel_distro.doctor._collector import collector_findings, collector_targets, parse_headers
from otel_distro.doctor._config import config_findings, sampling_findings, service_name, settings_rows
from otel_distro.doctor._distros import distro_findings
from otel_distro.doctor._findings import Finding, Report
from otel_distro.doctor._instrumentations import instrumentation_findings
from otel_distro.doctor._probe import Target
from otel_distro.settings import load_settings

__all__ = [
    "Finding",
    "Report",
    "Target",
    "app_findings",
    "collector_findings",
    "collector_targets",
    "config_findings",
    "diagnose",
    "distro_findings",
    "instrumentation_findings",
    "logging_findings",
    "parse_headers",
    "sampling_findings",
    "settings_rows",
]


def diagnose(
    environ: Mapping[str, str] | None = None,
    *,
    app: str | None = None,
    timeout: float = 3.0,
    network: bool = True,
) -> Report:
    """Run every check; `environ` replaces the process environment (for tests and tools)."""
    settings = load_settings(environ)  # parsed once: its problems are reported below, never logged
    report = Report(settings_rows(settings))
    report.findings += config_findings(settings.problems, service_name(settings, environ))
    report.findings += sampling_findings(settings)
    report.findings += distro_findings(settings)
    if network:
        report.findings += collector_findings(settings, timeout)
    report.findings += instrumentation_findings(settings)
    if app:
        report.findings += app_findings(app, settings)
    return report
