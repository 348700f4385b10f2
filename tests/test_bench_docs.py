"""docs/benchmarks.md is an executable claim: every `python -m bench.X ...` command it shows names a bench module
that exists, and every flag it passes is one that module accepts (checked against its own --help). The
benchmarks themselves are run by hand (they are never timed tests)."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
COMMANDS = sorted({m.group(1) for m in re.finditer(r"`(python -m bench\.[a-z_]+[^`]*)`",
                                                    (ROOT / "docs" / "benchmarks.md").read_text())})


def test_the_benchmark_doc_shows_the_issue_12_benches():
    names = {c.split()[2] for c in COMMANDS}
    assert {"bench.reconnect", "bench.ingest", "bench.flood", "bench.soak", "bench.gateway_footprint"} <= names


@pytest.mark.parametrize("command", COMMANDS)
def test_documented_bench_command_and_flags_exist(command):
    args = command.split()
    module = args[2]
    out = subprocess.run([sys.executable, "-m", module, "--help"], capture_output=True, text=True, cwd=ROOT,
                         timeout=120)
    assert out.returncode == 0, out.stderr[-1000:]
    for flag in (a for a in args[3:] if a.startswith("--")):
        assert flag in out.stdout, f"{command}: {flag} is not an option of {module}"


def test_the_replay_window_memory_bench_runs_as_documented():
    out = subprocess.run([sys.executable, "-m", "bench.replay_window_mem", "--gateways", "2"], capture_output=True,
                         text=True, cwd=ROOT, timeout=120)
    assert out.returncode == 0, out.stderr[-1000:]
    doc = json.loads(out.stdout)
    assert doc["gateways"] == 2 and doc["counters_each"] > 0 and doc["traced_mib"] >= 0
