"""Read what the real collector's `file` exporter wrote (OTLP JSON, one request per line)
into flat records that tests can filter."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


def _value(v: dict[str, Any]) -> Any:
    if "stringValue" in v:
        return v["stringValue"]
    if "intValue" in v:
        return int(v["intValue"])
    if "doubleValue" in v:
        return float(v["doubleValue"])
    if "boolValue" in v:
        return bool(v["boolValue"])
    if "arrayValue" in v:
        return [_value(x) for x in v["arrayValue"].get("values", [])]
    if "kvlistValue" in v:
        return attributes(v["kvlistValue"].get("values", []))
    return None


def attributes(items: list[dict[str, Any]] | None) -> dict[str, Any]:
    return {item["key"]: _value(item.get("value", {})) for item in items or []}


def _lines(path: Path) -> Iterator[dict[str, Any]]:
    if not path.exists():
        return
    # The collector may be mid-write: only complete (newline-terminated) lines count.
    complete = path.read_text().split("\n")[:-1]
    for line in complete:
        if line.strip():
            yield json.loads(line)


@dataclass
class Span:
    resource: dict[str, Any]
    name: str
    kind: int
    trace_id: str
    span_id: str
    parent_span_id: str
    attributes: dict[str, Any]
    status_code: int
    events: list[dict[str, Any]] = field(default_factory=list)

    @property
    def service(self) -> str:
        return str(self.resource.get("service.name"))


@dataclass
class Point:
    resource: dict[str, Any]
    name: str
    attributes: dict[str, Any]
    data: dict[str, Any]

    @property
    def service(self) -> str:
        return str(self.resource.get("service.name"))


@dataclass
class Log:
    resource: dict[str, Any]
    body: Any
    severity: str
    attributes: dict[str, Any]
    trace_id: str
    span_id: str

    @property
    def service(self) -> str:
        return str(self.resource.get("service.name"))


def read_spans(path: Path) -> list[Span]:
    out = []
    for request in _lines(path):
        for rs in request.get("resourceSpans", []):
            resource = attributes(rs.get("resource", {}).get("attributes"))
            for ss in rs.get("scopeSpans", []):
                for s in ss.get("spans", []):
                    out.append(
                        Span(
                            resource=resource,
                            name=s["name"],
                            kind=int(s.get("kind", 0)),
                            trace_id=s["traceId"],
                            span_id=s["spanId"],
                            parent_span_id=s.get("parentSpanId", ""),
                            attributes=attributes(s.get("attributes")),
                            status_code=int(s.get("status", {}).get("code", 0)),
                            events=[
                                {"name": e["name"], **attributes(e.get("attributes"))} for e in s.get("events", [])
                            ],
                        )
                    )
    return out


def read_points(path: Path) -> list[Point]:
    out = []
    for request in _lines(path):
        for rm in request.get("resourceMetrics", []):
            resource = attributes(rm.get("resource", {}).get("attributes"))
            for sm in rm.get("scopeMetrics", []):
                for m in sm.get("metrics", []):
                    for kind in ("sum", "gauge", "histogram", "exponentialHistogram"):
                        for dp in m.get(kind, {}).get("dataPoints", []):
                            out.append(Point(resource, m["name"], attributes(dp.get("attributes")), dp))
    return out


def read_logs(path: Path) -> list[Log]:
    out = []
    for request in _lines(path):
        for rl in request.get("resourceLogs", []):
            resource = attributes(rl.get("resource", {}).get("attributes"))
            for sl in rl.get("scopeLogs", []):
                for r in sl.get("logRecords", []):
                    out.append(
                        Log(
                            resource=resource,
                            body=_value(r.get("body", {})),
                            severity=r.get("severityText", ""),
                            attributes=attributes(r.get("attributes")),
                            trace_id=r.get("traceId", ""),
                            span_id=r.get("spanId", ""),
                        )
                    )
    return out
