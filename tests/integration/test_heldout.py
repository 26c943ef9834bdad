"""A held-out service (not one of our examples), run unmodified with only env vars."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.harness import Capture, app_env, free_port, http, launch, stop_app, wait_until

pytestmark = pytest.mark.integration

SERVICE = "it-notes"


def test_heldout_service_gets_everything_from_env_vars_alone(capture: Capture, tmp_path: Path) -> None:
    port = free_port()
    app = launch(
        ["uvicorn", "notes_service:app", "--port", str(port)],
        app_env(SERVICE, capture.endpoint, NOTES_SELF_URL=f"http://127.0.0.1:{port}"),
        Path(__file__).parent / "heldout",
        port,
        tmp_path / "notes.log",
    )
    try:
        status, headers, _ = http("GET", f"{app.url}/api/v1/relay/1", headers={"X-Request-ID": "notes-1"})
        assert status == 200
        assert headers["x-request-id"] == "notes-1"

        def both_server_spans() -> list:  # type: ignore[type-arg]
            found = [s for s in capture.spans(SERVICE) if s.kind == 2 and s.attributes.get("request.id") == "notes-1"]
            return found if len(found) == 2 else []

        spans = wait_until(both_server_spans, 20, what="relay and note server spans")
        logs = wait_until(lambda: [r for r in capture.logs(SERVICE) if r.body == "note read"], 20)
        points = wait_until(lambda: capture.points(SERVICE, "http.server.request.duration"), 20)
    finally:
        stop_app(app)

    assert {s.attributes["http.route"] for s in spans} == {"/api/v1/relay/{note_id}", "/api/v1/notes/{note_id}"}
    assert len({s.trace_id for s in spans}) == 1  # the outgoing call carried the context
    assert logs[0].trace_id == spans[0].trace_id
    assert logs[0].attributes["request.id"] == "notes-1"
    assert {p.attributes.get("http.route") for p in points} >= {"/api/v1/notes/{note_id}"}
    # The app's own dictConfig console handler still prints its lines, once each.
    assert app.output().count("INFO notes note read") == 1
