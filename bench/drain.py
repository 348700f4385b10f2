"""Drain after an outage: a one-hour backlog of 16 devices at 1 Hz, and alert acks while it drains.

    python -m bench.drain --outage-s 3600 --json

The backlog is *replayed*: 16 x outage_s readings, timestamped over the outage, are written into the
gateway's outbox exactly as its telemetry pipeline stores them, before the gateway process starts with the
broker up. A subscriber (standing in for the hub) counts readings, de-duplicated by (session, seq). Meanwhile
signed activate commands go to the gateway's simulated siren every 0.5 s and the time from publish to its
"sounding" ack is recorded; the baseline is the same measurement once the backlog is gone.
Prints {"backlog", "drain_s", "alert_ack_ms_during_drain", "alert_ack_ms_baseline", ...} (ack times: median).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path

import paho.mqtt.client as mqtt
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from contract import command as cc
from contract import topics
from contract.codecs import telemetry as telemetry_wire
from contract.models import Ack, Action, Mode, Reading, Signal
from gateway.outbox import Lane, Outbox
from simulators.brokers import Mosquitto
from simulators.pty_link import PtyLink
from simulators.siren import SimSiren, SirenBus

DOZOR = str(Path(sys.executable).with_name("dozor"))
GW = "gw-drain"
KEY = Ed25519PrivateKey.generate()
KID = cc.key_id(KEY.public_key())


def prefill(path: Path, devices: int, outage_s: int) -> int:
    topic = topics.gw(GW, "telemetry")
    t0 = time.time() - outage_s
    with Outbox(path, synchronous="NORMAL") as ob:
        for start in range(0, outage_s, 300):
            ob.put_many([("telemetry", topic, Reading(
                device=f"noise-{d}", kind="noise_node", ts=t0 + s,
                metrics={"laeq": 55.0 + d % 7, "lafmax": 63.0, "la10": 58.0, "la90": 49.0}).to_bytes(), Lane.NORMAL)
                for s in range(start, min(start + 300, outage_s)) for d in range(devices)])
        return ob.stats().depth


class Listener:
    def __init__(self, port: int) -> None:
        self.readings = 0
        self.keys: set[tuple[int, int]] = set()
        self.acks: dict[str, float] = {}
        self.lock = threading.Lock()
        self.c = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv311)
        self.c.on_message = self.on_message
        self.c.connect("127.0.0.1", port)
        self.c.subscribe([(topics.gw(GW, "telemetry"), 1), (topics.gw(GW, "ack"), 1)])
        self.c.loop_start()

    def on_message(self, _c, _u, msg) -> None:
        now = time.monotonic()
        with self.lock:
            if msg.topic.endswith("/ack"):
                ack = Ack.model_validate_json(msg.payload)
                if ack.stage.value == "sounding":
                    self.acks.setdefault(ack.cmd, now)
                return
            batch = telemetry_wire.decode_batch(msg.payload)  # wire version 1 or 2
            if (batch.session, batch.seq) not in self.keys:
                self.keys.add((batch.session, batch.seq))
                self.readings += sum(1 for r in batch.readings if r.kind != "health")

    def send(self, n: int) -> tuple[str, float]:
        now = int(time.time())
        jti = f"bench-{n}-{uuid.uuid4().hex[:8]}"
        token = cc.sign_command(cc.CommandClaims(
            aud=GW, jti=jti, iat=now, exp=now + 30, act=Action.ACTIVATE, targets=("siren-1",),
            params=cc.CommandParams(signal=Signal.TEST, duration_s=1), alert=f"bench-{n}", mode=Mode.EXERCISE), KEY)
        t = time.monotonic()
        self.c.publish(topics.gw(GW, "cmd"), token, qos=1)
        return jti, t


async def ack_times(listener: Listener, sent: list[tuple[str, float]], wait_s: float = 10) -> list[float]:
    for _ in range(int(wait_s / 0.05)):  # noqa: ASYNC110 - polling a paho thread's results
        if all(j in listener.acks for j, _ in sent):
            break
        await asyncio.sleep(0.05)
    return [(listener.acks[j] - t) * 1000 for j, t in sent if j in listener.acks]


async def run(devices: int, outage_s: int) -> dict:
    root = Path(tempfile.mkdtemp(prefix="dozor-bench-drain-"))
    state = root / "state"
    state.mkdir()
    backlog = prefill(state / "outbox.db", devices, outage_s)
    with Mosquitto() as broker:
        link = await PtyLink().start()
        bus = await SirenBus(link.a, [SimSiren(address=1, spinup_s=0)]).start()
        (root / "gateway.toml").write_text(
            f'[gateway]\nid = "{GW}"\nstate_dir = "{state}"\nheartbeat_s = 5\n[mqtt]\nurl = "{broker.url}"\n'
            f'[trust.hub_keys]\n"{KID}" = "{cc.b64url(cc.public_raw(KEY.public_key()))}"\n'
            f'[[bus]]\nname = "rs485"\nport = "{link.b}"\nkind = "modbus"\n'
            '[[device]]\nid = "siren-1"\nkind = "siren"\nbus = "rs485"\naddress = 1\n')
        listener = Listener(broker.port)
        log = open(root / "gateway.log", "wb")  # noqa: SIM115, ASYNC230 - once, before the measurement
        t0 = time.monotonic()
        gw = await asyncio.create_subprocess_exec(DOZOR, "gateway", "run", "--config", str(root / "gateway.toml"),
                                                  stdout=log, stderr=log)
        try:
            during: list[tuple[str, float]] = []
            n = 0
            drained_at = None
            while time.monotonic() - t0 < 600:
                if listener.readings >= backlog:
                    drained_at = time.monotonic()
                    break
                if time.monotonic() - t0 > 3 and listener.readings > 0:  # connected and draining
                    during.append(listener.send(n))
                    n += 1
                await asyncio.sleep(0.5)
            during_ms = await ack_times(listener, during)
            base: list[tuple[str, float]] = []
            for _ in range(20):
                base.append(listener.send(n))
                n += 1
                await asyncio.sleep(0.5)
            base_ms = await ack_times(listener, base)
        finally:
            gw.terminate()
            await gw.wait()
            listener.c.loop_stop()
            await bus.close()
            await link.close()
    return {
        "backlog": backlog,
        "received": listener.readings,
        "drain_s": round(drained_at - t0, 1) if drained_at else None,
        "alert_ack_ms_during_drain": round(statistics.median(during_ms), 1) if during_ms else None,
        "alert_ack_ms_during_drain_max": round(max(during_ms), 1) if during_ms else None,
        "alert_acks_during_drain": f"{len(during_ms)}/{len(during)}",
        "alert_ack_ms_baseline": round(statistics.median(base_ms), 1) if base_ms else None,
        "alert_ack_ms_baseline_max": round(max(base_ms), 1) if base_ms else None,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--outage-s", type=int, default=3600)
    ap.add_argument("--devices", type=int, default=16)
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    result = asyncio.run(run(args.devices, args.outage_s))
    print(json.dumps(result) if args.json else json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
