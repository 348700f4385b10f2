"""The engine's state machine, driven directly (no broker): ack ordering, stale acks, percentiles, pruning."""

from __future__ import annotations

import asyncio
import time

import pytest

from contract.command import token_sha256, verify_command
from contract.models import Ack, AckStage, DeviceInfo, DeviceKind, GatewayState
from hub.alerts import percentile
from hub.app import Hub
from hub.models import AlertRequest
from tests.hub.helpers import make_config


@pytest.fixture
async def hub(tmp_path):
    h = Hub(make_config(tmp_path, 1))  # never connected: commands are captured below instead
    sent: list[tuple[str, bytes]] = []
    h.engine.publish_nowait = lambda topic, payload, qos, retain: sent.append((topic, payload)) or True
    h.sent = sent
    for gw in ("gw-a", "gw-b"):
        h.registry.on_state(GatewayState(gateway=gw, state="online", session=1, ts=time.time(), devices=(
            DeviceInfo(id="siren-1", kind=DeviceKind.SIREN), DeviceInfo(id="spk-1", kind=DeviceKind.SPEAKER))))
    yield h
    await h.engine.close()
    h.store.close()


def claims_of(hub, gateway):
    return [verify_command(p, keys=hub.keys.verification_keys(), audience=gateway, now=time.time())
            for t, p in hub.sent if t.endswith(f"/{gateway}/cmd")]


def ack(gw, jti, stage, devices=(), reason=None, alert=None, token_sha=None):
    return Ack(gateway=gw, cmd=jti, alert=alert, stage=stage, devices=devices, reason=reason, ts=time.time(),
               token_sha256=token_sha)


def token_of(hub, jti):
    return next(token_sha256(p) for t, p in hub.sent if verify_command(
        p, keys=hub.keys.verification_keys(), audience=t.split("/")[3], now=time.time()).jti == jti)


async def test_ack_stages_never_regress_and_stale_acks_are_counted(hub):
    out = await hub.engine.start(AlertRequest(zones=["north"], signal="air-raid", mode="exercise"))
    alert = hub.engine.alerts[out.id]
    (cmd_a,), (cmd_b,) = claims_of(hub, "gw-a"), claims_of(hub, "gw-b")
    assert set(cmd_a.targets) == {"siren-1", "spk-1"}
    e = hub.engine
    e.on_ack(ack("gw-a", cmd_a.jti, AckStage.SOUNDING, ("siren-1",)))  # before accepted: still applies
    e.on_ack(ack("gw-a", cmd_a.jti, AckStage.ACCEPTED, ("siren-1", "spk-1")))  # late accepted: no regression
    assert alert.tracks[("gw-a", "siren-1")].state == "sounding"
    # a refusal naming a real command id, for a token the hub never signed (a forgery reusing the id): ignored
    e.on_ack(ack("gw-a", cmd_a.jti, AckStage.REJECTED, reason="bad_signature", token_sha="0" * 64))
    e.on_ack(ack("gw-a", cmd_a.jti, AckStage.REJECTED, reason="bad_signature"))
    assert alert.tracks[("gw-a", "spk-1")].state == "accepted"
    assert 'dozor_hub_acks_ignored_total{reason="rejection_of_other_token"} 2.0' in hub.metrics.render().decode()
    e.on_ack(ack("gw-a", cmd_a.jti, AckStage.REJECTED, reason="busy",
                 token_sha=token_of(hub, cmd_a.jti)))  # after confirmation: ignored
    assert alert.tracks[("gw-a", "siren-1")].state == "sounding"
    assert alert.tracks[("gw-a", "spk-1")].state == "rejected"  # a refusal covers all unconfirmed targets
    e.on_ack(ack("gw-b", cmd_b.jti, AckStage.FAILED, ("spk-1",), "fault:amplifier"))
    e.on_ack(ack("gw-b", cmd_b.jti, AckStage.DONE, ("spk-1",)))  # a failed device stays failed
    assert alert.tracks[("gw-b", "spk-1")].state == "failed"
    assert alert.tracks[("gw-b", "spk-1")].reason == "fault:amplifier"
    e.on_ack(ack("gw-b", cmd_a.jti, AckStage.SOUNDING, ("siren-1",)))  # someone else's command id
    e.on_ack(ack("gw-a", "no-such-command", AckStage.SOUNDING, ("siren-1",)))
    e.on_ack(ack("gw-a", cmd_a.jti, AckStage.PLAYING, ("ghost",)))
    await e.all_clear(out.id)
    e.on_ack(ack("gw-a", cmd_a.jti, AckStage.DONE, ("siren-1",)))  # the old phase's command
    text = hub.metrics.render().decode()
    for reason in ("wrong_gateway", "unknown_cmd", "unknown_device", "stale_phase"):
        assert f'dozor_hub_acks_ignored_total{{reason="{reason}"}} 1.0' in text
    assert alert.version == 2 and alert.history[0]["summary"]["failed"] == 2
    assert all(t.state == "pending" for t in alert.tracks.values())  # the all-clear is tracked afresh


