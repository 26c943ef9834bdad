"""`otel-distro doctor`: why is nothing arriving?

Each check returns findings: a one-line message, a one-line fix, and a level. `problem`s make
the command exit non-zero; `warning`s are advice; `ok` lines say what was verified. Settings
come from `otel_distro.settings` (this module never reads the environment itself); the
network, installed packages and the app are looked at here.
"""

from __future__ import annotations

import contextlib
import importlib
import inspect
import logging
import os
import socket
import ssl
import sys
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from importlib import metadata
from typing import Any
from urllib.parse import unquote, urlsplit

from otel_distro.settings import SettingProblem, Settings, load_settings, setting_fields

__all__ = ["Finding", "Report", "diagnose"]

PROBLEM, WARNING, OK = "problem", "warning", "ok"
SIGNALS = ("traces", "metrics", "logs")
OURS = "otel_distro"
MASK = "******"

_GRPC_SERVICES = {
    "traces": "/opentelemetry.proto.collector.trace.v1.TraceService/Export",
    "metrics": "/opentelemetry.proto.collector.metrics.v1.MetricsService/Export",
    "logs": "/opentelemetry.proto.collector.logs.v1.LogsService/Export",
}
_H2_PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" + b"\x00\x00\x00\x04\x00\x00\x00\x00\x00"  # + empty SETTINGS


@dataclass(frozen=True)
class Finding:
    check: str  # config, collector, instrumentations, distro, app
    level: str  # problem, warning, ok
    message: str
    fix: str | None = None

    def line(self) -> str:
        return f"{self.message}; fix: {self.fix}" if self.fix else self.message


@dataclass
class Report:
    settings: list[dict[str, Any]]
    findings: list[Finding] = field(default_factory=list)

    @property
    def problems(self) -> list[Finding]:
        return [f for f in self.findings if f.level == PROBLEM]

    def exit_code(self, strict: bool = False) -> int:
        failing = self.problems or (strict and any(f.level == WARNING for f in self.findings))
        return 1 if failing else 0

    def as_json(self) -> dict[str, Any]:
        return {
            "ok": not self.problems,
            "settings": self.settings,
            "findings": [asdict(f) for f in self.findings],
            "problems": [f.line() for f in self.problems],
        }

    def render(self) -> str:
        width = max((len(s["env"]) for s in self.settings), default=0)
        lines = ["Configuration (value, source):"]
        for s in self.settings:
            lines.append(f"  {s['env']:<{width}}  {_show(s['value'])}  ({s['source']})")
        for check in ("config", "distro", "collector", "instrumentations", "app"):
            found = [f for f in self.findings if f.check == check]
            if found:
                lines.append(f"\n{check.capitalize()}:")
                lines.extend(f"  {f.level.upper():<7}  {f.line()}" for f in found)
        problems = self.problems
        lines.append("")
        if problems:
            lines.append(f"{len(problems)} problem{'s' if len(problems) > 1 else ''}:")
            lines.extend(f"  {f.line()}" for f in problems)
        else:
            lines.append("No problems found.")
        return "\n".join(lines)


def _show(value: Any) -> str:
    if value is None:
        return "unset"
    if isinstance(value, list):
        return ",".join(map(str, value)) or "(empty)"
    return str(value)


# --- configuration ---------------------------------------------------------------------------


def _mask_headers(raw: str) -> str:
    """Header names stay readable; values are hidden."""
    shown = []
    for part in raw.split(","):
        name, sep, _ = part.partition("=")
        shown.append(f"{unquote(name.strip())}={MASK}" if sep else MASK)  # no `=`: all of it may be secret
    return ",".join(shown)


def _shown(f: Any, value: Any) -> Any:
    if value is None:
        return None
    if f.metadata.get("secret"):
        return _mask_headers(value) if f.metadata["env"].endswith("_HEADERS") else MASK
    return list(value) if isinstance(value, tuple) else value


def settings_rows(settings: Settings) -> list[dict[str, Any]]:
    """Every setting, its value (secrets masked) and where it came from."""
    return [
        {
            "env": f.metadata["env"],
            "value": _shown(f, getattr(settings, f.name)),
            "source": settings.sources.get(f.name, "default"),
            "secret": bool(f.metadata.get("secret")),
        }
        for f in setting_fields()
    ]


