"""A microphone on a real gateway, over a real Mosquitto: levels and signed pass-by evidence reach the hub's
topics, the hub's retained zone state suppresses siren-time events, bad zone states are counted, and alert
commands are acked while the analysis is busy.

The microphone itself cannot exist here: a labelled scene from simulators.noise_scene plays through
``SceneMicrophone.stream_factory`` (the signature of sounddevice.InputStream), which the gateway's
``MicrophoneSource`` calls. Everything behind that boundary is the real gateway.
"""

from __future__ import annotations

import asyncio
import math
import stat
import threading
import time

import numpy as np
import pytest

from contract import command as cc
from contract.evidence import EVENT_KIND, EvidenceError, verify
from contract.models import AckStage, DeviceKind, ZoneStatus
from gateway.devices import microphone
from gateway.noise.detector import DetectorConfig
from gateway.noise.pipeline import AnalyzerConfig, NoiseAnalyzer, analyze_array
from simulators.noise_scene import SceneMicrophone
from tests.gateway.helpers import GW, SirenRig, sign
from tests.noise_gateway.helpers import (
    ONE_EXHAUST_SEED,
    SIREN_SEED,
    Hub,
    config,
    mic_toml,
    running,
    scene,
    wait_until,
    zone_state,
)

SPEED = 10.0  # the simulated microphone plays ten times faster than real time
METRICS = {"laeq", "lafmax", "la10", "la90", "clipped"}


def offline(sc, *, zone: bool):
    """The same analysis run directly on the whole scene: the oracle for what the gateway must deliver."""
    cfg = AnalyzerConfig(detector=DetectorConfig(distance_m=7.5))
    return analyze_array(sc.audio, cfg, block=4800, zone_intervals=[[-1e6, math.inf]] if zone else None)


async def play(gw, mic: SceneMicrophone, n_seconds: int, hub: Hub, device: str = "mic-1") -> None:
    """Wait until the scene was played, the input ran dry (the analyzer is closed, so every pending event
    is finished) and every per-second reading reached the hub."""
    await wait_until(mic.finished.is_set, "the scene played")
    await wait_until(lambda: gw.counters.get(f"{device}.input_errors") >= 1, "the input ran dry")
    await wait_until(lambda: len(hub.readings(device)) >= n_seconds, f"{n_seconds} readings at the hub")
    await wait_until(lambda: gw.outbox.depth == 0, "the outbox drained")


async def test_passby_evidence_verifies_with_the_key_in_the_birth_and_levels_arrive(tmp_path, mosquitto,
                                                                                   monkeypatch):
    sc = scene(ONE_EXHAUST_SEED, 24.0, exhaust=1)  # one loud exhaust, 103 dB(A) at 7.5 m, at 13.4 s
    truth = next(s for s in sc.sources if s["kind"].startswith("exhaust"))
    mic = SceneMicrophone(sc, speed=SPEED)
    monkeypatch.setattr(microphone, "stream_factory", mic.stream_factory)
    async with Hub(mosquitto.port) as hub, running(config(tmp_path, mosquitto.url)) as gw:
        await play(gw, mic, 24, hub)
        await wait_until(lambda: len(hub.events(EVENT_KIND)) >= 1, "the pass-by event at the hub")
        births = hub.births()
        events = hub.events(EVENT_KIND)
        status = {s.id: s for s in await gw.device_statuses()}["mic-1"]
        assert "events 1" in status.detail and "clock drift" in status.detail

    # the birth announces the evidence key; the key file is private
    assert births and births[-1].evidence_key
    key_file = tmp_path / "state" / "evidence-key"
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    pub = cc.public_key_from_b64(births[-1].evidence_key)
    assert {d.id: d.kind for d in births[-1].devices} == {"mic-1": DeviceKind.MICROPHONE}

    # exactly one pass-by, signed, and it verifies with the announced key only
    assert len(events) == 1
    ev = events[0]
    assert ev.gateway == GW and ev.device == "mic-1"
    record = verify(ev.data, {cc.key_id(pub): pub})
    assert record.klass == "exhaust" and record.enforcement and not record.suppressed
    assert record.gateway == GW and record.sensor.id == "mic-1" and record.location.lat == 50.4647
    assert record.signature is not None and record.signature.kid == cc.key_id(pub)
    tampered = {**ev.data, "levels": {**ev.data["levels"], "lafmax_7p5": 80.0}}
    with pytest.raises(EvidenceError, match="bad signature"):
        verify(tampered, {cc.key_id(pub): pub})

    # one reading per second of the scene, in order, none lost; the loudest second is the event's
    readings = hub.readings("mic-1")
    assert len(readings) == 24
    t0 = readings[0].ts
    assert [round(r.ts - t0, 3) for r in readings] == [float(i) for i in range(24)]
    assert all(r.kind is DeviceKind.MICROPHONE and set(r.metrics) == METRICS for r in readings)
    assert all(r.metrics["la90"] <= r.metrics["la10"] <= r.metrics["lafmax"] for r in readings)
    loudest = max(readings, key=lambda r: r.metrics["lafmax"])
    assert loudest.metrics["lafmax"] == pytest.approx(record.levels.lafmax, abs=0.01)
    assert record.start - t0 <= truth["t_peak"] <= record.end - t0
    assert abs(loudest.ts - t0 - truth["t_peak"]) <= 1.0
    # the gateway's analysis equals the offline analysis of the same scene
    seconds, expected = offline(sc, zone=False)
    assert [round(r.metrics["laeq"], 2) for r in readings] == [round(s.laeq, 2) for s in seconds]
    assert [(round(e.start, 1), e.klass) for e in expected] == [(round(record.start - t0, 1), record.klass)]
    assert gw.counters.get("mic-1.events") == 1 and gw.counters.get("mic-1.enforcement") == 1
    assert gw.counters.get("telemetry_bad_events") == 0 and gw.counters.get("mic-1.dropped_blocks") == 0


