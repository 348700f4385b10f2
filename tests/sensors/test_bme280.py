"""BME280 driver against the simulated chip through the I2C protocol smbus2 offers."""

from __future__ import annotations

from contract.codecs import bme280 as bme
from contract.models import DeviceKind, DeviceState
from gateway.counters import Counters
from gateway.devices.sensors.bme280 import Bme280Driver
from simulators.sensors import Climate, SimBme280
from tests.sensors.helpers import Sink, device, wait_until


def driver(chip, sink, counters=None, **over):
    opts = {"address": 0x76, "interval_s": 0.02, **over}
    return Bme280Driver(device("bme280", dev_id="climate-1", bus=None, **opts), i2c=chip, sink=sink,
                        counters=counters)


def expected(c: Climate) -> dict[str, float]:
    """What the datasheet compensation of the chip's raw values gives (the simulator picks raws by bisection)."""
    raw = bme.raw_for(bme.EXAMPLE_CALIBRATION, c.temperature, c.pressure, c.humidity)
    return bme.compensate(bme.EXAMPLE_CALIBRATION, raw).metrics()


async def test_forced_measurements_are_compensated():
    chip, sink = SimBme280(climate=Climate(21.5, 101325.0, 48.0), measuring_polls=2), Sink()
    drv = driver(chip, sink)
    await drv.start()
    try:
        await wait_until(lambda: len(sink.readings) >= 3, "readings")
        assert (await drv.status()).state is DeviceState.IDLE
    finally:
        await drv.close()
    want = expected(Climate(21.5, 101325.0, 48.0))
    assert abs(want["temperature"] - 21.5) <= 0.01 and abs(want["pressure"] - 101325.0) < 2
    assert abs(want["humidity"] - 48.0) < 0.01
    for r in sink.readings:
        assert r.kind is DeviceKind.BME280 and r.device == "climate-1" and r.metrics == want
    assert chip.counters["measurements"] >= 3
    assert drv.stats["measure_timeout"] == 0


async def test_nacks_detach_and_wrong_chip_are_counted_and_recovered():
    chip, sink, counters = SimBme280(), Sink(), Counters()
    drv = driver(chip, sink, counters)
    await drv.start()
    try:
        await wait_until(lambda: len(sink.readings) >= 1, "first reading")
        chip.nack_next(2)
        await wait_until(lambda: drv.stats["i2c_error"] >= 1, "nack counted")
        n = len(sink.readings)
        await wait_until(lambda: len(sink.readings) > n, "recovered after nacks")
        chip.detach()
        await wait_until(lambda: not drv.up, "chip gone")
        assert (await drv.status()).state is DeviceState.UNREACHABLE
        chip.regs[bme.REG_CHIP_ID] = 0x58  # a BMP280 plugged in instead
        chip.attach()
        await wait_until(lambda: drv.stats["bad_chip_id"] >= 1, "wrong chip id")
        chip.regs[bme.REG_CHIP_ID] = bme.CHIP_ID
        n = len(sink.readings)
        await wait_until(lambda: len(sink.readings) >= n + 2, "recovered after re-attach")
    finally:
        await drv.close()
    assert counters.get("climate-1.i2c_error") == drv.stats["i2c_error"] >= 2
    assert counters.get("climate-1.bad_chip_id") >= 1


async def test_measurement_that_never_finishes_and_skipped_values():
    chip, sink = SimBme280(measuring_polls=10_000), Sink()
    drv = driver(chip, sink)
    await drv.start()
    try:
        await wait_until(lambda: drv.stats["measure_timeout"] >= 1, "timeout counted")
        assert not sink.readings
        chip.measuring_polls = 0
        await wait_until(lambda: len(sink.readings) >= 1, "readings again")
    finally:
        await drv.close()

    class Skipping(SimBme280):
        def write_byte_data(self, i2c_addr, register, value):
            super().write_byte_data(i2c_addr, register, value)
            if register == bme.REG_CTRL_MEAS:
                self.regs[bme.REG_DATA:bme.REG_DATA + 3] = b"\x80\x00\x00"  # pressure "not measured"

    sink2 = Sink()
    drv = driver(Skipping(), sink2)
    await drv.start()
    try:
        await wait_until(lambda: drv.stats["skipped_value"] >= 2, "skipped values counted")
    finally:
        await drv.close()
    assert not sink2.readings
