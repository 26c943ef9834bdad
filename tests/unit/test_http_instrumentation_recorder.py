"""The direct recording path must leave the SDK's metric data exactly as its public API would."""

from __future__ import annotations

import logging
from typing import Any

import pytest
from opentelemetry.context import Context
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.trace import set_span_in_context

from otel_distro.http_server._recorder import Recorder

GET_OK = {"http.request.method": "GET", "url.scheme": "http", "http.route": "/a", "http.response.status_code": 200}
POST_FAIL = {"http.request.method": "POST", "url.scheme": "http", "http.route": "/b", "http.response.status_code": 500}
# Values across several buckets, in the order both sides see them.
VALUES = [0.001, 0.02, 0.02, 0.3, 4.0, 0.0, 12.0, 0.075]


def _points(reader: InMemoryMetricReader) -> dict[str, list[dict[str, Any]]]:
    data = reader.get_metrics_data()
    assert data is not None
    found: dict[str, list[dict[str, Any]]] = {}
    for metric in data.resource_metrics[0].scope_metrics[0].metrics:
        points = []
        for point in metric.data.data_points:
            fields = {
                k: v for k, v in vars(point).items() if k not in ("start_time_unix_nano", "time_unix_nano", "exemplars")
            }
            fields["exemplar_values"] = sorted(e.value for e in point.exemplars)
            fields["exemplar_spans"] = sorted(e.span_id or 0 for e in point.exemplars)
            points.append(fields)
        found[metric.name] = sorted(points, key=lambda p: sorted(p["attributes"].items()))
    return found


def _record_both(calls: list[tuple[str, float, dict[str, Any], Context | None]]) -> tuple[Any, Any]:
    """The same calls, once through the SDK instruments and once through Recorders."""
    results = []
    for direct in (False, True):
        reader = InMemoryMetricReader()
        meter = MeterProvider(metric_readers=[reader], shutdown_on_exit=False).get_meter("m")
        duration = meter.create_histogram("duration", unit="s", explicit_bucket_boundaries_advisory=[0.01, 0.1, 1, 10])
        active = meter.create_up_down_counter("active")
        if direct:
            record = {"duration": Recorder(duration, False).record, "active": Recorder(active, True).record}
        else:
            record = {"duration": duration.record, "active": active.add}
        for name, value, attributes, context in calls:
            record[name](value, attributes, context)
        results.append(_points(reader))
    return results[0], results[1]


class TestRecorder:
    def test_same_points_as_the_sdk(self, tracer_provider: TracerProvider) -> None:
        span = tracer_provider.get_tracer("t").start_span("req")
        context = set_span_in_context(span)
        calls: list[tuple[str, float, dict[str, Any], Context | None]] = []
        for value in VALUES:
            calls += [
                ("active", 1, {"http.request.method": "GET", "url.scheme": "http"}, None),
                ("duration", value, GET_OK, context),
                ("duration", value * 2, POST_FAIL, None),
                ("active", -1, {"http.request.method": "GET", "url.scheme": "http"}, None),
            ]

        sdk, ours = _record_both(calls)

        assert ours == sdk
        assert sdk["duration"][0]["count"] == len(VALUES)
        assert sdk["duration"][0]["exemplar_spans"]  # the sampled span's exemplars are there too

    def test_invalid_values_are_refused_as_the_sdk_refuses_them(self, caplog: pytest.LogCaptureFixture) -> None:
        calls: list[tuple[str, float, dict[str, Any], Context | None]] = [
            ("duration", 0.5, GET_OK, None),
            ("duration", -1.0, GET_OK, None),
            ("duration", float("nan"), GET_OK, None),
            ("duration", float("inf"), GET_OK, None),
        ]
        with caplog.at_level(logging.WARNING):
            sdk, ours = _record_both(calls)

        assert ours == sdk
        assert sdk["duration"][0]["count"] == 1
        warnings = [r.getMessage() for r in caplog.records]
        assert len(warnings) == 6  # each refusal warned about once per side

    def test_a_reader_added_later_gets_the_measurements(self) -> None:
        first, second = InMemoryMetricReader(), InMemoryMetricReader()
        provider = MeterProvider(metric_readers=[first], shutdown_on_exit=False)
        histogram = provider.get_meter("m").create_histogram("duration")
        recorder = Recorder(histogram, False)
        for _ in range(3):
            recorder.record(1.0, GET_OK)
        provider.add_metric_reader(second)
        for _ in range(2):
            recorder.record(1.0, GET_OK)

        assert _points(first)["duration"][0]["count"] == 5
        assert _points(second)["duration"][0]["count"] == 2

    def test_works_with_the_api_alone(self) -> None:
        from opentelemetry.metrics import NoOpMeterProvider

        histogram = NoOpMeterProvider().get_meter("m").create_histogram("duration")
        Recorder(histogram, False).record(1.0, GET_OK)  # nothing to record into, nothing raised
