"""City scale (issue 14 §5): a whole city's sirens from two hubs on PostgreSQL, against one hub on SQLite.

    python -m bench.city --json                                                  # 2,000 gateways x 5 sirens
    python -m bench.city --gateways 400 --sirens-per-gateway 5 --workers 4 --json   # what 2 cores carry well
    python -m bench.city --gateways 6 --sirens-per-gateway 2 --workers 1 --alerts 1 --json   # the test's run

Two phases, each on its own Mosquitto and its own city (``--workers`` `dozor sim city` processes; every gateway
has its own MQTT connection and its own Modbus bus on a pty; siren spin-up 0, so the figures are the system's):

1. ``postgres``: two `dozor hub run` processes on one PostgreSQL (``simulators.postgres``), a leader and a
   follower (bench.failover's set-up). ``--alerts`` exercise alerts over every zone, each sent through the leader,
   waited for and stopped; then one more sent through the follower, with the leader `kill -9`ed while it runs.
2. ``sqlite``: one hub on the embedded SQLite backend, the same city and the same alerts (no failover).

Per backend: ``p50_ms`` / ``p99_ms`` (each siren, API call -> its "sounding" ack, as the hub recorded it, over all
alerts), ``dispatch_ms_p50`` / ``dispatch_ms_max`` (API call -> the last signed command written to the broker, the
hub's own ``dispatch_ms``), ``confirmed`` / ``sirens`` over all alerts, ``stop_confirmed_s_max`` (stop call -> every
siren's "done" at the hub; the next alert waits for it), ``alert_wall_s_max`` (call -> every siren answered) and
``hub_alert_cpu_s_max`` (the hub processes' CPU in that window, both hubs on postgres; ``_each``: per hub, the
leader first; ``db_alert_cpu_s_max``: PostgreSQL's server processes); for postgres also ``failover_s`` (kill ->
the follower leads) and ``failover_alert_completed``. Top level: ``p99_ratio_pg_to_sqlite`` (goal <= 1.5) and
``dispatch_goal_ms`` (250, for 2,000 gateways).

``--sim-nice N`` starts the simulator processes at nice level N (10 by default since 2026-12-05, reported as
``sim_nice``). In a city the gateways are other machines: the hubs, the broker and PostgreSQL never pay for their
CPU. Here 2,000 lite gateways share the central processes' two cores and take ~1-2 core-seconds per alert; at
nice 10 that CPU runs behind the central processes' (their traffic, every seal, ack and heartbeat, is unchanged),
so ``dispatch_ms`` is the hubs' own. ``--sim-nice 0`` charges the gateways' CPU to the hubs as well (the
shared-cores figure, also in docs/benchmarks.md).

``--simulator``: ``full`` runs real gateway instances with Modbus sirens on ptys (``simulators.city``); ``lite``
runs lite gateways (``dozor sim city --lite``, ``simulators.city_lite``: every gateway still has its own MQTT
connection, identity key, signed birth, heartbeats and acks, and verifies every command with the contract, but
its sirens are in-memory state machines); ``auto`` (the default) is ``full`` up to 400 gateways and ``lite``
above, which is what 2 cores carry. The result says which ran (``simulator``). Per backend also ``sim_cpu``: the
simulator processes' CPU (/proc, all threads) while the fleet idles (``idle_cores``, ``idle_pct_per_500_gateways``)
and per alert (``alert_cpu_s`` max, ``alert_cpu_s_per_500_gateways``); for ``lite`` also ``sim_counters`` (the
city's own counts: commands received, accepted, rejected, acks sent) and ``sim_timings`` (the worst process's
``sounding_ms``, command read -> its "sounding" ack PUBACKed, and ``loop_lag_ms``, how late its loop ran).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import os
import subprocess
import sys
import time
from pathlib import Path

from bench.alert_latency import pct
from bench.broker_failover import start, wait_for
from bench.failover import hub_toml, run_in_tmpdir, settled, start_two_hubs
from dozor.client import HubClient
from hub.identity import Role, UserStore
from simulators.brokers import Mosquitto, free_port
from simulators.city import CityPlan
from simulators.postgres import Postgres
from simulators.procs import stop_processes

DOZOR = str(Path(sys.executable).with_name("dozor"))


LITE_ABOVE = 400  # --simulator auto: lite gateways above this many


def simulator(args: argparse.Namespace) -> str:
    return args.simulator if args.simulator != "auto" else ("lite" if args.gateways > LITE_ABOVE else "full")


def city(args: argparse.Namespace, root: Path, broker: str, hub_config: Path, tag: str) -> list[subprocess.Popen]:
    per = math.ceil(args.gateways / args.workers)
    lite = ["--lite"] if simulator(args) == "lite" else []
    procs = []
    for w in range(args.workers):
        n = min(per, args.gateways - w * per)
        if n > 0:
            nice = ["nice", "-n", str(args.sim_nice)] if args.sim_nice else []
            procs.append(start([*nice, DOZOR, "sim", "city", "--gateways", str(n), "--first", str(1 + w * per),
                                "--sirens-per-gateway", str(args.sirens_per_gateway), "--broker", broker,
                                "--hub-config", str(hub_config), "--spinup-s", "0", "--heartbeat-s", "10",
                                "--state-dir", str(root / f"city-{tag}-{w}"), *lite], root / f"city-{tag}-{w}.log"))
    return procs


def stat(pid: int) -> list[str] | None:
    """/proc/PID/stat after the command name: index i is proc(5)'s field i + 3 (None: the process is gone)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None


