"""The deployment examples of docs/how-to/operate.md do what the page says: the systemd unit keeps
restarting ``watch`` (which exits 1 at once when MongoDB refuses its first connection) at a pace,
for ever, starts at boot after the network, and logs JSON whatever ``.env.example`` says; the
Kubernetes probes wait longer than ``check`` takes; every metric the page names exists."""

from __future__ import annotations

import configparser
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml
from dotenv import dotenv_values

from tests.server import ROOT
from tracos_sync.stopping import STOP_GRACE_SECONDS
from tracos_sync.watch_metrics import Metrics

PAGE = ROOT / "docs" / "how-to" / "operate.md"
UNIT_BLOCK = re.compile(
    r"^```ini\n(# /etc/systemd/system/tracos-sync\.service\n.*?)^```", re.M | re.S
)
YAML_BLOCK = re.compile(r"^```yaml\n(.*?)^```", re.M | re.S)
# `tracos-sync check` against a MongoDB that does not answer (measured: 5.5 to 6 s).
CHECK_UNREACHABLE_SECONDS = 6


def unit_text() -> str:
    found = UNIT_BLOCK.findall(PAGE.read_text())
    assert len(found) == 1, "operate.md shows one systemd unit"
    return str(found[0])


def unit() -> configparser.RawConfigParser:
    parser = configparser.RawConfigParser(strict=False, comment_prefixes=("#", ";"))
    parser.optionxform = str  # type: ignore[assignment,method-assign]  # keys keep their case
    parser.read_string(unit_text())
    return parser


def seconds(value: str) -> float:
    """A systemd time span in the forms the page may use: ``5``, ``5s``, ``1min``."""
    match = re.fullmatch(r"(\d+(?:\.\d+)?)\s*(s|sec|min|)?", value.strip())
    assert match, f"not a time span this test reads: {value!r}"
    return float(match[1]) * (60 if match[2] == "min" else 1)


def assignments(value: str) -> dict[str, str]:
    """``Environment=A=1 B=2`` -> {A: 1, B: 2} (no quoting on the page)."""
    return dict(word.split("=", 1) for word in value.split())


def test_the_unit_restarts_watch_at_a_pace_for_ever_and_starts_at_boot() -> None:
    parsed = unit()
    service, section = parsed["Service"], parsed["Unit"]
    assert service["ExecStart"].split()[-1] == "watch"
    # Exit 1 at a refused first contact: restarted, and never given up on.
    assert service["Restart"] in {"on-failure", "always"}
    assert seconds(service.get("RestartSec", "0.1")) >= 1, "100 ms: 5 starts in 0.5 s"
    assert section.get("StartLimitIntervalSec") == "0", "the default gives up after 5 starts"
    assert "StartLimitIntervalSec" not in service, "it belongs in [Unit]"
    # Started after the network (and a local mongod), and at boot.
    assert "network-online.target" in section.get("Wants", "").split()
    assert {"network-online.target", "mongod.service"} <= set(section.get("After", "").split())
    assert parsed["Install"]["WantedBy"] == "multi-user.target"
    # A stop finishes the batch in hand: systemd must wait longer than the service's grace.
    assert seconds(service["TimeoutStopSec"]) > STOP_GRACE_SECONDS
    assert "2" in service.get("RestartPreventExitStatus", "").split(), "bad configuration loops"


def test_the_unit_logs_json_with_a_dotenv_copied_from_the_example() -> None:
    """systemd: EnvironmentFile= overrides Environment=; the service: its environment overrides
    the .env in its working directory (a copy of .env.example)."""
    service = unit()["Service"]
    dotenv_example = {k: v or "" for k, v in dotenv_values(ROOT / ".env.example").items()}
    assert dotenv_example.get("LOG_FORMAT") == "text", "the example changed: revisit this test"
    environment = assignments(service.get("Environment", ""))
    if "EnvironmentFile" in service:
        environment |= dotenv_example  # the page's files are copies of .env.example
    effective = dotenv_example | environment
    assert effective.get("LOG_FORMAT") == "json"
    assert effective.get("METRICS_PORT")


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="no systemd-analyze here")
def test_systemd_reads_the_unit_without_a_warning(tmp_path: Path) -> None:
    runnable = re.sub(r"^ExecStart=\S+", "ExecStart=/bin/true", unit_text(), flags=re.M)
    path = tmp_path / "tracos-sync.service"
    path.write_text(runnable)
    verified = subprocess.run(
        ["systemd-analyze", "verify", str(path)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert verified.returncode == 0 and not verified.stderr.strip(), verified.stderr


def manifests() -> dict[str, Any]:
    found = {}
    for block in YAML_BLOCK.findall(PAGE.read_text()):
        document = yaml.safe_load(block)
        found[document["kind"]] = document
    return found


def test_the_kubernetes_probes_wait_longer_than_check_takes() -> None:
    found = manifests()
    assert {"Deployment", "CronJob"} <= set(found)
    pod = found["Deployment"]["spec"]["template"]["spec"]
    assert pod.get("restartPolicy", "Always") == "Always"
    (container,) = pod["containers"]
    assert container["args"] == ["watch"]
    probe = container["readinessProbe"]
    assert probe["exec"]["command"][-1] == "check"
    assert probe.get("timeoutSeconds", 1) > CHECK_UNREACHABLE_SECONDS
    assert "check" not in str(container.get("livenessProbe", "")), "an outage would restart it"
    job = found["CronJob"]["spec"]["jobTemplate"]["spec"]
    assert job["template"]["spec"]["restartPolicy"] in {"Never", "OnFailure"}
    assert job["template"]["spec"]["containers"][0]["args"] == ["run"]


def test_every_metric_the_page_names_exists() -> None:
    served = set()
    for family in Metrics().registry.collect():
        served.add(f"{family.name}_total" if family.type == "counter" else family.name)
    named = set(re.findall(r"\btracos_sync_[a-z_]+", PAGE.read_text()))
    assert named, "the page names no metric?"
    assert named <= served, f"not metrics: {named - served}"
    assert {"tracos_sync_destination_locked", "tracos_sync_database_up"} <= named
    alerts = PAGE.read_text().split("**What to alert on**")[1]
    assert "absent(" in alerts and 'up{job="tracos-sync"} == 0' in alerts, "the process gone"
