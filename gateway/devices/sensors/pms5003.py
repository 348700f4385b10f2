"""Plantower PMS5003 dust sensor on its own UART (9600 8N1), in passive or active mode.

On every port open the driver sets the mode and wakes the sensor; frames during the following
``warmup_s`` are discarded (``warmup_discarded``: the fan must settle). Passive mode: one read
command every ``interval_s``, each answer is one reading (an unanswered read counts ``no_response``).
Active mode: the sensor streams a frame about every second; the mean over each ``interval_s`` is one
reading. Readings carry the atmospheric-environment values ``pm1_0``, ``pm2_5``, ``pm10`` (ug/m3).

Config keys: ``mode`` ("passive" | "active"), ``interval_s`` (60), ``warmup_s`` (30), ``stale_s``.
"""

from __future__ import annotations

import asyncio
from typing import Any, Literal

from pydantic import Field

from contract.codecs import pms5003 as pms
from contract.models import DeviceKind
from gateway.devices.base import register_driver
from gateway.devices.sensors._base import SensorOptions, UartSensor


class Options(SensorOptions):
    mode: Literal["passive", "active"] = "passive"
    interval_s: float = Field(default=60.0, gt=0, le=86400)
    warmup_s: float = Field(default=30.0, ge=0, le=600)


@register_driver
class Pms5003Driver(UartSensor[pms.Data | pms.CommandAck]):
    kind = DeviceKind.PMS5003
    options_model = Options
    options: Options
    baudrate = 9600

    def __init__(self, cfg: Any, **kw: Any) -> None:
        super().__init__(cfg, **kw)
        self.warm_until = 0.0
        self.samples: list[pms.Data] = []
        self.awaiting = False

    decode = staticmethod(pms.decode)

    def stale_after_s(self) -> float:
        o = self.options
        return o.stale_s or (o.interval_s * 2 + o.warmup_s + 5.0)

    def on_port(self, is_open: bool) -> None:
        if is_open:
            mode = pms.passive_mode() if self.options.mode == "passive" else pms.active_mode()
            self.send(pms.encode_command(pms.wake()))
            self.send(pms.encode_command(mode))
            self.warm_until = asyncio.get_running_loop().time() + self.options.warmup_s
            self.awaiting = False
            self.samples.clear()

    def on_frame(self, frame: pms.Data | pms.CommandAck, now: float) -> None:
        self.last_good = now
        if isinstance(frame, pms.CommandAck):
            self.stats["command_acks"] += 1
            return
        if now < self.warm_until:
            self.stats["warmup_discarded"] += 1
            return
        if self.options.mode == "passive":
            if not self.awaiting:
                self.stats["unrequested_frames"] += 1  # still streaming (mode not yet switched): not a reading
                return
            self.awaiting = False
            self.emit(frame.metrics())
        else:
            self.samples.append(frame)

    def _flush_active(self) -> None:
        if not self.samples:
            self.stats["interval_without_samples"] += 1
            return
        n = len(self.samples)
        each = [s.metrics() for s in self.samples]
        metrics = {k: round(sum(m[k] for m in each) / n, 1) for k in ("pm1_0", "pm2_5", "pm10")}
        self.samples.clear()
        self.emit(metrics)

    async def run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            await asyncio.sleep(self.options.interval_s)
            await self.settle()
            if loop.time() < self.warm_until or not self.uart.connected:
                continue
            if self.options.mode == "active":
                self._flush_active()
            else:
                if self.awaiting:
                    self.stats["no_response"] += 1
                self.awaiting = self.send(pms.encode_command(pms.read()))
            self.sync_counters()
