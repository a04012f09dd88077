"""The deployment files in deploy/: the Kubernetes manifests valid for Kubernetes 1.37 (strict:
no unknown field), and every setting they give one the service knows, as the systemd template's."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml

from tracos_sync.app.settings import AppSettings

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"
MANIFESTS = sorted((DEPLOY / "kubernetes").glob("*.yaml"))
SETTINGS = {name.upper() for name in AppSettings.model_fields}


def resources() -> list[dict[str, Any]]:
    return [doc for path in MANIFESTS for doc in yaml.safe_load_all(path.read_text()) if doc]


@pytest.mark.parametrize("path", MANIFESTS, ids=lambda p: p.name)
def test_each_manifest_is_valid_for_kubernetes(path: Path) -> None:
    for doc in yaml.safe_load_all(path.read_text()):
        kubernetes_validate.validate(doc, "1.37.0", strict=True)


def test_the_deployment_runs_replicas_with_leases_and_probes_on_the_metrics_port() -> None:
    [deployment] = [doc for doc in resources() if doc["kind"] == "Deployment"]
    assert deployment["spec"]["replicas"] > 1
    [container] = deployment["spec"]["template"]["spec"]["containers"]
    env = {item["name"]: item.get("value") for item in container["env"]}
    assert set(env) <= SETTINGS, set(env) - SETTINGS
    assert env["LEASES"] == "true"
    assert "watch" in container["args"]
    port = int(env["METRICS_PORT"])
    assert container["ports"][0]["containerPort"] == port
    assert container["livenessProbe"]["httpGet"]["port"] == container["ports"][0]["name"]
    assert "check" in container["readinessProbe"]["exec"]["command"]
    # SIGTERM: the batch in hand (a few seconds at most), then the leases given back.
    assert deployment["spec"]["template"]["spec"]["terminationGracePeriodSeconds"] >= 10


def test_the_integrations_file_of_the_config_map_is_toml_with_integrations() -> None:
    [config] = [doc for doc in resources() if doc["kind"] == "ConfigMap"]
    parsed = tomllib.loads(config["data"]["integrations.toml"])
    assert parsed["integration"]


def test_the_systemd_template_runs_one_replica_per_instance_with_known_settings() -> None:
    unit = (DEPLOY / "systemd" / "tracos-sync@.service").read_text()
    environment = dict(re.findall(r"^Environment=(\w+)=(\S+)$", unit, re.MULTILINE))
    assert set(environment) <= SETTINGS, set(environment) - SETTINGS
    assert environment["LEASES"] == "true"
    assert "%i" in environment["METRICS_PORT"]  # one port per instance
    [start] = re.findall(r"^ExecStart=(.*)$", unit, re.MULTILINE)
    assert start.split()[-1] == "watch"
    assert re.search(r"^Restart=always$", unit, re.MULTILINE)
    assert re.search(r"^RestartPreventExitStatus=2$", unit, re.MULTILINE)


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="no systemd-analyze here")
def test_systemd_accepts_the_template(tmp_path: Path) -> None:
    """As an instance (``tracos-sync@1``), its program the Python running the tests (systemd
    checks that the program exists)."""
    unit = (DEPLOY / "systemd" / "tracos-sync@.service").read_text()
    instance = tmp_path / "tracos-sync@1.service"
    instance.write_text(unit.replace("/srv/tracos-sync/.venv/bin/tracos-sync", sys.executable))
    verified = subprocess.run(
        ["systemd-analyze", "verify", str(instance)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert verified.returncode == 0, verified.stderr
    assert "tracos-sync@1.service" not in verified.stderr, verified.stderr
