"""Durable acks with real processes: `dozor gateway run` is killed with SIGKILL after the siren was driven
(Modbus write seen by the simulated siren) and its acks were stored, but before any PUBACK (the relay stalls
the uplink with TCP open). After a restart the gateway sends those acks. Before acks were outbox items they
lived only in memory and this ack was lost."""

from __future__ import annotations

import asyncio
import os
import signal
import sqlite3
import subprocess
import sys
from pathlib import Path

from contract import command as cc
from contract.models import AckStage, Signal
from simulators.netcut import NetCut
from tests.gateway.helpers import SirenRig, config_text, sign
from tests.gateway.test_uplink import Hub

ROOT = Path(__file__).resolve().parents[2]


def stored_acks(state: Path) -> int:
    db = state / "outbox.db"
    if not db.exists():
        return 0
    try:
        with sqlite3.connect(f"file:{db}?mode=ro", uri=True) as con:
            return int(con.execute("SELECT COUNT(*) FROM items WHERE stream = 'ack'").fetchone()[0])
    except sqlite3.OperationalError:  # the table is not created yet
        return 0


async def start(cfg: Path) -> asyncio.subprocess.Process:
    return await asyncio.create_subprocess_exec(
        sys.executable, "-c", "from dozor.cli import app; app()", "gateway", "run", "--config", str(cfg),
        env={**os.environ, "PYTHONPATH": str(ROOT)}, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


async def test_acks_stored_before_a_kill_9_are_sent_after_the_restart(tmp_path, mosquitto):
    relay = await NetCut(mosquitto.port).start()
    state = tmp_path / "state"
    cfg = tmp_path / "gw.toml"
    procs: list[asyncio.subprocess.Process] = []
    try:
        async with SirenRig(tmp_path, 1) as rig, Hub(mosquitto.port) as hub:
            cfg.write_text(config_text(state, mqtt_url=f"mqtt://127.0.0.1:{relay.port}",
                                       buses={rig.name: str(rig.port)}, sirens=rig.devices(),
                                       extra_mqtt="publish_timeout_s = 30\nstuck_puback_s = 0\n"))
            procs.append(await start(cfg))
            await hub.wait(lambda: any(s.state == "online" for s in hub.states()), within=30)
            relay.stall("up")  # nothing the gateway sends reaches the broker; the command still comes in
            token = sign(targets=("siren-1",), params=cc.CommandParams(signal=Signal.AIR_RAID, duration_s=60))
            jti = cc.peek(token)["jti"]
            await hub.send(token)
            await hub.wait(lambda: rig.activations() == 1 and stored_acks(state) >= 2, within=30)
            procs[0].send_signal(signal.SIGKILL)  # after the Modbus write and the ack commit, before any PUBACK
            await asyncio.wait_for(procs[0].wait(), 10)
            assert hub.acks(jti) == []
            relay.heal()
            procs.append(await start(cfg))
            await hub.wait(lambda: {a.stage for a in hub.acks(jti)} >= {AckStage.ACCEPTED, AckStage.SOUNDING},
                           within=30)
            await hub.wait(lambda: stored_acks(state) == 0)  # deleted once PUBACKed
            assert rig.activations() == 1  # the restart re-sent the acks, it did not sound the siren again
    finally:
        for p in procs:
            if p.returncode is None:
                p.kill()
                await p.wait()
        await relay.close()