def config_findings(problems: Sequence[SettingProblem], service_name: str | None) -> list[Finding]:
    """The values the settings refused (the ones the configurator warns about), and the service name."""
    found = []
    for problem in problems:
        found.append(
            Finding(
                "config",
                PROBLEM,
                f"{problem.variable}={problem.value} is not valid (expected {problem.expected}); "
                f"the default {problem.fallback} is used",
                f"set {problem.variable} to {problem.expected}, or unset it",
            )
        )
    if not service_name:
        found.append(
            Finding(
                "config",
                PROBLEM,
                "OTEL_SERVICE_NAME is not set: telemetry arrives as `unknown_service`",
                "export OTEL_SERVICE_NAME=<your service>",
            )
        )
    return found


# --- collector -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Target:
    """One collector address to probe, shared by the signals that send there."""

    signals: tuple[str, ...]
    protocol: str  # http/protobuf or grpc: what the exporters will really use
    url: str
    variable: str  # the variable to change to fix it

    @property
    def parts(self) -> tuple[str, int, bool, str]:
        """host, port, TLS, path."""
        url = self.url if "://" in self.url else "http://" + self.url
        split = urlsplit(url)
        tls = split.scheme == "https"
        default = 443 if tls else (4317 if self.protocol == "grpc" else 4318)
        return split.hostname or "localhost", split.port or default, tls, split.path or "/"

    @property
    def address(self) -> str:
        host, port, _, _ = self.parts
        return f"{host}:{port}"


def _signal_endpoint(settings: Settings, signal: str) -> str | None:
    value: str | None = getattr(settings, f"otlp_{signal}_endpoint")
    return value


def collector_targets(settings: Settings, protocol: str) -> list[Target]:
    """Where each OTLP-exporting signal goes, grouped by address."""
    grouped: dict[tuple[str, str], list[str]] = {}
    for signal in SIGNALS:
        if "otlp" not in getattr(settings, f"{signal}_exporter"):
            continue
        own = _signal_endpoint(settings, signal)
        if own:
            key = (own, f"OTEL_EXPORTER_OTLP_{signal.upper()}_ENDPOINT")
        elif protocol == "grpc":
            key = (settings.resolved_otlp_endpoint, "OTEL_EXPORTER_OTLP_ENDPOINT")
        else:
            key = (settings.resolved_otlp_endpoint.rstrip("/") + f"/v1/{signal}", "OTEL_EXPORTER_OTLP_ENDPOINT")
        grouped.setdefault(key, []).append(signal)
    return [Target(tuple(signals), protocol, url, variable) for (url, variable), signals in grouped.items()]


def parse_headers(raw: str | None) -> list[tuple[str, str]]:
    """`OTEL_EXPORTER_OTLP_HEADERS` as the exporters read it: `k=v,k2=v2`, URL-encoded."""
    pairs = []
    for part in (raw or "").split(","):
        name, sep, value = part.partition("=")
        if sep and name.strip():
            pairs.append((unquote(name.strip()).lower(), unquote(value.strip())))
    return pairs


class _Unreachable(Exception):
    def __init__(self, message: str, fix: str) -> None:
        super().__init__(message)
        self.fix = fix


def _connect(target: Target, timeout: float, alpn: str) -> socket.socket:
    host, port, tls, _ = target.parts
    where = f"{host}:{port}"
    start = f"start the collector, or set {target.variable} to where it listens"
    try:
        sock = socket.create_connection((host, port), timeout=timeout)
    except ConnectionRefusedError:
        raise _Unreachable(f"nothing listens on {where} (connection refused)", start) from None
    except socket.gaierror:
        raise _Unreachable(f"cannot resolve the host {host!r}", f"check the host name in {target.variable}") from None
    except TimeoutError:
        raise _Unreachable(f"no answer from {where} within {timeout:g}s", "check the address and firewalls") from None
    except OSError as err:
        raise _Unreachable(f"cannot connect to {where} ({err.strerror or err})", start) from None
    if not tls:
        return sock
    context = ssl.create_default_context()
    context.set_alpn_protocols([alpn])
    try:
        return context.wrap_socket(sock, server_hostname=host)
    except ssl.SSLError as err:
        sock.close()
        if "WRONG_VERSION_NUMBER" in str(err) or "wrong version number" in str(err):
            raise _Unreachable(
                f"{target.variable} uses https:// but {where} does not speak TLS",
                f"use http:// in {target.variable}",
            ) from None
        raise _Unreachable(f"TLS with {where} failed ({err.reason})", "check the collector's certificate") from None
    except OSError as err:
        sock.close()
        raise _Unreachable(f"TLS with {where} failed ({err})", "check the collector's TLS settings") from None


