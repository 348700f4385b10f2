"""Alert latency at city scale: time from the call that sends the alert to each siren's "sounding" ack.

    python -m bench.alert_latency --gateways 250 --sirens-per-gateway 4 --json
    python -m bench.alert_latency --gateways 250 --one-person --json     # an exercise, sent by its start call

By default the alert is an Actual air raid under the two-person rule: an operator requests it (nothing is sent)
and a supervisor confirms it; latency runs from the *confirm* call, which is when sirens may start. With
``--one-person`` it is an exercise sent by the start call itself, as before the two-person rule.

Real Mosquitto, a `dozor hub run` process, and the city split over `--workers` `dozor sim city` processes
(each gateway has its own MQTT connection and its own Modbus RTU bus on a pty). Siren spin-up is 0, so the
figure is the system's own latency. Per-device times are the hub's receive time of each "sounding" ack minus
the alert's creation, as recorded by the hub. Prints {"total", "confirmed", "p50_ms", "p99_ms", "max_ms"}.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from dozor.client import HubClient
from hub.identity import Role, UserStore
from simulators.brokers import Mosquitto, free_port
from simulators.city import CityPlan
from simulators.procs import stop_processes

DOZOR = str(Path(sys.executable).with_name("dozor"))


def pct(values: list[float], q: float) -> float:
    s = sorted(values)
    return s[min(len(s) - 1, max(0, math.ceil(q * len(s)) - 1))]


def wait_for(predicate, timeout: float, what: str):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.2)
    raise SystemExit(f"timed out waiting for {what}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--gateways", type=int, default=250)
    ap.add_argument("--sirens-per-gateway", type=int, default=4)
    ap.add_argument("--workers", type=int, default=2, help="city processes")
    ap.add_argument("--zones", type=int, default=10)
    ap.add_argument("--one-person", action="store_true", help="an exercise sent by its start call (no confirm)")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()

    plan = CityPlan(args.gateways, args.sirens_per_gateway, zones=args.zones)
    root = Path(tempfile.mkdtemp(prefix="dozor-bench-alert-"))
    (root / "zones.json").write_text(json.dumps(plan.zones_config()))
    port = free_port()
    procs: list[subprocess.Popen] = []
    with Mosquitto() as broker:
        (root / "hub.toml").write_text(
            f'[hub]\nstate_dir = "hub"\napi_port = {port}\nzones = "zones.json"\nconfirm_deadline_s = 5\n'
            f'[mqtt]\nurl = "{broker.url}"\n')
        store = UserStore.in_state_dir(root / "hub")
        _, token = store.add("bench", Role.operator)
        _, sup_token = store.add("bench-supervisor", Role.supervisor)
        store.close()
        log = open(root / "hub.log", "wb")  # noqa: SIM115
        procs.append(subprocess.Popen([DOZOR, "hub", "run", "--config", str(root / "hub.toml")],
                                      stdout=log, stderr=log))
        try:
            client = HubClient(f"http://127.0.0.1:{port}", token, timeout=30)
            wait_for(lambda: _healthy(client), 30, "the hub API")
            per = math.ceil(args.gateways / args.workers)
            for w in range(args.workers):
                n = min(per, args.gateways - w * per)
                if n <= 0:
                    break
                wl = open(root / f"city-{w}.log", "wb")  # noqa: SIM115
                procs.append(subprocess.Popen(
                    [DOZOR, "sim", "city", "--gateways", str(n), "--first", str(1 + w * per),
                     "--sirens-per-gateway", str(args.sirens_per_gateway), "--broker", broker.url,
                     "--hub-state", str(root / "hub"), "--spinup-s", "0", "--heartbeat-s", "10",
                     "--state-dir", str(root / f"city-{w}")], stdout=wl, stderr=wl))
            t_boot = time.monotonic()
            wait_for(lambda: sum(g.state == "online" for g in client.gateways()) == args.gateways, 180,
                     "every gateway online")
            boot_s = time.monotonic() - t_boot
            time.sleep(2)  # let births, subscriptions and first heartbeats settle
            zones = [z["id"] for z in plan.zones_config()]
            if args.one_person:
                alert = client.create_alert(zones, "air-raid", "exercise", duration_s=60)
            else:  # the operator's request sends nothing; the supervisor's confirm is when sirens may start
                request = client.create_alert(zones, "air-raid", "actual", duration_s=60)
                assert request.status == "pending_confirmation", request.status
                supervisor = HubClient(f"http://127.0.0.1:{port}", sup_token, timeout=30)
                alert = supervisor.confirm(request.id)
            wait_for(lambda: _done(client, alert.id), 60, "every siren to answer")
            detail = client.alert(alert.id)  # the per-device list once, after the measurement
            ms = [d.confirm_ms for d in detail.devices if d.state == "sounding" and d.confirm_ms is not None]
            result = {
                "total": len(detail.devices), "confirmed": len(ms),
                "p50_ms": round(pct(ms, 0.5), 1) if ms else None,
                "p99_ms": round(pct(ms, 0.99), 1) if ms else None,
                "max_ms": round(max(ms), 1) if ms else None,
                "measured_from": "start" if args.one_person else "confirm",
                "gateways": args.gateways, "workers": args.workers, "fleet_boot_s": round(boot_s, 1),
                "hub_dispatch_ms": detail.dispatch_ms,  # API call -> last command written to the broker
                "not_confirmed": [f"{d.gateway}/{d.device}: {d.state} {d.reason or ''}".strip()
                                  for d in detail.devices if d.state != "sounding"][:20],
            }
            client.stop(alert.id)
        finally:
            stop_processes(procs)
    print(json.dumps(result) if args.json else json.dumps(result, indent=2))


def _healthy(client: HubClient) -> bool:
    try:
        client.health()
        return True
    except Exception:  # noqa: BLE001 - not up yet
        return False


def _done(client: HubClient, alert_id: str) -> bool:
    """Poll the cheap summary (no per-device list) so the bench does not load the hub it measures."""
    return client.alert(alert_id, devices=False).summary.pending == 0


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    main()
