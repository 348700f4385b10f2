"""`python -m bench.dispatch` (issue 14 §5, the hub's own dispatch cost) run small on both backends: a real
`dozor hub run` process, a real Mosquitto and (for postgres) a real PostgreSQL, gateways enrolled with their own
identity keys and announced by sealed births. Asserts the counts the benchmark reports (never its times)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration
ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize("backend", ["postgres", "sqlite"])
def test_dispatch_bench_small_run_sends_one_verified_command_per_gateway(backend):
    out = subprocess.run([sys.executable, "-m", "bench.dispatch", "--gateways", "5", "--sirens-per-gateway", "2",
                          "--alerts", "2", "--pause-s", "0.5", "--backend", backend, "--json"],
                         capture_output=True, text=True, cwd=ROOT, timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]
    result = json.loads(out.stdout.strip().splitlines()[-1])
    assert result["backend"] == backend and result["gateways"] == 5 and result["sirens"] == 10
    assert result["commands_per_alert"] == 5 and result["stop_commands"] == 10  # 5 per stop, 2 alerts
    assert result["sirens_targeted"] == [10, 10] and result["bad_commands"] == 0
    # the times are the benchmark's to report, never a test's to judge: only that they are there, one per alert
    for key in ("wire_ms", "dispatch_ms", "hub_cpu_ms", "hub_loop_cpu_ms", "signer_cpu_ms", "api_call_ms",
                "stop_wire_ms"):
        assert len(result[key]) == 2, key
