"""otel-distro: zero-code OpenTelemetry for Python web services.

Run a service as ``opentelemetry-instrument python app.py``; the distro and configurator
entry points do the rest. The small public API below is for apps that want the current
request's ID or trace IDs themselves.
"""

from otel_distro._version import __version__
from otel_distro.logs import add_otel_context, current_ids
from otel_distro.request_id import get_request_id

__all__ = ["__version__", "add_otel_context", "current_ids", "get_request_id"]
