"""Telemetry ingest end to end: MQTT (QoS 1) -> hub -> VictoriaMetrics, against raw MQTT delivery.

    python -m bench.ingest --points 1000000 --json
      -> {"points_sent", "points_stored", "points_per_s", "raw_delivery_per_s", "store_direct_per_s",
          "ratio_to_limit", "ratio", ...}

Three rates in the same run, so the result is measured against the real limit of the path:
0. store direct: the same readings, turned into the hub's own line protocol beforehand (untimed), POSTed straight
   to VictoriaMetrics' ``/api/v2/write`` in 5,000-line requests (the spool's write size), one writer as in the hub
   (measurement renamed ``direct_*`` so the counts stay apart); ``store_direct_per_s``. Written ``--direct-runs``
   times (3 by default; each time as new series, ``direct_*``, ``direct2_*``, ..., on a settled store: no rows
   pending, no merge running) and the *median* taken (``store_direct_runs_per_s`` lists them in order): the first
   run, on the fresh store, before the other phases, as always; the others after the hub phase, so the hub phase
   meets the store as before. One ~1 s write of 2 M points swings ±30 % with where the store's own 0.15-0.4 s
   flush and merge stalls fall, and the first write into a fresh store was the slowest of three in every one of
   ten runs (docs/benchmarks.md): a single first run had made the limit look lower than it is.
``ratio_to_limit`` = dozor end to end / min(store direct, raw MQTT delivery). (``ratio`` = dozor / raw, as before.)
Where the hub phase's time goes: ``hub_phase_published_after_s`` (the broker had every message),
``hub_received_all_after_s`` (the hub had parsed every batch: its ``ingest.last_batch_ms``), ``hub_seconds``
(the store had every line), and ``hub_cpu_s`` / ``hub_cpu_us_per_point`` (the hub process's CPU over the phase,
all threads), and the CPU the store and the broker spent per point (``store_cpu_us_per_point_direct``,
``..._hub_phase``, ``broker_cpu_...``).

``hub_ingest_path`` says which parse the hubs ran: ``compiled`` (the C pass of hub/ingest/fastrows.py) or
``python`` (built without a compiler, or ``DOZOR_PURE_INGEST=1`` in the environment, for comparisons).

Real Mosquitto, a real VictoriaMetrics and a `dozor hub run` process (its own interpreter, as deployed).
``--publishers`` processes publish pre-encoded telemetry batches (``--readings`` readings x 5 metrics each; one
point = one field = one stored sample) at QoS 1 and wait for every PUBACK, in wire version ``--wire`` (2, the
compact batches gateways send, by default; 1 for the per-reading ``TelemetryBatch`` of older gateways).

1. raw: `mosquitto_sub` (the C client) subscribes at QoS 1 to the telemetry topics; the publishers send the
   whole stream; ``raw_delivery_per_s`` = points / (publish start -> mosquitto_sub received the last one).
2. hub: the hub subscribes (its persistent ingest session); the publishers send the same stream again (new
   sessions, so nothing is a duplicate); ``points_per_s`` = points / (publish start -> the store took the hub's
   last write: ``spool.last_write_ms`` in /healthz once every line is written, so the clock stops as the
   store-direct phase's does, when its last POST returns; /healthz is polled every ``--poll-interval``, 0.25 s,
   which only costs the hub, 0.3-0.5 ms of its CPU a poll). Then the store is queried:
   ``points_stored`` = sum(count_over_time(...)) in VictoriaMetrics, which must equal ``points_sent``.
   With ``--hubs N`` (N > 1) N hubs split the telemetry through the shared subscription group ``[mqtt]
   share_group`` (PostgreSQL state, one spool each); ``per_hub_batches`` says how the broker split it.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import multiprocessing as mp
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import httpx

from hub.identity import Role, UserStore
from simulators.brokers import Mosquitto, free_port, wait_port
from simulators.tsdb import VictoriaMetrics

DOZOR = str(Path(sys.executable).with_name("dozor"))
METRICS = ("laeq", "lafmax", "la10", "la90", "lceq")
TOPIC_FILTER = "dozor/v1/gw/+/telemetry"
ZONE = "bench"


def _payloads(worker: int, workers: int, batches: int, readings: int, gateways: int, session: int,
              t0: float, wire: int = 2) -> list[tuple[str, bytes]]:
    from contract import topics
    from contract.codecs import telemetry
    from contract.models import Reading, TelemetryBatch

    out = []
    for b in range(worker, batches, workers):
        gw = f"bench-gw-{b % gateways:03d}"
        seq = b // gateways
        base = t0 + seq * readings * 0.001
        rs = tuple(Reading(device="noise-1", kind="noise_node", ts=round(base + i * 0.001, 3),
                           metrics={m: round(40.0 + (b + i + k) % 50 + 0.25, 2) for k, m in enumerate(METRICS)})
                   for i in range(readings))
        payload = telemetry.encode(gw, session, seq, rs, historical=False) if wire == 2 else \
            TelemetryBatch(gateway=gw, session=session, seq=seq, readings=rs).to_bytes()
        out.append((topics.gw(gw, "telemetry"), payload))
    return out


def _publisher(port: int, worker: int, workers: int, batches: int, readings: int, gateways: int, session: int,
               t0: float, wire: int, ready: mp.Barrier, go: mp.Event, done: mp.Queue) -> None:
    import paho.mqtt.client as paho

    messages = _payloads(worker, workers, batches, readings, gateways, session, t0, wire)
    client = paho.Client(paho.CallbackAPIVersion.VERSION2, client_id=f"bench-pub-{session}-{worker}",
                         protocol=paho.MQTTv311)
    client.max_inflight_messages_set(200)
    client.max_queued_messages_set(0)
    connected = threading.Event()
    client.on_connect = lambda *a: connected.set()
    client.connect("127.0.0.1", port)
    client.loop_start()
    connected.wait(10)
    ready.wait()
    go.wait()
    infos = [client.publish(topic, payload, qos=1) for topic, payload in messages]
    for info in infos:
        info.wait_for_publish(120)
    done.put((worker, sum(1 for i in infos if i.is_published()), time.time()))
    client.disconnect()
    client.loop_stop()


def publish(port: int, *, batches: int, readings: int, gateways: int, session: int, t0: float,
            workers: int, wire: int = 2) -> tuple[float, int]:
    """Run the publishers; returns (wall-clock start, messages PUBACKed)."""
    ctx = mp.get_context("fork")
    ready, go, done = ctx.Barrier(workers + 1), ctx.Event(), ctx.Queue()
    procs = [ctx.Process(target=_publisher, args=(port, w, workers, batches, readings, gateways, session, t0,
                                                  wire, ready, go, done), daemon=True) for w in range(workers)]
    for p in procs:
        p.start()
    ready.wait()  # payloads encoded and connected: encoding is not timed
    start = time.time()
    go.set()
    acked = sum(done.get(timeout=600)[1] for _ in procs)
    for p in procs:
        p.join(30)
    return start, acked


def raw_phase(port: int, args, t0: float, workdir: Path) -> float:
    log = workdir / "mosquitto_sub.log"
    with open(log, "wb") as out:
        sub = subprocess.Popen(["stdbuf", "-oL", "mosquitto_sub", "-h", "127.0.0.1", "-p", str(port), "-t", TOPIC_FILTER, "-q", "1",
                                "-i", "bench-raw", "-C", str(args.batches), "-d", "-F", "%l"],
                               stdout=out, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 10
        while b"SUBACK" not in log.read_bytes():
            if time.monotonic() > deadline or sub.poll() is not None:
                raise RuntimeError(f"mosquitto_sub did not subscribe: {log.read_text()[-300:]}")
            time.sleep(0.01)
        start, acked = publish(port, batches=args.batches, readings=args.readings, gateways=args.gateways,
                               session=1, t0=t0, workers=args.publishers, wire=args.wire)
        sub.wait(600)
        end = time.time()  # mosquitto_sub exits after the -C'th message
    finally:
        if sub.poll() is None:
            sub.kill()
    received = sum(1 for line in log.read_text().splitlines() if line.startswith("Client bench-raw received PUBLISH"))
    if received != args.batches or acked != args.batches:
        raise RuntimeError(f"raw phase: {acked} acked, {received} received, {args.batches} sent")
    return args.batches * args.readings * len(METRICS) / (end - start)


def _hub_configs(port: int, vm: VictoriaMetrics, args, workdir: Path, database: str | None) -> list[tuple[Path, int]]:
    """One config per hub (``--hubs``): with more than one, a PostgreSQL state database and the shared
    subscription group ``[mqtt] share_group`` (issue 14): each hub ingests its share, with its own spool."""
    (workdir / "zones.json").write_text(json.dumps([{"id": ZONE, "gateways": [
        f"bench-gw-{g:03d}" for g in range(args.gateways)]}]))
    out = []
    for i in range(args.hubs):
        api_port = free_port()
        path = workdir / f"hub-{i}.toml"
        shared = 'share_group = "bench-ingest"\n' if database else ""
        path.write_text(
            f'[hub]\nstate_dir = "state-{i}"\napi_port = {api_port}\nzones = "zones.json"\n'
            f'[mqtt]\nurl = "mqtt://127.0.0.1:{port}"\nclient_id = "bench-hub"\n{shared}'
            f'[store]\nkind = "v2"\nurl = "{vm.url}"\ndatabase = "dozor"\nflush_interval_s = {args.flush_interval}\n'
            + (database or ""))
        out.append((path, api_port))
    return out


def hub_phase(port: int, vm: VictoriaMetrics, args, t0: float, workdir: Path, database: str | None = None) -> dict:
    configs = _hub_configs(port, vm, args, workdir, database)
    if database:  # the shared state database: schema and a user, once
        for cmd in (["hub", "migrate"], ["users", "add", "bench", "--role", "viewer"]):
            done = subprocess.run([DOZOR, *cmd, "--config", str(configs[0][0])], capture_output=True, text=True,
                                  timeout=120, cwd=workdir)
            if done.returncode != 0:
                raise RuntimeError(f"dozor {' '.join(cmd)}: {done.stderr[-500:]}")
    else:
        users = UserStore.in_state_dir(workdir / "state-0")  # a hub refuses to start without users
        users.add("bench", Role.viewer)
        users.close()
    hubs, logs = [], []
    try:
        for i, (cfg, _) in enumerate(configs):
            logs.append(open(workdir / f"hub-{i}.log", "wb"))  # noqa: SIM115 - owned by the child
            hubs.append(subprocess.Popen([DOZOR, "hub", "run", "--config", str(cfg), "--log-level", "WARNING"],
                                         stdout=logs[-1], stderr=subprocess.STDOUT, cwd=workdir))
        urls = []
        for _, api_port in configs:
            wait_port(api_port, 30)
            urls.append(f"http://127.0.0.1:{api_port}/healthz")
        with httpx.Client(timeout=10) as http:
            deadline = time.monotonic() + 30
            while not all(http.get(url).json().get("mqtt_ingest") for url in urls):
                if time.monotonic() > deadline:
                    raise RuntimeError("a hub's ingest connection did not come up")
                time.sleep(0.05)
            lines = args.batches * args.readings
            cpu0 = sum(_cpu_s(h.pid) for h in hubs)
            start, acked = publish(port, batches=args.batches, readings=args.readings, gateways=args.gateways,
                                   session=2, t0=t0 + 3600, workers=args.publishers, wire=args.wire)
            published = time.time()  # the broker acked every message of the publishers
            deadline = time.monotonic() + args.timeout
            while True:
                time.sleep(args.poll_interval)  # each poll costs the hub an HTTP request: not too often
                each = [http.get(url).json()["ingest"] for url in urls]
                stats = {k: sum(e.get(k, 0) for e in each) for k in each[0]}
                if stats.get("spool.written_lines", 0) >= lines and stats.get("buffered_lines", 1) == 0:
                    break
                if time.monotonic() > deadline or any(h.poll() is not None for h in hubs):
                    raise RuntimeError(f"hub phase stalled: {each}")
            cpu = sum(_cpu_s(h.pid) for h in hubs) - cpu0
            # the clocks stop when the hubs say the store took their last write and they buffered their last
            # batch (same machine, same wall clock), as the store-direct phase's stops when its last POST returns
            end = max(e["spool.last_write_ms"] for e in each) / 1000
            received = max(e["ingest.last_batch_ms"] for e in each) / 1000
    finally:
        for h in hubs:
            h.terminate()
        for h in hubs:
            try:
                h.wait(30)
            except subprocess.TimeoutExpired:
                h.kill()
        for log in logs:
            log.close()
    return {"seconds": end - start, "acked": acked, "stats": stats, "per_hub_batches": [
        e.get("ingest.batches", 0) for e in each], "received_seconds": received - start, "cpu_s": cpu,
        "published_seconds": published - start}


def _cpu_s(pid: int) -> float:
    """User + system CPU seconds of a process (all its threads)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def direct_lines(args, t0: float) -> list[str]:
    """The readings as the hub's own line protocol (untimed): ``Ingest`` with the bench's zone, as the hub tags them."""
    from contract.codecs import telemetry
    from hub.ingest import Ingest

    ingest = Ingest(aqi_tables=(), zone_of=lambda gateway: ZONE)  # the hub's zones.json: every bench gateway in it
    lines: list[str] = []
    for _, payload in _payloads(0, 1, args.batches, args.readings, args.gateways, 3, t0 + 7200, args.wire):
        lines += ingest.batch_lines(telemetry.decode(payload))
    return lines


