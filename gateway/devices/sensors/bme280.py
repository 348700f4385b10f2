"""Bosch BME280 climate sensor on I2C: one forced measurement every ``interval_s``.

The driver talks to an ``I2C`` object (``read_i2c_block_data`` / ``write_byte_data``, what
``smbus2.SMBus`` offers; a simulator offers the same). On start, and again after any I2C error, it
checks the chip id (0x60), reads the calibration blocks and only then measures: ctrl_hum x1, ctrl_meas
x1/x1/forced, wait for the status "measuring" bit to clear, burst-read the 8 data bytes, compensate with
``contract.codecs.bme280``. Readings: ``temperature`` (degC), ``pressure`` (Pa), ``humidity`` (%RH).

Bad input is counted: ``i2c_error`` (NACK, bus gone), ``bad_chip_id``, ``measure_timeout``,
``skipped_value`` (the chip's 0x80000 / 0x8000 "not measured" codes). Every error re-initialises.

Config keys: ``i2c_bus`` (1, i.e. /dev/i2c-1), ``address`` (0x76 or 0x77), ``interval_s`` (60), ``stale_s``.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any, Literal

from pydantic import Field

from contract.codecs import bme280 as bme
from contract.models import DeviceKind
from gateway.devices.base import register_driver
from gateway.devices.sensors._base import I2C, SensorDriver, SensorOptions

MEASURE_POLLS = 20
MEASURE_POLL_S = 0.005
SKIPPED_20 = 0x80000
SKIPPED_16 = 0x8000


class Options(SensorOptions):
    i2c_bus: int = Field(default=1, ge=0, le=255)
    address: Literal[0x76, 0x77] = 0x76
    interval_s: float = Field(default=60.0, gt=0, le=86400)


def open_smbus(bus: int) -> I2C:
    """The real I2C bus on a Pi (``smbus2``, imported only when a BME280 is configured)."""
    from smbus2 import SMBus  # type: ignore[import-not-found]

    return SMBus(bus)


# Swappable: the simulated city points this at its simulated buses.
i2c_opener: Callable[[int], I2C] = open_smbus


@register_driver
class Bme280Driver(SensorDriver):
    kind = DeviceKind.BME280
    options_model = Options
    options: Options

    def __init__(self, cfg: Any, *, i2c: I2C | None = None, **kw: Any) -> None:
        super().__init__(cfg, **kw)
        self.i2c = i2c
        self.cal: bme.Calibration | None = None
        self.up = False

    def stale_after_s(self) -> float:
        return self.options.stale_s or (self.options.interval_s * 2 + 5.0)

    @property
    def transport_up(self) -> bool:
        return self.up

    async def _read(self, reg: int, n: int) -> bytes:
        assert self.i2c is not None
        data = await asyncio.to_thread(self.i2c.read_i2c_block_data, self.options.address, reg, n)
        if len(data) != n:
            raise OSError(f"short read: {len(data)} of {n} bytes from 0x{reg:02X}")
        return bytes(data)

    async def _write(self, reg: int, value: int) -> None:
        assert self.i2c is not None
        await asyncio.to_thread(self.i2c.write_byte_data, self.options.address, reg, value)

    async def _init(self) -> bool:
        if self.i2c is None:
            try:
                self.i2c = i2c_opener(self.options.i2c_bus)
            except (OSError, ImportError) as exc:
                self.bump("i2c_open_error")
                self.log.debug("sensor %s: cannot open i2c bus %d: %s", self.id, self.options.i2c_bus, exc)
                return False
        chip = (await self._read(bme.REG_CHIP_ID, 1))[0]
        if chip != bme.CHIP_ID:
            self.bump("bad_chip_id")
            self.log.warning("sensor %s: chip id 0x%02X at 0x%02X is not a BME280 (0x60)", self.id, chip,
                             self.options.address)
            return False
        a = await self._read(bme.REG_CALIB_A, bme.CALIB_A_LEN)
        b = await self._read(bme.REG_CALIB_B, bme.CALIB_B_LEN)
        self.cal = bme.Calibration.parse(a, b)
        return True

    async def measure(self) -> bme.Climate | None:
        """One forced measurement; None (counted) if the chip did not deliver one."""
        assert self.cal is not None
        await self._write(bme.REG_CTRL_HUM, bme.ctrl_hum(1))
        await self._write(bme.REG_CTRL_MEAS, bme.ctrl_meas(1, 1, bme.MODE_FORCED))
        for _ in range(MEASURE_POLLS):
            await asyncio.sleep(MEASURE_POLL_S)
            if not (await self._read(bme.REG_STATUS, 1))[0] & bme.STATUS_MEASURING:
                break
        else:
            self.bump("measure_timeout")
            return None
        raw = bme.parse_data(await self._read(bme.REG_DATA, bme.DATA_LEN))
        if raw.adc_t == SKIPPED_20 or raw.adc_p == SKIPPED_20 or raw.adc_h == SKIPPED_16:
            self.bump("skipped_value")
            return None
        return bme.compensate(self.cal, raw)

    async def run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            try:
                if self.cal is None and not await self._init():
                    self.up = False
                else:
                    climate = await self.measure()
                    self.up = True
                    if climate is not None:
                        self.stats["frames"] += 1
                        self.last_good = loop.time()
                        self.emit(climate.metrics())
            except OSError as exc:  # smbus2 raises OSError (e.g. errno 121, NACK) when the chip is gone
                if self.up or self.stats["i2c_error"] == 0:
                    self.log.warning("sensor %s: i2c error: %s; re-initialising", self.id, exc)
                self.bump("i2c_error")
                self.up = False
                self.cal = None
            except ValueError as exc:  # calibration or data block of the wrong shape
                self.bump("bad_payload")
                self.log.warning("sensor %s: bad data: %s", self.id, exc)
                self.cal = None
            self.sync_counters()
            await asyncio.sleep(self.options.interval_s)
            await self.settle()