async def test_commands_for_big_gateways_are_split_at_the_contract_limit(hub, tmp_path):
    hub.registry.on_state(GatewayState(gateway="gw-a", state="online", session=2, ts=time.time(), devices=tuple(
        DeviceInfo(id=f"s-{i}", kind=DeviceKind.SIREN) for i in range(300))))
    await hub.engine.start(AlertRequest(zones=["north"], signal="test", mode="exercise"))
    sizes = sorted(len(c.targets) for c in claims_of(hub, "gw-a"))
    assert sizes == [44, 256]


async def test_prune_moves_long_finished_alerts_out_of_memory_and_forgets_their_commands(hub):
    out = await hub.engine.start(AlertRequest(zones=["north"], signal="test", mode="exercise"))
    await hub.engine.cancel(out.id)
    alert = hub.engine.alerts[out.id]
    alert.tracking = False
    assert hub.engine.prune() == 0  # just finished: late acks may still come
    alert.updated_at -= hub.config.hub.finished_in_memory_s + 1
    assert hub.engine.prune() == 1 and not hub.engine._jti and not hub.engine._token
    assert out.id not in hub.engine.alerts and not hub.engine.holder  # memory holds only what is open
    assert hub.engine.get(out.id).status == "cancelled"  # still readable, from the store
    assert [a.id for a in hub.engine.list()] == [out.id]


async def test_silent_test_targets_only_devices_that_can_do_it(hub):
    out = await hub.engine.start(AlertRequest(zones=["north"], signal="silent-test", mode="exercise"))
    assert sorted(hub.engine.alerts[out.id].tracks) == [("gw-a", "siren-1"), ("gw-b", "siren-1")]
    assert [c.targets for c in claims_of(hub, "gw-a")] == [("siren-1",)]


def test_percentile_nearest_rank():
    values = [float(v) for v in range(1, 101)]
    assert percentile(values, 50) == 50 and percentile(values, 99) == 99 and percentile(values, 100) == 100
    assert percentile([7.0], 99) == 7.0 and percentile([], 50) is None


def test_a_big_phase_goes_out_in_doubling_steps_each_gateway_whole_and_once():
    """2,000 gateways go out in 5 steps (5 commits), not 80: 25, 100, 400, then SEND_CHUNK_MAX (800) gateways a
    step, so the signer process signs the next steps while the loop commits and sends one (pipelined)."""
    from hub.alerts.dispatch import SEND_CHUNK, SEND_CHUNK_GROWTH, SEND_CHUNK_MAX, DispatchMixin
    from hub.alerts.model import Track

    tracks = [Track(f"gw-{g:04d}", f"siren-{s}", "siren") for g in range(2000) for s in range(5)]
    chunks = DispatchMixin._chunks(tracks)
    gateways = [sorted({t.gateway for t in c}) for c in chunks]
    assert [len(g) for g in gateways] == [25, 100, 400, 800, 675]
    assert SEND_CHUNK == 25 and SEND_CHUNK_GROWTH == 4 and SEND_CHUNK_MAX == 800
    assert sorted(id(t) for c in chunks for t in c) == sorted(id(t) for t in tracks)  # each track once
    assert sum(len(g) for g in gateways) == len({gw for g in gateways for gw in g}) == 2000  # never split


async def test_device_rows_wait_while_a_phase_is_going_out_then_go_in_bounded_flushes(hub, monkeypatch):
    from hub.alerts import base

    out = await hub.engine.start(AlertRequest(zones=["north"], signal="test", mode="exercise"))
    alert = hub.engine.alerts[out.id]
    assert alert.dispatch_ms is None  # the phase task has not run its last step yet
    hub.engine.flush_queued()
    assert hub.store.load_alert(out.id) is not None and hub.store.load_devices(out.id) == []
    assert len(hub.store.load_commands(out.id, alert.phase_seq)) == 2  # commands are durable before they leave
    for _ in range(10):
        await asyncio.sleep(0)
    assert alert.dispatch_ms is not None
    assert len(alert.tracks) == 4
    monkeypatch.setattr(base, "DEVICE_ROWS_PER_FLUSH", 3)  # 3 rows per periodic flush: the rest stays queued
    hub.engine.flush_queued()
    assert len(hub.store.load_devices(out.id)) == 3 and hub.store.dirty
    hub.engine.flush_queued()
    assert len(hub.store.load_devices(out.id)) == 4 and not hub.store.dirty


async def test_the_alert_row_is_the_persisted_doc_with_its_targets_serialised_once(hub):
    import json

    out = await hub.engine.start(AlertRequest(zones=["north"], signal="test", mode="exercise"))
    alert = hub.engine.alerts[out.id]
    status, _, doc = alert.row()
    assert status == "active" and json.loads(doc) == json.loads(json.dumps(alert.persist_doc(), default=str))
    cached = alert.targets_json
    alert.attempt = 3  # a later save: a new doc, the same target list object
    assert json.loads(alert.row()[2])["attempt"] == 3 and alert.targets_json is cached
    hub.engine._flush()
    assert hub.store.load_alert(out.id)["targets"] == [[t.gateway, t.device, t.kind] for t in alert.tracks.values()]
