"""The distro's version, reported as `telemetry.distro.version`."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("otel-distro")
except PackageNotFoundError:  # pragma: no cover - running from a source tree
    __version__ = "0.0.0"
