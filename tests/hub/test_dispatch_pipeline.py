"""A big phase goes out pipelined (hub/alerts/dispatch.py): the signer process (hub/signproc.py) signs step i+1
while the loop commits step i and writes it to the broker. What that must never change, on both backends:
every command is committed before it is published, each gateway gets one command per phase, a phase superseded
while its steps are being signed sends nothing more, a fenced leader sends nothing, and a dead signer process
costs speed, not commands."""

from __future__ import annotations

import asyncio
import gc
import os
import signal
import time

import pytest

from contract.command import verify_command
from contract.models import DeviceInfo, DeviceKind, GatewayState
from hub.alerts import AlertEngine
from hub.alerts.dispatch import SEND_CHUNK
from hub.alerts.signer import GcPause
from hub.config import HubSettings
from hub.keys import load_or_create
from hub.leader import Leadership
from hub.metrics import HubMetrics
from hub.models import AlertRequest
from hub.registry import Registry
from hub.repo.lease import Lease
from hub.sendfirst import SendFirst
from hub.store import Store
from hub.zones import Zones

GATEWAYS = 600  # steps of 25 (in the API call), then 100 and 400 (handed to the signer at once), then 75 gateways


class Rig:
    def __init__(self, backend, tmp_path) -> None:
        self.keys = load_or_create(tmp_path / "keys")
        self.metrics = HubMetrics()
        self.backend = backend
        self.store = Store(backend.open("hub", path=tmp_path / "hub.sqlite") if backend.kind == "sqlite"
                           else backend.open("hub"))
        self.reader = backend.open("hub", path=tmp_path / "hub.sqlite") if backend.kind == "sqlite" \
            else backend.open("hub")  # another connection: sees only what was committed
        self.registry = Registry(self.store, self.metrics)
        gws = [f"gw-{i:03d}" for i in range(GATEWAYS)]
        zones = Zones.from_list([{"id": "all", "gateways": gws}])
        settings = HubSettings(state_dir=tmp_path, confirm_deadline_s=60.0, max_retries=1)
        self.engine = AlertEngine(settings, self.keys, zones, self.registry, self.store, self._zone, self.metrics)
        self.sent: list[tuple[str, bytes, bool]] = []  # (gateway, token, its command row was committed)
        self.engine.publish_nowait = self.capture
        self.check_rows = True
        for gw in gws:
            self.registry.on_state(GatewayState(gateway=gw, state="online", session=1, ts=time.time(), devices=(
                DeviceInfo(id="siren-1", kind=DeviceKind.SIREN), DeviceInfo(id="siren-2", kind=DeviceKind.SIREN))))

    async def _zone(self, topic: str, payload: bytes, qos: int, retain: bool) -> bool:
        return True

    def capture(self, topic: str, payload: bytes, qos: int, retain: bool) -> bool:
        gw = topic.split("/")[-2]
        claims = verify_command(payload, keys=self.keys.verification_keys(), audience=gw, now=time.time())
        committed = not self.check_rows or bool(self.reader.query("SELECT 1 FROM commands WHERE jti=?",
                                                                  (claims.jti,)))
        self.sent.append((gw, payload, committed))
        return True

    def claims(self, alert_id: str | None = None):
        out = [verify_command(p, keys=self.keys.verification_keys(), audience=gw, now=time.time())
               for gw, p, _ in self.sent]
        return [c for c in out if alert_id is None or c.alert == alert_id]

    async def until_sent(self, alert_id: str) -> None:
        alert = self.engine.alerts[alert_id]
        for _ in range(3000):
            if alert.dispatch_ms is not None:
                return
            await asyncio.sleep(0.01)
        raise AssertionError(f"alert {alert_id} phase {alert.phase} never finished going out")

    async def close(self) -> None:
        await self.engine.close()
        self.store.close()
        self.reader.close()


def signer_failures(rig: Rig) -> float:
    return rig.metrics.registry.get_sample_value("dozor_hub_task_failures_total", {"task": "signer"}) or 0.0


@pytest.fixture
async def rig(state_backend, tmp_path):
    r = Rig(state_backend, tmp_path)
    await r.engine.signer.start(r.keys.private, r.keys.kid)
    yield r
    await r.close()


async def test_every_command_is_committed_before_it_is_published_and_each_gateway_gets_one(rig):
    out = await rig.engine.start(AlertRequest(zones=["all"], signal="air-raid", mode="exercise"))
    assert len(rig.sent) == SEND_CHUNK  # the first step leaves inside the API call
    await rig.until_sent(out.id)
    claims = rig.claims(out.id)
    assert sorted(c.aud for c in claims) == [f"gw-{i:03d}" for i in range(GATEWAYS)]  # one each, none twice
    assert all(c.targets == ("siren-1", "siren-2") for c in claims)
    assert all(committed for _, _, committed in rig.sent)  # durable before it left: a failover knows its acks
    assert len({c.jti for c in claims}) == GATEWAYS
    rows = rig.store.load_commands(out.id, 1)
    assert {r["jti"] for r in rows} == {c.jti for c in claims}
    assert all(r["targets"] == ["siren-1", "siren-2"] for r in rows)
    assert signer_failures(rig) == 0  # signed by the process, not on the loop


