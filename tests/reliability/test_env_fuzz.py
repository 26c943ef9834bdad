"""Every variable otel-distro owns, set to garbage at once: the app serves, and each value that
cannot be used gives exactly one warning naming the variable (the rule in otel_distro/settings.py)."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from otel_distro.settings import load_settings, setting_fields
from tests.harness import EXAMPLES, Capture, app_env, free_port, http, launch, stop_app

pytestmark = pytest.mark.reliability

OWNED = tuple(f.metadata["env"] for f in setting_fields() if f.metadata["env"].startswith("OTEL_DISTRO_"))
KINDS = {"garbage": "garbage", "negative": "-1", "huge": "9" * 30, "empty": "", "regex": "[("}


def _log_file(kind: str, tmp: Path) -> str:
    # Never a relative path: it would be created inside the example's directory.
    blocker = tmp / "a-file"
    blocker.write_text("")
    return {
        "garbage": str(blocker / "app.log"),  # its directory cannot be created
        "negative": str(tmp),  # a directory
        "huge": str(tmp / ("x" * 300) / "app.log"),  # a name longer than the file system allows
        "empty": "",
        "regex": str(tmp / "[(" / "app.log"),  # odd but usable
    }[kind]


def _warnings(output: str) -> str:
    """Warning text: our JSON lines at WARNING and above, and plain lines (warnings printed before
    logging was set up go through Python's last-resort handler)."""
    found = []
    for line in output.splitlines():
        if line.startswith("{"):
            event = json.loads(line)
            if event["level"] in ("WARNING", "ERROR", "CRITICAL"):
                found.append(event["message"])
        else:
            found.append(line)
    return "\n".join(found)


def _mentions(text: str, variable: str) -> int:
    return len(re.findall(rf"{variable}(?![A-Z_])", text))


@pytest.mark.parametrize("kind", list(KINDS))
def test_app_serves_and_each_bad_value_warns_once(capture: Capture, tmp_path: Path, kind: str) -> None:
    values = {name: KINDS[kind] for name in OWNED}
    values["OTEL_DISTRO_LOG_FILE"] = _log_file(kind, tmp_path)
    refused = {problem.variable for problem in load_settings(values).problems}
    port = free_port()
    env = app_env(f"rel-env-{kind}", capture.endpoint, **values)
    app = launch(
        ["uvicorn", "app:app", "--port", str(port)], env, EXAMPLES / "orders_fastapi", port, tmp_path / "out.log"
    )
    try:
        assert http("GET", f"{app.url}/health")[0] == 200
        assert http("GET", f"{app.url}/orders/none")[0] == 404
    finally:
        stop_app(app)
    output = app.output()

    assert "Traceback" not in output
    assert "Configuration of otel_distro failed" not in output
    warnings = _warnings(output)
    counts = {name: _mentions(warnings, name) for name in OWNED}
    expected = {name: 1 if name in refused else 0 for name in OWNED}
    if kind == "huge":  # passes the read-only checks, fails when the directory is made: one warning then
        expected["OTEL_DISTRO_LOG_FILE"] = 1
    assert counts == expected
