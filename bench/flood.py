"""Junk flood: do acks still come back quickly while the hub is flooded with malformed and forged messages?

    python -m bench.flood --rate 5000 --alerts 5 --json
      -> {"idle_p50_ms", "flood_p50_ms", "ratio_p50", "flood_rate_achieved", "hub_cpu_pct_flood", ...}

Real Mosquitto, a `dozor hub run` process and a `dozor sim city` process (``--gateways`` x 4 sirens). First
``--alerts`` alerts one after another with the link idle: per-siren confirm times (operator call -> "sounding"
ack, as the hub records them). Then a flooder process publishes ``--rate`` junk messages per second (QoS 0, a mix
of bad JSON, wrong schema, forged gateway ids that do not match the topic, oversize payloads) on the gateway
channels the hub listens to, and the same alerts run again. Goal: flood p50 within 2x of idle.
"""

from __future__ import annotations

import argparse
import json
import math
import multiprocessing as mp
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench.alert_latency import _done, _healthy, pct, wait_for
from bench.gateway_footprint import proc_cpu_s
from dozor.client import HubClient
from hub.identity import Role, UserStore
from simulators.brokers import Mosquitto, free_port
from simulators.city import CityPlan
from simulators.procs import stop_processes

DOZOR = str(Path(sys.executable).with_name("dozor"))
JUNK = [b"{not json", b'{"v":1}', b'{"v":1,"gateway":"forged","session":1,"seq":1,"ts":1,"uptime_s":1}',
        b"\xff\xfe\x00garbage", b'{"v":1,"gateway":"gw-9999","cmd":"x","stage":"sounding","ts":1}', b"x" * 70000]


def flooder(port: int, rate: float, seconds: float, sent: mp.Value) -> None:
    import paho.mqtt.client as mqtt

    c = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="flooder", protocol=mqtt.MQTTv311)
    c.max_queued_messages_set(0)
    c.connect("127.0.0.1", port)
    c.loop_start()
    channels = ("ack", "heartbeat", "state", "telemetry", "event")
    t0 = time.monotonic()
    n = 0
    while (now := time.monotonic()) - t0 < seconds:
        due = int((now - t0) * rate)
        while n < due:
            c.publish(f"dozor/v1/gw/gw-{n % 50:04d}/{channels[n % len(channels)]}", JUNK[n % len(JUNK)], qos=0)
            n += 1
        time.sleep(0.005)
    sent.value = n
    c.loop_stop()
    c.disconnect()


def alerts(client: HubClient, zones: list[str], n: int) -> list[float]:
    ms: list[float] = []
    for _ in range(n):
        alert = client.create_alert(zones, "air-raid", "exercise", duration_s=30)
        wait_for(lambda a=alert: _done(client, a.id), 60, "every siren to answer")
        ms += [d.confirm_ms for d in client.alert(alert.id).devices if d.state == "sounding" and d.confirm_ms]
        client.stop(alert.id)
        wait_for(lambda a=alert: _done(client, a.id), 60, "every siren to stop")
        time.sleep(0.5)
    return ms


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rate", type=float, default=5000)
    ap.add_argument("--alerts", type=int, default=5)
    ap.add_argument("--gateways", type=int, default=20)
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    plan = CityPlan(args.gateways, 4, zones=max(1, args.gateways // 5))
    root = Path(tempfile.mkdtemp(prefix="dozor-bench-flood-"))
    (root / "zones.json").write_text(json.dumps(plan.zones_config()))
    zones = [z["id"] for z in plan.zones_config()]
    port = free_port()
    procs: list[subprocess.Popen] = []
    with Mosquitto() as broker:
        (root / "hub.toml").write_text(f'[hub]\nstate_dir = "hub"\napi_port = {port}\nzones = "zones.json"\n'
                                       f'[mqtt]\nurl = "{broker.url}"\n')
        store = UserStore.in_state_dir(root / "hub")
        _, token = store.add("bench", Role.operator)
        store.close()
        try:
            # the hub's key first, then the city (it enrolls each gateway's identity in the hub's state), then the hub
            subprocess.run([DOZOR, "hub", "pubkey", "--config", str(root / "hub.toml")], capture_output=True, check=True)
            wl = open(root / "city.log", "wb")  # noqa: SIM115
            procs.append(subprocess.Popen(
                [DOZOR, "sim", "city", "--gateways", str(args.gateways), "--sirens-per-gateway", "4",
                 "--broker", broker.url, "--hub-config", str(root / "hub.toml"), "--spinup-s", "0",
                 "--state-dir", str(root / "city")], stdout=wl, stderr=wl))
            wait_for(lambda: len(list((root / "city").glob("*/identity-key"))) == args.gateways, 120, "the city")
            time.sleep(1)
            log = open(root / "hub.log", "wb")  # noqa: SIM115
            procs.append(hub := subprocess.Popen([DOZOR, "hub", "run", "--config", str(root / "hub.toml")],
                                                 stdout=log, stderr=log))
            client = HubClient(f"http://127.0.0.1:{port}", token, timeout=30)
            wait_for(lambda: _healthy(client), 30, "the hub API")
            wait_for(lambda: sum(g.state == "online" for g in client.gateways()) == args.gateways, 180,
                     "every gateway online")
            time.sleep(2)
            idle = alerts(client, zones, args.alerts)
            sent = mp.Value("l", 0)
            seconds = 15.0 + 4 * args.alerts
            flood = mp.Process(target=flooder, args=(broker.port, args.rate, seconds, sent))
            flood.start()
            time.sleep(3)  # the flood is under way
            c0, t0 = proc_cpu_s(hub.pid), time.monotonic()
            flooded = alerts(client, zones, args.alerts)
            cpu = 100 * (proc_cpu_s(hub.pid) - c0) / (time.monotonic() - t0)
            flood.join()
            health = client.health()
        finally:
            stop_processes(procs)
    result = {"idle_p50_ms": round(pct(idle, 0.5), 1), "idle_p99_ms": round(pct(idle, 0.99), 1),
              "flood_p50_ms": round(pct(flooded, 0.5), 1), "flood_p99_ms": round(pct(flooded, 0.99), 1),
              "ratio_p50": round(pct(flooded, 0.5) / pct(idle, 0.5), 2), "acks_idle": len(idle),
              "acks_flood": len(flooded), "flood_rate_target": args.rate,
              "flood_rate_achieved": round(sent.value / seconds), "hub_cpu_pct_flood": round(cpu, 1),
              "hub_alive": bool(health), "sirens": args.gateways * 4, "cpus": os.cpu_count()}
    print(json.dumps(result) if args.json else json.dumps(result, indent=2))
    sys.exit(0 if not math.isnan(result["ratio_p50"]) else 1)


if __name__ == "__main__":
    main()
