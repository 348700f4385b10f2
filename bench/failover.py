"""Losing the leader hub mid-alert (issue 14 §6): two `dozor hub run` processes on one PostgreSQL (simulators.postgres)
and one Mosquitto, a `dozor sim city` of N gateways (each its own MQTT connection and siren bus on a pty), an Actual
alert started through the follower (forwarded to the leader), and the leader killed with SIGKILL while the sirens
spin up, before their "sounding" acks are in. The follower takes the lease, resumes the alert from the database and
takes the acks the broker queued for the hubs' shared session.

    python -m bench.failover --json                  # 50 gateways x 2 sirens
    python -m bench.failover --gateways 5 --json     # the small run tests/repo/test_bench_failover.py checks

An MQTT client on the broker sees every command and every ack on the wire. Prints (times from the kill):

- ``failover_s``: until the follower's /healthz says it leads (its lease: ``[hub] leader_lease_s``, the hub's
  default unless --lease-s; ``lease_s`` in the output is the one used);
- ``alert_done_s``: until the alert shows every siren confirmed, failed or unreachable;
- ``alert_completed``: every siren confirmed; ``sirens_total``, ``sirens_confirmed`` (the hub's own summary);
- ``lost_acks``: sirens a gateway acked "sounding" on the wire that the hub does not show confirmed;
- ``duplicate_effects``: command ids sent again with a different content, plus sirens given two different
  effects (action or signal) for the alert: re-sent commands are fine only when they are idempotent.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench.broker_failover import start, wait_for
from contract import topics
from contract.command import public_key_from_b64, verify_command
from contract.models import Ack, AckStage, decode
from contract.signed import split
from dozor.client import HubClient
from hub.config import HubSettings
from hub.keys import KEY_FILE, RING_FILE
from runtime.mqtt import MqttParams, MqttSession
from simulators.brokers import Mosquitto, free_port
from simulators.city import CityPlan
from simulators.postgres import Postgres
from simulators.procs import stop_processes

CONFIRMED = {"sounding", "playing", "done"}  # a siren's device states that count as confirmed (as the CLI's)
DOZOR = str(Path(sys.executable).with_name("dozor"))


class Wire:
    """Every command and ack of the alert as the broker carried them."""

    def __init__(self) -> None:
        self.keys: dict = {}
        self.payloads: dict[tuple[str | None, str], set[bytes]] = {}  # (alert, jti) -> distinct payloads
        # (alert, gateway, siren) -> {(action, signal)}
        self.effects: dict[tuple[str | None, str, str], set[tuple[str, str | None]]] = {}
        self.sounding: set[tuple[str | None, str, str]] = set()  # (alert, gateway, siren) acked "sounding"
        self.bad: int = 0

    def __call__(self, topic: str, payload: bytes, qos: int, mid: int, retain: bool) -> None:
        parsed = topics.parse(topic)
        if parsed.kind != "gw" or not payload:
            return
        try:
            if parsed.channel == "cmd":
                claims = verify_command(payload, keys=self.keys, audience=parsed.ident, now=time.time())
                self.payloads.setdefault((claims.alert, claims.jti), set()).add(payload)
                for dev in claims.targets:
                    self.effects.setdefault((claims.alert, parsed.ident, dev), set()).add(
                        (claims.act.value, getattr(claims.params.signal, "value", None)))
            elif parsed.channel == "ack":
                ack = decode(Ack, split(payload)[0])
                if ack.stage is AckStage.SOUNDING:
                    self.sounding.update((ack.alert, ack.gateway, d) for d in ack.devices)
        except Exception:  # noqa: BLE001 - counted: a message this watcher cannot read
            self.bad += 1

    def commands(self, alert: str) -> int:
        return sum(a == alert for a, _ in self.payloads)

    def acked_sounding(self, alert: str) -> set[tuple[str, str]]:
        return {(gw, dev) for a, gw, dev in self.sounding if a == alert}

    def duplicate_effects(self, alert: str) -> int:
        return sum(len(p) > 1 for (a, _), p in self.payloads.items() if a == alert) + \
            sum(len(e) > 1 for (a, _, _), e in self.effects.items() if a == alert)


def hub_toml(root: Path, name: str, port: int, pg: Postgres, url: str, broker: str, lease_s: float | None) -> Path:
    """A hub config on ``url``; ``lease_s`` None: the hub's default ``[hub] leader_lease_s``."""
    path = root / f"{name}.toml"
    lease = "" if lease_s is None else f"leader_lease_s = {lease_s}\n"
    path.write_text(f'[hub]\nstate_dir = "state-{name}"\napi_port = {port}\nzones = "zones.json"\n'
                    f'confirm_deadline_s = 3\nmax_retries = 10\n{lease}'
                    f'[mqtt]\nurl = "{broker}"\nclient_id = "hub-ha"\n'
                    '[two_person]\nactual = []\n'
                    f'[database]\nurl = "{url}"\npassword_file = "{pg.password_file}"\n')
    path.chmod(0o600)
    return path


