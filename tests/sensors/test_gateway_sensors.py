"""Sensors on a whole gateway: loaded from the TOML config by gateway.app, and real drivers feeding the
pipeline (stuck values from the simulator, the high-humidity flag from the BME280 next to the dust sensor)."""

from __future__ import annotations

import asyncio

from contract.codecs.validate import FLAG_HIGH_HUMIDITY, FLAG_STUCK
from contract.models import DeviceKind, DeviceState
from gateway.app import Gateway
from gateway.counters import Counters
from gateway.devices.sensors.bme280 import Bme280Driver
from gateway.devices.sensors.sds011 import Sds011Driver
from gateway.outbox import Outbox
from gateway.telemetry import Telemetry, TelemetrySettings
from simulators.sensors import Climate, SimBme280, SimNoiseNode, SimSds011
from tests.gateway.helpers import make_config
from tests.sensors.helpers import Recorder, device, uart_bus, wait_until


async def test_gateway_loads_sensor_devices_from_its_config(tmp_path, link):
    extra = (f'[[bus]]\nname = "uart-noise"\nport = "{link.a}"\nkind = "uart"\nbaudrate = 115200\nreopen_s = 0.05\n'
             '[[device]]\nid = "noise-1"\nkind = "noise_node"\nbus = "uart-noise"\nstale_s = 2\n'
             '[[device]]\nid = "climate-1"\nkind = "bme280"\naddress = 0x77\ninterval_s = 3600\n')
    cfg = make_config(tmp_path, extra=extra)
    async with SimNoiseNode(link.b, levels=(60.0, 70.0, 63.0, 52.0), period_s=0.02), Gateway(cfg) as gw:
        noise = gw.devices["noise-1"]
        assert noise.kind is DeviceKind.NOISE_NODE and noise.options.stale_s == 2
        assert noise.sink is gw.telemetry  # the gateway attached its pipeline to the sensor
        pipeline = asyncio.create_task(gw.telemetry.run())  # no uplink here: readings wait in the outbox
        try:
            await wait_until(lambda: gw.outbox.stats().depth >= 3, "noise readings in the gateway's outbox")
        finally:
            pipeline.cancel()
            await asyncio.gather(pipeline, return_exceptions=True)
        statuses = {s.id: s.state for s in await gw.device_statuses()}
        # no I2C bus on the test machine: counted, reported unreachable, no crash
        assert statuses == {"noise-1": DeviceState.IDLE, "climate-1": DeviceState.UNREACHABLE}
        assert gw.counters.get("climate-1.i2c_open_error") >= 1
        assert {d.id: d.kind for d in gw.birth(1).devices} == {"noise-1": DeviceKind.NOISE_NODE,
                                                              "climate-1": DeviceKind.BME280}


async def test_stuck_dust_sensor_and_high_humidity_flags(tmp_path, link):
    rec, counters = Recorder(), Counters()
    settings = TelemetrySettings(flush_s=0.02, stuck_repeats=3, retry_min_s=0.02)
    with Outbox(tmp_path / "o.db", synchronous="NORMAL") as outbox:
        tel = Telemetry("gw-test", outbox, publish=rec.publish, counters=counters, settings=settings)
        chip = SimBme280(climate=Climate(12.0, 99800.0, 88.0))
        climate = Bme280Driver(device("bme280", dev_id="climate-1", bus=None, interval_s=0.05), i2c=chip,
                               sink=tel, counters=counters)
        async with SimSds011(link.b, values=(30.0, 45.0), period_s=0.02) as sim:
            sim.stuck = (42.0, 58.0)  # the sensor repeats one value forever
            dust = Sds011Driver(device("sds011", dev_id="pm-1", interval_s=0.3, warmup_s=0.05, read_s=0.1,
                                       sample_s=0.03), bus=uart_bus(link.a), sink=tel, counters=counters)
            runner = asyncio.create_task(tel.run())
            try:
                await climate.start()
                await wait_until(lambda: climate.readings >= 1, "humidity known")
                await dust.start()
                await wait_until(lambda: sum(r.device == "pm-1" for r in rec.readings()) >= 4, "dust readings")
            finally:
                await dust.close()
                await climate.close()
                runner.cancel()
                await asyncio.gather(runner, return_exceptions=True)
    pm = [r for r in rec.readings() if r.device == "pm-1"]
    assert all(FLAG_HIGH_HUMIDITY in r.flags for r in pm)
    assert [FLAG_STUCK in r.flags for r in pm[:4]] == [False, False, True, True]
    assert all(r.metrics == {"pm2_5": 42.0, "pm10": 58.0} for r in pm)
    assert counters.get("validate.stuck") >= 2 and counters.get("validate.high_humidity") >= 4
