"""``make demo-http`` does what docs/tutorials/api-customer.md says: both sides seeded, one sync
each way, files to look at (run here in a temporary folder)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import orjson

from tests.server import ROOT, server_binary
from tests.support.environ import SRC, inherited


def test_the_http_demo_syncs_both_ways_and_leaves_files_to_look_at(tmp_path: Path) -> None:
    demo = tmp_path / "demo"
    env = inherited("MONGO_", "CLIENT_") | {
        "DEMO_DIR": str(demo),
        "SECANTUSD_BIN": server_binary(),
        "PYTHONPATH": SRC,
    }
    proc = subprocess.run(
        [sys.executable, str(ROOT / "tools" / "demo_http.py")],
        env=env,
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )
    output = proc.stdout + proc.stderr
    assert proc.returncode == 0, output
    assert "status=ok files=1 inserted=10" in output and "rejected=2 exported=9" in output
    assert "Where to look" in output
    assert len(list((demo / "tracos").glob("*.json"))) == 20
    assert len(list((demo / "erp").glob("*.json"))) == 21
    letters = orjson.loads((demo / "dead-letters.json").read_bytes())
    assert sorted(letter["direction"] for letter in letters) == ["inbound", "inbound", "outbound"]
    assert orjson.loads((demo / "report.json").read_bytes())["status"] == "ok"
