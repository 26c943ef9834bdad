"""Every environment variable otel-distro reads, declared once.

Each field of :class:`Settings` is a setting: its environment variable, default,
parser and one-line doc live in the field's metadata. Loading, validation, the
README table and ``otel-distro doctor`` all read this one declaration.

Settings flow one way: the environment is parsed once by :func:`load_settings` into one
typed, frozen :class:`Settings`, which also carries the values it refused
(:attr:`Settings.problems`); components receive it as an argument. Nothing is logged here:
the configurator warns once per problem, ``otel-distro doctor`` reports them.

This is the only module of ours that touches ``os.environ`` (a unit test enforces it).
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Iterable, Mapping, MutableMapping
from dataclasses import dataclass, field, fields
from typing import Any, TypeVar

__all__ = [
    "SettingProblem",
    "Settings",
    "apply_upstream_defaults",
    "get_settings",
    "load_settings",
    "markdown_table",
]

T = TypeVar("T")

# Sources reported by `otel-distro doctor`.
SOURCE_DEFAULT = "default"
SOURCE_ENV = "environment"


class _Invalid(ValueError):
    """A value that cannot be parsed; the message says what was expected."""


# --- parsers: str -> value, raising _Invalid with what was expected ---------------------------


def _str(raw: str) -> str:
    value = raw.strip()
    if not value:
        raise _Invalid("a non-empty string")
    return value


def _optional_str(raw: str) -> str | None:
    return raw.strip() or None


def _bool(raw: str) -> bool:
    value = raw.strip().lower()
    if value in ("1", "true", "yes", "on"):
        return True
    if value in ("0", "false", "no", "off"):
        return False
    raise _Invalid("true or false")


def _number(kind: Callable[[str], T], low: float, high: float) -> Callable[[str], T]:
    def parse(raw: str) -> T:
        try:
            value = kind(raw.strip())
        except ValueError:
            raise _Invalid(f"a number from {low:g} to {high:g}") from None
        if not low <= float(value) <= high:  # type: ignore[arg-type]
            raise _Invalid(f"a number from {low:g} to {high:g}")
        return value

    return parse


def _choice(*allowed: str) -> Callable[[str], str]:
    def parse(raw: str) -> str:
        value = raw.strip().lower()
        if value not in allowed:
            raise _Invalid("one of " + ", ".join(allowed))
        return value

    return parse


def _csv(raw: str) -> tuple[str, ...]:
    return tuple(part.strip() for part in raw.split(",") if part.strip())


def _csv_choice(*allowed: str) -> Callable[[str], tuple[str, ...]]:
    def parse(raw: str) -> tuple[str, ...]:
        values = tuple(v.lower() for v in _csv(raw))
        bad = [v for v in values if v not in allowed]
        if bad:
            raise _Invalid("a comma-separated list of " + ", ".join(allowed))
        return values

    return parse


_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")


def _level(raw: str) -> str:
    value = raw.strip().upper()
    if value == "WARN":
        value = "WARNING"
    if value not in _LEVELS:
        raise _Invalid("one of " + ", ".join(_LEVELS))
    return value


_HEADER_NAME = re.compile(r"^[A-Za-z0-9-]{1,64}$")


def _header_name(raw: str) -> str:
    value = raw.strip()
    if not _HEADER_NAME.match(value):
        raise _Invalid("an HTTP header name (letters, digits and '-')")
    return value


def _url_path(raw: str) -> str:
    value = raw.strip()
    if not value.startswith("/") or any(ch in value for ch in " ?#"):
        raise _Invalid("a URL path starting with '/'")
    return value.rstrip("/") or "/"


def _regex_csv(raw: str) -> tuple[str, ...]:
    """Comma-separated regular expressions, each compiled here so a bad one is refused at start-up."""
    values = _csv(raw)
    for value in values:
        try:
            re.compile(value)
        except re.error as err:
            raise _Invalid(f"comma-separated regular expressions ({value!r}: {err})") from None
    return values


def _optional_regex_csv(raw: str) -> str | None:
    """An upstream list of regular expressions, kept as the text upstream parses, checked as ours."""
    return ",".join(_regex_csv(raw)) or None


def _log_file(raw: str) -> str | None:
    """A path the log file can be created at: read-only checks (stat, access), nothing is created."""
    value = raw.strip()
    if not value:
        return None
    path = os.path.abspath(value)
    if os.path.isdir(path):
        raise _Invalid("a file path, not a directory")
    if os.path.exists(path):
        if not os.access(path, os.W_OK):
            raise _Invalid("a file this process may write")
        return value
    ancestor = os.path.dirname(path)
    while not os.path.exists(ancestor):
        ancestor = os.path.dirname(ancestor)
    if not os.path.isdir(ancestor):
        raise _Invalid(f"a path whose directory can be created ({ancestor} is not a directory)")
    if not os.access(ancestor, os.W_OK | os.X_OK):
        raise _Invalid(f"a path whose directory can be created ({ancestor} is not writable)")
    return value


def _setting(env: str, default: Any, parse: Callable[[str], Any], doc: str, *, secret: bool = False) -> Any:
    """Declare one setting as a dataclass field carrying its environment variable."""
    return field(default=default, metadata={"env": env, "parse": parse, "doc": doc, "secret": secret})


@dataclass(frozen=True)
class SettingProblem:
    """A variable set to a value that cannot be used, and the fallback used instead."""

    attribute: str  # the Settings field
    variable: str
    value: str  # as messages quote it: bounded, and masked for a secret
    expected: str
    fallback: str  # the default, as messages quote it

    @property
    def message(self) -> str:
        """The one warning line about it."""
        return (
            f"{self.variable}={self.value} is not valid (expected {self.expected}); "
            f"using the default {self.fallback} instead"
        )


@dataclass(frozen=True)
class Settings:
    """The typed configuration every component of otel-distro receives."""

    # Service identity (resource attributes).
    service_name: str | None = _setting(
        "OTEL_SERVICE_NAME",
        None,
        _optional_str,
        "Service name (`service.name`). Warned about once when unset.",
    )
    service_version: str | None = _setting(
        "OTEL_DISTRO_SERVICE_VERSION",
        None,
        _optional_str,
        "Service version (`service.version`), e.g. a release tag or commit.",
    )
    environment: str | None = _setting(
        "OTEL_DISTRO_ENVIRONMENT",
        None,
        _optional_str,
        "Deployment environment (`deployment.environment.name`), e.g. `production`.",
    )

    # Where telemetry goes.
    otlp_protocol: str = _setting(
        "OTEL_EXPORTER_OTLP_PROTOCOL",
        "http/protobuf",
        _choice("http/protobuf", "grpc"),
        "OTLP transport. `grpc` needs `pip install otel-distro[grpc]`.",
    )
    otlp_endpoint: str | None = _setting(
        "OTEL_EXPORTER_OTLP_ENDPOINT",
        None,
        _optional_str,
        "Collector base URL. Default `http://localhost:4318` (HTTP) or `http://localhost:4317` (gRPC).",
    )
    traces_exporter: tuple[str, ...] = _setting(
        "OTEL_TRACES_EXPORTER",
        ("otlp",),
        _csv_choice("otlp", "console", "none"),
        "Trace exporters: `otlp`, `console` or `none`.",
    )
    metrics_exporter: tuple[str, ...] = _setting(
        "OTEL_METRICS_EXPORTER",
        ("otlp",),
        _csv_choice("otlp", "prometheus", "console", "none"),
        "Metric exporters: `otlp`, `prometheus` (serve `/metrics`), `console` or `none`; comma-separated for several.",
    )
    logs_exporter: tuple[str, ...] = _setting(
        "OTEL_LOGS_EXPORTER",
        ("otlp",),
        _csv_choice("otlp", "console", "none"),
        "Log exporters: `otlp`, `console` or `none`.",
    )
    metric_export_interval: float = _setting(
        "OTEL_METRIC_EXPORT_INTERVAL",
        10000.0,
        _number(float, 100, 3_600_000),
        "Milliseconds between metric exports over OTLP.",
    )
    span_queue: int = _setting(
        "OTEL_BSP_MAX_QUEUE_SIZE",
        2048,
        _number(int, 1, 1_000_000),
        "Spans held for export at most; beyond it new spans are dropped (bounded memory while the "
        "collector is unreachable).",
    )
    log_queue: int = _setting(
        "OTEL_BLRP_MAX_QUEUE_SIZE",
        2048,
        _number(int, 1, 1_000_000),
        "Log records held for export at most, as for spans.",
    )
    span_export_batch: int = _setting(
        "OTEL_BSP_MAX_EXPORT_BATCH_SIZE",
        128,
        _number(int, 1, 1_000_000),
        "Spans per OTLP export (at most the queue size). Smaller than upstream's 512: encoding a "
        "batch holds the GIL, and shorter bursts keep request tail latency down.",
    )
    log_export_batch: int = _setting(
        "OTEL_BLRP_MAX_EXPORT_BATCH_SIZE",
        128,
        _number(int, 1, 1_000_000),
        "Log records per OTLP export (upstream: 512; at most the queue size), for the same reason.",
    )
    sdk_internal_metrics: bool = _setting(
        "OTEL_PYTHON_SDK_INTERNAL_METRICS_ENABLED",
        False,
        _bool,
        "The SDK's own metrics, `otel.sdk.processor.*` included: spans and log records then go through "
        "the SDK's batch processors (a thread each) instead of the distro's one export thread.",
    )
    semconv_opt_in: str = _setting(
        "OTEL_SEMCONV_STABILITY_OPT_IN",
        "http",
        _str,
        "Semantic-convention mode for instrumentations; `http` emits the stable `http.server.request.duration` names.",
    )

    # Prometheus scrape endpoint (OTEL_METRICS_EXPORTER=prometheus).
    prometheus_host: str = _setting(
        "OTEL_EXPORTER_PROMETHEUS_HOST",
        "127.0.0.1",
        _str,
        "Address the `/metrics` endpoint listens on (`0.0.0.0` to be scraped from elsewhere).",
    )
    prometheus_port: int = _setting(
        "OTEL_EXPORTER_PROMETHEUS_PORT",
        9464,
        _number(int, 1, 65535),
        "First port tried for the `/metrics` endpoint.",
    )
    prometheus_port_range: int = _setting(
        "OTEL_DISTRO_PROMETHEUS_PORT_RANGE",
        16,
        _number(int, 1, 1024),
        "How many consecutive ports workers may take: worker N of a pre-fork server binds the "
        "first free one from the port above.",
    )

    # What gets traced.
    excluded_urls: tuple[str, ...] = _setting(
        "OTEL_DISTRO_EXCLUDED_URLS",
        ("/health", "/healthz", "/livez", "/readyz", "/metrics$"),
        _regex_csv,
        "Comma-separated regular expressions of URLs not traced (searched in the full URL). "
        "`OTEL_PYTHON_EXCLUDED_URLS` still wins when set.",
    )
    python_excluded_urls: str | None = _setting(
        "OTEL_PYTHON_EXCLUDED_URLS",
        None,
        _optional_regex_csv,
        "Upstream variable: when set (or `OTEL_PYTHON_FASTAPI_EXCLUDED_URLS` / "
        "`OTEL_PYTHON_FLASK_EXCLUDED_URLS`), it replaces `OTEL_DISTRO_EXCLUDED_URLS`.",
    )
    fastapi_excluded_urls: str | None = _setting(
        "OTEL_PYTHON_FASTAPI_EXCLUDED_URLS",
        None,
        _optional_regex_csv,
        "Upstream variable: URLs not traced by the FastAPI instrumentation only.",
    )
    flask_excluded_urls: str | None = _setting(
        "OTEL_PYTHON_FLASK_EXCLUDED_URLS",
        None,
        _optional_regex_csv,
        "Upstream variable: URLs not traced by the Flask instrumentation only.",
    )
    asgi_exclude_spans: tuple[str, ...] = _setting(
        "OTEL_DISTRO_ASGI_EXCLUDE_SPANS",
        ("send", "receive"),
        _csv_choice("send", "receive"),
        "Per-message ASGI spans to drop (`send`, `receive`); empty keeps both.",
    )
    http_instrumentation: str = _setting(
        "OTEL_DISTRO_HTTP_INSTRUMENTATION",
        "distro",
        _choice("distro", "contrib"),
        "Flask and FastAPI server spans and metrics: `distro` (ours, by the HTTP semantic conventions, "
        "under the scope `otel_distro.http_server.*`, for about half contrib's CPU per request) or `contrib`. "
        "Settings only contrib implements (header capture, other semantic-convention modes) switch to "
        "`contrib` by themselves.",
    )
    http_metrics: str = _setting(
        "OTEL_DISTRO_HTTP_METRICS",
        "process",
        _choice("process", "collector"),
        "Where `http.server.request.duration` (request rate, errors, duration) is computed: `process` "
        "records it here; `collector` records no HTTP metric (about 30 µs less per request) and marks the "
        "resource so the bundled collector derives the same histogram from the server spans, before tail "
        "sampling; dashboards and alerts work unchanged. Not counted then: requests whose span is not "
        "sampled (`OTEL_TRACES_SAMPLER`, or a caller's unsampled `traceparent`), `http.server.active_requests` "
        "and the body sizes.",
    )
    traces_sampler: str | None = _setting(
        "OTEL_TRACES_SAMPLER",
        None,
        _optional_str,
        "Upstream variable (the SDK reads it; default `parentbased_always_on`): which spans are recorded. "
        "`otel-distro doctor` warns when it drops requests that `OTEL_DISTRO_HTTP_METRICS=collector` would count.",
    )
    capture_headers_server_request: str | None = _setting(
        "OTEL_INSTRUMENTATION_HTTP_CAPTURE_HEADERS_SERVER_REQUEST",
        None,
        _optional_str,
        "Upstream variable: request headers recorded on server spans; when set, Flask and FastAPI use the "
        "contrib instrumentations.",
    )
    capture_headers_server_response: str | None = _setting(
        "OTEL_INSTRUMENTATION_HTTP_CAPTURE_HEADERS_SERVER_RESPONSE",
        None,
        _optional_str,
        "Upstream variable: response headers recorded on server spans; when set, Flask and FastAPI use the "
        "contrib instrumentations.",
    )
    capture_all_methods: str | None = _setting(
        "OTEL_PYTHON_INSTRUMENTATION_HTTP_CAPTURE_ALL_METHODS",
        None,
        _optional_str,
        "Upstream variable: keep non-standard HTTP methods instead of `_OTHER`; when set, Flask and FastAPI "
        "use the contrib instrumentations.",
    )
    runtime_metrics: bool = _setting(
        "OTEL_DISTRO_RUNTIME_METRICS",
        True,
        _bool,
        "Process CPU, memory, GC, thread and file-descriptor metrics.",
    )

    # Request IDs.
    request_id_header: str = _setting(
        "OTEL_DISTRO_REQUEST_ID_HEADER",
        "X-Request-ID",
        _header_name,
        "Header carrying the request ID in, out (response) and downstream.",
    )
    request_id_trust_inbound: bool = _setting(
        "OTEL_DISTRO_REQUEST_ID_TRUST_INBOUND",
        True,
        _bool,
        "Reuse a safe inbound request ID (at most 128 characters of `A-Za-z0-9._:-`); otherwise always generate one.",
    )
    server_timing: bool = _setting(
        "OTEL_DISTRO_SERVER_TIMING",
        True,
        _bool,
        "Add a `Server-Timing` response header with the server duration and the trace ID.",
    )

    # Logs.
    log_level: str = _setting(
        "OTEL_DISTRO_LOG_LEVEL",
        "INFO",
        _level,
        "Lowest level of stdlib/structlog records exported over OTLP.",
    )

    log_format: str = _setting(
        "OTEL_DISTRO_LOG_FORMAT",
        "auto",
        _choice("auto", "json", "console"),
        "Console log format: `json` lines, readable `console`, or `auto` (console on a terminal, JSON otherwise).",
    )
    console_logs: str = _setting(
        "OTEL_DISTRO_CONSOLE_LOGS",
        "auto",
        _choice("auto", "replace", "off"),
        "`auto`: print on stdout the records no handler of the app printed; `replace`: also give "
        "the app's console handlers our format; `off`: print nothing ourselves.",
    )
    access_log: str = _setting(
        "OTEL_DISTRO_ACCESS_LOG",
        "distro",
        _choice("distro", "server", "off"),
        "`distro`: one `request completed` line per request (with IDs) replaces uvicorn's and "
        "gunicorn's access lines; `server`: keep the server's; `off`: neither.",
    )
    access_log_export: bool = _setting(
        "OTEL_DISTRO_ACCESS_LOG_EXPORT",
        False,
        _bool,
        "Also export the `request completed` lines over OTLP (to the logs backend). Off: they go to stdout and "
        "the log file only, as a server's access log does; every request is already a span and a "
        "metric, and `slow request` and error lines are always exported.",
    )
    slow_request_threshold: float = _setting(
        "OTEL_DISTRO_SLOW_REQUEST_THRESHOLD",
        1.0,
        _number(float, 0, 3600),
        "Seconds after which a request is logged as a `slow request` WARNING (0 turns it off).",
    )
    log_file: str | None = _setting(
        "OTEL_DISTRO_LOG_FILE",
        None,
        _log_file,
        "Also write JSON lines to this file, rotated by size and daily (safe with several workers).",
    )
    log_file_max_bytes: int = _setting(
        "OTEL_DISTRO_LOG_FILE_MAX_BYTES",
        10 * 1024 * 1024,
        _number(int, 1024, 2**40),
        "Size at which the log file is rotated.",
    )
    log_file_backups: int = _setting(
        "OTEL_DISTRO_LOG_FILE_BACKUPS",
        30,
        _number(int, 0, 10000),
        "Rotated log files kept (`app.log.1` is the newest).",
    )
    scrub: bool = _setting(
        "OTEL_DISTRO_SCRUB",
        True,
        _bool,
        "Replace values of sensitive keys (password, token, authorization, cookie, ...) and card "
        "numbers in logs and span attributes with `[REDACTED]`.",
    )
    scrub_keys: tuple[str, ...] = _setting(
        "OTEL_DISTRO_SCRUB_KEYS",
        (),
        _csv,
        "Extra key fragments to scrub, comma-separated (matched case-insensitively inside keys).",
    )

    error_groups_max: int = _setting(
        "OTEL_DISTRO_ERROR_GROUPS_MAX",
        200,
        _number(int, 1, 100_000),
        "Distinct error groups the `app.errors` counter tells apart per process; later new groups count as "
        "`_other` (one warning says so).",
    )

    error_events_per_minute: int = _setting(
        "OTEL_DISTRO_ERROR_EVENTS_PER_MINUTE",
        60,
        _number(int, 0, 100_000),
        "ERROR log events with an exception written and exported per error group per minute and process "
        "(bursts up to this many); the next one passing says how many were left out in "
        "`error.events.suppressed`. The `app.errors` counter counts them all. 0: no limit.",
    )

    breadcrumbs: int = _setting(
        "OTEL_DISTRO_BREADCRUMBS",
        20,
        _number(int, 0, 1000),
        "Log records of the current request kept in memory and added (scrubbed) to its ERROR line as "
        "`breadcrumbs` when an exception is logged; 0 turns it off.",
    )

    # Failure behaviour.
    shutdown_timeout: float = _setting(
        "OTEL_DISTRO_SHUTDOWN_TIMEOUT",
        5.0,
        _number(float, 0, 300),
        "Seconds the final flush may take at exit or SIGTERM before the process goes anyway.",
    )
    export_warning_interval: float = _setting(
        "OTEL_DISTRO_EXPORT_WARNING_INTERVAL",
        60.0,
        _number(float, 0, 86400),
        "At most one export-failure warning per exporter per this many seconds.",
    )

    # Health endpoints (`otel_distro.health`).
    health: bool = _setting(
        "OTEL_DISTRO_HEALTH",
        False,
        _bool,
        "Add the three health endpoints (docs/health-and-doctor.md) to every FastAPI and Flask app "
        "(or add them in code, one line).",
    )
    health_path: str = _setting(
        "OTEL_DISTRO_HEALTH_PATH",
        "/health",
        _url_path,
        "Detailed health view: status, service, uptime, each check, exporters' last success and failure.",
    )
    health_live_path: str = _setting(
        "OTEL_DISTRO_HEALTH_LIVE_PATH",
        "/health/live",
        _url_path,
        "Liveness: 200 while the process serves requests; never runs checks.",
    )
    health_ready_path: str = _setting(
        "OTEL_DISTRO_HEALTH_READY_PATH",
        "/health/ready",
        _url_path,
        "Readiness: runs the registered checks concurrently; 200 when all pass, else 503 naming the failing ones.",
    )
    health_check_timeout: float = _setting(
        "OTEL_DISTRO_HEALTH_CHECK_TIMEOUT",
        2.0,
        _number(float, 0.01, 300),
        "Seconds a health check may take before it counts as failed (`add_check(timeout=...)` overrides it).",
    )
    # Upstream variables read by `otel-distro doctor` (the SDK reads them itself).
    otlp_headers: str | None = _setting(
        "OTEL_EXPORTER_OTLP_HEADERS",
        None,
        _optional_str,
        "Upstream variable: `key=value,...` headers sent to the collector (often a token); masked by the doctor.",
        secret=True,
    )
    otlp_traces_endpoint: str | None = _setting(
        "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
        None,
        _optional_str,
        "Upstream variable: collector URL for traces only (over HTTP the full URL, `.../v1/traces`).",
    )
    otlp_metrics_endpoint: str | None = _setting(
        "OTEL_EXPORTER_OTLP_METRICS_ENDPOINT",
        None,
        _optional_str,
        "Upstream variable: collector URL for metrics only (over HTTP the full URL, `.../v1/metrics`).",
    )
    otlp_logs_endpoint: str | None = _setting(
        "OTEL_EXPORTER_OTLP_LOGS_ENDPOINT",
        None,
        _optional_str,
        "Upstream variable: collector URL for logs only (over HTTP the full URL, `.../v1/logs`).",
    )
    python_distro: str | None = _setting(
        "OTEL_PYTHON_DISTRO",
        None,
        _optional_str,
        "Upstream variable: the distro `opentelemetry-instrument` loads when several are installed (`otel_distro`).",
    )
    python_configurator: str | None = _setting(
        "OTEL_PYTHON_CONFIGURATOR",
        None,
        _optional_str,
        "Upstream variable: the configurator loaded when several are installed (ours: `otel_distro`).",
    )
    disabled_instrumentations: tuple[str, ...] = _setting(
        "OTEL_PYTHON_DISABLED_INSTRUMENTATIONS",
        (),
        _csv,
        "Upstream variable: instrumentations not loaded, comma-separated entry-point names (`urllib3,requests`).",
    )

    # Upstream variables `requests` honours, usually set for other reasons: when one applies, the
    # OTLP/HTTP exporters keep upstream's `requests` transport instead of ours (`otel_distro.otlp_http`).
    http_proxy: str | None = _setting(
        "http_proxy",
        None,
        _optional_str,
        "Upstream (system-wide) variable, usually set for other programs: proxy for `http://` URLs. "
        "When set, the OTLP/HTTP exporters send through `requests`, which uses it; masked by the doctor.",
        secret=True,
    )
    http_proxy_uppercase: str | None = _setting(
        "HTTP_PROXY",
        None,
        _optional_str,
        "Upstream (system-wide) variable: as `http_proxy`.",
        secret=True,
    )
    all_proxy: str | None = _setting(
        "all_proxy",
        None,
        _optional_str,
        "Upstream (system-wide) variable, usually set for other programs: proxy for every scheme. "
        "When set, the OTLP/HTTP exporters send through `requests`, which uses it; masked by the doctor.",
        secret=True,
    )
    all_proxy_uppercase: str | None = _setting(
        "ALL_PROXY",
        None,
        _optional_str,
        "Upstream (system-wide) variable: as `all_proxy`.",
        secret=True,
    )
    netrc: str | None = _setting(
        "NETRC",
        None,
        _optional_str,
        "Upstream (system-wide) variable: the netrc file `requests` reads instead of `~/.netrc`. "
        "When that file exists, the OTLP/HTTP exporters send through `requests`, which may take credentials from it.",
    )
    otlp_http_credential_provider: str | None = _setting(
        "OTEL_PYTHON_EXPORTER_OTLP_HTTP_CREDENTIAL_PROVIDER",
        None,
        _optional_str,
        "Upstream variable: entry point giving the OTLP/HTTP exporters a `requests` session (their transport).",
    )
    otlp_http_traces_credential_provider: str | None = _setting(
        "OTEL_PYTHON_EXPORTER_OTLP_HTTP_TRACES_CREDENTIAL_PROVIDER",
        None,
        _optional_str,
        "Upstream variable: as above, for the trace exporter only.",
    )
    otlp_http_metrics_credential_provider: str | None = _setting(
        "OTEL_PYTHON_EXPORTER_OTLP_HTTP_METRICS_CREDENTIAL_PROVIDER",
        None,
        _optional_str,
        "Upstream variable: as above, for the metric exporter only.",
    )
    otlp_http_logs_credential_provider: str | None = _setting(
        "OTEL_PYTHON_EXPORTER_OTLP_HTTP_LOGS_CREDENTIAL_PROVIDER",
        None,
        _optional_str,
        "Upstream variable: as above, for the log exporter only.",
    )

    # Where each value came from, for `otel-distro doctor`; not a setting itself.
    sources: Mapping[str, str] = field(default_factory=dict, compare=False, repr=False)
    # Values refused while loading, each replaced by its default; not a setting itself.
    problems: tuple[SettingProblem, ...] = field(default=(), compare=False, repr=False)

    @property
    def resolved_otlp_endpoint(self) -> str:
        """The collector URL actually used, after applying the protocol's default port."""
        if self.otlp_endpoint:
            return self.otlp_endpoint
        return "http://localhost:4317" if self.otlp_protocol == "grpc" else "http://localhost:4318"

    @property
    def http_proxy_configured(self) -> bool:
        """A proxy variable `requests` would use for an `http://` URL is set (`http_proxy`, `all_proxy`, any case)."""
        return bool(self.http_proxy or self.http_proxy_uppercase or self.all_proxy or self.all_proxy_uppercase)

    def otlp_http_credential_provider_for(self, signal: str) -> str | None:
        """The credential provider upstream's OTLP/HTTP exporter of `signal` (`traces`, `metrics`, `logs`) loads."""
        specific: str | None = getattr(self, f"otlp_http_{signal}_credential_provider")
        return self.otlp_http_credential_provider or specific


