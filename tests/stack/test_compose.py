"""docker-compose.yml: valid by the compose-spec schema, pinned, loopback-only, durable, and
reading the same configuration files as the native stack of the e2e tests.

There is no container engine here, so nothing is started: the file is checked
against the schema and against the repository's own configuration files.
"""

from __future__ import annotations

import importlib.util
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
import yaml

from tests.stack.queries import REPO

COMPOSE_FILE = REPO / "docker-compose.yml"
BACKENDS = ("otel-collector", "prometheus", "alertmanager", "loki", "tempo", "grafana")
DEMO = ("orders", "inventory", "traffic")
# An exact release: no `latest`, no floating major or minor tag.
EXACT_TAG = re.compile(r"^v?\d+\.\d+\.\d+$")
RETENTION_DEFAULT = "${STACK_RETENTION:-720h}"


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    document: dict[str, Any] = yaml.safe_load(COMPOSE_FILE.read_text())
    return document


def services(compose: dict[str, Any]) -> dict[str, dict[str, Any]]:
    found: dict[str, dict[str, Any]] = compose["services"]
    return found


def image_tag(service: dict[str, Any]) -> tuple[str, str]:
    name, _, tag = str(service["image"]).rpartition(":")
    return name, tag


def bind_mounts(service: dict[str, Any]) -> Iterator[tuple[str, str]]:
    """(source, target) of each short-syntax volume entry."""
    for entry in service.get("volumes", []):
        source, target = str(entry).split(":")[:2]
        yield source, target


def native_stack_module() -> ModuleType:
    """scripts/stack.py, loaded by path: the name `stack` is also this repository's stack/ folder."""
    name = "otel_distro_native_stack"
    if name not in sys.modules:
        spec = importlib.util.spec_from_file_location(name, REPO / "scripts" / "stack.py")
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        # Registered before running it: its dataclasses look their module up by name.
        sys.modules[name] = module
        spec.loader.exec_module(module)
    return sys.modules[name]


def command_args(service: dict[str, Any]) -> list[str]:
    command = service.get("command", [])
    return [str(arg) for arg in command] if isinstance(command, list) else str(command).split()