async def test_a_phase_superseded_while_its_steps_are_signed_sends_nothing_more(rig):
    out = await rig.engine.start(AlertRequest(zones=["all"], signal="air-raid", mode="exercise"))
    first = len(rig.sent)
    await rig.engine.stop(out.id)  # before the activate phase's later steps come back from the signer
    await rig.until_sent(out.id)
    # an ordering barrier, not a wait: the signer is one worker taking batches in order, so once this one is
    # signed every dropped step's signatures have come back; a few loop turns let their callbacks run
    await rig.engine.signer.submit(rig.keys.private, rig.keys.kid, [b"barrier"])
    for _ in range(10):
        await asyncio.sleep(0)
    claims = rig.claims(out.id)
    acts = [c.act.value for c in claims]
    assert acts[:first] == ["activate"] * first and acts[first:] == ["stop"] * GATEWAYS  # never activate after
    assert sorted(c.aud for c in claims if c.act.value == "stop") == [f"gw-{i:03d}" for i in range(GATEWAYS)]
    known = set(rig.engine._jti)
    assert {c.jti for c in claims} <= known  # every command on the wire can be acked
    rig.engine._flush()
    stored = {r["jti"] for seq in (1, 2) for r in rig.store.load_commands(out.id, seq)}
    assert stored == {c.jti for c in claims}  # nothing recorded that never left


async def test_a_fenced_leader_sends_nothing_from_the_pipelined_steps(rig):
    now = [time.monotonic()]
    leader = Leadership(rig.store.db, 30.0)
    leader.lease = Lease(rig.store.db, "hub", leader.holder, ttl_s=30.0, mono=lambda: now[0])
    assert leader.lease.acquire()
    rig.engine.publish_nowait = leader.fence_nowait(rig.capture)
    fenced = []
    leader.on_fenced = lambda: fenced.append(1)
    out = await rig.engine.start(AlertRequest(zones=["all"], signal="air-raid", mode="exercise"))
    assert len(rig.sent) == SEND_CHUNK
    now[0] += 60.0  # paused past its lease: from here on it may not send
    await rig.until_sent(out.id)
    assert len(rig.sent) == SEND_CHUNK and len(fenced) == GATEWAYS - SEND_CHUNK


async def test_a_dead_signer_process_costs_speed_not_commands(rig):
    started = rig.engine.signer.started
    os.kill(rig.engine.signer.pid, signal.SIGKILL)
    out = await rig.engine.start(AlertRequest(zones=["all"], signal="air-raid", mode="exercise"))
    await rig.until_sent(out.id)
    assert sorted(c.aud for c in rig.claims(out.id)) == [f"gw-{i:03d}" for i in range(GATEWAYS)]
    assert signer_failures(rig) >= 1  # counted (and logged once)
    rig.sent.clear()  # the next big phase starts a new signer process
    await rig.engine.stop(out.id)
    await rig.until_sent(out.id)
    assert sorted(c.aud for c in rig.claims(out.id)) == [f"gw-{i:03d}" for i in range(GATEWAYS)]
    assert rig.engine.signer.started == started + 1


async def test_a_step_whose_signing_was_cancelled_is_signed_on_the_loop(rig):
    """Closing the worker (a new key, or another step's failure) cancels steps still queued for it (two phases in
    flight can have more than one): such a step is signed on the loop and sent, and the phase task goes on."""
    out = await rig.engine.start(AlertRequest(zones=["all"], signal="air-raid", mode="exercise"))
    await rig.until_sent(out.id)
    alert = rig.engine.alerts[out.id]
    rig.sent.clear()
    batch = rig.engine._prepare(alert, list(alert.tracks.values())[:40])
    cancelled: asyncio.Future[list[bytes]] = asyncio.get_running_loop().create_future()
    cancelled.cancel()
    await rig.engine._land(batch, cancelled)
    assert sorted(c.aud for c in rig.claims(out.id)) == [f"gw-{i:03d}" for i in range(20)]  # 2 sirens each
    assert signer_failures(rig) == 0  # a cancellation is not the worker's failure


def test_the_collector_is_held_off_only_while_a_hold_lasts():
    was = gc.isenabled()
    gc.enable()
    try:
        pause = GcPause(max_s=60.0)
        a, b = pause.hold(), pause.hold()
        assert not gc.isenabled()
        a()
        a()  # idempotent
        assert not gc.isenabled() and pause.holds == 1
        b()
        assert gc.isenabled() and pause.holds == 0
        stale = GcPause(max_s=0.0)
        forgotten = stale.hold()  # a phase task that never ended
        stale.expire()
        assert gc.isenabled() and stale.holds == 0
        forgotten()  # a late release does not disturb later holds
        c = stale.hold()
        forgotten()
        assert stale.holds == 1
        c()
        gc.disable()  # someone else's choice is left alone
        pause.hold()()
        assert not gc.isenabled()
    finally:
        (gc.enable if was else gc.disable)()