async def test_hub_zone_state_active_air_raid_suppresses_every_event_during_the_siren(tmp_path, mosquitto,
                                                                                      monkeypatch):
    # a civil-defence two-tone siren from 0.1 s to 20.9 s and two loud motorcycles passing during it
    sc = scene(SIREN_SEED, 24.0, exhaust=2, cd_siren=1.0)
    siren = next(s for s in sc.sources if s["kind"].startswith("cd_siren"))
    _, without_zone = offline(sc, zone=False)
    _, expected = offline(sc, zone=True)
    # the scene is a real test of the zone state: on its own the local detector does not suppress these
    assert any(not e.suppressed for e in without_zone)
    mic = SceneMicrophone(sc, speed=SPEED)
    monkeypatch.setattr(microphone, "stream_factory", mic.stream_factory)
    async with Hub(mosquitto.port) as hub:
        await hub.publish_zone(zone_state(7, ts=time.time() - 5), retain=True)  # as the hub does: retained
        async with running(config(tmp_path, mosquitto.url)) as gw:
            await play(gw, mic, 24, hub)
            # the outbox is empty once the broker PUBACKed; the subscriber gets the events just after
            await wait_until(lambda: len(hub.events(EVENT_KIND)) >= len(expected), "every event at the hub")
            events = hub.events(EVENT_KIND)
            dev = gw.devices["mic-1"]
            assert dev.zone is not None and dev.zone.version == 7
            assert gw.counters.get("zone_state_accepted") == 1

    readings = hub.readings("mic-1")
    assert len(readings) == 24  # nothing dropped
    t0 = readings[0].ts
    pub = cc.public_key_from_b64(hub.births()[-1].evidence_key)
    records = [verify(e.data, {cc.key_id(pub): pub}) for e in events]
    # every event the analysis found arrives, in order, and each one is suppressed by the zone state
    assert [round(r.start - t0, 1) for r in records] == [round(e.start, 1) for e in expected]
    assert len(records) == len(expected) >= 1
    # both motorcycles are inside the records (touching, both exhaust: one record since exhaust_blips)
    motos = [s for s in sc.sources if s["class"] == "exhaust"]
    assert len(motos) == 2 and all(any(r.start - t0 - 1 <= m["t_peak"] <= r.end - t0 + 1 for r in records)
                                   for m in motos)
    for r in records:
        assert siren["t_start"] < r.end - t0 and r.start - t0 < siren["t_end"]  # during the siren
        assert r.suppressed and "zone_state" in r.suppression
        assert not r.enforcement
    assert gw.counters.get("mic-1.suppressed") == len(records) and gw.counters.get("mic-1.enforcement") == 0


