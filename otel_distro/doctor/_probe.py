"""The wire under the collector check: connect (TCP, TLS with ALPN), send one request, and
tell HTTP/1.1, HTTP/2 and TLS apart from the first bytes of the answer."""

from __future__ import annotations

import contextlib
import socket
import ssl
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from urllib.parse import urlsplit

__all__ = ["H2_PREFACE", "Target", "Unreachable", "exchange", "http1_status", "http_request", "speaks"]

H2_PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" + b"\x00\x00\x00\x04\x00\x00\x00\x00\x00"  # + empty SETTINGS


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


class Unreachable(Exception):
    """Nothing to talk to at the target; `fix` says what to change."""

    def __init__(self, message: str, fix: str) -> None:
        super().__init__(message)
        self.fix = fix


def connect(target: Target, timeout: float, alpn: str) -> socket.socket:
    host, port, tls, _ = target.parts
    where = f"{host}:{port}"
    start = f"start the collector, or set {target.variable} to where it listens"
    try:
        sock = socket.create_connection((host, port), timeout=timeout)
    except ConnectionRefusedError:
        raise Unreachable(f"nothing listens on {where} (connection refused)", start) from None
    except socket.gaierror:
        raise Unreachable(f"cannot resolve the host {host!r}", f"check the host name in {target.variable}") from None
    except TimeoutError:
        raise Unreachable(f"no answer from {where} within {timeout:g}s", "check the address and firewalls") from None
    except OSError as err:
        raise Unreachable(f"cannot connect to {where} ({err.strerror or err})", start) from None
    if not tls:
        return sock
    context = ssl.create_default_context()
    context.set_alpn_protocols([alpn])
    try:
        return context.wrap_socket(sock, server_hostname=host)
    except ssl.SSLError as err:
        sock.close()
        if "WRONG_VERSION_NUMBER" in str(err) or "wrong version number" in str(err):
            raise Unreachable(
                f"{target.variable} uses https:// but {where} does not speak TLS",
                f"use http:// in {target.variable}",
            ) from None
        raise Unreachable(f"TLS with {where} failed ({err.reason})", "check the collector's certificate") from None
    except OSError as err:
        sock.close()
        raise Unreachable(f"TLS with {where} failed ({err})", "check the collector's TLS settings") from None


def exchange(target: Target, payload: bytes, timeout: float, alpn: str, enough: Callable[[bytes], bool]) -> bytes:
    """Send `payload`, return what the server answered before closing, timing out or `enough`."""
    with connect(target, timeout, alpn) as sock:
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


def speaks(data: bytes) -> str:
    """What the first bytes of an answer say about the server."""
    if data.startswith(b"HTTP/1."):
        return "http1"
    if len(data) >= 9 and data[3] in (0x04, 0x07) and data[5:9] == b"\x00\x00\x00\x00":
        return "http2"  # a SETTINGS or GOAWAY frame on stream 0: an HTTP/2 (gRPC) server
    if data[:2] in (b"\x15\x03", b"\x16\x03"):
        return "tls"
    return "nothing" if not data else "unknown"


def http1_status(data: bytes) -> int:
    parts = data.split(b"\r\n", 1)[0].split()
    return int(parts[1]) if len(parts) > 1 and parts[1].isdigit() else 0


def http_request(target: Target, headers: Sequence[tuple[str, str]]) -> bytes:
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