def direct_phase(vm: VictoriaMetrics, args, lines: list[str], run: int) -> tuple[float, float]:
    """The store's own ingest rate for the same line protocol, written directly (points per second), on a settled
    store; run ``run`` writes the lines as new series (``direct_*``, ``direct2_*``, ...). Returns (rate, the
    store's CPU seconds for it)."""
    prefix = "direct_" if run == 0 else f"direct{run + 1}_"
    bodies = ["\n".join([prefix + ln for ln in lines[i:i + 5000]]).encode() for i in range(0, len(lines), 5000)]
    settle(vm)
    assert vm.proc is not None
    cpu0 = _cpu_s(vm.proc.pid)
    with httpx.Client(base_url=vm.url, timeout=120) as http:
        start = time.perf_counter()
        for body in bodies:
            http.post("/api/v2/write", params={"bucket": "dozor", "precision": "ms"}, content=body).raise_for_status()
        elapsed = time.perf_counter() - start
    return args.batches * args.readings * len(METRICS) / elapsed, _cpu_s(vm.proc.pid) - cpu0


def settle(vm: VictoriaMetrics, limit_s: float = 30.0) -> float:
    """Wait until the store has no rows pending and no merge running (its own /metrics), so each timed phase starts
    on an idle store, as the first direct run does: a phase right after another one otherwise pays for the previous
    phase's background merges. Returns the seconds waited (at most ``limit_s``)."""
    start = time.monotonic()
    while time.monotonic() - start < limit_s:
        busy = 0.0
        for line in httpx.get(vm.url + "/metrics", timeout=10).text.splitlines():
            if line.startswith(("vm_active_merges{", "vm_pending_rows{", "vm_active_force_merges ")):
                busy += float(line.rsplit(" ", 1)[1])
        if busy == 0:
            break
        time.sleep(0.1)
    return time.monotonic() - start