async def start_two_hubs(root: Path, configs: tuple[Path, Path], ports: tuple[int, int],
                         procs: list[subprocess.Popen]) -> tuple[HubClient, HubClient, dict]:
    """`dozor hub migrate` and an operator, the leader, then the follower with the leader's signing keys (the
    gateways pin them); both processes go to ``procs``. Returns (leader, follower, the leader's /healthz)."""
    a_cfg, b_cfg = configs
    token = await asyncio.to_thread(prepare, a_cfg)
    procs.append(start([DOZOR, "hub", "run", "--config", str(a_cfg)], root / f"{a_cfg.stem}.log"))
    leader = HubClient(f"http://127.0.0.1:{ports[0]}", token, timeout=60)
    health = await wait_for(leader.health, 60, "the first hub")
    a_state, b_state = root / f"state-{a_cfg.stem}", root / f"state-{b_cfg.stem}"
    b_state.mkdir()
    for name in (KEY_FILE, RING_FILE):
        if (a_state / name).exists():
            shutil.copy2(a_state / name, b_state / name)
    procs.append(start([DOZOR, "hub", "run", "--config", str(b_cfg)], root / f"{b_cfg.stem}.log"))
    follower = HubClient(f"http://127.0.0.1:{ports[1]}", token, timeout=60)
    await wait_for(lambda: follower.health().get("role") == "follower", 60, "the follower")
    return leader, follower, health


def settled(client: HubClient, alert_id: str):
    """The alert once no siren is pending any more (the cheap summary, no per-device list), else None."""
    detail = client.alert(alert_id, devices=False)
    s = detail.summary
    return detail if s.total > 0 and s.pending == 0 else None


def run_in_tmpdir(args: argparse.Namespace, prefix: str, run, logs: tuple[str, ...] = ()) -> None:
    """``run(args, root)`` in a fresh directory (kept with ``--keep``); print its result as JSON. When a step
    times out, the tails of ``logs`` say why."""
    root = Path(tempfile.mkdtemp(prefix=prefix))
    try:
        result = asyncio.run(run(args, root))
    except SystemExit:
        for name in logs:
            if (root / name).exists():
                print(f"--- {name} (last lines)\n" + "\n".join((root / name).read_text(errors="replace")
                                                              .splitlines()[-25:]), file=sys.stderr)
        raise
    finally:
        if args.keep:
            print(f"logs in {root}", file=sys.stderr)
        else:
            shutil.rmtree(root, ignore_errors=True)
    print(json.dumps(result) if args.json else json.dumps(result, indent=2))


def prepare(config: Path) -> str:
    """`dozor hub migrate`, then an operator; returns the operator's token."""
    subprocess.run([DOZOR, "hub", "migrate", "--config", str(config)], check=True, capture_output=True)
    added = subprocess.run([DOZOR, "users", "add", "bench", "--role", "operator", "--config", str(config),
                            "--json"], check=True, capture_output=True, text=True)
    return json.loads(added.stdout)["token"]


