"""`python -m bench.failover` (issue 14 §6) run small: two real hub processes on a real PostgreSQL, a real Mosquitto,
a `dozor sim city` of 4 gateways, an Actual alert started through the follower and the leader killed with SIGKILL
while the sirens spin up. Asserts the counts the benchmark reports (never its times)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration
ROOT = Path(__file__).resolve().parents[2]


def test_failover_bench_small_run_loses_nothing():
    out = subprocess.run([sys.executable, "-m", "bench.failover", "--gateways", "4", "--sirens-per-gateway", "2",
                          "--json"], capture_output=True, text=True, cwd=ROOT, timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]
    result = json.loads(out.stdout.strip().splitlines()[-1])
    assert {"failover_s", "alert_completed", "sirens_total", "sirens_confirmed", "lost_acks",
            "duplicate_effects"} <= set(result)
    assert result["sounding_before_kill"] < result["sirens_total"] == 8  # the kill landed mid-alert
    assert result["alert_completed"] is True and result["sirens_confirmed"] == 8
    assert result["lost_acks"] == 0 and result["duplicate_effects"] == 0 and result["unreadable_on_wire"] == 0
    assert result["acks_sounding_on_wire"] == 8 and result["commands_on_wire"] >= 4
