"""kill -9 right after a poll: a reading a driver reported is on disk before the driver polls again.

A real `dozor gateway run` process polls 16 simulated PMS5003 dust sensors (passive mode, four READs a second, each
on its own pty) and publishes to a real Mosquitto; a subscriber in the test receives the telemetry batches. Every
answer a sensor gives carries its own sequence number (pm2_5 = n), so each reading has an identity the test can
count.

The kill is timed by the gateway's own poll: when a sensor receives a READ, the test sends SIGKILL to the gateway
0-20 ms later (ten kills, at different offsets and on different sensors), then starts the gateway again. By the
invariant, every answer a sensor gave before the driver's *next* READ reached it was on the gateway's disk at
that moment, so it must be delivered, exactly once, after the restart. Only each sensor's last answer before a
kill (not yet followed by another READ) may be lost, and never delivered twice.

Counted at the subscriber as RAW readings; batches are first de-duplicated by their protocol key
``(gateway, session, seq)``, as the hub does (a flush re-sent after a restart keeps its key).
"""

from __future__ import annotations

import asyncio
import collections
import os
import signal
import sys
import threading
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest

from contract import topics
from contract.codecs import pms5003 as pms
from contract.codecs import telemetry as telemetry_wire
from contract.models import TelemetryBatch
from simulators.pty_link import PtyLink
from simulators.sensors import SimPms5003, pms_data
from tests.gateway.helpers import HUB_KID, HUB_PUB

pytestmark = pytest.mark.integration
DOZOR = str(Path(sys.executable).with_name("dozor"))
GW = "gw-kill"
DEVICES = 16
KILL_OFFSETS_MS = (0, 0, 1, 2, 3, 5, 8, 12, 16, 20)  # ten kills, at different points after a poll


class CountingPms(SimPms5003):
    """A passive-mode PMS5003 whose n-th answer reads pm2_5 = n; ``on_read`` sees every READ first."""

    def __init__(self, port: str, name: str, rig: Rig) -> None:
        super().__init__(port, period_s=3600)  # never streams on its own: answers READs only
        self.name = name
        self.rig = rig
        self.answers: list[int] = []
        self.reads = 0

    def on_command(self, cmd: pms.Command) -> None:
        if cmd.cmd is pms.Cmd.READ and self.awake and self.passive:
            self.reads += 1
            self.rig.on_read(self)
            if self.rig.muted:
                return
            n = len(self.answers) + 1
            self.answers.append(n)
            if not self.rig.alive:
                self.rig.may_be_lost.add((self.name, n))
            self.send_frame(pms.encode(pms_data(n, n, n)))
            return
        super().on_command(cmd)


class Rig:
    def __init__(self, tmp_path: Path, broker) -> None:
        self.tmp = tmp_path
        self.broker = broker
        self.sims: list[CountingPms] = []
        self.links: list[PtyLink] = []
        self.gw: asyncio.subprocess.Process | None = None
        self.armed: tuple[str, float] | None = None  # (sensor, offset s): kill on its next READ
        self.killed = asyncio.Event()
        self.may_be_lost: set[tuple[str, int]] = set()
        self.muted = False
        self.alive = False  # a READ answered while the gateway is dead (the kill's own READ) may be lost
        self.batches: dict[tuple[int, int], TelemetryBatch] = {}
        self.raw_batches = 0
        self.health_depths: list[float] = []
        self._lock = threading.Lock()

    # ---------------------------------------------------------------- gateway process
    def config(self) -> Path:
        out = [f'[gateway]\nid = "{GW}"\nstate_dir = "{self.tmp / "state"}"\nheartbeat_s = 5\n',
               f'[mqtt]\nurl = "{self.broker.url}"\n',
               f'[trust.hub_keys]\n"{HUB_KID}" = "{HUB_PUB}"\n',
               "[telemetry]\nhealth_interval_s = 1\n"]
        for sim, link in zip(self.sims, self.links, strict=True):
            out.append(f'[[bus]]\nname = "uart-{sim.name}"\nport = "{link.a}"\nkind = "uart"\nbaudrate = 9600\n'
                       f'[[device]]\nid = "{sim.name}"\nkind = "pms5003"\nbus = "uart-{sim.name}"\n'
                       'mode = "passive"\ninterval_s = 0.25\nwarmup_s = 0\nstale_s = 3600\n')
        path = self.tmp / "gateway.toml"
        path.write_text("".join(out))
        return path

    async def start_gateway(self) -> None:
        fh = open(self.tmp / "gateway.log", "ab")  # noqa: SIM115, ASYNC230 - handed to the child
        try:
            self.gw = await asyncio.create_subprocess_exec(DOZOR, "gateway", "run", "--config", str(self.config()),
                                                           stdout=fh, stderr=fh)
        finally:
            fh.close()
        self.alive = True

    # ---------------------------------------------------------------- the kill, timed by a poll
    def on_read(self, sim: CountingPms) -> None:
        if self.armed is None or self.armed[0] != sim.name or self.gw is None:
            return
        offset = self.armed[1]
        self.armed = None
        if offset == 0:
            self._kill()  # before this READ is even answered
        else:
            asyncio.get_running_loop().call_later(offset, self._kill)

    def _kill(self) -> None:
        assert self.gw is not None
        os.kill(self.gw.pid, signal.SIGKILL)
        self.alive = False
        # at this instant: every answer followed by another READ was on disk; the last one of each sensor may not be
        for sim in self.sims:
            if sim.answers:
                self.may_be_lost.add((sim.name, sim.answers[-1]))
        self.killed.set()

    # ---------------------------------------------------------------- the subscriber
    def on_message(self, _c, _u, msg) -> None:
        batch = telemetry_wire.decode_batch(msg.payload)  # wire version 1 or 2
        with self._lock:
            self.raw_batches += 1
            self.batches.setdefault((batch.session, batch.seq), batch)
            for r in batch.readings:
                if r.kind == "health" and "outbox_depth" in r.metrics:
                    self.health_depths.append(r.metrics["outbox_depth"])

    def delivered(self) -> collections.Counter[tuple[str, int]]:
        with self._lock:
            batches = list(self.batches.values())
        return collections.Counter((r.device, int(r.metrics["pm2_5"])) for b in batches for r in b.readings
                                   if r.kind == "pms5003")


