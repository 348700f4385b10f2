"""`python -m bench.ingest` run small (issue 12): real Mosquitto, VictoriaMetrics and `dozor hub run`, once with one
hub and once with two hubs splitting the telemetry through the shared subscription group (`--hubs 2`, PostgreSQL
state). Asserts the counts the benchmark reports (raw stored samples == sent, the split adds up), never its
times, so the benchmark behind docs/benchmarks.md keeps working."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration
ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize(("hubs", "pure"), [(1, False), (2, False), (1, True)])
def test_ingest_bench_small_run_stores_every_point_once(hubs, pure):
    env = {**os.environ, "DOZOR_PURE_INGEST": "1" if pure else "0"}  # pure: the hub's Python parse, for comparisons
    out = subprocess.run([sys.executable, "-m", "bench.ingest", "--points", "20000", "--hubs", str(hubs),
                          "--timeout", "120", "--json"], capture_output=True, text=True, cwd=ROOT, timeout=400,
                         env=env)
    assert out.returncode == 0, out.stderr[-3000:]
    got = json.loads(out.stdout.strip().splitlines()[-1])
    assert got["points_sent"] == 20000 and got["points_stored"] == 20000, got  # raw samples: none lost, none twice
    assert got["hubs"] == hubs and len(got["per_hub_batches"]) == hubs
    assert sum(got["per_hub_batches"]) == got["batches"] == 40, got
    assert min(got["per_hub_batches"]) > 0, got  # with two hubs the broker gave each a share
    assert got["hub_counters"]["spool.duplicate_groups"] == 0
    # every series the gateways send took the C pass (none went the Python way), unless told otherwise
    assert got["hub_ingest_path"] == ("python" if pure else "compiled"), got
    assert got["hub_counters"].get("ingest.python_path_series", 0) == 0, got
    # the three rates and the ratio are the benchmark's to report, never a test's to judge: only that they are there
    assert {"points_per_s", "raw_delivery_per_s", "store_direct_per_s", "ratio_to_limit"} <= set(got)
    runs = got["store_direct_runs_per_s"]  # the store measured three times (--direct-runs 3), the median used
    assert len(runs) == 3 and got["store_direct_per_s"] == sorted(runs)[1], got


def test_the_parse_bench_runs_both_paths_to_the_same_lines():
    out = subprocess.run([sys.executable, "-m", "bench.ingest_parse", "--messages", "50", "--repeat", "1", "--json"],
                         capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert out.returncode == 0, out.stderr[-3000:]
    got = json.loads(out.stdout)
    assert got["messages"] == 50 and got["points_per_message"] == 500 and got["same_lines"] is True, got
    assert got["compiled_us_per_message"] > 0 and got["python_us_per_message"] > 0  # times reported, never judged