def _exchange(target: Target, payload: bytes, timeout: float, alpn: str, enough: Callable[[bytes], bool]) -> bytes:
    """Send `payload`, return what the server answered before closing, timing out or `enough`."""
    with _connect(target, timeout, alpn) as sock:
        sock.settimeout(timeout)
        received = b""
        with contextlib.suppress(OSError):  # resets and time-outs end the answer
            sock.sendall(payload)
            while not enough(received):
                chunk = sock.recv(4096)
                if not chunk:
                    break
                received += chunk
        return received


def _speaks(data: bytes) -> str:
    """What the first bytes of an answer say about the server."""
    if data.startswith(b"HTTP/1."):
        return "http1"
    if len(data) >= 9 and data[3] in (0x04, 0x07) and data[5:9] == b"\x00\x00\x00\x00":
        return "http2"  # a SETTINGS or GOAWAY frame on stream 0: an HTTP/2 (gRPC) server
    if data[:2] in (b"\x15\x03", b"\x16\x03"):
        return "tls"
    return "nothing" if not data else "unknown"


def _http1_status(data: bytes) -> int:
    parts = data.split(b"\r\n", 1)[0].split()
    return int(parts[1]) if len(parts) > 1 and parts[1].isdigit() else 0


def _http_request(target: Target, headers: Sequence[tuple[str, str]]) -> bytes:
    host, port, _, path = target.parts
    lines = [
        f"POST {path} HTTP/1.1",
        f"Host: {host}:{port}",
        "Content-Type: application/x-protobuf",
        "Content-Length: 0",  # an empty export request: valid OTLP, carries no data
        "Connection: close",
        *(f"{k}: {v}" for k, v in headers),
    ]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


def _other_port_fix(target: Target, wanted: str) -> str:
    """`VAR=http://host:4318` when the port is one of the standard pair, else a description."""
    host, port, tls, _ = target.parts
    standard = {"http/protobuf": 4318, "grpc": 4317}
    swapped = "grpc" if wanted == "http/protobuf" else "http/protobuf"
    if port != standard[swapped]:
        kind = "OTLP/HTTP" if wanted == "http/protobuf" else "gRPC"
        return f"{target.variable} to the collector's {kind} port ({standard[wanted]} by default)"
    # A per-signal HTTP variable is used as-is, so it keeps its /v1/<signal> path.
    own_path = wanted == "http/protobuf" and target.variable != "OTEL_EXPORTER_OTLP_ENDPOINT"
    path = f"/v1/{target.signals[0]}" if own_path else ""
    return f"{target.variable}={'https' if tls else 'http'}://{host}:{standard[wanted]}{path}"


def _tls_fix(target: Target) -> Finding:
    return _problem(
        target, f"{target.address} speaks TLS but {target.variable} says http://", f"use https:// in {target.variable}"
    )


def _problem(target: Target, message: str, fix: str) -> Finding:
    return Finding("collector", PROBLEM, message, fix)


def _ok(target: Target, message: str) -> Finding:
    return Finding("collector", OK, message)


def probe_http(target: Target, headers: Sequence[tuple[str, str]], timeout: float) -> Finding:
    """POST an empty OTLP/HTTP export request and read the answer."""
    answer = _exchange(target, _http_request(target, headers), timeout, "http/1.1", lambda d: b"\r\n" in d)
    kind = _speaks(answer)
    if kind == "http1":
        return _http_status(target, _http1_status(answer))
    if kind == "tls":
        return _tls_fix(target)
    # No HTTP/1.1 answer: check whether HTTP/2 (gRPC) is what listens there.
    if kind == "http2" or _speaks(_exchange(target, _H2_PREFACE, timeout, "h2", lambda d: len(d) >= 9)) == "http2":
        fix = f"set {_other_port_fix(target, 'http/protobuf')}, or OTEL_EXPORTER_OTLP_PROTOCOL=grpc"
        return _problem(
            target, f"{target.address} speaks gRPC (HTTP/2) but OTEL_EXPORTER_OTLP_PROTOCOL is http/protobuf", fix
        )
    return _problem(
        target,
        f"{target.address} accepted the connection but did not answer as OTLP/HTTP",
        f"point {target.variable} at the collector's OTLP/HTTP receiver (port 4318 by default)",
    )


