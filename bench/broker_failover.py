"""Losing a broker node mid-alert: how long until every gateway is back on a surviving node, and does the alert
complete? A real 3-node NATS JetStream cluster with MQTT (``simulators.nats``, started from deploy/nats/nats.conf),
a `dozor hub run` process and a `dozor sim city` process (every gateway its own MQTT connection and Modbus pty).

    python -m bench.broker_failover --gateways 20 --runs 3 --json

Each run starts a fresh cluster. The hub and every gateway list the JetStream meta leader's node first, so they all
sit on it; an exercise alert goes out and that node is killed (SIGKILL) at once: the worst single node to lose.
Times are from the kill, as seen by an MQTT client on a node that stays up:

- ``gateway_move_s``: to each gateway's new birth (a new session) from a surviving node (p50, max);
- ``hub_move_s``: to the hub's new "online" state (its control connection resumed elsewhere);
- ``alert_done_s``: to the moment the hub shows every siren of the alert confirmed.

Prints {"runs": [...], "gateway_move_max_s", "gateway_move_p50_s", "hub_move_max_s", "alerts_completed"}.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from contract import topics
from contract.models import GatewayState, HubState, decode
from contract.signed import split
from dozor.client import HubClient
from hub.identity import Role, UserStore
from runtime.mqtt import MqttParams, MqttSession
from simulators.brokers import free_port
from simulators.city import CityPlan
from simulators.nats import NatsCluster
from simulators.procs import stop_processes

DOZOR = str(Path(sys.executable).with_name("dozor"))


def pct(values: list[float], q: float) -> float:
    s = sorted(values)
    return s[min(len(s) - 1, max(0, math.ceil(q * len(s)) - 1))]


def start(argv: list[str], log: Path, env: dict[str, str] | None = None) -> subprocess.Popen:
    with open(log, "ab") as fh:
        return subprocess.Popen(argv, stdout=fh, stderr=fh, env=env)


async def wait_for(predicate, limit_s: float, what: str, every: float = 0.2):
    deadline = time.monotonic() + limit_s
    while time.monotonic() < deadline:
        try:
            value = await asyncio.to_thread(predicate)
        except Exception:  # not up yet
            value = None
        if value:
            return value
        await asyncio.sleep(every)
    raise SystemExit(f"timed out waiting for {what}")


class Births:
    """Births and hub states seen by one client on a node that is not killed, with their arrival times."""

    def __init__(self) -> None:
        self.gateways: dict[str, list[tuple[float, int]]] = {}
        self.hub: list[tuple[float, float]] = []  # (arrival, the state's own ts)

    def __call__(self, topic: str, payload: bytes, qos: int, mid: int, retain: bool) -> None:
        now = time.monotonic()
        if not payload:
            return
        if topic == topics.HUB_STATE:
            state = decode(HubState, payload)
            if state.state == "online":
                self.hub.append((now, state.ts))
            return
        parsed = topics.parse(topic)
        if parsed.kind == "gw" and parsed.channel == "state":
            state = decode(GatewayState, split(payload)[0])
            if state.state == "online":
                self.gateways.setdefault(parsed.ident, []).append((now, state.session))


async def one_run(args: argparse.Namespace, root: Path) -> dict:
    plan = CityPlan(args.gateways, args.sirens_per_gateway, zones=2)
    (root / "zones.json").write_text(json.dumps(plan.zones_config()))
    port = free_port()
    procs: list[subprocess.Popen] = []
    with NatsCluster() as cluster:
        k = int((cluster.meta_leader() or "n0").removeprefix("n"))
        survivor = (k + 2) % 3
        urls = cluster.urls[k:] + cluster.urls[:k]
        (root / "hub.toml").write_text(
            f'[hub]\nstate_dir = "hub"\napi_port = {port}\nzones = "zones.json"\nconfirm_deadline_s = 2\n'
            "max_retries = 20\n[mqtt]\nurls = [" + ", ".join(f'"{u}"' for u in urls) + "]\n"
            f'username = "{cluster.username}"\npassword = "{cluster.password}"\nkeepalive_s = 5\n'
            "reconnect_max_s = 1.0\n")
        (root / "hub.toml").chmod(0o600)
        store = UserStore.in_state_dir(root / "hub")
        _, token = store.add("bench", Role.operator)
        store.close()
        env = {**os.environ, "DOZOR_BROKER_PASSWORD": cluster.password}
        procs.append(start([DOZOR, "hub", "run", "--config", str(root / "hub.toml")], root / "hub.log"))
        births = Births()
        watch = MqttSession(MqttParams("127.0.0.1", cluster.nodes[survivor].mqtt_port, "bench-watch",
                                       username=cluster.username, password=cluster.password), on_message=births)
        try:
            client = HubClient(f"http://127.0.0.1:{port}", token, timeout=30)
            await wait_for(lambda: client.health(), 60, "the hub API")
            procs.append(start(
                [DOZOR, "sim", "city", "--gateways", str(args.gateways), "--sirens-per-gateway",
                 str(args.sirens_per_gateway), *(a for u in urls for a in ("--broker", u)),
                 "--broker-user", cluster.username, "--hub-config", str(root / "hub.toml"), "--spinup-s", "0.5",
                 "--heartbeat-s", "5", "--state-dir", str(root / "city")], root / "city.log", env))
            await wait_for(lambda: sum(g.state == "online" for g in client.gateways()) == args.gateways, 300,
                           "every gateway online")
            async with watch:
                await watch.subscribe([(topics.SUB_ALL_GATEWAYS, 1), (topics.HUB_STATE, 1)])
                await asyncio.sleep(2)  # the retained births arrive
                before = {g: max(s for _, s in seen) for g, seen in births.gateways.items()}
                alert = await asyncio.to_thread(client.create_alert, [z["id"] for z in plan.zones_config()],
                                                "air-raid", "exercise", duration_s=60)
                killed = time.monotonic()
                cluster.kill(k)

                def moved() -> dict[str, float]:
                    out = {}
                    for g, old in before.items():
                        t = next((t for t, s in births.gateways.get(g, []) if s > old), None)
                        if t is not None:
                            out[g] = t - killed
                    return out

                await wait_for(lambda: len(moved()) == len(before), args.timeout, "every gateway moved")
                await wait_for(lambda: any(t > killed for t, _ in births.hub), args.timeout, "the hub moved")
                done = await wait_for(lambda: _confirmed(client, alert.id), args.timeout, "the alert confirmed")
                alert_done_s = time.monotonic() - killed
                summary = done.summary
                moves = list(moved().values())
                return {
                    "killed": f"n{k}", "meta_leader_killed": True, "gateways": len(before),
                    "gateway_move_p50_s": round(pct(moves, 0.5), 2), "gateway_move_max_s": round(max(moves), 2),
                    "hub_move_s": round(next(t for t, _ in births.hub if t > killed) - killed, 2),
                    "alert_completed": summary.confirmed == summary.total and summary.failed == 0,
                    "sirens_total": summary.total, "sirens_confirmed": summary.confirmed,
                    "alert_done_s": round(alert_done_s, 2),
                }
        finally:
            stop_processes(procs)


def _confirmed(client: HubClient, alert_id: str):
    detail = client.alert(alert_id, devices=False)
    s = detail.summary
    return detail if s.total > 0 and s.pending == 0 and s.confirmed + s.failed == s.total else None


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--gateways", type=int, default=20)
    ap.add_argument("--sirens-per-gateway", type=int, default=2)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--timeout", type=float, default=120.0, help="per run: the longest wait for any step")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    runs = []
    for n in range(args.runs):
        root = Path(tempfile.mkdtemp(prefix=f"dozor-bench-failover-{n}-"))
        runs.append(asyncio.run(one_run(args, root)))
    result = {
        "runs": runs,
        "gateway_move_max_s": max(r["gateway_move_max_s"] for r in runs),
        "gateway_move_p50_s": round(pct([r["gateway_move_p50_s"] for r in runs], 0.5), 2),
        "hub_move_max_s": max(r["hub_move_s"] for r in runs),
        "alerts_completed": sum(r["alert_completed"] for r in runs),
    }
    print(json.dumps(result) if args.json else json.dumps(result, indent=2))


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    main()
