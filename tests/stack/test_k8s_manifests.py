"""deploy/k8s manifests decode strictly into the official Kubernetes API types.

No cluster runs here: `k8s-check` (deploy/k8s/check, built by `scripts/backends install`)
decodes every object with k8s.io/api's types and refuses unknown fields, wrong types and
unknown kinds. The Operator's `Instrumentation` resource is a custom resource those types do
not cover (docs/scale-out.md says so).
"""

from __future__ import annotations

import subprocess
from pathlib import Path

from tests.harness import require_binary
from tests.stack.queries import REPO

MANIFESTS = [REPO / "deploy" / "k8s" / name for name in ("gateway.yaml", "agent.yaml")]


def k8s_check(*paths: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(require_binary("k8s-check")), *map(str, paths)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_manifests_decode_strictly() -> None:
    result = k8s_check(*MANIFESTS)
    assert result.returncode == 0, result.stdout + result.stderr
    checked = [line for line in result.stdout.splitlines() if line.endswith(": ok")]
    kinds = {line.rsplit(" ", 2)[-2].rstrip(":") for line in checked}
    assert {"StatefulSet", "DaemonSet", "Service", "PodDisruptionBudget"} <= kinds, result.stdout


def test_a_misspelt_field_is_refused(tmp_path: Path) -> None:
    broken = tmp_path / "gateway.yaml"
    text = MANIFESTS[0].read_text()
    assert "replicas:" in text
    broken.write_text(text.replace("replicas:", "replica:", 1))
    result = k8s_check(broken)
    assert result.returncode != 0
    assert "replica" in result.stdout