async def test_malformed_zone_states_are_counted_and_the_newest_version_wins(tmp_path, mosquitto, monkeypatch):
    mic = SceneMicrophone(scene(1, 2.0), speed=SPEED, plays=2)  # two microphones, each hears 2 s of street
    monkeypatch.setattr(microphone, "stream_factory", mic.stream_factory)
    cfg = config(tmp_path, mosquitto.url, mic_toml("mic-1"), mic_toml("mic-2"), heartbeat_s=0.5)
    async with running(cfg) as gw:
        async with Hub(mosquitto.port) as hub:
            bad = [b"not json", b'{"v": 1, "zone": "zone-1"}', b"\xff\xfe\x00", b'{"v":1}' + b" " * 300_000,
                   zone_state(5, zone="zone-2").to_bytes()]  # valid, but another zone's state on our topic
            for payload in bad:
                await hub.publish_zone(payload)
            await hub.publish_zone(b"")  # an empty message (what clears a retained state)
            await hub.publish_zone(zone_state(5))  # accepted
            await hub.publish_zone(zone_state(3, ZoneStatus.IDLE))  # older: ignored
            await hub.publish_zone(zone_state(5))  # the same version again: ignored
            await hub.publish_zone(zone_state(6, ZoneStatus.ALL_CLEAR))  # newer: accepted
            await wait_until(lambda: gw.counters.get("zone_state_accepted") == 2, "two accepted zone states")
            c = gw.counters
            assert (c.get("zone_state_malformed"), c.get("zone_state_wrong_zone"), c.get("zone_state_empty"),
                    c.get("zone_state_stale"), c.get("zone_state_repeats")) == (4, 1, 1, 1, 1)
            assert c.get("mqtt_handler_errors") == 0 and c.get("zone_state_errors") == 0
            # every microphone got the newest state, and its analyzer saw the siren interval open and close
            for dev_id in ("mic-1", "mic-2"):
                dev = gw.devices[dev_id]
                assert dev.zone is not None and dev.zone.version == 6 and dev.zone.status is ZoneStatus.ALL_CLEAR
                await wait_until(lambda d=dev: d.analyzer is not None and len(d.analyzer.suppressor.zone_intervals)
                                 == 1 and math.isfinite(d.analyzer.suppressor.zone_intervals[0][1]),
                                 f"{dev_id}: the zone interval applied to its analyzer")
            # the counts reach the hub in a heartbeat, and the gateway is still serving
            await wait_until(lambda: any(b'"zone_state_malformed":4' in p for t, p, _ in hub.messages
                                         if t.endswith("/heartbeat")), "a heartbeat with the counts")
            assert gw.uplink.connected.is_set()
            first_session = hub.births()[-1].session

        # after a broker restart (no persistence: subscriptions and retained messages are gone) the gateway
        # subscribes again on its new connection, so a newer state still reaches it
        await asyncio.to_thread(mosquitto.restart, 0.3)
        async with Hub(mosquitto.port) as hub:
            await wait_until(lambda: any(b.session > first_session for b in hub.births()), "re-birth")
            await hub.publish_zone(zone_state(9), retain=True)
            await wait_until(lambda: gw.counters.get("zone_state_accepted") == 3, "the state after the restart")
        assert gw.devices["mic-1"].zone.version == 9 and gw.devices["mic-2"].zone.version == 9


async def test_alert_command_is_acked_while_the_analysis_is_busy(tmp_path, mosquitto, monkeypatch):
    """The analysis runs in its own thread: while it is busy inside ``feed`` a signed command is still
    verified, driven and acked before it expires. (If the analysis ran on the event loop, the loop would
    stay blocked until the safety release below and the command would have expired.)"""
    busy, release = threading.Event(), threading.Event()
    inside = []
    original = NoiseAnalyzer.feed

    def heavy_feed(self, x):
        busy.set()
        inside.append(True)
        work = np.random.default_rng(0).standard_normal(200_000)
        while not release.is_set():  # a long analysis: CPU-bound numpy work until the test lets go
            np.sort(work)
        inside.pop()
        return original(self, x)

    monkeypatch.setattr(NoiseAnalyzer, "feed", heavy_feed)
    mic = SceneMicrophone(scene(2, 4.0), speed=1.0)
    monkeypatch.setattr(microphone, "stream_factory", mic.stream_factory)
    safety = threading.Timer(30.0, release.set)  # a broken gateway would hang here; this ends the test
    safety.start()
    try:
        async with SirenRig(tmp_path, 1) as rig:
            cfg = config(tmp_path, mosquitto.url, mic_toml(), buses={rig.name: str(rig.port)},
                         sirens=rig.devices())
            async with Hub(mosquitto.port) as hub, running(cfg) as gw:
                await wait_until(busy.is_set, "the analysis is busy")
                now = int(time.time())
                exp = now + 15
                token = sign(targets=("siren-1",), iat=now, exp=exp)
                jti = cc.peek(token)["jti"]
                await hub.send_command(token)
                await wait_until(lambda: any(a.stage is AckStage.SOUNDING for a, _ in hub.acks(jti)),
                                 "sounding ack", within=40.0)
                still_busy = bool(inside) and not release.is_set()
                acks = hub.acks(jti)
                release.set()
                await wait_until(lambda: len(hub.readings("mic-1")) >= 1, "the analysis goes on afterwards")
                assert gw.counters.get("cmd_accepted") == 1
    finally:
        release.set()
        safety.cancel()
    assert still_busy, "the ack must arrive while the analysis is still inside feed()"
    assert [a.stage for a, _ in acks][:2] == [AckStage.ACCEPTED, AckStage.SOUNDING]
    assert all(arrived < exp for _, arrived in acks)  # before the command expired
    assert rig.activations() == 1
