"""Pipeline intake (validation, flags, health, events) and drain control, on a real SQLite outbox.

The publish function here is an in-process recorder: these tests are about what enters the outbox and
how the drain is paced and paused. The MQTT end-to-end counts are in test_telemetry_mqtt.py.
"""

from __future__ import annotations

import asyncio
import json

from contract.codecs.validate import FLAG_HIGH_HUMIDITY, FLAG_OUT_OF_RANGE, FLAG_STUCK
from contract.models import DeviceKind, Event, Reading
from gateway.counters import Counters
from gateway.health import HealthProbe, cpu_temperature, run_health
from gateway.outbox import Outbox
from gateway.telemetry import Telemetry, TelemetrySettings
from tests.sensors.helpers import Recorder, wait_until

GW = "gw-test"
FAST = TelemetrySettings(flush_s=0.02, max_batch_items=50, rate=1000, burst=100, retry_min_s=0.02,
                         retry_max_s=0.1, stuck_repeats=3)


def r(device: str, kind: DeviceKind, ts: float, **metrics: float) -> Reading:
    return Reading(device=device, kind=kind, ts=ts, metrics=metrics)


async def test_validation_flags_and_rejections(tmp_path):
    rec, counters = Recorder(), Counters()
    with Outbox(tmp_path / "o.db", synchronous="NORMAL") as outbox:
        tel = Telemetry(GW, outbox, publish=rec.publish, counters=counters, settings=FAST)
        assert tel.submit_reading(r("pm-1", DeviceKind.SDS011, 1, pm2_5=12.0, pm10=20.0))
        assert tel.submit_reading(r("climate-1", DeviceKind.BME280, 2, temperature=9.0, humidity=81.0,
                                    pressure=100900.0))
        assert tel.submit_reading(r("pm-1", DeviceKind.SDS011, 3, pm2_5=13.0, pm10=2500.0))  # pm10 out of range
        assert not tel.submit_reading(r("pm-1", DeviceKind.SDS011, 4, pm2_5=-1.0))  # nothing valid left
        for i in range(3):
            tel.submit_reading(r("noise-1", DeviceKind.NOISE_NODE, 10 + i, laeq=55.5))
        assert tel.submit_event("noise-1", "noise_pass_by", 20, {"class": "exhaust"})
        assert tel.submit_event("noise-1", "x" * 100, 21, {}) is None  # kind too long: counted, refused
        async with _running(tel):
            await tel.stored()
            await wait_until(lambda: outbox.depth == 0, "drained")
    got = {(x.device, x.ts): x for x in rec.readings()}
    assert len(got) == 6
    assert got[("pm-1", 1)].flags == ()
    assert FLAG_HIGH_HUMIDITY in got[("pm-1", 3)].flags and FLAG_OUT_OF_RANGE in got[("pm-1", 3)].flags
    assert got[("pm-1", 3)].metrics == {"pm2_5": 13.0}
    assert FLAG_HIGH_HUMIDITY not in got[("climate-1", 2)].flags  # the flag is for PM readings only
    assert FLAG_STUCK in got[("noise-1", 12)].flags and FLAG_STUCK not in got[("noise-1", 10)].flags
    events = [Event.model_validate_json(p) for t, p in rec.sent if t.endswith("/event")]
    assert [(e.gateway, e.device, e.kind) for e in events] == [(GW, "noise-1", "noise_pass_by")]
    assert counters.get("telemetry_rejected") == 1 and counters.get("telemetry_bad_events") == 1
    assert counters.get("validate.out_of_range.pm10") == 1 and counters.get("validate.high_humidity") == 1
    assert counters.get("telemetry_accepted") == 6


