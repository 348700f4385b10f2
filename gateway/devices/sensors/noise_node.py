"""dozor noise / air node (MicroPython) on its own UART (115200 8N1), node_frame protocol.

Frames (``contract.codecs.node_frame``): LEVELS once a second -> a reading ``laeq``, ``lafmax``,
``la10``, ``la90`` (dB(A)), flagged ``clipped`` / ``siren_tonal``; EVENT (a pass-by) -> an event of kind
``noise_pass_by``; AIR -> a reading with whatever the node measured; STATUS -> the node's firmware version,
boot count and error bits, which the gateway reports: ``DeviceInfo.fw`` ("1.2") in its birth, and
``DeviceStatus.detail`` = ``"fw 1.2 boots 3 errors 0x0000"`` (``NodeStatus.detail()``) in every heartbeat, so
the hub's node registry can tell outdated and unhealthy nodes. When the reported firmware changes (the node
was reflashed, or its first STATUS arrives after the birth went out) the driver calls ``info_changed()`` and
the gateway re-publishes its birth (``node_fw_changes``). A changed boot count is a reboot (``node_reboots``).
Sequence numbers go through ``SeqTracker``: repeated frames are dropped (counted ``seq_duplicate``), gaps
counted ``seq_lost``, reboots ``seq_reset``; a frame that repeats the last sequence number with a different
body is a node that rebooted right after its first frame (``seq_reset``, kept), not a duplicate.

The node talks by itself; the gateway sends nothing. Config keys: ``stale_s`` (5).
"""

from __future__ import annotations

import asyncio
from typing import Any

from pydantic import Field

from contract.codecs import node_frame as nf
from contract.models import DeviceInfo, DeviceKind, DeviceState, DeviceStatus
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
        self._last_body: nf.Body | None = None

    decode = staticmethod(nf.decode)

    def info(self) -> DeviceInfo:
        base = super().info()
        return base if self.node is None else base.model_copy(update={"fw": self.node.fw})

    def on_frame(self, frame: nf.Frame, now: float) -> None:
        self.last_good = now
        body = frame.body
        if frame.seq == self.seq.last and body != self._last_body:
            self.stats["seq_reset"] += 1  # rebooted right after its first frame: same seq, new content
        elif self.seq.update(frame.seq) == "duplicate":
            return
        self._last_body = body
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
            old, self.node = self.node, body
            if old is not None and body.boot_count != old.boot_count:
                self.stats["node_reboots"] += 1
                self.log.warning("sensor %s: node rebooted (boot %d)", self.id, body.boot_count)
            if old is None or old.fw != body.fw:
                if old is not None:
                    self.stats["node_fw_changes"] += 1
                    self.log.warning("sensor %s: node firmware %s -> %s", self.id, old.fw, body.fw)
                self.info_changed()

    async def run(self) -> None:
        await asyncio.Event().wait()  # everything happens in on_frame

    async def status(self) -> DeviceStatus:
        st = await super().status()
        if self.node is None:
            return st
        detail = self.node.detail() if st.detail is None else f"{st.detail}; last {self.node.detail()}"
        if st.state is DeviceState.IDLE and self.node.error_bits:
            return DeviceStatus(id=self.id, state=DeviceState.FAULT, faults=(f"error_bits:{self.node.error_bits:#06x}",),
                                detail=detail)
        return st.model_copy(update={"detail": detail})
