"""Collector: an empty export request to each address the OTLP exporters will use, read as
OTLP/HTTP or OTLP/gRPC, and turned into a finding with its fix."""

from __future__ import annotations

import importlib
from collections.abc import Sequence
from urllib.parse import unquote

from otel_distro.doctor._findings import OK, PROBLEM, Finding
from otel_distro.doctor._probe import H2_PREFACE, Target, Unreachable, exchange, http1_status, http_request, speaks
from otel_distro.settings import Settings

__all__ = ["collector_findings", "collector_targets", "parse_headers", "probe_grpc", "probe_http"]

SIGNALS = ("traces", "metrics", "logs")
_GRPC_SERVICES = {
    "traces": "/opentelemetry.proto.collector.trace.v1.TraceService/Export",
    "metrics": "/opentelemetry.proto.collector.metrics.v1.MetricsService/Export",
    "logs": "/opentelemetry.proto.collector.logs.v1.LogsService/Export",
}


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
    answer = exchange(target, http_request(target, headers), timeout, "http/1.1", lambda d: b"\r\n" in d)
    kind = speaks(answer)
    if kind == "http1":
        return _http_status(target, http1_status(answer))
    if kind == "tls":
        return _tls_fix(target)
    # No HTTP/1.1 answer: check whether HTTP/2 (gRPC) is what listens there.
    if kind == "http2" or speaks(exchange(target, H2_PREFACE, timeout, "h2", lambda d: len(d) >= 9)) == "http2":
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
        answer = exchange(http_target, http_request(http_target, ()), timeout, "http/1.1", lambda d: b"\r\n" in d)
    except Unreachable:
        return False
    return speaks(answer) == "http1"


def probe_grpc(target: Target, headers: Sequence[tuple[str, str]], timeout: float) -> Finding:
    """Send an HTTP/2 preface (is it HTTP/2 at all?), then a real empty gRPC export."""
    answer = exchange(target, H2_PREFACE, timeout, "h2", lambda d: len(d) >= 9)
    kind = speaks(answer)
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
    # One probe per address, not per signal: two round trips fewer (two timeouts when it is down).
    # Signals sharing one outcome (usually all three, one collector) make one line.
    outcomes: dict[Finding, list[str]] = {}
    for target in collector_targets(settings, protocol):
        try:
            outcome = probe(target, headers, timeout)
        except Unreachable as err:
            outcome = _problem(target, str(err), err.fix)
        outcomes.setdefault(outcome, []).extend(target.signals)
    for outcome, signals in outcomes.items():
        found.append(Finding(outcome.check, outcome.level, f"{', '.join(signals)}: {outcome.message}", outcome.fix))
    if not found:
        found.append(Finding("collector", OK, "no signal is exported over OTLP: nothing to check"))
    return found
