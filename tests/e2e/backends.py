"""Query clients of the native logs and traces backends, as the e2e tests use them.

VictoriaLogs answers LogsQL at ``/select/logsql/query`` with one JSON object per
line; every OTLP attribute and resource attribute is a field of its own
(``trace_id``, ``request.id``, ``service.name``, ``_msg`` for the body,
``_stream`` for the stream fields). Jaeger answers ``/api/v3/traces/{id}`` with
OTLP JSON and searches by service and tags with ``/api/traces``.
"""

from __future__ import annotations

import json
import time
import urllib.parse
from typing import Any

from .conftest import stack

__all__ = ["attributes", "find_traces", "logsql", "otlp_spans", "trace_exists", "trace_spans"]


def logsql(
    backends: stack.Stack, query: str, since_s: float | None = None, limit: int = 1000, by_time: bool = True
) -> list[dict[str, Any]]:
    """Rows of the LogsQL ``query`` (records oldest first, unless ``by_time`` is off, e.g. for
    ``| stats``); [] when unreachable."""
    params = {"query": f"{query} | sort by (_time)" if by_time else query, "limit": str(limit)}
    if since_s is not None:
        params["start"] = str(int(since_s) - 300)
    status, body = stack.get_json(f"{backends.logs_url}/select/logsql/query", params)
    if status != 200:
        assert status in (0, 503), f"VictoriaLogs refused {query}: {body}"
        return []
    if isinstance(body, dict):  # exactly one record
        return [body]
    return [json.loads(line) for line in str(body or "").splitlines() if line.strip()]


def attributes(otlp_attributes: list[dict[str, Any]]) -> dict[str, Any]:
    return {a["key"]: next(iter(a.get("value", {}).values()), None) for a in otlp_attributes}


def otlp_spans(body: Any) -> list[tuple[dict[str, Any], dict[str, Any]]]:
    """(resource attributes, span) pairs of an OTLP-JSON traces document."""
    if not isinstance(body, dict):
        return []
    document = body.get("result", body)
    pairs = []
    for resource_spans in document.get("resourceSpans") or []:
        resource = attributes(resource_spans.get("resource", {}).get("attributes", []))
        for scope_spans in resource_spans.get("scopeSpans") or []:
            pairs.extend((resource, span) for span in scope_spans.get("spans", []))
    return pairs


def trace_spans(backends: stack.Stack, trace_id: str) -> list[tuple[dict[str, Any], dict[str, Any]]]:
    """Every span Jaeger holds for ``trace_id`` (32 hex digits); [] while it has none."""
    status, body = stack.get_json(f"{backends.traces_url}/api/v3/traces/{trace_id.rjust(32, '0')}")
    return otlp_spans(body) if status == 200 else []


def trace_exists(backends: stack.Stack, trace_id: str) -> bool:
    return bool(trace_spans(backends, trace_id))


def find_traces(
    backends: stack.Stack, service: str, tags: dict[str, str], since_s: float, min_duration: str = ""
) -> list[str]:
    """IDs of traces with a span of ``service`` carrying every tag in ``tags`` (span or
    resource attributes; Jaeger's search), and lasting ``min_duration`` (e.g. "500ms") or more."""
    params = {
        "service": service,
        "tags": json.dumps(tags),
        "start": str(int((since_s - 300) * 1e6)),
        "end": str(int((time.time() + 60) * 1e6)),
        "limit": "1000",
    }
    if min_duration:
        params["minDuration"] = min_duration
    status, body = stack.get_json(f"{backends.traces_url}/api/traces?{urllib.parse.urlencode(params)}")
    if status != 200 or not isinstance(body, dict):
        return []
    return [str(t["traceID"]).rjust(32, "0") for t in body.get("data") or []]


def window(started: float) -> dict[str, str]:
    """A query range from a minute before `started` to a minute from now."""
    return {"start": str(int(started) - 60), "end": str(int(time.time()) + 60)}


def promql_range(backends: stack.Stack, promql: str, started: float) -> list[dict[str, Any]]:
    """Series with at least one sample since `started` (what a time-series panel draws)."""
    params = {"query": promql, "step": "15", **window(started)}
    status, body = stack.get_json(f"{backends.prometheus_url}/api/v1/query_range", params)
    assert status in (200, 0, 503), f"Prometheus refused {promql}: {body}"
    if status != 200 or not isinstance(body, dict):
        return []
    return [series for series in body["data"]["result"] if series.get("values")]


def promql_instant(backends: stack.Stack, promql: str) -> list[dict[str, Any]]:
    status, body = stack.get_json(f"{backends.prometheus_url}/api/v1/query", {"query": promql})
    assert status in (200, 0, 503), f"Prometheus refused {promql}: {body}"
    return list(body["data"]["result"]) if status == 200 and isinstance(body, dict) else []
