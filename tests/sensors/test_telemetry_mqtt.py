"""The telemetry pipeline against a real Mosquitto and a real subscriber: produced == received, exactly,
across a broker restart mid-stream and across a gateway crash between PUBACK and the outbox ack."""

from __future__ import annotations

import asyncio

import pytest

from contract.models import DeviceKind, Reading
from gateway.counters import Counters
from gateway.outbox import Outbox
from gateway.telemetry import Telemetry, TelemetrySettings
from tests.sensors.helpers import wait_until
from tests.sensors.mqtt_rig import HubCounter, TestUplink, running

pytestmark = pytest.mark.integration
GW = "gw-test"
FAST = TelemetrySettings(flush_s=0.05, max_batch_items=25, rate=2000, burst=100, retry_min_s=0.05,
                         retry_max_s=0.3, publish_timeout_s=5)


def reading(i: int) -> Reading:
    return Reading(device="pm-1", kind=DeviceKind.SDS011, ts=1_700_000_000 + i, metrics={"pm2_5": 10.0 + i % 7,
                                                                                           "pm10": float(i)})


async def test_produced_equals_received_across_a_broker_restart(mosquitto, tmp_path):
    hub = HubCounter(mosquitto.port)
    counters = Counters()
    with Outbox(tmp_path / "outbox.db", synchronous="NORMAL") as outbox:
        tel = Telemetry(GW, outbox, state_dir=tmp_path, counters=counters, settings=FAST)
        up = TestUplink(mosquitto.port, hub.ready, on_connected=tel.on_connected)
        tel.publish = up.publish
        n, events = 400, 8
        async with running(hub.run(), up.run(), tel.run()):
            restart = None
            for i in range(n):
                assert tel.submit_reading(reading(i))
                if i % 50 == 25:
                    tel.submit_event("noise-1", "noise_pass_by", 1_700_000_000 + i, {"class": "exhaust", "i": i})
                if i == n // 4:
                    await wait_until(lambda: len(hub.readings) > 0, "some readings went through")
                    # mid-stream: readings keep coming while the broker is away, a backlog builds up
                    restart = asyncio.create_task(asyncio.to_thread(mosquitto.restart, 0.3))
                await asyncio.sleep(0.003)
            assert restart is not None
            await restart
            await tel.stored()
            await wait_until(lambda: len(hub.readings) == n and len(hub.events) == events, "everything arrived",
                             timeout=30)
            await wait_until(lambda: outbox.depth == 0, "outbox empty")
    got = [int(r.metrics["pm10"]) for r in hub.readings]
    assert sorted(got) == list(range(n)) and len(got) == n, "every reading exactly once, duplicates removed"
    # fresh data first: live batches may overtake the backlog; within each kind the order is kept
    for historical in (True, False):
        part = [int(r.metrics["pm10"]) for k in hub.order if bool(hub.batches[k].historical) is historical
                for r in hub.batches[k].readings]
        assert part == sorted(part)
    assert all(hub.batches[k].historical is not None for k in hub.order)  # every batch says live or historical
    assert hub.mismatched_duplicates == 0 and hub.event_duplicates <= counters.get("telemetry_flush_retries")
    assert hub.duplicates <= counters.get("telemetry_batches_republished")  # every duplicate is a counted resend
    assert hub.connects >= 2 and up.connects >= 2, "the broker really restarted"
    assert counters.get("telemetry_publish_failed") >= 1
    assert counters.get("telemetry_accepted") == n and counters.get("telemetry_readings_published") >= n
    sessions = {key[1] for key in hub.order}
    assert sessions == {tel.session}
    seqs = [key[2] for key in hub.order]
    assert seqs == sorted(seqs) and len(set(seqs)) == len(seqs)
    assert all(len(hub.batches[k].readings) <= FAST.max_batch_items for k in hub.order)
    assert all(k[0] == GW for k in hub.order)


async def test_crash_between_puback_and_ack_resends_the_same_batch(mosquitto, tmp_path):
    """Power loss after the broker acked but before the outbox ack: the restarted pipeline re-sends the
    very same (session, seq) first, so the receiver can drop it; nothing is lost."""
    hub = HubCounter(mosquitto.port)
    n = 30
    async with running(hub.run()):
        await wait_until(hub.ready.is_set, "hub subscribed")
        outbox = Outbox(tmp_path / "outbox.db", synchronous="NORMAL")
        first = Telemetry(GW, outbox, state_dir=tmp_path, settings=FAST)
        up = TestUplink(mosquitto.port, hub.ready)
        frozen = asyncio.Event()

        async def publish_then_freeze(topic: str, payload: bytes, qos: int) -> None:
            await up.publish(topic, payload, qos)
            frozen.set()
            await asyncio.Event().wait()  # the process dies here: PUBACK received, outbox never acked

        first.publish = publish_then_freeze
        for i in range(n):
            first.submit_reading(reading(i))
        async with running(up.run()):
            await wait_until(lambda: up.client is not None, "uplink up")
            async with running(first.run()):
                await asyncio.wait_for(frozen.wait(), 10)
            await wait_until(lambda: len(hub.order) == 1, "the frozen batch reached the hub")
            outbox.close()  # like kill -9: the outbox keeps every un-acked item

            with Outbox(tmp_path / "outbox.db", synchronous="NORMAL") as outbox2:
                assert outbox2.depth == n
                counters = Counters()
                second = Telemetry(GW, outbox2, state_dir=tmp_path, settings=FAST, publish=up.publish,
                                   counters=counters)
                assert second.session == first.session + 1 and second.pending is not None
                async with running(second.run()):
                    await wait_until(lambda: len(hub.readings) == n and outbox2.depth == 0, "all readings")
    assert hub.duplicates == 1 and hub.mismatched_duplicates == 0
    assert counters.get("telemetry_pending_restored") == 1 and counters.get("telemetry_batches_republished") == 1
    assert [int(r.metrics["pm10"]) for r in hub.readings] == list(range(n))
    assert hub.order[0][1] == first.session and all(k[1] == second.session for k in hub.order[1:])
