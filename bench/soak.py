"""Soak: 2x the nominal city for a configurable time, with RSS and open file descriptors over time for the hub
and a gateway.

    python -m bench.soak --duration-s 3600 --json          # the 1 h run
    python -m bench.soak --duration-s 600 --sample-s 30    # a short one

Real Mosquitto, real VictoriaMetrics, a `dozor hub run` process with a store, ``--workers`` `dozor sim city`
processes (``--gateways`` x ``--sirens-per-gateway`` sirens; default 250 x 4 = 1,000), a telemetry publisher
process (``--devices`` devices at 1 Hz in TelemetryBatch messages of 10 devices each; default 500), one real
`dozor gateway run` process with two simulated noise nodes on ptys (the gateway whose memory is watched), and
an alert over every zone every ``--alert-every-s`` seconds (stopped 30 s later). Every ``--sample-s`` seconds:
VmRSS and the number of open descriptors of the hub and that gateway, and the hub's ``dozor_hub_state_items``
(how many alerts, command ids, tail readings, ... it holds). ``rss_growth_pct`` compares the last sample with the
first sample after ``--warmup-s``; ``--memprobe FILE`` runs the hub with its heap probe (hub/memprobe.py).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing as mp
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench.gateway_footprint import proc_rss_mb
from dozor.client import HubClient, HubClientError
from hub.identity import Role, UserStore
from simulators.brokers import Mosquitto, free_port, wait_port
from simulators.city import CityPlan
from simulators.procs import stop_processes
from simulators.pty_link import PtyLink
from simulators.sensors import SimNoiseNode
from simulators.tsdb import VictoriaMetrics

DOZOR = str(Path(sys.executable).with_name("dozor"))


def launch(argv: list[str], log: Path, env: dict[str, str] | None = None) -> subprocess.Popen:
    """Start a child with its output in ``log`` (before the measurement; the bench's loop only samples)."""
    with open(log, "wb") as fh:
        return subprocess.Popen(argv, stdout=fh, stderr=subprocess.STDOUT,
                                env=None if env is None else {**os.environ, **env})


def enroll_gateway(gw_toml: Path, hub_state: Path) -> None:
    """As an operator would: the gateway's identity key (created now) enrolled in the hub's trust store."""
    from hub.gwtrust import enroll

    out = subprocess.run([DOZOR, "gateway", "identity", str(gw_toml), "--json"], capture_output=True, check=True)
    enroll(hub_state, "soak-gw", json.loads(out.stdout)["public_key"], actor="bench", reason="soak")


def wait_enrolled(root: Path, n: int, limit_s: float = 300) -> None:
    """The city processes enroll each gateway's identity before starting it: wait for all of them."""
    deadline = time.monotonic() + limit_s
    while len(list(root.glob("city-*/*/identity-key"))) < n:
        if time.monotonic() > deadline:
            raise RuntimeError("the city did not start")
        time.sleep(0.5)


def hub_key_line(hub_state: Path) -> str:
    from dozor.commands.sim_city import hub_keys_from

    (kid, pub), = hub_keys_from(hub_state, []).items()
    return f'"{kid}" = "{pub}"\n'


def fds(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/fd"))


def state_items(api: int, token: str) -> dict[str, int]:
    """The hub's ``dozor_hub_state_items{what}`` (its bounded in-memory structures) from /metrics."""
    import httpx

    try:
        text = httpx.get(f"http://127.0.0.1:{api}/metrics", headers={"Authorization": f"Bearer {token}"},
                         timeout=30).text
    except httpx.HTTPError:
        return {}
    out = {}
    for line in text.splitlines():
        if line.startswith("dozor_hub_state_items{"):
            what = line.split('what="', 1)[1].split('"', 1)[0]
            out[what] = int(float(line.rsplit(" ", 1)[1]))
    return out


def append_line(path: Path, text: str) -> None:
    with open(path, "a") as fh:
        fh.write(text + "\n")


def telemetry_publisher(port: int, devices: int, seconds: float) -> None:
    import paho.mqtt.client as mqtt

    from contract import topics
    from contract.models import Reading, TelemetryBatch

    c = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="soak-telemetry", protocol=mqtt.MQTTv311)
    c.max_queued_messages_set(0)
    c.connect("127.0.0.1", port)
    c.loop_start()
    groups = max(1, devices // 10)
    t0 = time.time()
    seq = 0
    while time.time() - t0 < seconds:
        now = time.time()
        for g in range(groups):
            batch = TelemetryBatch(gateway=f"soak-tel-{g:03d}", session=int(t0), seq=seq, historical=False,
                                   readings=tuple(Reading(device=f"pm-{d}", kind="sds011", ts=now,
                                                          metrics={"pm2_5": 10.0 + d, "pm10": 20.0 + d})
                                                  for d in range(10)))
            c.publish(topics.gw(f"soak-tel-{g:03d}", "telemetry"), batch.to_bytes(), qos=1)
        seq += 1
        time.sleep(max(0.0, 1.0 - (time.time() - now)))
    c.loop_stop()
    c.disconnect()


async def run(args) -> dict:
    plan = CityPlan(args.gateways, args.sirens_per_gateway, zones=max(1, args.gateways // 25))
    root = Path(tempfile.mkdtemp(prefix="dozor-bench-soak-"))
    (root / "zones.json").write_text(json.dumps(plan.zones_config()))
    zones = [z["id"] for z in plan.zones_config()]
    api = free_port()
    procs: list[subprocess.Popen] = []
    samples: list[dict] = []
    alerts = 0
    refused: list[str] = []
    died: str | None = None
    with Mosquitto() as broker, VictoriaMetrics() as vm:
        (root / "hub.toml").write_text(
            f'[hub]\nstate_dir = "hub"\napi_port = {api}\nzones = "zones.json"\nconfirm_deadline_s = 10\n'
            f'[mqtt]\nurl = "{broker.url}"\n[store]\nkind = "v2"\nurl = "{vm.url}"\n')
        store = UserStore.in_state_dir(root / "hub")
        _, token = store.add("bench", Role.operator)
        store.close()
        await asyncio.to_thread(subprocess.run, [DOZOR, "hub", "pubkey", "--config", str(root / "hub.toml")],
                                capture_output=True, check=True)  # the hub's key, for the gateways' configs
        links = [await PtyLink().start() for _ in range(2)]
        nodes = [SimNoiseNode(link.b, period_s=1.0) for link in links]
        for n in nodes:
            await n.__aenter__()
        pub = None
        try:
            per = -(-args.gateways // args.workers)
            for w in range(args.workers):
                n = min(per, args.gateways - w * per)
                procs.append(launch(
                    [DOZOR, "sim", "city", "--gateways", str(n), "--first", str(1 + w * per),
                     "--sirens-per-gateway", str(args.sirens_per_gateway), "--broker", broker.url,
                     "--hub-config", str(root / "hub.toml"), "--spinup-s", "0", "--heartbeat-s", "10",
                     "--state-dir", str(root / f"city-{w}")], root / f"city-{w}.log"))
            gw_toml = root / "gateway.toml"
            gw_toml.write_text(
                f'[gateway]\nid = "soak-gw"\nstate_dir = "{root / "gw"}"\nheartbeat_s = 5\n[mqtt]\nurl = "{broker.url}"\n'
                "[trust.hub_keys]\n" + hub_key_line(root / "hub") + "".join(
                    f'[[bus]]\nname = "uart-{i}"\nport = "{link.a}"\nkind = "uart"\nbaudrate = 115200\n'
                    f'[[device]]\nid = "noise-{i}"\nkind = "noise_node"\nbus = "uart-{i}"\n'
                    for i, link in enumerate(links)))
            enroll_gateway(gw_toml, root / "hub")
            await asyncio.to_thread(wait_enrolled, root, args.gateways)
            probe = {"DOZOR_HUB_MEMPROBE": args.memprobe,
                     "DOZOR_HUB_MEMPROBE_S": str(args.sample_s)} if args.memprobe else None
            hub = launch([DOZOR, "hub", "run", "--config", str(root / "hub.toml"), "--log-level", "WARNING"],
                         root / "hub.log", probe)
            procs.append(hub)
            await asyncio.to_thread(wait_port, api, 60)
            client = HubClient(f"http://127.0.0.1:{api}", token, timeout=60)
            gw = launch([DOZOR, "gateway", "run", "--config", str(gw_toml), "--log-level", "WARNING"],
                        root / "gateway.log")
            procs.append(gw)
            pub = mp.Process(target=telemetry_publisher, args=(broker.port, args.devices, args.duration_s + 60))
            pub.start()
            t0 = time.monotonic()
            next_alert = t0 + 30
            stop_at: tuple[float, str] | None = None
            next_sample = t0
            while (now := time.monotonic()) - t0 < args.duration_s:
                if now >= next_sample:
                    try:
                        sample = {"t_s": round(now - t0), "hub_rss_mb": round(proc_rss_mb(hub.pid), 1),
                                  "hub_fds": fds(hub.pid), "gw_rss_mb": round(proc_rss_mb(gw.pid), 1),
                                  "gw_fds": fds(gw.pid), "load_avg_1m": round(os.getloadavg()[0], 2),
                                  "hub_state": await asyncio.to_thread(state_items, api, token)}
                    except OSError as exc:  # /proc/PID gone: a process under test died; that ends the run
                        died = f"t={round(now - t0)} s: {exc}"
                        break
                    samples.append(sample)
                    await asyncio.to_thread(append_line, root / "samples.jsonl", json.dumps(sample))  # survives a crash
                    next_sample += args.sample_s
                if now >= next_alert:
                    next_alert += args.alert_every_s
                    try:
                        alert = await asyncio.to_thread(client.create_alert, zones, "air-raid", "exercise",
                                                        duration_s=60)
                        alerts += 1
                        stop_at = (now + 30, alert.id)
                    except HubClientError as exc:  # counted and reported; a long run goes on
                        refused.append(f"start: {exc}"[:200])
                if stop_at is not None and now >= stop_at[0]:
                    try:
                        await asyncio.to_thread(client.stop, stop_at[1])
                    except HubClientError as exc:  # e.g. 409: it expired already (the hub was slow to answer)
                        refused.append(f"stop: {exc}"[:200])
                    stop_at = None
                await asyncio.sleep(1)
            try:
                online = sum(g.state == "online" for g in await asyncio.to_thread(client.gateways))
            except HubClientError as exc:
                online, died = None, died or f"at the end: {exc}"
        finally:
            if pub is not None:
                pub.terminate()
            stop_processes(procs, grace_s=20)
            for n in nodes:
                await n.__aexit__(None, None, None)
            for link in links:
                await link.close()

    def growth(key: str) -> float | None:
        after = [s for s in samples if s["t_s"] >= args.warmup_s]
        if len(after) < 2:
            return None
        return round(100 * (after[-1][key] - after[0][key]) / after[0][key], 2)

    after = [s for s in samples if s["t_s"] >= args.warmup_s] or samples[-1:]

    def span(key: str) -> list:
        """[at the end of the warm-up, at the end, the highest after the warm-up]"""
        return [after[0][key], after[-1][key], max(s[key] for s in after)] if after else []

    return {"duration_s": args.duration_s, "warmup_s": args.warmup_s, "alerts": alerts, "alert_calls_refused": refused, "died": died,
            "sirens": args.gateways * args.sirens_per_gateway, "telemetry_devices": args.devices,
            "gateways_online_at_end": online, "hub_rss_growth_pct": growth("hub_rss_mb"),
            "gw_rss_growth_pct": growth("gw_rss_mb"), "hub_fds_first_last": [samples[0]["hub_fds"], samples[-1]["hub_fds"]],
            "gw_fds_first_last": [samples[0]["gw_fds"], samples[-1]["gw_fds"]],
            "hub_rss_mb_warm_end_max": span("hub_rss_mb"), "gw_rss_mb_warm_end_max": span("gw_rss_mb"),
            "hub_fds_warm_end_max": span("hub_fds"), "gw_fds_warm_end_max": span("gw_fds"),
            "load_avg_end": [round(x, 2) for x in os.getloadavg()], "samples": samples,
            "cpus": os.cpu_count(), "workdir": str(root)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--duration-s", type=float, default=3600)
    ap.add_argument("--warmup-s", type=float, default=120)
    ap.add_argument("--sample-s", type=float, default=30)
    ap.add_argument("--gateways", type=int, default=250)
    ap.add_argument("--sirens-per-gateway", type=int, default=4)
    ap.add_argument("--devices", type=int, default=500)
    ap.add_argument("--alert-every-s", type=float, default=120)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--memprobe", metavar="FILE", help="run the hub with its heap probe (hub/memprobe.py) "
                    "writing one JSON line per --sample-s to FILE (costs hub CPU: for finding a leak)")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    if args.memprobe:
        args.memprobe = os.path.abspath(args.memprobe)
    result = asyncio.run(run(args))
    print(json.dumps(result) if args.json else json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