def stored(vm: VictoriaMetrics) -> int:
    vm.flush()
    time.sleep(1.5)  # -search.latencyOffset=1s
    r = httpx.get(vm.url + "/api/v1/query", params={
        "query": 'sum(count_over_time({__name__=~"noise_node_.*"}[30d]))', "time": str(time.time() + 86400 * 2)},
        timeout=120)
    r.raise_for_status()
    result = r.json()["data"]["result"]
    return int(float(result[0]["value"][1])) if result else 0


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--points", type=int, default=1_000_000)
    ap.add_argument("--readings", type=int, default=100, help="readings per batch (x 5 metrics = points)")
    ap.add_argument("--gateways", type=int, default=20)
    ap.add_argument("--publishers", type=int, default=2, help="publisher processes")
    ap.add_argument("--flush-interval", type=float, default=0.2, help="the hub's [store] flush_interval_s")
    ap.add_argument("--broker-inflight", type=int, default=0,
                    help="Mosquitto max_inflight_messages per client (0 = unlimited; Mosquitto's default is 20)")
    ap.add_argument("--wire", type=int, choices=(1, 2), default=2,
                    help="telemetry wire version the publishers send (2: compact, what gateways send; 1: per reading)")
    ap.add_argument("--hubs", type=int, default=1,
                    help="hub processes ingesting through one MQTT shared subscription group ([mqtt] share_group; "
                         "more than 1 needs PostgreSQL for the hubs' shared state)")
    ap.add_argument("--direct-runs", type=int, default=3,
                    help="times the store-direct rate is measured; store_direct_per_s is their median")
    ap.add_argument("--poll-interval", type=float, default=0.25,
                    help="seconds between the bench's /healthz polls of the hubs during the hub phase (the end time "
                         "comes from the hubs themselves, spool.last_write_ms, so this sets only the polls' cost)")
    ap.add_argument("--timeout", type=float, default=600)
    ap.add_argument("--keep", action="store_true", help="keep the work directory (hub log, spool)")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args(argv)
    if args.direct_runs < 1:
        ap.error("--direct-runs must be at least 1")
    if not shutil.which("mosquitto_sub"):
        print("mosquitto_sub is not installed (apt-get install mosquitto-clients)", file=sys.stderr)
        return 2
    per_batch = args.readings * len(METRICS)
    args.batches = max(1, args.points // per_batch)
    sent = args.batches * per_batch
    workdir = Path(tempfile.mkdtemp(prefix="dozor-bench-ingest-"))
    t0 = round(time.time() - 6 * 3600)  # recent past: inside every retention and lookback window
    try:
        with Mosquitto(extra_conf=f"max_inflight_messages {args.broker_inflight}\n") as broker, \
                VictoriaMetrics() as vm, contextlib.ExitStack() as stack:
            database = None
            if args.hubs > 1:  # shared ingest needs the PostgreSQL state backend (leader and followers)
                from simulators.postgres import Postgres

                pg = stack.enter_context(Postgres())
                database = f'[database]\nurl = "{pg.database()}"\npassword_file = "{pg.password_file}"\n'
            assert vm.proc is not None and broker.proc is not None
            lines = direct_lines(args, t0)
            direct_runs = [direct_phase(vm, args, lines, 0)]  # the first run before the others, as it always was
            raw = raw_phase(broker.port, args, t0, workdir)
            settle(vm)
            cpu0, bcpu0 = _cpu_s(vm.proc.pid), _cpu_s(broker.proc.pid)
            hub = hub_phase(broker.port, vm, args, t0, workdir, database)
            store_cpu_hub, broker_cpu_hub = _cpu_s(vm.proc.pid) - cpu0, _cpu_s(broker.proc.pid) - bcpu0
            points_stored = stored(vm)
            # the other direct runs after the hub phase, so the hub phase meets the store as it always did
            direct_runs += [direct_phase(vm, args, lines, run) for run in range(1, args.direct_runs)]
            direct = statistics.median(rate for rate, _ in direct_runs)
            store_cpu_direct = sum(cpu for _, cpu in direct_runs)
    finally:
        if not args.keep:
            shutil.rmtree(workdir, ignore_errors=True)
    per_s = sent / hub["seconds"]
    result = {"points_sent": sent, "points_stored": points_stored, "points_per_s": round(per_s),
              "raw_delivery_per_s": round(raw), "store_direct_per_s": round(direct),
              "store_direct_runs_per_s": [round(rate) for rate, _ in direct_runs],
              "ratio_to_limit": round(per_s / min(direct, raw), 3), "ratio": round(per_s / raw, 3),
              "batches": args.batches, "hubs": args.hubs, "per_hub_batches": hub["per_hub_batches"],
              "points_per_batch": per_batch, "publishers": args.publishers,
              "broker_inflight": args.broker_inflight, "wire": args.wire, "hub_seconds": round(hub["seconds"], 3),
              "hub_received_all_after_s": round(hub["received_seconds"], 3),
              "hub_cpu_s": round(hub["cpu_s"], 2),
              "hub_phase_published_after_s": round(hub["published_seconds"], 3),
              "hub_cpu_us_per_point": round(1e6 * hub["cpu_s"] / (args.batches * args.readings * len(METRICS)), 3),
              # the CPU budget of the path (2 cores here): what the store and the broker spent per point
              "store_cpu_us_per_point_direct": round(1e6 * store_cpu_direct / (sent * args.direct_runs), 3),
              "store_cpu_us_per_point_hub_phase": round(1e6 * store_cpu_hub / sent, 3),
              "broker_cpu_us_per_point_hub_phase": round(1e6 * broker_cpu_hub / sent, 3),
              # which parse the hubs ran: the C pass (hub/ingest/fastrows.py) or, without it, the Python one
              "hub_ingest_path": "compiled" if hub["stats"].get("ingest.compiled", 0) == args.hubs else "python",
              "hub_counters": {k: v for k, v in hub["stats"].items()
                               if not k.startswith("ingest.readings") and not k.endswith("_ms")},
              "cpus": os.cpu_count()}
    if args.json:
        print(json.dumps(result))
    else:
        for k, v in result.items():
            print(f"{k:>20}: {v}")
    return 0 if points_stored == sent else 1


if __name__ == "__main__":
    sys.exit(main())