class TestSchema:
    def test_validates_against_compose_spec(self) -> None:
        # check-jsonschema ships (vendors) the compose-spec JSON schema: no network needed.
        result = subprocess.run(
            [sys.executable, "-m", "check_jsonschema", "--builtin-schema", "vendor.compose-spec", str(COMPOSE_FILE)],
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        assert result.returncode == 0, result.stdout + result.stderr


class TestImages:
    def test_every_image_is_pinned_to_an_exact_release(self, compose: dict[str, Any]) -> None:
        for name, service in services(compose).items():
            if "image" not in service:
                assert "build" in service, f"{name}: neither image nor build"
                continue
            _, tag = image_tag(service)
            assert EXACT_TAG.match(tag), f"{name}: image {service['image']} is not pinned to an exact version"

    def test_collector_image_matches_the_native_build(self, compose: dict[str, Any]) -> None:
        builder = REPO / "collector" / "builder-config.yaml"
        if not builder.exists():
            pytest.skip("collector/builder-config.yaml does not exist yet")
        version = yaml.safe_load(builder.read_text())["dist"]["version"]
        name, tag = image_tag(services(compose)["otel-collector"])
        assert name == "otel/opentelemetry-collector-contrib"
        assert tag == version

    @pytest.mark.parametrize(
        ("service", "image", "major_minor"),
        [
            ("prometheus", "prom/prometheus", r"v3\."),
            ("alertmanager", "prom/alertmanager", r"v0\."),
            ("loki", "grafana/loki", r"3\.7\."),
            ("tempo", "grafana/tempo", r"2\."),
            ("grafana", "grafana/grafana", r"13\."),
        ],
    )
    def test_official_images_of_the_expected_lines(
        self, compose: dict[str, Any], service: str, image: str, major_minor: str
    ) -> None:
        name, tag = image_tag(services(compose)[service])
        assert name == image
        assert re.match(major_minor, tag), f"{service}: {tag} is not {major_minor}x"


class TestNetwork:
    def test_published_ports_bind_loopback_only(self, compose: dict[str, Any]) -> None:
        for name, service in services(compose).items():
            for port in service.get("ports", []):
                if isinstance(port, dict):
                    assert port.get("host_ip") == "127.0.0.1", f"{name}: {port}"
                else:
                    assert str(port).startswith("127.0.0.1:"), f"{name}: port {port} is not bound to 127.0.0.1"

    def test_apps_export_to_the_collector(self, compose: dict[str, Any]) -> None:
        for name in ("orders", "inventory"):
            environment = services(compose)[name]["environment"]
            assert environment["OTEL_EXPORTER_OTLP_ENDPOINT"] == "http://otel-collector:4318"
            assert environment["OTEL_SERVICE_NAME"]
        assert services(compose)["orders"]["environment"]["INVENTORY_URL"] == "http://inventory:8002"


class TestDurability:
    def test_every_backend_keeps_data_in_a_named_volume(self, compose: dict[str, Any]) -> None:
        declared = set(compose.get("volumes") or {})
        for name in BACKENDS:
            named = [source for source, _ in bind_mounts(services(compose)[name]) if source in declared]
            assert named, f"{name} has no named volume"

    def test_collector_queue_directory_is_a_named_volume(self, compose: dict[str, Any]) -> None:
        config = (REPO / "collector" / "config.yaml").read_text()
        match = re.search(r"\$\{env:OTELCOL_STORAGE_DIR:-([^}]+)\}", config)
        assert match, "collector/config.yaml no longer reads OTELCOL_STORAGE_DIR"
        mounts = dict((target, source) for source, target in bind_mounts(services(compose)["otel-collector"]))
        assert mounts.get(match.group(1)) in set(compose["volumes"]), "the file_storage queue is not on a volume"

    def test_retention_is_thirty_days_by_default_and_configurable(self, compose: dict[str, Any]) -> None:
        flags = {"prometheus": "--storage.tsdb.retention.time=", "loki": "-store.retention="}
        for name, flag in flags.items():
            assert flag + RETENTION_DEFAULT in command_args(services(compose)[name]), name
        # Tempo's retention flag is named differently across releases: tempo.yaml reads a variable.
        assert services(compose)["tempo"]["environment"]["TEMPO_BLOCK_RETENTION"] == RETENTION_DEFAULT
        assert "${TEMPO_BLOCK_RETENTION:-720h}" in (REPO / "stack" / "tempo" / "tempo.yaml").read_text()

    def test_long_running_services_restart_and_have_memory_limits(self, compose: dict[str, Any]) -> None:
        for name in (*BACKENDS, *DEMO):
            service = services(compose)[name]
            assert service.get("restart") == "unless-stopped", name
            assert service.get("mem_limit"), name


class TestStartup:
    def test_healthchecks_except_the_distroless_collector(self, compose: dict[str, Any]) -> None:
        for name in BACKENDS:
            has_check = "healthcheck" in services(compose)[name]
            assert has_check == (name != "otel-collector"), name

    def test_health_conditions_point_at_services_with_healthchecks(self, compose: dict[str, Any]) -> None:
        for name, service in services(compose).items():
            depends = service.get("depends_on") or {}
            assert isinstance(depends, dict), f"{name}: depends_on needs conditions"
            for other, rule in depends.items():
                if rule["condition"] == "service_healthy":
                    assert "healthcheck" in services(compose)[other], f"{name} waits for {other}'s health"

    def test_collector_waits_for_its_backends(self, compose: dict[str, Any]) -> None:
        depends = services(compose)["otel-collector"]["depends_on"]
        for backend in ("prometheus", "loki", "tempo"):
            assert depends[backend]["condition"] == "service_healthy"


class TestGrafana:
    def test_login_required_with_password_from_environment(self, compose: dict[str, Any]) -> None:
        environment = services(compose)["grafana"]["environment"]
        assert environment["GF_AUTH_ANONYMOUS_ENABLED"] == "false"
        assert environment["GF_USERS_ALLOW_SIGN_UP"] == "false"
        assert str(environment["GF_SECURITY_ADMIN_PASSWORD"]).startswith("${GRAFANA_ADMIN_PASSWORD:-")

    def test_provisioning_and_dashboards_are_mounted(self, compose: dict[str, Any]) -> None:
        mounts = dict(bind_mounts(services(compose)["grafana"]))
        assert mounts["./stack/grafana/provisioning"] == "/etc/grafana/provisioning"
        provider = yaml.safe_load((REPO / "stack/grafana/provisioning/dashboards/dashboards.yml").read_text())
        assert mounts["./stack/grafana/dashboards"] == provider["providers"][0]["options"]["path"]


class TestDemoProfile:
    def test_demo_services_only_in_the_demo_profile(self, compose: dict[str, Any]) -> None:
        for name, service in services(compose).items():
            assert (service.get("profiles") == ["demo"]) == (name in DEMO), name

    def test_examples_build_from_the_repository_root(self, compose: dict[str, Any]) -> None:
        for name in DEMO:
            build = services(compose)[name]["build"]
            assert build == {"context": ".", "dockerfile": "examples/Dockerfile"}, name
        assert (REPO / "examples" / "Dockerfile").exists()
        assert services(compose)["orders"]["environment"]["SERVICE"] == "orders_fastapi"
        assert services(compose)["inventory"]["environment"]["SERVICE"] == "inventory_flask"


class TestSameFilesAsNativeStack:
    """The compose services read the very files that scripts/stack.py runs the tests with."""

    @pytest.fixture(scope="class")
    @classmethod
    def native_argv(cls, tmp_path_factory: pytest.TempPathFactory) -> dict[str, list[str]]:
        native = native_stack_module().Stack(data_dir=tmp_path_factory.mktemp("native"))
        return {name: spec.argv for name, spec in native.process_specs().items()}

    def test_one_collector_pipeline_file(self, compose: dict[str, Any], native_argv: dict[str, list[str]]) -> None:
        source = "collector/config.yaml"
        assert any(arg.endswith("=" + str(REPO / source)) for arg in native_argv["otelcol"]), native_argv["otelcol"]
        mounts = dict(bind_mounts(services(compose)["otel-collector"]))
        target = mounts["./" + source]
        assert any(arg.endswith("=" + target) for arg in command_args(services(compose)["otel-collector"]))

    def test_stacks_differ_only_in_documented_collector_variables(self, tmp_path: Path) -> None:
        """Natively the collector gets only variables that config.yaml reads and documents in its header."""
        config = (REPO / "collector" / "config.yaml").read_text()
        header = config.split("\nextensions:", 1)[0]
        read = set(re.findall(r"\$\{env:(\w+)", config))
        documented = set(re.findall(r"^# (OTELCOL_\w+)", header, re.MULTILINE))
        assert read == documented
        native_env = native_stack_module().Stack(data_dir=tmp_path).collector_env()
        assert set(native_env) <= read
        # By role, not by product: the backends' endpoints are the logs and traces variables.
        assert {"OTELCOL_LOGS_OTLP_ENDPOINT", "OTELCOL_TRACES_OTLP_ENDPOINT"} <= set(native_env)

    def test_prometheus_rules_and_config(self, compose: dict[str, Any]) -> None:
        # Natively, stack.py renders prometheus.yml with loopback targets and the same rules glob.
        mounts = dict(bind_mounts(services(compose)["prometheus"]))
        target = mounts["./stack/prometheus"]
        assert f"--config.file={target}/prometheus.yml" in command_args(services(compose)["prometheus"])

    def test_alertmanager_template(self, compose: dict[str, Any]) -> None:
        service = services(compose)["alertmanager"]
        target = dict(bind_mounts(service))["./stack/alertmanager"]
        assert service["entrypoint"][:3] == ["/bin/sh", f"{target}/render.sh", f"{target}/alertmanager.yml"]
        rendered = service["entrypoint"][3]
        assert f"--config.file={rendered}" in command_args(service)


def test_every_mounted_path_exists(compose: dict[str, Any]) -> None:
    for name, service in services(compose).items():
        for source, _ in bind_mounts(service):
            if source.startswith("./"):
                assert (REPO / source).exists(), f"{name} mounts missing {source}"


def test_documented_settings_are_used(compose: dict[str, Any]) -> None:
    text = COMPOSE_FILE.read_text()
    header = text.split("\nname:", 1)[0]
    for variable in ("STACK_RETENTION", "GRAFANA_ADMIN_PASSWORD", "ALERTMANAGER_RECEIVER"):
        assert variable in header, f"{variable} is not documented at the top of docker-compose.yml"
        assert "${" + variable in text.split("\nname:", 1)[1], f"{variable} is documented but unused"