async def test_one_batch_per_flush_pause_and_retry(tmp_path):
    rec, counters = Recorder(), Counters()
    with Outbox(tmp_path / "o.db", synchronous="NORMAL") as outbox:
        tel = Telemetry(GW, outbox, publish=rec.publish, state_dir=tmp_path, counters=counters, settings=FAST)
        async with _running(tel):
            for i in range(120):
                tel.submit_reading(r("pm-1", DeviceKind.SDS011, i, pm2_5=float(i % 9), pm10=float(i)))
            await wait_until(lambda: len(rec.readings()) == 120, "first lot")
            tel.pause()
            await asyncio.sleep(0)
            sent = len(rec.sent)
            for i in range(120, 150):
                tel.submit_reading(r("pm-1", DeviceKind.SDS011, i, pm2_5=1.0, pm10=float(i)))
            await tel.stored()
            await asyncio.sleep(FAST.flush_s * 5)
            assert len(rec.sent) == sent and outbox.depth == 30, "nothing leaves while paused"
            rec.fail = True
            tel.resume()
            await wait_until(lambda: counters.get("telemetry_publish_failed") >= 3, "failures counted")
            rec.fail = False
            tel.on_connected()
            await wait_until(lambda: outbox.depth == 0, "drained after the reconnect")
    batches = rec.batches()
    assert [int(x.metrics["pm10"]) for x in rec.readings()] == list(range(150))
    assert all(b.gateway == GW and b.session == tel.session and len(b.readings) <= 50 for b in batches)
    assert [b.seq for b in batches] == list(range(len(batches))), "a retried flush keeps its seq"
    with Outbox(tmp_path / "o.db") as again:  # the drain's state lives in the outbox (meta "telemetry")
        state = json.loads(again.get_meta("telemetry"))
    assert state == {"session": tel.session, "pending": None}


async def test_health_reading(tmp_path):
    zone = tmp_path / "thermal" / "thermal_zone0"
    zone.mkdir(parents=True)
    (zone / "type").write_text("cpu-thermal\n")
    (zone / "temp").write_text("48312\n")
    assert cpu_temperature(tmp_path / "thermal") == 48.312
    assert cpu_temperature(tmp_path / "nothing") is None
    rec, counters = Recorder(), Counters()
    with Outbox(tmp_path / "o.db", synchronous="NORMAL") as outbox:
        probe = HealthProbe(GW, tmp_path, outbox_stats=outbox.stats, uplink_up=lambda: False,
                            thermal_root=tmp_path / "thermal", counters=counters)
        tel = Telemetry(GW, outbox, publish=rec.publish, counters=counters, settings=FAST)
        health = asyncio.create_task(run_health(probe, tel.submit_reading, 3600, first_after_s=0))
        try:
            async with _running(tel):
                await wait_until(lambda: len(rec.readings()) == 1, "health reading")
                tel.submit_reading(Reading(device=GW, kind="health", ts=2, metrics={"x": float("nan"), "y": 1.0}))
                await wait_until(lambda: len(rec.readings()) == 2, "second health reading")
        finally:
            health.cancel()
    h, odd = rec.readings()
    assert odd.metrics == {"y": 1.0} and counters.get("validate.out_of_range.x") == 1
    assert h.kind == "health" and h.device == GW and h.flags == ()
    assert h.metrics["cpu_temp_c"] == 48.312 and h.metrics["uplink_up"] == 0.0
    assert h.metrics["disk_free_bytes"] > 0 and 0 < h.metrics["disk_free_pct"] <= 100
    assert {"load1", "outbox_depth", "outbox_oldest_age_s", "outbox_dropped"} <= set(h.metrics)


class _running:
    def __init__(self, tel: Telemetry) -> None:
        self.tel = tel

    async def __aenter__(self) -> None:
        self.task = asyncio.create_task(self.tel.run())

    async def __aexit__(self, *exc: object) -> None:
        self.task.cancel()
        await asyncio.gather(self.task, return_exceptions=True)


async def test_backlog_after_reconnect_is_paced_by_the_token_bucket(tmp_path):
    rec = Recorder()
    paced = TelemetrySettings(flush_s=0.01, max_batch_items=50, rate=4, burst=10, retry_min_s=0.01)
    with Outbox(tmp_path / "o.db", synchronous="NORMAL") as outbox:
        tel = Telemetry(GW, outbox, publish=rec.publish, settings=paced)
        tel.pause()  # the uplink is down: a backlog builds up
        async with _running(tel):
            for i in range(40):
                tel.submit_reading(r("pm-1", DeviceKind.SDS011, i, pm2_5=float(i % 9), pm10=float(i)))
            await tel.stored()
            assert outbox.depth == 40 and not rec.sent
            tel.on_connected()
            await wait_until(lambda: len(rec.batches()) >= 3, "paced batches")
    sizes = [len(b.readings) for b in rec.batches()]
    assert sizes[0] == 10, "a fresh bucket lets one burst go at once"
    assert all(n < 10 for n in sizes[1:3]), "then only what the rate refills"
    assert [int(x.metrics["pm10"]) for x in rec.readings()] == list(range(sum(sizes)))
