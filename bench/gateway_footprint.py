"""Gateway footprint: RSS and CPU of one `dozor gateway run` process serving 16 sensors at 1 Hz.

    python -m bench.gateway_footprint --devices 16 --seconds 60 --json

Real Mosquitto; the sensors are simulators on pty links speaking their real byte protocols (noise nodes
sending LEVELS frames every second, PMS5003 in active mode every second); the gateway runs as its own process
with health readings every 10 s, and a subscriber counts the telemetry that arrives. CPU is utime+stime of the
gateway process over the measured window (after a 10 s warm-up) divided by wall time; RSS is VmRSS at the end.
Latency is read -> broker -> subscriber: the subscriber's receive time minus the reading's timestamp (stamped by
the gateway driver when it read the frame; same machine clock), over the measured window.
Prints {"rss_mb", "cpu_pct", "readings_received", "devices", "seconds", "latency_ms_p50", "latency_ms_p95"}, and
"cpu_user_pct" / "cpu_sys_pct" (the same CPU split into user and kernel time: fsyncs are kernel time) and "load1"
(the machine's load average at the end, to tell a loaded machine's figures apart) and "batches_received" (how many
MQTT messages carried those readings).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import tempfile
import time
from pathlib import Path

import paho.mqtt.client as mqtt

from contract import topics
from contract.codecs import telemetry as telemetry_wire
from simulators.brokers import Mosquitto
from simulators.pty_link import PtyLink
from simulators.sensors import SimNoiseNode, SimPms5003

DOZOR = str(Path(sys.executable).with_name("dozor"))
HZ = os.sysconf("SC_CLK_TCK")


def proc_cpu_s(pid: int) -> float:
    return sum(proc_cpu_split_s(pid))


def proc_cpu_split_s(pid: int) -> tuple[float, float]:
    """(user, system) CPU seconds of a process."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return int(fields[11]) / HZ, int(fields[12]) / HZ


def proc_rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def gateway_toml(state: Path, broker: str, ports: list[tuple[str, str]]) -> str:
    out = [f'[gateway]\nid = "gw-bench"\nstate_dir = "{state}"\nheartbeat_s = 5\n',
           f'[mqtt]\nurl = "{broker}"\n',
           # the bench key is not used: no commands are sent here, but the trust section is mandatory
           '[trust.hub_keys]\n"Vkdap1RjR0wChd9d" = "A6EHv_POEL4dcN0Y50vAmWfk1jCbpQ1fHdyGZBJVMbg"\n',
           "[telemetry]\nhealth_interval_s = 10\n"]
    for i, (kind, port) in enumerate(ports):
        baud = 115200 if kind == "noise_node" else 9600
        out.append(f'[[bus]]\nname = "uart-{i}"\nport = "{port}"\nkind = "uart"\nbaudrate = {baud}\n')
        extra = 'mode = "active"\ninterval_s = 1\nwarmup_s = 0\n' if kind == "pms5003" else ""
        out.append(f'[[device]]\nid = "{kind}-{i}"\nkind = "{kind}"\nbus = "uart-{i}"\n{extra}')
    return "".join(out)


async def run(devices: int, seconds: float) -> dict:
    root = Path(tempfile.mkdtemp(prefix="dozor-bench-footprint-"))
    received = {"readings": 0, "batches": 0}
    latencies: list[float] = []
    measuring = {"on": False}

    def on_message(_c, _u, msg) -> None:
        now = time.time()
        batch = telemetry_wire.decode_batch(msg.payload)  # wire version 1 or 2
        received["readings"] += len(batch.readings)
        received["batches"] += 1
        if measuring["on"]:
            latencies.extend(now - r.ts for r in batch.readings if r.kind != "health")

    with Mosquitto() as broker:
        links = [await PtyLink().start() for _ in range(devices)]
        kinds = ["noise_node" if i % 8 < 5 else "pms5003" for i in range(devices)]
        sims = [SimNoiseNode(link.b, period_s=1.0) if k == "noise_node" else SimPms5003(link.b, period_s=1.0)
                for k, link in zip(kinds, links, strict=True)]
        for s in sims:
            await s.__aenter__()
        (root / "gateway.toml").write_text(gateway_toml(root / "state", broker.url,
                                                         [(k, link.a) for k, link in zip(kinds, links, strict=True)]))
        sub = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv311)
        sub.on_message = on_message
        sub.connect("127.0.0.1", broker.port)
        sub.subscribe(topics.gw("gw-bench", "telemetry"), qos=1)
        sub.loop_start()
        log = open(root / "gateway.log", "wb")  # noqa: SIM115, ASYNC230 - once, before the measurement
        gw = await asyncio.create_subprocess_exec(DOZOR, "gateway", "run", "--config", str(root / "gateway.toml"),
                                                  stdout=log, stderr=log)
        try:
            await asyncio.sleep(10)  # warm-up: imports, ports, first readings
            (u0, s0), t0, r0, b0 = proc_cpu_split_s(gw.pid), time.monotonic(), received["readings"], received["batches"]
            measuring["on"] = True
            await asyncio.sleep(seconds)
            measuring["on"] = False
            (u1, s1), t1, r1, b1 = proc_cpu_split_s(gw.pid), time.monotonic(), received["readings"], received["batches"]
            load1 = os.getloadavg()[0]
            rss = proc_rss_mb(gw.pid)
        finally:
            gw.terminate()
            await gw.wait()
            sub.loop_stop()
            for s in sims:
                await s.__aexit__(None, None, None)
            for link in links:
                await link.close()
    lat = sorted(latencies) or [float("nan")]
    wall = t1 - t0
    return {"rss_mb": round(rss, 1), "cpu_pct": round(100 * (u1 - u0 + s1 - s0) / wall, 2),
            "cpu_user_pct": round(100 * (u1 - u0) / wall, 2), "cpu_sys_pct": round(100 * (s1 - s0) / wall, 2),
            "load1": round(load1, 2),
            "readings_received": r1 - r0, "batches_received": b1 - b0, "devices": devices, "seconds": seconds,
            "latency_ms_p50": round(1000 * lat[len(lat) // 2], 1),
            "latency_ms_p95": round(1000 * lat[min(len(lat) - 1, int(len(lat) * 0.95))], 1)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--devices", type=int, default=16)
    ap.add_argument("--seconds", type=float, default=60)
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    result = asyncio.run(run(args.devices, args.seconds))
    print(json.dumps(result) if args.json else json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