SIGNER_HOST = """
import asyncio, sys
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from hub.signproc import SignerProcess

async def main():
    signer = SignerProcess()
    await signer.start(Ed25519PrivateKey.generate(), "kid")
    print(signer.pid, flush=True)
    await asyncio.sleep(600)

if __name__ == "__main__":
    asyncio.run(main())
"""


def test_the_signer_process_does_not_outlive_a_killed_hub(tmp_path):
    import subprocess
    import sys
    from pathlib import Path

    script = tmp_path / "host.py"
    script.write_text(SIGNER_HOST)
    root = Path(__file__).resolve().parents[2]
    host = subprocess.Popen([sys.executable, str(script)], stdout=subprocess.PIPE, text=True, cwd=root,
                            env={**os.environ, "PYTHONPATH": str(root)})
    try:
        worker = int(host.stdout.readline().split()[0])
        os.kill(worker, 0)  # it runs
        host.send_signal(signal.SIGKILL)  # no shutdown, no atexit: as `kill -9` of a hub
        host.wait(10)
        for _ in range(600):
            try:
                os.kill(worker, 0)
            except ProcessLookupError:
                return
            time.sleep(0.05)
        os.kill(worker, signal.SIGKILL)
        raise AssertionError("the signer process outlived its hub")
    finally:
        if host.poll() is None:
            host.kill()
            host.wait(10)


async def test_gateway_messages_that_arrive_while_a_phase_goes_out_wait_for_its_last_command(rig):
    """hub/sendfirst.py wired into the engine: each gateway 'acks' as soon as its command is published; those
    messages are handled only after the phase's last command is out, all of them, in arrival order."""
    events: list[tuple[str, str]] = []
    gate = SendFirst(lambda topic, _payload: events.append(("handled", topic)),
                     max_wait_s=3600.0)  # the time bound has its own test (test_sendfirst.py); here: the holds
    rig.engine.send_first = gate
    capture = rig.capture

    def capture_and_ack(topic: str, payload: bytes, qos: int, retain: bool) -> bool:
        ok = capture(topic, payload, qos, retain)
        gw = topic.split("/")[-2]
        events.append(("sent", gw))
        if not gate.offer(gw, b"ack"):
            events.append(("handled", gw))
        return ok

    rig.engine.publish_nowait = capture_and_ack
    out = await rig.engine.start(AlertRequest(zones=["all"], signal="air-raid", mode="exercise"))
    await rig.until_sent(out.id)
    for _ in range(3000):
        if sum(1 for kind, _ in events if kind == "handled") == GATEWAYS:
            break
        await asyncio.sleep(0.01)
    sent = [gw for kind, gw in events if kind == "sent"]
    handled = [gw for kind, gw in events if kind == "handled"]
    assert len(sent) == GATEWAYS
    assert handled == sent  # every one, in arrival order
    last_sent = max(i for i, (kind, _) in enumerate(events) if kind == "sent")
    first_handled = min(i for i, (kind, _) in enumerate(events) if kind == "handled")
    assert first_handled > last_sent  # not one of them before the phase's last command
    assert gate.deferred == GATEWAYS and gate.overflow == 0 and not gate.busy


async def test_devices_taken_by_a_higher_alert_while_a_step_is_stored_get_no_command_of_the_lower(rig):
    """The recheck after a step's commit (``DispatchMixin._land``): an alert that takes the devices while the
    step is being stored wins them; none of that step's commands of the lower alert leaves."""
    store, started = rig.engine.store, []
    original = store.flush_off_loop

    async def flush_then_take(**kw):
        if not started and len(rig.sent) >= SEND_CHUNK:  # the second step is being stored: a higher alert now
            started.append(await rig.engine.start(AlertRequest(zones=["all"], signal="radiation", mode="exercise")))
        return await original(**kw)

    store.flush_off_loop = flush_then_take
    raid = await rig.engine.start(AlertRequest(zones=["all"], signal="air-raid", mode="exercise"))
    for _ in range(3000):
        if started and rig.engine.alerts[raid.id].dispatch_ms is not None:
            break
        await asyncio.sleep(0.01)
    assert started, "the second step was never stored"
    await rig.until_sent(started[0].id)
    claims = rig.claims()
    raid_gws = [c.aud for c in claims if c.alert == raid.id]
    assert len(raid_gws) == SEND_CHUNK  # only the first step, which left before the higher alert came
    assert sorted(c.aud for c in claims if c.alert == started[0].id) == [f"gw-{i:03d}" for i in range(GATEWAYS)]
    assert rig.metrics.registry.get_sample_value("dozor_hub_commands_withheld_total") > 0