def setting_fields() -> tuple[Any, ...]:
    """The dataclass fields that are settings (those declaring an environment variable)."""
    return tuple(f for f in fields(Settings) if "env" in f.metadata)


def load_settings(environ: Mapping[str, str] | None = None) -> Settings:
    """Parse the environment once: the settings, with each refused value in `problems`.

    A value that cannot be used falls back to the default. Nothing is logged here: whoever
    configures the SDK warns once per problem, and `otel-distro doctor` reports them.
    """
    env = os.environ if environ is None else environ
    values: dict[str, Any] = {}
    sources: dict[str, str] = {}
    problems: list[SettingProblem] = []
    for f in setting_fields():
        name = f.metadata["env"]
        raw = env.get(name)
        sources[f.name] = SOURCE_DEFAULT
        if raw is None:
            continue
        try:
            values[f.name] = f.metadata["parse"](raw)
            sources[f.name] = SOURCE_ENV
        except _Invalid as err:
            problems.append(
                SettingProblem(f.name, name, _quoted(raw, f.metadata["secret"]), str(err), _format_default(f.default))
            )
    return Settings(**values, sources=sources, problems=tuple(problems))


_settings: Settings | None = None


def get_settings() -> Settings:
    """This process's settings, parsed on first use.

    Only for entry points nobody can hand settings to: the distro and the configurator, which
    `opentelemetry-instrument` instantiates separately, and functions apps call themselves
    (health endpoints). Everything else receives the settings as an argument.
    """
    global _settings
    if _settings is None:
        _settings = load_settings()
    return _settings


