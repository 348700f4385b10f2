"""Hub dispatch at city scale (issue 14 §5), without a simulated city: how long one `dozor hub run` process takes
from an alert's API call to its last signed command on the wire, for N gateways x M sirens.

    python -m bench.dispatch --gateways 2000 --sirens-per-gateway 5 --backend postgres --json
    python -m bench.dispatch --gateways 2000 --sirens-per-gateway 5 --backend sqlite --json
    python -m bench.dispatch --gateways 5 --sirens-per-gateway 2 --alerts 1 --backend postgres --json   # the test's

bench.city runs every gateway as a real gateway (its own MQTT connection, its sirens on a pty): at 2,000
gateways that is eight simulator processes competing with the hub for this machine's two cores, so it cannot
tell the hub's cost from the machine's. Here the fleet is one MQTT client: every gateway is enrolled in the
hub's trust store with its own identity key (`dozor gateways enroll` as a library call) and announced by a birth
sealed with that key (contract.signed, as a gateway seals it: the hub verifies each one), retained, with its
sirens. Nobody answers the commands (no acks), so the hub's retries are off the clock (confirm deadline 60 s).

A real Mosquitto and, for ``postgres``, a real PostgreSQL (simulators.postgres; the hub is the leader of its
lease). One plain MQTT subscriber counts the commands (at QoS 0 since 2026-12-05: no PUBACK per command). Each of ``--alerts`` exercise alerts over every zone is
timed from just before the API call to the arrival of the last command (``wire_ms``, the subscriber's clock:
includes the broker and the subscriber's own reading), and the hub reports its own ``dispatch_ms`` (the request ->
the last command written to the broker socket). The alert is then stopped and its stop commands are counted too.
After the clock: every command's signature, audience and targets are checked (``bad_commands``), and every
siren must have been targeted exactly once per alert (``sirens_targeted``).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import subprocess
import sys
import time
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from bench.alert_latency import pct
from bench.broker_failover import start, wait_for
from bench.failover import hub_toml, prepare, run_in_tmpdir
from contract import topics
from contract.command import b64url, key_id, public_key_from_b64, verify_command
from contract.models import DeviceInfo, DeviceKind, GatewayState
from contract.signed import seal
from dozor.client import HubClient
from hub.config import load_config
from hub.gwtrust import TrustStore
from runtime.mqtt import MqttParams, MqttSession
from simulators.brokers import Mosquitto, free_port
from simulators.city import CityPlan
from simulators.postgres import Postgres
from simulators.procs import stop_processes

DOZOR = str(Path(sys.executable).with_name("dozor"))
HEARTBEAT_S = 3600.0  # the births' heartbeat period: no gateway times out during the run


class Commands:
    """Every command the broker delivered, with its arrival time (the subscriber's monotonic clock)."""

    def __init__(self) -> None:
        self.got: list[tuple[str, bytes]] = []
        self.last = 0.0
        self.want = 0
        self.done = asyncio.Event()

    def __call__(self, topic: str, payload: bytes, qos: int, mid: int, retain: bool) -> None:
        if retain or not topic.endswith("/cmd"):
            return
        self.got.append((topic, payload))
        self.last = time.monotonic()
        if len(self.got) >= self.want:
            self.done.set()

    def expect(self, n: int) -> None:
        self.got, self.want, self.last = [], n, 0.0
        self.done = asyncio.Event()


def fleet(plan: CityPlan) -> dict[str, Ed25519PrivateKey]:
    return {gw: Ed25519PrivateKey.generate() for gw in plan.gateway_ids()}


def enroll_all(config: Path, keys: dict[str, Ed25519PrivateKey]) -> None:
    """Every gateway's identity key in the hub's trust store, as `dozor gateways enroll` writes it."""
    logging.getLogger("hub.gwtrust").setLevel(logging.ERROR)  # not one line per gateway
    store = TrustStore.in_backend(load_config(config).backend())
    try:
        for gw, key in keys.items():
            store.enroll(gw, b64url(key.public_key().public_bytes_raw()), actor="bench", reason="bench.dispatch")
    finally:
        store.close()


def birth(plan: CityPlan, i: int, key: Ed25519PrivateKey, session: int) -> bytes:
    gw = plan.gateway_id(i)
    devices = tuple(DeviceInfo(id=f"siren-{k + 1}", kind=DeviceKind.SIREN, bus="rs485-1", address=k + 1)
                    for k in range(plan.sirens_per_gateway))
    msg = GatewayState(gateway=gw, state="online", session=session, ts=time.time(), heartbeat_s=HEARTBEAT_S,
                       devices=devices, zone=plan.zone_of(i), ctr=1)
    return seal(msg.to_bytes(), key, key_id(key.public_key()))


def check(cmds: list[tuple[str, bytes]], hub_keys: dict, alert_id: str) -> tuple[int, int]:
    """(commands that fail verification or name another alert, sirens targeted) over one alert's phase."""
    bad, targeted = 0, set()
    for topic, payload in cmds:
        gw = topics.parse(topic).ident
        try:
            claims = verify_command(payload, keys=hub_keys, audience=gw, now=time.time())
        except Exception:  # noqa: BLE001 - counted: a command a gateway would refuse
            bad += 1
            continue
        if claims.alert != alert_id:
            bad += 1
        targeted.update((gw, d) for d in claims.targets)
    return bad, len(targeted)


def cpu_ms(pid: int, stat: str = "stat") -> float:
    """CPU time (user + system, all threads) the process has used so far, from /proc (10 ms ticks); with
    ``stat="task/<pid>/stat"`` its main thread's only (the hub's event loop)."""
    try:
        fields = Path(f"/proc/{pid}/{stat}").read_text().rsplit(")", 1)[1].split()
    except OSError:  # a child that has gone
        return 0.0
    return (int(fields[11]) + int(fields[12])) * 1000 / os.sysconf("SC_CLK_TCK")


def hub_cpu(pid: int) -> tuple[float, float, float]:
    """(the hub process, its event-loop thread, its child processes: the command signer) CPU ms so far."""
    try:
        kids = [int(k) for k in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
    except OSError:
        kids = []
    return cpu_ms(pid), cpu_ms(pid, f"task/{pid}/stat"), sum(cpu_ms(k) for k in kids)


async def timed(client: HubClient, cmds: Commands, n: int, call, limit_s: float, hub: int) -> tuple:
    """Run ``call`` (an API call) and wait for ``n`` commands; (its result, wire ms, the call's own ms, the hub's
    CPU ms from the call to the last command: (process, event loop, signer process))."""
    cmds.expect(n)
    cpu0, t0 = hub_cpu(hub), time.monotonic()
    out = await asyncio.to_thread(call)
    t_call = time.monotonic()
    try:
        await asyncio.wait_for(cmds.done.wait(), limit_s)
    except TimeoutError:
        raise SystemExit(f"only {len(cmds.got)} of {n} commands arrived within {limit_s} s") from None
    cpu = [round(b - a) for a, b in zip(cpu0, hub_cpu(hub), strict=True)]  # read a little after the last command
    return out, round((cmds.last - t0) * 1000, 1), round((t_call - t0) * 1000, 1), cpu


async def measure(args: argparse.Namespace, root: Path, plan: CityPlan, config: Path, port: int,
                  broker: Mosquitto, procs: list[subprocess.Popen]) -> dict:
    keys = fleet(plan)
    token = await asyncio.to_thread(prepare, config)
    await asyncio.to_thread(enroll_all, config, keys)
    procs.append(start([DOZOR, "hub", "run", "--config", str(config)], root / "hub.log"))
    client = HubClient(f"http://127.0.0.1:{port}", token, timeout=120)
    health = await wait_for(client.health, 60, "the hub")
    await wait_for(lambda: client.health().get("role") in (None, "leader"), 60, "the hub to lead")
    hub_keys = {health["kid"]: public_key_from_b64(health["public_key"])}
    cmds = Commands()
    t_boot = time.monotonic()
    async with MqttSession(MqttParams("127.0.0.1", broker.port, "bench-fleet"), on_message=cmds) as mqtt:
        # QoS 0: the counting client sends no PUBACK per command and the broker keeps no inflight state for it,
        # so the measurement takes less of the two cores the hub runs on (a command lost would end the run:
        # "only N of M commands arrived").
        await mqtt.subscribe([(topics.DEFAULT.sub_gateways(topics.GwChannel.CMD), 0)])
        session = int(time.time())
        for i, gw in enumerate(plan.gateway_ids()):
            await mqtt.publish(topics.gw(gw, topics.GwChannel.STATE), birth(plan, i, keys[gw], session), 1, True)
        await wait_for(lambda: sum(g.state == "online" for g in client.gateways()) == plan.gateways,
                       args.timeout, "every gateway online", every=0.5)
        boot_s = round(time.monotonic() - t_boot, 1)
        await asyncio.sleep(1.0)  # the births' fleet points and node records settle
        zones = [z["id"] for z in plan.zones_config()]
        wire, hub, call, cpu, stop_wire, bad, targeted, stops = [], [], [], [], [], 0, [], 0
        loop_cpu, signer_cpu = [], []
        pid = procs[-1].pid
        for _ in range(args.alerts):
            alert, w, c, u = await timed(client, cmds, plan.gateways, lambda: client.create_alert(
                zones, "air-raid", "exercise", duration_s=120), args.timeout, pid)
            activate = list(cmds.got)
            wire.append(w)
            call.append(c)
            cpu.append(u[0])
            loop_cpu.append(u[1])
            signer_cpu.append(u[2])
            detail = await wait_for(lambda a=alert: (d := client.alert(a.id, devices=False)).dispatch_ms is not None
                                    and d, args.timeout, "the hub's dispatch_ms")
            hub.append(detail.dispatch_ms)
            _, w, _, _ = await timed(client, cmds, plan.gateways, lambda a=alert: client.stop(a.id), args.timeout,
                                     pid)
            stop_wire.append(w)
            stops += len(cmds.got)
            b, t = check(activate, hub_keys, alert.id)
            bad, targeted = bad + b, targeted + [t]
            await asyncio.sleep(args.pause_s)  # the stop's own dispatch and bookkeeping end before the next alert
    return {"gateways": plan.gateways, "sirens": plan.sirens_total, "alerts": args.alerts, "fleet_boot_s": boot_s,
            "commands_per_alert": plan.gateways, "sirens_targeted": targeted, "bad_commands": bad,
            "stop_commands": stops,
            "wire_ms": wire, "wire_ms_p50": round(pct(wire, 0.5), 1), "wire_ms_max": max(wire),
            "dispatch_ms": hub, "dispatch_ms_p50": round(pct(hub, 0.5), 1), "dispatch_ms_max": max(hub),
            "hub_cpu_ms": cpu, "hub_loop_cpu_ms": loop_cpu, "signer_cpu_ms": signer_cpu, "api_call_ms": call,
            "stop_wire_ms": stop_wire}


async def run(args: argparse.Namespace, root: Path) -> dict:
    plan = CityPlan(args.gateways, args.sirens_per_gateway, zones=max(1, min(args.zones, args.gateways)))
    (root / "zones.json").write_text(json.dumps(plan.zones_config()))
    port = free_port()
    procs: list[subprocess.Popen] = []
    with Mosquitto() as broker:
        try:
            if args.backend == "postgres":
                with Postgres() as pg:
                    config = hub_toml(root, "hub", port, pg, pg.database(), broker.url, None)
                    _confirm_deadline(config)
                    out = await measure(args, root, plan, config, port, broker, procs)
                    stop_processes(procs)
            else:
                config = root / "hub.toml"
                config.write_text(f'[hub]\nstate_dir = "state-hub"\napi_port = {port}\nzones = "zones.json"\n'
                                  f'[mqtt]\nurl = "{broker.url}"\n')
                _confirm_deadline(config)
                out = await measure(args, root, plan, config, port, broker, procs)
        finally:
            stop_processes(procs)
    return {"backend": args.backend, **out, "dispatch_goal_ms": 250, "load1_end": round(os.getloadavg()[0], 2),
            "cpus": os.cpu_count()}


def _confirm_deadline(config: Path) -> None:
    """No retry inside the measured window (nobody acks): the confirm deadline is a minute."""
    text = config.read_text().replace("confirm_deadline_s = 3\n", "")
    config.write_text(text.replace("[hub]\n", "[hub]\nconfirm_deadline_s = 60\n", 1))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--gateways", type=int, default=2000)
    ap.add_argument("--sirens-per-gateway", type=int, default=5)
    ap.add_argument("--backend", choices=("postgres", "sqlite"), default="postgres")
    ap.add_argument("--zones", type=int, default=20)
    ap.add_argument("--alerts", type=int, default=3, help="alerts measured, one after the other")
    ap.add_argument("--pause-s", type=float, default=2.0, help="after each alert's stop")
    ap.add_argument("--timeout", type=float, default=300.0, help="the longest wait for any step")
    ap.add_argument("--keep", action="store_true", help="keep the run's directory (logs) and print its path")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    run_in_tmpdir(args, "dozor-bench-dispatch-", run, logs=("hub.log",))


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    main()
