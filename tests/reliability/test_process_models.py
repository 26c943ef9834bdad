"""Under `uvicorn --workers`, only the server's own processes are service instances: the resource
tracker multiprocessing starts beside them (with the same environment) exports nothing."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.harness import EXAMPLES, Capture, app_env, free_port, http, launch, stop_app, wait_until

pytestmark = pytest.mark.reliability

SERVICE = "rel-workers"


def _instances(capture: Capture) -> dict[str, tuple[object, object]]:
    """service.instance.id -> (pid, parent pid) of each process that exported runtime metrics."""
    return {
        str(p.resource.get("service.instance.id")): (
            p.resource.get("process.pid"),
            p.resource.get("process.parent_pid"),
        )
        for p in capture.points(SERVICE, "process.cpu.time")
    }


def _exports_each(capture: Capture, instances: int, times: int) -> bool:
    counts: dict[str, int] = {}
    for point in capture.points(SERVICE, "process.cpu.time"):
        key = str(point.resource.get("service.instance.id"))
        counts[key] = counts.get(key, 0) + 1
    return len([c for c in counts.values() if c >= times]) >= instances


def test_uvicorn_workers_have_no_phantom_instance(capture: Capture, tmp_path: Path) -> None:
    port = free_port()
    env = app_env(SERVICE, capture.endpoint)
    app = launch(
        ["uvicorn", "app:app", "--port", str(port), "--workers", "2"],
        env,
        EXAMPLES / "orders_fastapi",
        port,
        tmp_path / "out.log",
    )
    try:
        for _ in range(20):
            assert http("GET", f"{app.url}/health")[0] == 200
        # Supervisor and two workers export every 500 ms; the tracker, started before the workers,
        # would have exported several times too by the time each of them did three times.
        wait_until(lambda: _exports_each(capture, 3, 3), 30, what="three exports by three instances")
    finally:
        stop_app(app)

    instances = _instances(capture)
    assert len(instances) == 3, f"supervisor and two workers expected, got (pid, parent) {list(instances.values())}"