def _http_status(target: Target, status: int) -> Finding:
    _, _, _, path = target.parts
    signal = target.signals[0]
    # Worded alike for every signal, so one collector's answer makes one line.
    where = (
        target.address + path.removesuffix(f"/v1/{signal}") + ("/v1/<signal>" if path.endswith(f"/v1/{signal}") else "")
    )
    if 200 <= status < 300:
        return _ok(target, f"{target.address} answers OTLP/HTTP ({status})")
    if status in (401, 403):
        return _problem(
            target,
            f"{where} refused the export ({status}): the collector wants credentials",
            "set OTEL_EXPORTER_OTLP_HEADERS, e.g. Authorization=Bearer%20<token>",
        )
    if status in (404, 405):
        if target.variable == "OTEL_EXPORTER_OTLP_ENDPOINT" and path.count("/v1/") > 1:
            base = target.url[: target.url.index("/v1/")]
            fix = f"set {target.variable}={base}: the exporter appends /v1/<signal> itself"
        elif target.variable != "OTEL_EXPORTER_OTLP_ENDPOINT" and not path.endswith(f"/v1/{signal}"):
            fix = f"{target.variable} is used as-is: end it with /v1/{signal}"
        else:
            fix = f"point {target.variable} at the collector's OTLP/HTTP receiver (port 4318 by default)"
        return _problem(target, f"{where} answered {status}: no OTLP/HTTP receiver at that path", fix)
    return _problem(target, f"{where} answered {status} to an empty export", "check the collector's log for the reason")


def _grpc_call(target: Target, headers: Sequence[tuple[str, str]], timeout: float) -> tuple[str, str]:
    """A real, empty gRPC export; returns (status code name, details)."""
    import grpc  # type: ignore[import-untyped]

    _, _, tls, _ = target.parts
    channel = grpc.secure_channel(target.address, grpc.ssl_channel_credentials()) if tls else None
    channel = channel or grpc.insecure_channel(target.address)
    try:
        export = channel.unary_unary(_GRPC_SERVICES[target.signals[0]])
        export(b"", timeout=timeout, metadata=list(headers))
        return "OK", ""
    except grpc.RpcError as err:
        return str(err.code().name), str(err.details() or "")
    finally:
        channel.close()


def _speaks_http1(target: Target, timeout: float) -> bool:
    http_target = Target(target.signals, "http/protobuf", target.url, target.variable)
    try:
        answer = _exchange(http_target, _http_request(http_target, ()), timeout, "http/1.1", lambda d: b"\r\n" in d)
    except _Unreachable:
        return False
    return _speaks(answer) == "http1"


def probe_grpc(target: Target, headers: Sequence[tuple[str, str]], timeout: float) -> Finding:
    """Send an HTTP/2 preface (is it HTTP/2 at all?), then a real empty gRPC export."""
    answer = _exchange(target, _H2_PREFACE, timeout, "h2", lambda d: len(d) >= 9)
    kind = _speaks(answer)
    mixed_up = _problem(
        target,
        f"{target.address} speaks HTTP/1.1 (OTLP/HTTP) but OTEL_EXPORTER_OTLP_PROTOCOL is grpc",
        f"set OTEL_EXPORTER_OTLP_PROTOCOL=http/protobuf, or {_other_port_fix(target, 'grpc')}",
    )
    if kind == "http1":
        return mixed_up
    if kind == "tls":
        return _tls_fix(target)
    code, details = _grpc_call(target, headers, timeout)
    if code == "OK":
        return _ok(target, f"{target.address} answers OTLP/gRPC")
    if code == "UNIMPLEMENTED" or "http1" in details.lower().replace(".", "") or _speaks_http1(target, timeout):
        return mixed_up
    if code in ("UNAUTHENTICATED", "PERMISSION_DENIED"):
        return _problem(
            target,
            f"{target.address} refused the export ({code}): the collector wants credentials",
            "set OTEL_EXPORTER_OTLP_HEADERS, e.g. authorization=Bearer%20<token>",
        )
    return _problem(
        target,
        f"{target.address} did not complete a gRPC export ({code}: {details[:120]})",
        f"point {target.variable} at the collector's OTLP gRPC receiver (port 4317 by default)",
    )


