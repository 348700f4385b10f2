"""dozor noise / air node (MicroPython) on its own UART (115200 8N1), node_frame protocol.

Frames (``contract.codecs.node_frame``): LEVELS once a second -> a reading ``laeq``, ``lafmax``,
``la10``, ``la90`` (dB(A)), flagged ``clipped`` / ``siren_tonal``; EVENT (a pass-by) -> an event of kind
``noise_pass_by``; AIR -> a reading with whatever the node measured; STATUS -> kept for ``status()`` and
logged when the node rebooted. Sequence numbers go through ``SeqTracker``: repeated frames are dropped
(counted ``seq_duplicate``), gaps counted ``seq_lost``, reboots ``seq_reset``.

The node talks by itself; the gateway sends nothing. Config keys: ``stale_s`` (5).
"""

from __future__ import annotations

import asyncio
from typing import Any

from pydantic import Field

from contract.codecs import node_frame as nf
from contract.models import DeviceKind, DeviceState, DeviceStatus
from gateway.devices.base import register_driver
from gateway.devices.sensors._base import SensorOptions, UartSensor


class Options(SensorOptions):
    stale_s: float | None = Field(default=5.0, gt=0, le=86400)


@register_driver
class NoiseNodeDriver(UartSensor[nf.Frame]):
    kind = DeviceKind.NOISE_NODE
    options_model = Options
    options: Options
    baudrate = 115200

    def __init__(self, cfg: Any, **kw: Any) -> None:
        super().__init__(cfg, **kw)
        self.seq = nf.SeqTracker(self.stats)
        self.node: nf.NodeStatus | None = None

    decode = staticmethod(nf.decode)

    def on_frame(self, frame: nf.Frame, now: float) -> None:
        self.last_good = now
        if self.seq.update(frame.seq) == "duplicate":
            return
        body = frame.body
        if isinstance(body, nf.Levels):
            flags = (("clipped",) if body.clipped else ()) + (("siren_tonal",) if body.siren_tonal else ())
            self.emit(body.metrics(), flags)
        elif isinstance(body, nf.NoiseEvent):
            ts = self.clock() - body.duration_ms / 1000.0
            self.emit_event("noise_pass_by", {
                "class": body.cls.name.lower(), "lafmax": body.lafmax, "laeq": body.laeq, "sel": body.sel,
                "duration_s": body.duration_ms / 1000.0, "node_start_ms": body.start_ms,
                "siren_suppressed": body.siren_suppressed, "clipped": body.clipped}, ts=ts)
        elif isinstance(body, nf.AirSample):
            metrics = body.metrics()
            if metrics:
                self.emit(metrics)
            else:
                self.stats["air_all_missing"] += 1
        elif isinstance(body, nf.NodeStatus):
            self.stats["node_status"] += 1
            if self.node is not None and body.boot_count != self.node.boot_count:
                self.log.warning("sensor %s: node rebooted (boot %d)", self.id, body.boot_count)
            self.node = body

    async def run(self) -> None:
        await asyncio.Event().wait()  # everything happens in on_frame

    async def status(self) -> DeviceStatus:
        st = await super().status()
        if st.state is DeviceState.IDLE and self.node is not None and self.node.error_bits:
            return DeviceStatus(id=self.id, state=DeviceState.FAULT, faults=(f"error_bits:{self.node.error_bits:#06x}",))
        return st