def upstream_defaults(settings: Settings) -> dict[str, str]:
    """Standard variables that upstream packages read themselves, with our defaults."""
    return {
        "OTEL_SEMCONV_STABILITY_OPT_IN": settings.semconv_opt_in,
        "OTEL_EXPORTER_OTLP_PROTOCOL": settings.otlp_protocol,
        "OTEL_EXPORTER_OTLP_ENDPOINT": settings.resolved_otlp_endpoint,
        # Process, host and OS attributes; service.instance.id is added per process by the SDK
        # and refreshed after fork, so pre-fork workers stay distinguishable.
        "OTEL_EXPERIMENTAL_RESOURCE_DETECTORS": "process,host,os",
        "OTEL_METRICS_EXEMPLAR_FILTER": "trace_based",
        "OTEL_BSP_MAX_QUEUE_SIZE": str(settings.span_queue),
        "OTEL_BLRP_MAX_QUEUE_SIZE": str(settings.log_queue),
        # The SDK refuses a batch larger than its queue.
        "OTEL_BSP_MAX_EXPORT_BATCH_SIZE": str(min(settings.span_export_batch, settings.span_queue)),
        "OTEL_BLRP_MAX_EXPORT_BATCH_SIZE": str(min(settings.log_export_batch, settings.log_queue)),
    }