def _grpc_installed() -> bool:
    try:
        importlib.import_module("opentelemetry.exporter.otlp.proto.grpc")
    except ImportError:
        return False
    return True


def collector_findings(settings: Settings, timeout: float, grpc_installed: bool | None = None) -> list[Finding]:
    found: list[Finding] = []
    protocol = settings.otlp_protocol
    if protocol == "grpc" and not (_grpc_installed() if grpc_installed is None else grpc_installed):
        found.append(
            Finding(
                "collector",
                PROBLEM,
                "OTEL_EXPORTER_OTLP_PROTOCOL=grpc but the gRPC exporter is not installed: http/protobuf is used",
                "pip install 'otel-distro[grpc]', or set OTEL_EXPORTER_OTLP_PROTOCOL=http/protobuf",
            )
        )
        protocol = "http/protobuf"
    headers = parse_headers(settings.otlp_headers)
    probe = probe_grpc if protocol == "grpc" else probe_http
    # Signals sharing one outcome (usually all three, one collector) make one line.
    outcomes: dict[Finding, list[str]] = {}
    for target in collector_targets(settings, protocol):
        try:
            outcome = probe(target, headers, timeout)
        except _Unreachable as err:
            outcome = _problem(target, str(err), err.fix)
        outcomes.setdefault(outcome, []).extend(target.signals)
    for outcome, signals in outcomes.items():
        found.append(Finding(outcome.check, outcome.level, f"{', '.join(signals)}: {outcome.message}", outcome.fix))
    if not found:
        found.append(Finding("collector", OK, "no signal is exported over OTLP: nothing to check"))
    return found


# --- distros and instrumentations ------------------------------------------------------------


def _entry_points(group: str) -> list[metadata.EntryPoint]:
    return list(metadata.entry_points(group=group))


def distro_findings(settings: Settings, entry_points: Callable[[str], Sequence[Any]] = _entry_points) -> list[Finding]:
    """A second distro or configurator makes `opentelemetry-instrument` pick one at random."""
    found = []
    fix = f"export OTEL_PYTHON_DISTRO={OURS} OTEL_PYTHON_CONFIGURATOR={OURS}"
    for group, variable, chosen in (
        ("opentelemetry_distro", "OTEL_PYTHON_DISTRO", settings.python_distro),
        ("opentelemetry_configurator", "OTEL_PYTHON_CONFIGURATOR", settings.python_configurator),
    ):
        kind = group.split("_", 1)[1]
        names = {ep.name: ep.value for ep in entry_points(group)}
        others = sorted(f"{n} ({v})" for n, v in names.items() if n != OURS)
        if OURS not in names:
            found.append(
                Finding("distro", PROBLEM, f"otel-distro's {kind} is not installed here", "pip install otel-distro")
            )
        elif chosen and chosen not in names:
            found.append(Finding("distro", PROBLEM, f"{variable}={chosen} names no installed {kind}", fix))
        elif chosen and chosen != OURS:
            found.append(Finding("distro", WARNING, f"{variable}={chosen}: otel-distro's {kind} is not used", fix))
        elif others and chosen != OURS:
            found.append(Finding("distro", PROBLEM, f"another {kind} competes with ours: {', '.join(others)}", fix))
        else:
            found.append(Finding("distro", OK, f"otel-distro's {kind} is the one loaded"))
    return found


# Libraries that bootstrap lists but that need no suggestion here.
_NOT_SUGGESTED = {
    "starlette": "covered by the FastAPI instrumentation",
    "structlog": "otel-distro correlates and exports structlog itself",
    "grpcio": "used by the gRPC exporter",
    "click": "command-line tooling",
    "pydantic": "listed for Tortoise ORM",
    "asgiref": "an ASGI helper",
}


def _installed_version(name: str) -> str | None:
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return None


