"""Siren driver: Modbus RTU controller (register map in contract/codecs/siren_modbus.py).

Activate = one FC16 of the command block, then read the status block right away and at short, growing
intervals only while it spins up, until it reads back SOUNDING (or FAULT, or the spin-up timeout).
"""

from __future__ import annotations

import asyncio

from contract.codecs import siren_modbus as sm
from contract.command import AssetRef
from contract.models import AckStage, DeviceKind, DeviceState, DeviceStatus, Signal
from gateway.config import SirenDevice
from gateway.devices.base import Device, register_driver
from gateway.errors import BusError, DeviceFailure

POLL_FIRST_S = 0.02
POLL_MAX_S = 0.25
SELFTEST_TIMEOUT_S = 30.0
WRITE_ATTEMPTS = 2


@register_driver
class SirenDriver(Device):
    kind = DeviceKind.SIREN
    cfg: SirenDevice

    def __init__(self, cfg: SirenDevice, **kw) -> None:
        super().__init__(cfg, **kw)
        self._seq = 0
        self.last: sm.SirenStatus | None = None

    # ------------------------------------------------------------ bus helpers
    def _next_seq(self) -> int:
        self._seq = (self._seq + 1) & 0xFFFF
        return self._seq

    async def _write(self, cmd: sm.Cmd, **kw) -> int:
        """One FC16 of the command block; a lost answer is retried (the block is idempotent: same seq)."""
        seq = self._next_seq()
        addr, regs = sm.encode_command(cmd, seq=seq, **kw)
        attempts = 0
        while True:
            try:
                await self.bus.write_registers(self.cfg.address, addr, regs)
                return seq
            except BusError as exc:
                attempts += 1
                if exc.reason != "unreachable" or attempts >= WRITE_ATTEMPTS or not self.bus.connected:
                    raise DeviceFailure("unreachable" if exc.reason == "unreachable" else f"bus_{exc.reason}",
                                        exc.detail) from None
                if self.counters is not None:
                    self.counters.inc("siren_write_retries")

    async def _read(self) -> sm.SirenStatus:
        regs = await self.bus.read_holding(self.cfg.address, sm.STATUS_BLOCK_ADDR, sm.STATUS_BLOCK_LEN)
        try:
            st = sm.decode_status(regs)
        except ValueError as exc:
            if self.counters is not None:
                self.counters.inc("siren_bad_status")
            raise BusError("bad_response", f"status block: {exc}") from None
        self.last = st
        return st

    async def _poll(self, seq: int, timeout_s: float, done) -> sm.SirenStatus:
        """Read the status block until ``done(status)`` is true for our command (seq echoed)."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout_s
        delay = POLL_FIRST_S
        last_err: BusError | None = None
        while True:
            try:
                st = await self._read()
                last_err = None
                if st.seq == seq and done(st):
                    return st
            except BusError as exc:
                last_err = exc
            if loop.time() >= deadline:
                if last_err is not None:
                    raise DeviceFailure("unreachable", last_err.detail)
                raise DeviceFailure("timeout", f"status still {self.last.status.name if self.last else '?'}")
            await asyncio.sleep(delay)
            delay = min(POLL_MAX_S, delay * 2)

    # ------------------------------------------------------------ driver API
    async def activate(self, signal: Signal, duration_s: int, alert: str | None,
                       asset: AssetRef | None = None) -> AckStage:
        pattern = sm.SIGNAL_PATTERN.get(signal)
        if pattern is None:
            raise DeviceFailure("unsupported", f"no siren pattern for {signal.value}")
        seq = await self._write(sm.Cmd.ACTIVATE, pattern=pattern, duration_s=min(duration_s, sm.MAX_DURATION_S))
        st = await self._poll(seq, self.cfg.spinup_timeout_s,
                              lambda s: s.status is not sm.Status.SPINNING_UP)
        if st.status is sm.Status.SOUNDING:
            return AckStage.SOUNDING
        if st.status is sm.Status.FAULT:
            names = st.fault_names
            raise DeviceFailure(f"fault:{names[0] if names else 'unknown'}", ",".join(names))
        raise DeviceFailure("not_sounding", f"controller reports {st.status.name}")

    async def stop(self) -> None:
        await self._write(sm.Cmd.STOP)

    async def silent_test(self) -> None:
        seq = await self._write(sm.Cmd.SILENT_TEST)
        st = await self._poll(seq, SELFTEST_TIMEOUT_S,
                              lambda s: s.status is not sm.Status.SILENT_TEST and s.selftest != 0)
        if st.selftest != 1:
            raise DeviceFailure("selftest_failed", ",".join(st.fault_names))

    async def status(self) -> DeviceStatus:
        try:
            st = await self._read()
        except BusError as exc:
            return DeviceStatus(id=self.id, state=DeviceState.UNREACHABLE, detail=exc.reason)
        return DeviceStatus(id=self.id, state=st.state, faults=st.fault_names)
