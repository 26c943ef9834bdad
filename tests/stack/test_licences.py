"""Licence policy: nothing AGPL is fetched, compiled or linked by our scripts.

Loki, Tempo and Grafana are AGPL: they appear only as images in docker-compose.yml.
The installer checks each tool module's full build list (`go list -m all`) before it
builds; these tests check what is committed, so a change cannot slip one in unnoticed.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import yaml

from tests.stack.queries import REPO

AGPL_MODULE = re.compile(r"github\.com/grafana/(loki|tempo|grafana)(/|\s|@|$)")
GO_FILES = sorted(
    p for top in ("tools", "deploy") for p in (REPO / top).rglob("go.*") if p.name in ("go.mod", "go.sum")
)
AGPL_IMAGES = ("grafana/loki", "grafana/tempo", "grafana/grafana")


def test_the_tool_modules_exist() -> None:
    modules = {str(p.parent.relative_to(REPO)) for p in GO_FILES if p.name == "go.mod"}
    assert modules == {"tools/backends/victorialogs", "tools/backends/jaeger", "deploy/k8s/check"}


@pytest.mark.parametrize("path", GO_FILES, ids=lambda p: str(p.relative_to(REPO)))
def test_no_agpl_module_in_go_files(path: Path) -> None:
    offending = [line for line in path.read_text().splitlines() if AGPL_MODULE.search(line)]
    assert not offending, f"{path.relative_to(REPO)} names AGPL modules: {offending[:3]}"


def test_the_installer_checks_the_full_build_list_before_building() -> None:
    script = (REPO / "scripts" / "install_backends.sh").read_text()
    build = script.split("go_tool_build() {", 1)[1].split("\n}\n", 1)[0]
    assert 'check_no_agpl "$dir"' in build
    assert build.index("check_no_agpl") < build.index("go build")
    assert "go list -m -f '{{.Path}}' all" in script
    assert "GOSUMDB=off" not in script and "GOSUMDB:-off" not in script


def test_the_grammar_packages_are_permissively_licensed() -> None:
    lock = json.loads((REPO / "tools" / "grammars" / "package-lock.json").read_text())
    licences = {name: entry.get("license") for name, entry in lock["packages"].items() if name}
    assert licences and set(licences.values()) <= {"Apache-2.0", "MIT"}, licences


def test_agpl_programs_run_only_as_compose_images() -> None:
    compose = yaml.safe_load((REPO / "docker-compose.yml").read_text())["services"]
    for name in ("loki", "tempo", "grafana"):
        assert str(compose[name]["image"]).startswith(AGPL_IMAGES), name
        assert "build" not in compose[name], name
    stack_py = (REPO / "scripts" / "stack.py").read_text()
    assert '"loki"' not in stack_py and '"tempo"' not in stack_py.replace('"tempo:3200"', "")
