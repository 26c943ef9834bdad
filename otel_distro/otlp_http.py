"""The upstream OTLP/HTTP span and log exporters, sending bodies from our faster encoder.

Only the encoding changes: endpoint, headers, timeout, compression, retries, TLS and the
exporters' own metrics are upstream's, configured by the same variables. Whatever is not the
plain path (exporter shut down, a value our encoder leaves to upstream, an oversized batch)
goes to the upstream `export`, which re-encodes the batch and handles it as it always does.

The transport changes only for a plain `http://` endpoint with nothing `requests` would add
(no proxy variable, no netrc file, no credential-provider session, no user:password in the
URL): there a kept-alive stdlib `http.client` connection sends the same POST, and the
`requests`/`urllib3` stack (tens of milliseconds and megabytes at start-up) is never imported
for telemetry. Every other endpoint gets upstream's `requests` transport, as before.

The exporters' internals both rely on are in `otel_distro._sdk_compat` (fast paths
`OTLP_ENCODE` and `PLAIN_HTTP_TRANSPORT`); with either off, that part is upstream's again.
"""

from __future__ import annotations

import http.client
import os
import string
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from opentelemetry.exporter.otlp.proto.http._log_exporter import OTLPLogExporter as _UpstreamLogExporter
from opentelemetry.exporter.otlp.proto.http.metric_exporter import OTLPMetricExporter as _UpstreamMetricExporter
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter as _UpstreamSpanExporter
from opentelemetry.sdk._logs import ReadableLogRecord
from opentelemetry.sdk._logs.export import LogRecordExportResult
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import SpanExportResult

from otel_distro import _sdk_compat
from otel_distro._fork_safe import ForkSafeLock
from otel_distro._sdk_compat import BaseHTTPResult, BaseHTTPTransport
from otel_distro.otlp_encoding import encode_log_request, encode_span_request
from otel_distro.settings import Settings

__all__ = ["OTLPLogExporter", "OTLPMetricExporter", "OTLPSpanExporter"]


def _encoded(exporter: Any, encode: Any, batch: Sequence[Any]) -> bytes | None:
    """The batch's body, or None when upstream should handle this batch itself."""
    if _sdk_compat.exporter_is_shut_down(exporter) or not batch:
        return None
    try:
        body: bytes = encode(batch)
    except Exception:  # upstream encodes (or reports) what we do not handle
        return None
    return None if _sdk_compat.request_too_large(exporter, body) else body


# Where `requests` looks for netrc credentials when the NETRC variable is unset.
_NETRC_FILES = ("~/.netrc", "~/_netrc")
_URL_CHARACTERS = frozenset(string.ascii_letters + string.digits + "-._~:/?#[]@!$&'()*+,;=%")


@dataclass(frozen=True, slots=True)
class _PlainHTTPResult(BaseHTTPResult):
    body: bytes = b""
    # http.client's HTTPMessage: header lookup is case-insensitive, as upstream requires.
    response_headers: Any = field(default_factory=dict)

    def content(self) -> bytes:
        return self.body

    def headers(self) -> Mapping[str, str]:
        return self.response_headers  # type: ignore[no-any-return]


class _PlainHTTPTransport(BaseHTTPTransport):
    """POSTs over one kept-alive `http.client` connection, reopened after any error."""

    def __init__(self, host: str, port: int) -> None:
        self._host = host
        self._port = port
        self._connection: http.client.HTTPConnection | None = None
        self._pid = os.getpid()
        # Export and force_flush may overlap. Fork-safe: held across the POST, and a pre-fork
        # master's export may be in flight when it forks a worker.
        self._lock = ForkSafeLock()

    def request(
        self,
        method: str,
        url: str,
        *,
        headers: dict[str, str] | None = None,
        timeout: float | None = None,
        data: bytes | None = None,
    ) -> BaseHTTPResult:
        parts = urlsplit(url)
        target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        with self._lock:
            try:
                connection = self._connect(timeout)
                connection.request(method, target, body=data, headers=headers or {})
                response = connection.getresponse()
                body = response.read()
            except Exception as error:  # reported like upstream's transports: as the result's error
                self._close()
                return _PlainHTTPResult(error=error)
            if response.will_close:
                self._close()
        return _PlainHTTPResult(
            status_code=response.status, reason=response.reason, body=body, response_headers=response.headers
        )

    def _connect(self, timeout: float | None) -> http.client.HTTPConnection:
        if self._pid != os.getpid():  # a pre-fork server's worker: the parent's socket is not ours
            self._pid, self._connection = os.getpid(), None
        if self._connection is None:
            self._connection = http.client.HTTPConnection(self._host, self._port, timeout=timeout)
        else:
            self._connection.timeout = timeout
            if self._connection.sock is not None:
                self._connection.sock.settimeout(timeout)
        return self._connection

    def _close(self) -> None:
        connection, self._connection = self._connection, None
        if connection is not None:
            connection.close()

    def close(self) -> None:
        # Without the lock: shutdown must not wait for an export stuck on a slow collector.
        self._close()

    def is_connection_error(self, exception: Exception | None) -> bool:
        # What `requests` reports as a connection error or timeout: refused, reset, a stale
        # kept-alive connection closed by the collector, a malformed or cut-short response.
        return isinstance(exception, (OSError, http.client.HTTPException))