def instrumentation_findings(settings: Settings) -> list[Finding]:
    from opentelemetry.instrumentation.bootstrap_gen import libraries
    from opentelemetry.instrumentation.dependencies import get_dist_dependency_conflicts
    from packaging.requirements import Requirement

    found = []
    for entry in libraries:
        library, instrumentation = Requirement(entry["library"]), Requirement(entry["instrumentation"])
        version = _installed_version(library.name)
        if version is None or library.name in _NOT_SUGGESTED or _installed_version(instrumentation.name):
            continue
        if library.specifier.contains(version, prereleases=True):
            found.append(
                Finding(
                    "instrumentations",
                    WARNING,
                    f"{library.name} {version} is installed but not instrumented",
                    f"pip install '{instrumentation}'",
                )
            )
    for ep in _entry_points("opentelemetry_instrumentor"):
        if ep.name in settings.disabled_instrumentations or ep.dist is None:
            continue
        conflict = get_dist_dependency_conflicts(ep.dist)
        if conflict is not None:
            found.append(
                Finding(
                    "instrumentations",
                    WARNING,
                    f"{ep.dist.name} is installed but skipped: {conflict}",
                    f"install the library it instruments, or pip uninstall {ep.dist.name}",
                )
            )
    if settings.disabled_instrumentations:
        disabled = ", ".join(settings.disabled_instrumentations)
        found.append(Finding("instrumentations", OK, f"disabled by OTEL_PYTHON_DISABLED_INSTRUMENTATIONS: {disabled}"))
    if not any(f.level == WARNING for f in found):
        found.append(Finding("instrumentations", OK, "every instrumentable library found is instrumented"))
    return found


# --- the app ---------------------------------------------------------------------------------


def _destination(handler: logging.Handler) -> str | None:
    filename = getattr(handler, "baseFilename", None)
    if filename:
        return str(filename)
    stream = getattr(handler, "stream", None)
    if stream is None:
        return None
    if stream in (sys.stderr, sys.__stderr__):
        return "stderr"
    if stream in (sys.stdout, sys.__stdout__):
        return "stdout"
    return f"stream {getattr(stream, 'name', id(stream))}"


def _chain(logger: logging.Logger) -> Iterable[tuple[logging.Logger, logging.Handler]]:
    current: logging.Logger | None = logger
    while current is not None:
        for handler in current.handlers:
            yield current, handler
        current = current.parent if current.propagate else None


def _label(logger: logging.Logger) -> str:
    return "the root logger" if logger.name == "root" else f"logger {logger.name!r}"


def _second_otel_handler(owner: logging.Logger) -> Finding:
    return Finding(
        "app",
        PROBLEM,
        f"{_label(owner)} has OpenTelemetry's LoggingHandler: with otel-distro's export, records are exported twice",
        "remove that handler (otel-distro exports logs), or set OTEL_LOGS_EXPORTER=none",
    )


def _printed_twice(first: logging.Logger, second: logging.Logger, place: str) -> Finding:
    if first is second:
        where, fix = _label(first), "remove one of the two handlers"
    else:
        where = f"{_label(first)} and {_label(second)}"
        fix = f"remove one of them, or set logging.getLogger({first.name!r}).propagate = False"
    return Finding("app", PROBLEM, f"records reaching {where} are printed twice to {place}", fix)


def logging_findings() -> list[Finding]:
    """Records printed twice (two handlers writing to one place on a logger's path), and
    OpenTelemetry's own log handler added next to ours."""
    found = []
    loggers = [logging.getLogger()] + [
        lg for lg in logging.Logger.manager.loggerDict.values() if isinstance(lg, logging.Logger)
    ]
    reported: set[tuple[int, int]] = set()
    for logger in loggers:
        places: dict[str, tuple[logging.Logger, logging.Handler]] = {}
        for owner, handler in _chain(logger):
            module = type(handler).__module__
            if module.startswith("otel_distro"):
                continue  # ours print only what no handler of the app printed
            if module.startswith("opentelemetry") and type(handler).__name__ == "LoggingHandler":
                if (id(handler), 0) not in reported:
                    reported.add((id(handler), 0))
                    found.append(_second_otel_handler(owner))
                continue
            place = _destination(handler)
            if place is None:
                continue
            if place not in places:
                places[place] = (owner, handler)
                continue
            first_owner, first_handler = places[place]
            if (id(first_handler), id(handler)) not in reported:
                reported.add((id(first_handler), id(handler)))
                found.append(_printed_twice(first_owner, owner, place))
    if not found:
        found.append(Finding("app", OK, "no duplicate logging handlers"))
    return found


def _load_app(spec: str) -> Any:
    module_name, _, attr = spec.partition(":")
    if os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())
    module = importlib.import_module(module_name)
    app = module
    for part in (attr or "app").split("."):
        app = getattr(app, part)
    if inspect.isfunction(app):  # an app factory, as `uvicorn --factory` takes
        app = app()
    return app