def cpu_s(procs: list[subprocess.Popen]) -> float:
    """CPU seconds (user + system, all threads) the running processes have used so far (/proc/PID/stat)."""
    total = 0
    for p in procs:
        if (fields := stat(p.pid)) is not None:
            total += int(fields[11]) + int(fields[12])  # utime, stime (fields 14 and 15 of proc(5))
    return total / os.sysconf("SC_CLK_TCK")


def tree_cpu_s(pid: int) -> float:
    """CPU seconds of a process and its children (PostgreSQL's postmaster and its backends) so far."""
    total, todo = 0.0, [pid]
    while todo:
        p = todo.pop()
        try:
            kids = Path(f"/proc/{p}/task/{p}/children").read_text().split()
        except OSError:
            continue
        if (fields := stat(p)) is None:
            continue
        total += (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
        todo += [int(k) for k in kids]
    return total


async def idle_cpu(args: argparse.Namespace, sims: list[subprocess.Popen]) -> dict:
    """The simulator processes' CPU while the whole fleet is online and nothing happens."""
    c0, t0 = cpu_s(sims), time.monotonic()
    await asyncio.sleep(args.idle_s)
    cores = (cpu_s(sims) - c0) / (time.monotonic() - t0)
    return {"idle_s": args.idle_s, "idle_cores": round(cores, 3),
            "idle_pct_per_500_gateways": round(100 * cores * 500 / args.gateways, 1), "nice_seen": nice_of(sims)}


def nice_of(procs: list[subprocess.Popen]) -> list[int]:
    """The nice levels the running processes really have (/proc/PID/stat field 19), each once."""
    return sorted({int(fields[16]) for p in procs if (fields := stat(p.pid)) is not None})


def sim_report(root: Path, tag: str, workers: int) -> dict:
    """The lite city processes' own counts and timings, from the JSON line each prints when it stops: counters
    summed; ``sounding_ms`` / ``loop_lag_ms`` the worst process's p99 and max (the simulator's share of the hub's
    confirm time, and how late its loop ran)."""
    total: dict[str, int] = {}
    worst: dict[str, dict[str, float]] = {}
    for w in range(workers):
        log = root / f"city-{tag}-{w}.log"
        lines = [ln for ln in log.read_text(errors="replace").splitlines() if ln.startswith("{")] \
            if log.exists() else []
        if not lines:
            continue
        doc = json.loads(lines[-1])
        for k, v in doc["counters"].items():
            if k.startswith(("cmd_", "ack_")) or k in ("mqtt_acks_published", "mqtt_births"):
                total[k] = total.get(k, 0) + v
        for name in ("sounding_ms", "loop_lag_ms"):
            got = doc.get(name) or {}
            for q in ("p50", "p99", "max"):
                if got.get(q) is not None:
                    worst.setdefault(name, {})[q] = max(worst.get(name, {}).get(q, 0.0), got[q])
    return {"sim_counters": dict(sorted(total.items())), "sim_timings": worst}


async def alerts(client: HubClient, zones: list[str], n: int, limit_s: float,
                 sims: list[subprocess.Popen] | None = None, hubs: list[subprocess.Popen] | None = None,
                 db_pid: int | None = None) -> dict:
    """``n`` exercise alerts over every zone, one after the other; per-siren confirm times and dispatch times."""
    ms: list[float] = []
    dispatch: list[float] = []
    cpu: list[float] = []
    stop_s: list[float] = []
    hub_cpu: list[float] = []
    each_cpu: list[list[float]] = []  # per hub process (postgres: leader, follower)
    db_cpu: list[float] = []  # PostgreSQL's server processes
    wall: list[float] = []
    confirmed = total = 0
    for _ in range(n):
        c0, h0, t0 = cpu_s(sims or []), cpu_s(hubs or []), time.monotonic()
        e0 = [cpu_s([h]) for h in hubs or []]
        d0 = tree_cpu_s(db_pid) if db_pid else 0.0
        alert = await asyncio.to_thread(client.create_alert, zones, "air-raid", "exercise", duration_s=120)
        await wait_for(lambda a=alert: settled(client, a.id), limit_s, "every siren to answer")
        cpu.append(cpu_s(sims or []) - c0)
        hub_cpu.append(cpu_s(hubs or []) - h0)
        each_cpu.append([cpu_s([h]) - c for h, c in zip(hubs or [], e0, strict=True)])
        db_cpu.append(tree_cpu_s(db_pid) - d0 if db_pid else 0.0)
        wall.append(time.monotonic() - t0)
        detail = await asyncio.to_thread(client.alert, alert.id)
        ms += [d.confirm_ms for d in detail.devices if d.state == "sounding" and d.confirm_ms is not None]
        confirmed += detail.summary.confirmed
        total += detail.summary.total
        if detail.dispatch_ms is not None:
            dispatch.append(detail.dispatch_ms)
        t_stop = time.monotonic()
        await asyncio.to_thread(client.stop, alert.id)
        # the next alert starts once the hub has every siren's signed "done" (not on a fixed pause: at 2,000
        # gateways a stop outlasts any pause, and the next alert then took the devices over mid-stop)
        await wait_for(lambda a=alert: silent(client, a.id), limit_s, "every siren to confirm the stop", every=0.5)
        stop_s.append(time.monotonic() - t_stop)
    return {"alerts": n, "sirens": total, "confirmed": confirmed,
            "p50_ms": round(pct(ms, 0.5), 1) if ms else None, "p99_ms": round(pct(ms, 0.99), 1) if ms else None,
            "dispatch_ms_p50": round(pct(dispatch, 0.5), 1) if dispatch else None,
            "dispatch_ms_max": round(max(dispatch), 1) if dispatch else None, "dispatch_ms_each": dispatch,
            "sim_alert_cpu_s_max": round(max(cpu), 2) if cpu else None,
            "alert_wall_s_max": round(max(wall), 2) if wall else None,
            "hub_alert_cpu_s_max": round(max(hub_cpu), 2) if hub_cpu and hubs else None,
            "hub_alert_cpu_s_max_each": [round(max(c), 2) for c in zip(*each_cpu, strict=True)] if hubs else None,
            **({"db_alert_cpu_s_max": round(max(db_cpu), 2)} if db_pid and db_cpu else {}),
            "stop_confirmed_s_max": round(max(stop_s), 2) if stop_s else None}


def silent(client: HubClient, alert_id: str) -> bool:
    """Every device of the alert confirmed silent (its stop's signed "done" ack at the hub)."""
    return all(d.state == "done" for d in client.alert(alert_id).devices)


async def _online(client: HubClient, n: int, limit_s: float) -> float:
    t0 = time.monotonic()
    await wait_for(lambda: sum(g.state == "online" for g in client.gateways()) == n, limit_s, "every gateway online")
    await asyncio.sleep(2)  # births, subscriptions and first heartbeats settle
    return round(time.monotonic() - t0, 1)


async def postgres_phase(args: argparse.Namespace, root: Path, plan: CityPlan) -> dict:
    ports = free_port(), free_port()
    procs: list[subprocess.Popen] = []
    zones = [z["id"] for z in plan.zones_config()]
    with Postgres() as pg, Mosquitto() as broker:
        url = pg.database()
        a_cfg, b_cfg = (hub_toml(root, f"pg-{n}", p, pg, url, broker.url, args.lease_s)
                        for n, p in zip("ab", ports, strict=True))
        try:
            leader, follower, _ = await start_two_hubs(root, (a_cfg, b_cfg), ports, procs)
            sims = city(args, root, broker.url, a_cfg, "pg")
            procs += sims
            boot_s = await _online(leader, args.gateways, args.timeout)
            idle = await idle_cpu(args, sims)
            out = {**await alerts(leader, zones, args.alerts, args.timeout, sims, procs[:2],
                                  pg.proc.pid if pg.proc else None), "fleet_boot_s": boot_s}
            out["sim_cpu"] = sim_cpu(args, idle, out)
            alert = await asyncio.to_thread(follower.create_alert, zones, "air-raid", "exercise", duration_s=120)
            await asyncio.sleep(args.kill_after_s)
            procs[0].kill()
            killed = time.monotonic()
            await asyncio.to_thread(procs[0].wait, 10)
            await wait_for(lambda: follower.health().get("role") == "leader", args.timeout, "the takeover", every=0.05)
            out["failover_s"] = round(time.monotonic() - killed, 2)
            done = await wait_for(lambda: settled(follower, alert.id), args.timeout, "the alert after the takeover")
            out["failover_alert_completed"] = done.summary.confirmed == done.summary.total > 0
            out["failover_alert_confirmed"] = done.summary.confirmed
        finally:
            stop_processes(procs)
    if simulator(args) == "lite":
        out.update(sim_report(root, "pg", args.workers))
    return out


def sim_cpu(args: argparse.Namespace, idle: dict, out: dict) -> dict:
    alert = out.get("sim_alert_cpu_s_max")
    return {**idle, "alert_cpu_s": alert,
            "alert_cpu_s_per_500_gateways": round(alert * 500 / args.gateways, 2) if alert is not None else None}


async def sqlite_phase(args: argparse.Namespace, root: Path, plan: CityPlan) -> dict:
    port = free_port()
    procs: list[subprocess.Popen] = []
    with Mosquitto() as broker:
        cfg = root / "sqlite.toml"
        cfg.write_text(f'[hub]\nstate_dir = "state-sqlite"\napi_port = {port}\nzones = "zones.json"\n'
                       f'confirm_deadline_s = 3\nmax_retries = 10\n[mqtt]\nurl = "{broker.url}"\n')
        store = UserStore.in_state_dir(root / "state-sqlite")
        _, token = store.add("bench", Role.operator)
        store.close()
        try:
            procs.append(start([DOZOR, "hub", "run", "--config", str(cfg)], root / "sqlite.log"))
            client = HubClient(f"http://127.0.0.1:{port}", token, timeout=60)
            await wait_for(client.health, 60, "the hub")
            sims = city(args, root, broker.url, cfg, "sqlite")
            procs += sims
            boot_s = await _online(client, args.gateways, args.timeout)
            idle = await idle_cpu(args, sims)
            out = {**await alerts(client, [z["id"] for z in plan.zones_config()], args.alerts, args.timeout, sims,
                                  procs[:1]),
                   "fleet_boot_s": boot_s}
            out["sim_cpu"] = sim_cpu(args, idle, out)
        finally:
            stop_processes(procs)
    if simulator(args) == "lite":
        out.update(sim_report(root, "sqlite", args.workers))
    return out


async def run(args: argparse.Namespace, root: Path) -> dict:
    load_start = round(os.getloadavg()[0], 2)
    plan = CityPlan(args.gateways, args.sirens_per_gateway, zones=max(1, min(args.zones, args.gateways)))
    (root / "zones.json").write_text(json.dumps(plan.zones_config()))
    pg = await postgres_phase(args, root, plan)
    lite = await sqlite_phase(args, root, plan)
    ratio = round(pg["p99_ms"] / lite["p99_ms"], 2) if pg.get("p99_ms") and lite.get("p99_ms") else None
    return {"gateways": args.gateways, "sirens": args.gateways * args.sirens_per_gateway, "workers": args.workers,
            "simulator": simulator(args), "sim_nice": args.sim_nice, "load1_start": load_start,
            "postgres": pg, "sqlite": lite, "p99_ratio_pg_to_sqlite": ratio, "dispatch_goal_ms": 250,
            "load1_end": round(os.getloadavg()[0], 2), "cpus": os.cpu_count()}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--gateways", type=int, default=2000)
    ap.add_argument("--sirens-per-gateway", type=int, default=5)
    ap.add_argument("--workers", type=int, default=8, help="`dozor sim city` processes")
    ap.add_argument("--sim-nice", type=int, default=10,
                    help="run the simulator processes at this nice level (default 10: the gateways are other "
                    "machines in a city, their CPU is not the hubs'; 0 charges it to the hubs too; the result says "
                    "which)")
    ap.add_argument("--zones", type=int, default=20)
    ap.add_argument("--alerts", type=int, default=3, help="alerts per backend (plus one failover alert on postgres)")
    ap.add_argument("--lease-s", type=float, default=None,
                    help="[hub] leader_lease_s of the two PostgreSQL hubs (default: the hub's default, 3 s)")
    ap.add_argument("--kill-after-s", type=float, default=0.2, help="from the failover alert's start to the kill")
    ap.add_argument("--simulator", choices=("auto", "full", "lite"), default="auto",
                    help=f"full: real gateways with Modbus sirens on ptys; lite: `dozor sim city --lite`; auto: "
                    f"full up to {LITE_ABOVE} gateways, lite above")
    ap.add_argument("--idle-s", type=float, default=10.0, help="how long the simulators' idle CPU is measured")
    ap.add_argument("--timeout", type=float, default=600.0, help="the longest wait for any step")
    ap.add_argument("--keep", action="store_true", help="keep the run's directory (logs) and print its path")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    run_in_tmpdir(args, "dozor-bench-city-", run, logs=("pg-a.log", "pg-b.log", "sqlite.log"))

if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    main()