async def run(args: argparse.Namespace, root: Path) -> dict:
    plan = CityPlan(args.gateways, args.sirens_per_gateway, zones=max(1, args.gateways // 10))
    (root / "zones.json").write_text(json.dumps(plan.zones_config()))
    ports = free_port(), free_port()
    procs: list[subprocess.Popen] = []
    with Postgres() as pg, Mosquitto() as broker:
        url = pg.database()
        a_cfg, b_cfg = (hub_toml(root, n, p, pg, url, broker.url, args.lease_s) for n, p in zip("ab", ports,
                                                                                                 strict=True))
        wire = Wire()
        watch = MqttSession(MqttParams("127.0.0.1", broker.port, "bench-wire"), on_message=wire)
        try:
            leader, follower, health = await start_two_hubs(root, (a_cfg, b_cfg), ports, procs)
            wire.keys = {health["kid"]: public_key_from_b64(health["public_key"])}
            procs.append(start(
                [DOZOR, "sim", "city", "--gateways", str(args.gateways), "--sirens-per-gateway",
                 str(args.sirens_per_gateway), "--broker", broker.url, "--hub-config", str(a_cfg),
                 "--spinup-s", str(args.spinup_s), "--state-dir", str(root / "city")], root / "city.log"))
            await wait_for(lambda: sum(g.state == "online" for g in follower.gateways()) == args.gateways,
                           args.timeout, "every gateway online (as the follower reads it)")
            async with watch:
                await watch.subscribe([(topics.SUB_ALL_GATEWAYS, 1)])
                alert = await asyncio.to_thread(follower.create_alert, [z["id"] for z in plan.zones_config()],
                                                "air-raid", "actual", duration_s=120)
                await asyncio.sleep(args.kill_after_s)  # commands on the wire, sirens still spinning up
                before_kill = len(wire.acked_sounding(alert.id))
                procs[0].kill()
                killed = time.monotonic()
                procs[0].wait(10)
                await wait_for(lambda: follower.health().get("role") == "leader", args.timeout, "the takeover",
                               every=0.05)
                failover_s = time.monotonic() - killed
                done = await wait_for(lambda: settled(follower, alert.id), args.timeout, "the alert settled")
                alert_done_s = time.monotonic() - killed
                await asyncio.sleep(1.0)  # late acks and re-sends are on the wire too
                detail = await asyncio.to_thread(follower.alert, alert.id)
        finally:
            stop_processes(procs)
    confirmed = {(d.gateway, d.device) for d in detail.devices if d.state in CONFIRMED}
    s = done.summary
    return {"failover_s": round(failover_s, 2), "alert_done_s": round(alert_done_s, 2),
            "alert_completed": s.confirmed == s.total and s.total > 0, "sirens_total": s.total,
            "sirens_confirmed": s.confirmed, "lost_acks": len(wire.acked_sounding(alert.id) - confirmed),
            "duplicate_effects": wire.duplicate_effects(alert.id), "gateways": args.gateways,
            "lease_s": args.lease_s if args.lease_s is not None else HubSettings().leader_lease_s,
            "commands_on_wire": wire.commands(alert.id),
            "acks_sounding_on_wire": len(wire.acked_sounding(alert.id)), "sounding_before_kill": before_kill,
            "unreadable_on_wire": wire.bad}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--gateways", type=int, default=50)
    ap.add_argument("--sirens-per-gateway", type=int, default=2)
    ap.add_argument("--lease-s", type=float, default=None,
                    help="[hub] leader_lease_s of both hubs (default: the hub's default, 3 s)")
    ap.add_argument("--spinup-s", type=float, default=1.5, help="siren spin-up: the window the kill lands in")
    ap.add_argument("--kill-after-s", type=float, default=0.3, help="from the alert's start to the kill")
    ap.add_argument("--timeout", type=float, default=180.0, help="the longest wait for any step")
    ap.add_argument("--keep", action="store_true", help="keep the run's directory (logs) and print its path")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    run_in_tmpdir(args, "dozor-bench-hub-failover-", run, logs=("a.log", "b.log", "city.log"))

if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    main()
