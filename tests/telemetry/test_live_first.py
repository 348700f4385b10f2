"""Fresh data first: while a backlog drains at its paced rate, a live reading goes out at once, marked
``historical: false``; the backlog is marked ``historical: true``. And group commit: a reading is on disk
before the driver polls again (``stored()``), with no fixed flush tick. Real Mosquitto and subscriber."""

from __future__ import annotations

import pytest

from contract.models import DeviceKind, Reading
from gateway.outbox import Outbox
from gateway.telemetry import Telemetry, TelemetrySettings
from tests.sensors.helpers import wait_until
from tests.sensors.mqtt_rig import HubCounter, TestUplink, running

pytestmark = pytest.mark.integration
GW = "gw-test"
N = 120
SLOW_DRAIN = TelemetrySettings(flush_s=5.0, max_batch_items=10, rate=10, burst=10, retry_min_s=0.05,
                               retry_max_s=0.3)


def reading(i: int) -> Reading:
    return Reading(device="pm-1", kind=DeviceKind.SDS011, ts=1_700_000_000 + i, metrics={"pm10": float(i)})


async def test_a_live_reading_overtakes_a_draining_backlog(mosquitto, tmp_path):
    hub = HubCounter(mosquitto.port)
    with Outbox(tmp_path / "outbox.db", synchronous="NORMAL") as outbox:
        tel = Telemetry(GW, outbox, state_dir=tmp_path, settings=SLOW_DRAIN)
        up = TestUplink(mosquitto.port, hub.ready, on_connected=tel.on_connected)
        tel.publish = up.publish  # raises "uplink down" until up.run() connects
        for i in range(N):  # stored while the link was down: 12 s of backlog at 10 readings/s
            tel.submit_reading(reading(i))
        async with running(hub.run(), tel.run()):
            await wait_until(lambda: outbox.depth == N, "the backlog stored")
            assert outbox.depth == N
            async with running(up.run()):
                await wait_until(lambda: len(hub.readings) >= 20, "the backlog started draining")
                tel.submit_reading(reading(1000))
                await tel.stored()  # on disk now: the flush_s of 5 s is no tick it waits for
                await wait_until(lambda: any(r.metrics["pm10"] == 1000 for r in hub.readings), "the live reading")
                backlog_sent = sum(1 for r in hub.readings if r.metrics["pm10"] < 1000)
                assert backlog_sent < N, "the live reading did not wait for the backlog"
                await wait_until(lambda: len(hub.readings) == N + 1, "everything", timeout=60)
    fresh = [hub.batches[k] for k in hub.order if any(r.metrics["pm10"] == 1000 for r in hub.batches[k].readings)]
    assert len(fresh) == 1 and fresh[0].historical is False and len(fresh[0].readings) == 1
    old = [r.metrics["pm10"] for k in hub.order if hub.batches[k].historical is True for r in hub.batches[k].readings]
    assert len(old) >= N - 20 and old == sorted(old)  # (a flush formed before the first connect keeps its mark)
    assert sorted(r.metrics["pm10"] for r in hub.readings) == [float(i) for i in range(N)] + [1000.0]