def apply_upstream_defaults(settings: Settings, environ: MutableMapping[str, str] | None = None) -> None:
    """Fill in standard variables the user left unset (user values always win).

    Invalid user values are replaced by the parsed fallback so upstream sees the same
    value we warned about.
    """
    env = os.environ if environ is None else environ
    by_env = {f.metadata["env"]: f.name for f in setting_fields()}
    for name, value in upstream_defaults(settings).items():
        attr = by_env.get(name)
        user_valid = attr is not None and settings.sources.get(attr) == SOURCE_ENV
        if name not in env or (attr is not None and not user_valid):
            env[name] = value


def _quoted(raw: str, secret: bool) -> str:
    """The value as a warning quotes it: bounded, and masked for a secret."""
    if secret:
        return "'***'"
    return repr(raw) if len(raw) <= 120 else repr(raw[:120]) + f"... ({len(raw)} characters)"


def variable(attribute: str) -> str:
    """The environment variable of a setting, for messages: `variable("log_file")`."""
    return str(next(f for f in setting_fields() if f.name == attribute).metadata["env"])


def _format_default(value: object) -> str:
    if value is None:
        return "(unset)"
    if isinstance(value, tuple):
        return repr(",".join(value))
    return repr(value)


def _doc_default(value: object) -> str:
    if value is None:
        return "unset"
    if isinstance(value, bool):
        return "`true`" if value else "`false`"
    if isinstance(value, tuple):
        return "`" + ",".join(value) + "`" if value else "empty"
    if isinstance(value, float) and value.is_integer():
        return f"`{int(value)}`"
    return f"`{value}`"


def markdown_table(rows: Iterable[Any] | None = None) -> str:
    """The README's table of environment variables, generated from the declaration."""
    lines = ["| Variable | Default | What it does |", "|---|---|---|"]
    for f in rows if rows is not None else setting_fields():
        lines.append(f"| `{f.metadata['env']}` | {_doc_default(f.default)} | {f.metadata['doc']} |")
    return "\n".join(lines)
