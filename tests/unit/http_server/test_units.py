"""The pieces of our server instrumentation against contrib's own functions, edge cases included."""

from __future__ import annotations

from typing import Any

import pytest
from opentelemetry.instrumentation._semconv import _set_status, _StabilityMode
from opentelemetry.instrumentation.asgi import collect_request_attributes as contrib_asgi_attributes
from opentelemetry.instrumentation.wsgi import collect_request_attributes as contrib_wsgi_attributes
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.util.http import parse_excluded_urls, sanitize_method

from otel_distro.http_server import _excluded, _fastapi, _flask, _semconv
from tests.server_inputs import asgi_scope

HTTP = _StabilityMode.HTTP


class TestMethods:
    @pytest.mark.parametrize("method", ["GET", "get", " GET ", "PATCH", "QUERY", "FOO", "", "Post"])
    def test_sanitize_like_contrib(self, method: str, monkeypatch: pytest.MonkeyPatch) -> None:
        monkeypatch.delenv("OTEL_PYTHON_INSTRUMENTATION_HTTP_CAPTURE_ALL_METHODS", raising=False)
        assert _semconv.sanitize_method(method) == sanitize_method(method)


_ENVIRON: dict[str, Any] = {
    "REQUEST_METHOD": "GET",
    "PATH_INFO": "/a b",
    "QUERY_STRING": "x=1",
    "SERVER_NAME": "example",
    "SERVER_PORT": "8443",
    "SERVER_PROTOCOL": "HTTP/2",
    "REMOTE_ADDR": "10.0.0.1",
    "REMOTE_PORT": "4000",
    "HTTP_HOST": "example:8443",
    "HTTP_USER_AGENT": "AlwaysOn probe",
    "wsgi.url_scheme": "https",
}


class TestWsgiAttributes:
    @pytest.mark.parametrize(
        "changes",
        [
            {},
            {"RAW_URI": "/a%20b?x=1"},
            {"REQUEST_URI": "/a%20b?x=1", "QUERY_STRING": ""},
            {"REMOTE_HOST": "client.example"},
            {"REMOTE_HOST": "10.0.0.1"},
            {"REQUEST_METHOD": "get"},
            {"REQUEST_METHOD": "BREW"},
            {"REQUEST_METHOD": None},
            {"HTTP_USER_AGENT": "Googlebot/2.1"},
            {"HTTP_USER_AGENT": b"raw bytes"},
            {"HTTP_USER_AGENT": None, "HTTP_HOST": None, "REMOTE_PORT": "x", "SERVER_PORT": "0"},
            {"SERVER_PROTOCOL": "", "wsgi.url_scheme": None},
        ],
    )
    def test_same_as_contrib(self, changes: dict[str, Any]) -> None:
        environ = {k: v for k, v in {**_ENVIRON, **changes}.items() if v is not None}
        assert _flask.request_attributes(environ) == contrib_wsgi_attributes(environ, HTTP)


def _scope(**changes: Any) -> dict[str, Any]:
    scope = asgi_scope(
        "GET",
        "/items/1",
        [("user-agent", "Mozilla bingbot")],
        host="api.example",
        server=("10.0.0.2", 80),
        client=("10.0.0.1", 4000),
        query_string=b"q=%C3%A9",
        asgi=None,
        root_path=None,
        raw_path=None,
    )
    scope.update(changes)  # whole keys, headers included
    return {k: v for k, v in scope.items() if v is not None}


class TestAsgiAttributes:
    @pytest.mark.parametrize(
        "changes",
        [
            {},
            {"server": ("10.0.0.2", 8000)},
            {"server": None, "client": None},
            {"method": "get", "query_string": b""},
            {"method": "BREW", "http_version": None},
            {"path": "", "headers": []},
            {"headers": [(b"Host", b"a"), (b"USER-AGENT", "é".encode())]},
            {"client": ("", 0)},
        ],
    )
    def test_same_as_contrib(self, changes: dict[str, Any]) -> None:
        scope = _scope(**changes)
        server = scope.get("server") or ("0.0.0.0", 80)
        server_host = server[0] + (":" + str(server[1]) if str(server[1]) != "80" else "")
        ours = _fastapi.request_attributes(scope, _fastapi._index(scope), server_host, server[1])

        assert ours == contrib_asgi_attributes(scope, HTTP)


class TestStatus:
    @pytest.mark.parametrize(("code", "text"), [(200, "200"), (404, "404"), (500, "500"), (99, "99"), (-1, "abc")])
    def test_same_span_and_metric_attributes_as_contrib(self, code: int, text: str) -> None:
        tracer = TracerProvider().get_tracer("t")
        ours_span, contrib_span = tracer.start_span("ours"), tracer.start_span("contrib")
        ours_metrics: dict[str, Any] = {}
        contrib_metrics: dict[str, Any] = {}

        _semconv.apply_status(ours_span, ours_metrics, code, text)
        _set_status(contrib_span, contrib_metrics, code, text, server_span=True, sem_conv_opt_in_mode=HTTP)

        assert ours_metrics == contrib_metrics
        assert ours_span.attributes == contrib_span.attributes  # type: ignore[attr-defined]
        assert ours_span.status.status_code == contrib_span.status.status_code  # type: ignore[attr-defined]
        assert ours_span.status.description == contrib_span.status.description  # type: ignore[attr-defined]


class TestExcludedUrls:
    @pytest.mark.parametrize("patterns", ["", "/health", "/health,/metrics$", "a,,b", " /x , /y "])
    @pytest.mark.parametrize("url", ["http://h/health/live", "http://h/metrics", "http://h/metrics/x", "http://h/y"])
    def test_same_answer_as_contrib(self, patterns: str, url: str) -> None:
        excluded = _excluded.ExcludedUrls(patterns)
        expected = parse_excluded_urls(patterns).url_disabled(url)

        assert excluded.excluded(url, lambda: url) == expected
        assert excluded.excluded(url, lambda: "not asked again") == expected

    def test_cache_stays_bounded(self) -> None:
        excluded = _excluded.ExcludedUrls("/health")
        for n in range(_excluded._MAX_CACHED * 2):
            url = f"http://h/items/{n}"
            excluded.excluded(url, lambda url=url: url)  # type: ignore[misc]

        assert len(excluded._cache) <= _excluded._MAX_CACHED

    def test_a_url_that_cannot_be_built_is_not_excluded_and_fails_nothing(self) -> None:
        excluded = _excluded.ExcludedUrls("/health")

        def broken() -> str:
            raise LookupError("unknown encoding: idna")  # seen in a worker whose codec import broke

        assert excluded.excluded("k", broken) is False
        assert excluded.excluded("k", lambda: "http://h/health") is True  # the failure was not cached
