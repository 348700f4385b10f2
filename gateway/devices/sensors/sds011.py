"""Nova SDS011 dust sensor on its own UART (9600 8N1), run in query mode with a duty cycle.

On every port open the driver sets query mode, and again whenever the sensor sends data nobody asked
for (it was power-cycled, or the command was lost on the line: counted ``mode_restored``). The
contract's ``DutyCycle`` decides when to wake the sensor, when the warm-up is over (measurements before
that are discarded and counted ``warmup_discarded``), when to query and when to put it back to sleep;
the mean of the samples of one cycle is one reading (``pm2_5``, ``pm10`` in ug/m3).

Config keys: ``interval_s`` (145), ``warmup_s`` (15), ``read_s`` (5), ``sample_s`` (1), ``device_id``
(the sensor's 16-bit id, or none for any), ``stale_s``.
"""

from __future__ import annotations

import asyncio
from typing import Any

from pydantic import Field

from contract.codecs import sds011 as sds
from contract.models import DeviceKind, DeviceState, DeviceStatus
from gateway.devices.base import register_driver
from gateway.devices.sensors._base import SensorOptions, UartSensor


class Options(SensorOptions):
    interval_s: float = Field(default=145.0, gt=0, le=86400)
    warmup_s: float = Field(default=15.0, ge=0, le=600)
    read_s: float = Field(default=5.0, gt=0, le=600)
    sample_s: float = Field(default=1.0, gt=0, le=60)
    device_id: int | None = Field(default=None, ge=0, le=0xFFFF)


@register_driver
class Sds011Driver(UartSensor[sds.Measurement | sds.Reply]):
    kind = DeviceKind.SDS011
    options_model = Options
    options: Options
    baudrate = 9600

    def __init__(self, cfg: Any, **kw: Any) -> None:
        super().__init__(cfg, **kw)
        o = self.options
        if o.warmup_s + o.read_s > o.interval_s:
            self.log.warning("sensor %s: warmup_s + read_s exceed interval_s; the sensor never sleeps", self.id)
        self.duty = sds.DutyCycle(interval_s=o.interval_s, warmup_s=o.warmup_s, read_s=o.read_s,
                                  sample_s=o.sample_s,
                                  device_id=sds.ALL_SENSORS if o.device_id is None else o.device_id,
                                  counters=self.stats)
        self.mode_lost = False
        self.last_cycle_ok = True
        self._empty_cycles = 0

    decode = staticmethod(sds.decode)

    def stale_after_s(self) -> float:
        o = self.options
        return o.stale_s or (o.interval_s + o.warmup_s + o.read_s + 5.0)

    async def status(self) -> DeviceStatus:
        st = await super().status()
        if st.state is DeviceState.IDLE and not self.last_cycle_ok:
            return DeviceStatus(id=self.id, state=DeviceState.UNREACHABLE, detail="no answer in the last cycle")
        return st

    def on_port(self, is_open: bool) -> None:
        if is_open:
            self.send(sds.encode_command(sds.set_query_mode(self.duty.device_id)))
            if self.duty.phase is not sds.Phase.SLEEPING:
                self.send(sds.encode_command(sds.work(self.duty.device_id)))

    def on_frame(self, frame: sds.Measurement | sds.Reply, now: float) -> None:
        if isinstance(frame, sds.Reply):
            self.stats["replies"] += 1
            self.last_good = now
            return
        if self.duty.phase is not sds.Phase.READING:
            self.mode_lost = True  # unrequested data: the sensor is in active mode (power cycle, lost command)
        if self.duty.on_measurement(now, frame):
            self.last_good = now

    async def run(self) -> None:
        loop = asyncio.get_running_loop()
        tick = min(0.2, self.options.sample_s / 2)
        while True:
            if self.mode_lost:
                self.mode_lost = False
                self.bump("mode_restored")
                self.send(sds.encode_command(sds.set_query_mode(self.duty.device_id)))
            for cmd in self.duty.poll(loop.time()):
                self.send(sds.encode_command(cmd))
            result = self.duty.take()
            if result is not None:
                self.emit(result.metrics())
                self.last_cycle_ok = True
            elif self.stats["cycle_without_samples"] != self._empty_cycles:
                self._empty_cycles = self.stats["cycle_without_samples"]
                self.last_cycle_ok = False
            self.sync_counters()
            await asyncio.sleep(tick)
            await self.settle()