async def until(pred, what: str, limit_s: float = 60.0, *, fail: bool = True) -> bool:
    """A protocol-level deadline: the condition must become true, the time it takes is not asserted."""
    for _ in range(int(limit_s / 0.05)):
        if pred():
            return True
        await asyncio.sleep(0.05)
    if fail:
        pytest.fail(f"timed out waiting for {what}")
    return False


async def test_a_kill_right_after_a_poll_loses_no_reported_reading(tmp_path, mosquitto):
    rig = Rig(tmp_path, mosquitto)
    sub = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv311)
    sub.on_message = rig.on_message
    sub.connect("127.0.0.1", mosquitto.port)
    sub.subscribe(topics.gw(GW, topics.GwChannel.TELEMETRY), qos=1)
    sub.loop_start()
    try:
        for i in range(DEVICES):
            link = await PtyLink().start()
            rig.links.append(link)
            rig.sims.append(await CountingPms(link.b, f"pms-{i:02d}", rig).start())
        await rig.start_gateway()
        for k, offset_ms in enumerate(KILL_OFFSETS_MS):
            # the gateway polls every sensor at least twice after its (re)start, then dies after one poll
            reads = [s.reads for s in rig.sims]
            await until(lambda r=reads: all(s.reads >= n + 2 for s, n in zip(rig.sims, r, strict=True)),
                        f"every sensor polled twice before kill {k + 1}")
            rig.killed.clear()
            rig.armed = (rig.sims[(k * 5) % DEVICES].name, offset_ms / 1000)
            await until(rig.killed.is_set, f"kill {k + 1}")
            assert rig.gw is not None
            assert await rig.gw.wait() == -signal.SIGKILL
            await rig.start_gateway()

        # no new readings from now on; the gateway delivers what it stored and its outbox runs empty
        reads = [s.reads for s in rig.sims]
        await until(lambda: all(s.reads >= n + 2 for s, n in zip(rig.sims, reads, strict=True)),
                    "every sensor polled after the last restart")
        rig.muted = True
        answered = {(s.name, n) for s in rig.sims for n in s.answers}
        must = answered - rig.may_be_lost
        if await until(lambda: must <= set(rig.delivered()), "every reading delivered", fail=False):
            depths = len(rig.health_depths)
            await until(lambda: any(d == 0 for d in rig.health_depths[depths:]), "the gateway's outbox empty")

        got = rig.delivered()
        missing = sorted(must - set(got))
        duplicates = sorted(k for k, n in got.items() if n > 1)
        strangers = sorted(set(got) - answered)
        lost_allowed = len(rig.may_be_lost - set(got))
        assert not missing, (f"readings lost by a kill right after a poll: {missing[:20]}; per sensor answered/"
                             f"delivered: {[(s.name, len(s.answers), sorted(n for d, n in got if d == s.name)) for s in rig.sims[:3]]}")
        assert not duplicates, f"readings delivered more than once: {duplicates[:20]}"
        assert not strangers, f"readings nobody reported: {strangers[:20]}"
        # not vacuous: only each sensor's last answer before a kill (and a READ answered while the gateway was
        # already dead) is exempt; everything else was required
        assert len(must) >= DEVICES * len(KILL_OFFSETS_MS)  # >= 1 per sensor and kill: each polled twice
        print(f"{len(answered)} readings answered, {sum(got.values())} delivered, {len(must)} required; "
              f"{lost_allowed} of {len(rig.may_be_lost)} last-before-kill readings lost; "
              f"{rig.raw_batches} batches received, {len(rig.batches)} distinct")
    finally:
        if rig.gw is not None and rig.gw.returncode is None:
            rig.gw.terminate()
            await rig.gw.wait()
        sub.loop_stop()
        sub.disconnect()
        for s in rig.sims:
            await s.close()
        for link in rig.links:
            await link.close()