def _requests_would_change(url: str, signal: str, settings: Settings) -> bool:
    # What `requests` would add to the request: a credential-provider session, a proxy, netrc credentials.
    if settings.otlp_http_credential_provider_for(signal) or settings.http_proxy_configured:
        return True
    netrc_files = (settings.netrc,) if settings.netrc else _NETRC_FILES
    if any(os.path.exists(os.path.expanduser(path)) for path in netrc_files):
        return True
    return not set(url) <= _URL_CHARACTERS  # requests would re-quote the URL


def plain_http_transport(url: str, signal: str, settings: Settings) -> _PlainHTTPTransport | None:
    """Our stdlib transport for a plain-HTTP endpoint; None where upstream's `requests` one is needed.

    `signal` is `traces`, `metrics` or `logs`.
    """
    try:
        parts = urlsplit(url)
        port = parts.port or 80
    except ValueError:  # upstream reports a malformed endpoint as it always has
        return None
    if parts.scheme.lower() != "http" or not parts.hostname or parts.username or parts.password:
        return None
    if _requests_would_change(url, signal, settings):
        return None
    return _PlainHTTPTransport(parts.hostname, port)


def _transport_kwargs(
    kwargs: dict[str, Any], endpoint_variable: str, default_path: str, signal: str, settings: Settings
) -> dict[str, Any]:
    return _sdk_compat.exporter_kwargs(
        kwargs, endpoint_variable, default_path, lambda url: plain_http_transport(url, signal, settings)
    )


class OTLPSpanExporter(_UpstreamSpanExporter):
    """Upstream's exporter, sending our encoder's bytes; `settings` decide the transport."""

    def __init__(self, *, settings: Settings, **kwargs: Any) -> None:
        kwargs = _transport_kwargs(kwargs, "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "v1/traces", "traces", settings)
        super().__init__(**kwargs)
        self._distro_encodes = _sdk_compat.exporter_encodes(self)

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        # Our encoder's bytes: no protobuf object per span, attribute and value (fast path OTLP_ENCODE).
        body = _encoded(self, encode_span_request, spans) if self._distro_encodes else None
        if body is None:
            return super().export(spans)
        ok = _sdk_compat.send_encoded(self, body, len(spans))
        return SpanExportResult.SUCCESS if ok else SpanExportResult.FAILURE


class OTLPLogExporter(_UpstreamLogExporter):
    """Upstream's exporter, sending our encoder's bytes; `settings` decide the transport."""

    def __init__(self, *, settings: Settings, **kwargs: Any) -> None:
        kwargs = _transport_kwargs(kwargs, "OTEL_EXPORTER_OTLP_LOGS_ENDPOINT", "v1/logs", "logs", settings)
        super().__init__(**kwargs)
        self._distro_encodes = _sdk_compat.exporter_encodes(self)

    def export(self, batch: Sequence[ReadableLogRecord]) -> LogRecordExportResult:
        # Our encoder's bytes: no protobuf object per record, attribute and value (fast path OTLP_ENCODE).
        body = _encoded(self, encode_log_request, batch) if self._distro_encodes else None
        if body is None:
            return super().export(batch)
        ok = _sdk_compat.send_encoded(self, body, len(batch))
        return LogRecordExportResult.SUCCESS if ok else LogRecordExportResult.FAILURE


class OTLPMetricExporter(_UpstreamMetricExporter):
    """Upstream's exporter and encoder; only the transport may be ours (see the module doc)."""

    def __init__(self, *, settings: Settings, **kwargs: Any) -> None:
        kwargs = _transport_kwargs(kwargs, "OTEL_EXPORTER_OTLP_METRICS_ENDPOINT", "v1/metrics", "metrics", settings)
        super().__init__(**kwargs)
