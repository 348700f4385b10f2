"""`python -m bench.dsp_rtf` as docs/benchmarks.md shows it (a short scene): it reports the wall-clock and the CPU
real-time factors and, with --stages, the CPU time of each part of the pipeline. Never a timed test: the figures
are only checked to exist and to be consistent with each other."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_dsp_rtf_reports_cpu_factor_and_stages():
    out = subprocess.run([sys.executable, "-m", "bench.dsp_rtf", "--json", "--repeat", "1", "--duration", "20",
                          "--stages", "--cpu", "-1"], capture_output=True, text=True, cwd=ROOT, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    r = json.loads(out.stdout)
    assert r["audio_s"] == 20.0 and r["events"] >= 1
    assert r["realtime_factor"] > 0 and r["cpu_realtime_factor"] > 0 and len(r["load_avg"]) == 3
    st = r["stages_cpu_ms"]
    for part in ("meter", "tonal", "suppressor", "seconds", "detector", "evidence", "features", "lcpeak", "spectrum",
                 "sign"):
        assert st[part] >= 0, part
    assert st["suppressor"] <= st["tonal"] and st["features"] + st["lcpeak"] + st["spectrum"] <= st["evidence"]
    assert st["meter"] + st["tonal"] + st["evidence"] <= st["total"]
