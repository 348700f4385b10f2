"""Reconnect after a broker outage: how long after the broker is back does a `dozor gateway run` process have
its MQTT session up again (its birth published)? Every run, not on average.

    python -m bench.reconnect --runs 5 --outage 10 --json
      -> {"after_return_s": [...], "after_return_restarted_s": [...], "max_s", ...}

Real Mosquitto, a real gateway process (no devices) with the example's reconnect settings (``reconnect_max_s``
1.5). For each run the broker is stopped for ``--outage`` seconds and started again; the time is from the moment
the broker's port accepts connections (``wait_port``) to the gateway's "uplink up" log line. In the second series
the gateway itself is killed (SIGKILL) and started again during the outage, as in a power cut of the cabinet.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from simulators.brokers import Mosquitto

DOZOR = str(Path(sys.executable).with_name("dozor"))
KEY = '"Vkdap1RjR0wChd9d" = "A6EHv_POEL4dcN0Y50vAmWfk1jCbpQ1fHdyGZBJVMbg"'


def ups(log: Path) -> list[float]:
    """Epoch times of the gateway's "uplink up" lines (its log timestamps: local time, milliseconds)."""
    out = []
    for line in log.read_text(errors="replace").splitlines():
        if "uplink up:" in line:
            stamp = dt.datetime.strptime(line[:23], "%Y-%m-%d %H:%M:%S,%f")
            out.append(stamp.timestamp())
    return out


def start_gateway(cfg: Path, log: Path) -> subprocess.Popen:
    fh = open(log, "ab")  # noqa: SIM115 - owned by the child
    return subprocess.Popen([DOZOR, "gateway", "run", "--config", str(cfg)], stdout=fh, stderr=fh)


def wait_for(pred, limit_s: float = 120) -> None:
    deadline = time.monotonic() + limit_s
    while not pred():
        if time.monotonic() > deadline:
            raise RuntimeError("timed out")
        time.sleep(0.02)


def run(runs: int, outage: float) -> dict:
    root = Path(tempfile.mkdtemp(prefix="dozor-bench-reconnect-"))
    log = root / "gateway.log"
    result: dict[str, list[float]] = {"after_return_s": [], "after_return_restarted_s": []}
    with Mosquitto() as broker:
        cfg = root / "gateway.toml"
        cfg.write_text(f'[gateway]\nid = "gw-bench"\nstate_dir = "{root / "state"}"\nheartbeat_s = 5\n'
                       f'[mqtt]\nurl = "{broker.url}"\n[trust.hub_keys]\n{KEY}\n')
        gw = start_gateway(cfg, log)
        try:
            wait_for(lambda: len(ups(log)) >= 1)
            for series in ("after_return_s", "after_return_restarted_s"):
                for _ in range(runs):
                    before = len(ups(log))
                    broker.stop()
                    if series == "after_return_restarted_s":
                        time.sleep(min(2.0, outage / 2))
                        gw.kill()
                        gw.wait()
                        gw = start_gateway(cfg, log)
                        time.sleep(max(0.0, outage - min(2.0, outage / 2)))
                    else:
                        time.sleep(outage)
                    broker.start()  # returns once the port accepts connections
                    back = time.time()
                    wait_for(lambda n=before: len(ups(log)) > n)
                    result[series].append(round(ups(log)[-1] - back, 3))
        finally:
            gw.terminate()
            gw.wait()
    every = result["after_return_s"] + result["after_return_restarted_s"]
    return {**result, "max_s": max(every), "runs": runs, "outage_s": outage, "cpus": os.cpu_count()}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--outage", type=float, default=10.0)
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    result = run(args.runs, args.outage)
    print(json.dumps(result) if args.json else json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