def _instrument_quietly(settings: Settings) -> Any:
    """Instrument FastAPI and Flask as `opentelemetry-instrument` would, exporting nowhere;
    returns the in-memory span exporter."""
    from opentelemetry.instrumentation.dependencies import get_dist_dependency_conflicts
    from opentelemetry.instrumentation.propagators import set_global_response_propagator
    from opentelemetry.sdk.metrics import MeterProvider
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    from otel_distro.components import request_ids
    from otel_distro.distro import instrument
    from otel_distro.request_id import RequestIdResponsePropagator

    spans = InMemorySpanExporter()
    tracer_provider = TracerProvider(shutdown_on_exit=False)
    tracer_provider.add_span_processor(SimpleSpanProcessor(spans))
    set_global_response_propagator(RequestIdResponsePropagator(request_ids(settings), settings.server_timing))
    for ep in _entry_points("opentelemetry_instrumentor"):
        if ep.name not in ("fastapi", "flask") or ep.name in settings.disabled_instrumentations:
            continue
        if ep.dist is not None and get_dist_dependency_conflicts(ep.dist) is not None:
            continue
        instrument(ep, settings, tracer_provider=tracer_provider, meter_provider=MeterProvider())
    return spans


def _probe_request(app: Any) -> int | None:
    """One GET to a path no app serves, through the app in-process; None if it cannot be sent."""
    path = "/otel-distro-doctor-probe"
    if hasattr(app, "test_client"):  # Flask
        return int(app.test_client().get(path).status_code)
    try:
        from starlette.applications import Starlette
        from starlette.testclient import TestClient
    except ImportError:  # no starlette, or no httpx for its test client
        return None
    if isinstance(app, Starlette):
        return int(TestClient(app, raise_server_exceptions=False).get(path).status_code)
    return None


def app_findings(spec: str, settings: Settings) -> list[Finding]:
    spans = _instrument_quietly(settings)
    try:
        app = _load_app(spec)
    except Exception as err:
        return [
            Finding("app", PROBLEM, f"cannot import {spec}: {type(err).__name__}: {err}", "check --app module:attr")
        ]
    found = logging_findings()
    status = _probe_request(app)
    kind = type(app).__name__
    if status is None:
        found.append(
            Finding(
                "app",
                PROBLEM,
                f"{spec} is a {kind}: request IDs and request traces need a FastAPI or Flask app",
                "pass the FastAPI or Flask app object to --app",
            )
        )
        return found
    server = [s for s in spans.get_finished_spans() if s.kind.name == "SERVER"]
    if any((s.attributes or {}).get("request.id") for s in server):
        found.append(Finding("app", OK, f"request-ID handling is active ({settings.request_id_header})"))
    elif server:
        found.append(
            Finding("app", PROBLEM, "requests are traced but get no request ID", "report this as an otel-distro bug")
        )
    elif not any(base.__name__ in ("FastAPI", "Flask") for base in type(app).__mro__):
        found.append(
            Finding(
                "app",
                PROBLEM,
                f"request-ID handling is not active: otel-distro traces FastAPI and Flask apps, not {kind}",
                "build the app with FastAPI or Flask, or pass that app object to --app",
            )
        )
    else:
        found.append(
            Finding(
                "app",
                PROBLEM,
                f"request-ID handling is not active: a request to the {kind} app was not traced",
                "create the app after start-up under opentelemetry-instrument (not in sitecustomize), "
                "and keep the fastapi/flask instrumentation installed and enabled",
            )
        )
    return found


# --- everything ------------------------------------------------------------------------------


def _service_name(settings: Settings, environ: Mapping[str, str] | None) -> str | None:
    if settings.service_name or environ is not None:
        return settings.service_name
    # OTEL_RESOURCE_ATTRIBUTES may name the service too; the SDK reads it.
    from opentelemetry.sdk.resources import Resource

    name = str(Resource.create().attributes.get("service.name", ""))
    return None if name.startswith("unknown_service") else name


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
    report.findings += config_findings(settings.problems, _service_name(settings, environ))
    report.findings += distro_findings(settings)
    if network:
        report.findings += collector_findings(settings, timeout)
    report.findings += instrumentation_findings(settings)
    if app:
        report.findings += app_findings(app, settings)
    return report
