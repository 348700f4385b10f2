"""Simulated Modbus RTU siren controllers, speaking contract/codecs/siren_modbus.py from the device side.

- ``SimSiren``: one controller's behaviour, no I/O and no timers. Its state is computed lazily from
  the time of the last command, so a thousand idle sirens cost nothing.
- ``SirenBus``: one RS-485 bus = one pymodbus ``ModbusSerialServer`` on a serial port (usually one end
  of a ``PtyLink``) answering for several unit ids.

Server API: pymodbus 3.16's new ``SimDevice``/``SimData`` datastore with an ``action`` callback (the
old ``ModbusDeviceContext``/``ModbusServerContext`` are deprecated there). The action refreshes the
status block before every read and executes the command block on every FC16 write. "Unresponsive"
units are silenced through the server's ``trace_packet`` hook (the response bytes are swallowed).
"""

from __future__ import annotations

import asyncio
import os
import time
from dataclasses import dataclass, field

import serial
from pymodbus.constants import ExcCodes
from pymodbus.server import ModbusSerialServer
from pymodbus.simulator import DataType, SimData, SimDevice

from contract.codecs import siren_modbus as sm
from contract.errors import DozorError

FC_READ_HOLDING = 3
FC_WRITE_MULTIPLE = 16
FRAME_GAP_S = 0.05  # RTU t3.5 is 2 ms at 19200 baud; scaled up for event-loop scheduling jitter


class SirenSimError(DozorError):
    pass


@dataclass(frozen=True, slots=True)
class Executed:
    """One command the controller executed (tests count activations with these)."""

    ts: float
    cmd: sm.Cmd
    pattern: sm.Pattern
    duration_s: int
    seq: int


@dataclass
class SimSiren:
    address: int
    spinup_s: float = 1.5
    selftest_s: float = 1.0
    battery_dv: int = 132
    fw: str = "1.4"
    faults: sm.Fault = sm.Fault(0)
    unresponsive: bool = False
    honour_duration: bool = True  # False simulates a controller whose own DURATION_S timer is broken
    log: list[Executed] = field(default_factory=list)
    rejected_writes: int = 0
    _cmd: sm.Cmd = sm.Cmd.NONE
    _pattern: sm.Pattern = sm.Pattern.NONE
    _t0: float = 0.0
    _duration: int = 0
    _seq: int = 0
    _selftest: int = 0

    # ------------------------------------------------------------ behaviour
    def execute(self, block: sm.CommandBlock, now: float | None = None) -> None:
        now = time.monotonic() if now is None else now
        self._settle(now)
        if block.cmd is sm.Cmd.ACTIVATE and (block.pattern is sm.Pattern.NONE
                                             or not 1 <= block.duration_s <= sm.MAX_DURATION_S):
            raise ValueError("bad activate block")
        self.log.append(Executed(time.time(), block.cmd, block.pattern, block.duration_s, block.seq))
        self._seq = block.seq
        if block.cmd is sm.Cmd.ACTIVATE:
            self._cmd, self._pattern, self._t0, self._duration = block.cmd, block.pattern, now, block.duration_s
        elif block.cmd is sm.Cmd.STOP:
            self._cmd = sm.Cmd.NONE
        elif block.cmd is sm.Cmd.SILENT_TEST:
            self._cmd, self._t0 = sm.Cmd.SILENT_TEST, now

    def _settle(self, now: float) -> None:
        """Finish whatever ended by itself (duration elapsed, silent test over)."""
        if self._cmd is sm.Cmd.ACTIVATE and self.honour_duration and now >= self._t0 + self.spinup_s + self._duration:
            self._cmd = sm.Cmd.NONE
        elif self._cmd is sm.Cmd.SILENT_TEST and now >= self._t0 + self.selftest_s:
            self._cmd = sm.Cmd.NONE
            self._selftest = 2 if self.faults & sm.Fault.AMPLIFIER else 1

    def status(self, now: float | None = None) -> sm.SirenStatus:
        now = time.monotonic() if now is None else now
        self._settle(now)
        remaining = 0
        if self._cmd is sm.Cmd.ACTIVATE:
            remaining = min(0xFFFF, max(0, round(self._t0 + self.spinup_s + self._duration - now)))
            if now < self._t0 + self.spinup_s:
                st = sm.Status.SPINNING_UP
            elif self.faults & sm.Fault.AMPLIFIER:
                st = sm.Status.FAULT
            else:
                st = sm.Status.SOUNDING
        elif self._cmd is sm.Cmd.SILENT_TEST:
            st = sm.Status.SILENT_TEST
        else:
            st = sm.Status.IDLE
        battery = self.battery_dv if not self.faults & sm.Fault.BATTERY_LOW else min(self.battery_dv, 110)
        return sm.SirenStatus(st, self.faults, battery / 10.0, remaining, self._seq, self._selftest, self.fw)

    @property
    def sounding(self) -> bool:
        return self.status().status is sm.Status.SOUNDING

    @property
    def activations(self) -> int:
        return sum(1 for e in self.log if e.cmd is sm.Cmd.ACTIVATE)

    def inject_fault(self, fault: sm.Fault) -> None:
        self.faults |= fault

    def clear_fault(self, fault: sm.Fault | None = None) -> None:
        self.faults = sm.Fault(0) if fault is None else self.faults & ~fault

    # ------------------------------------------------------------ Modbus side
    async def modbus_action(self, function_code: int, start_address: int, address: int, count: int,
                            registers: list[int], set_values: list[int] | list[bool] | None
                            ) -> ExcCodes | None:
        """pymodbus SimDevice action: runs before the server reads or writes the registers."""
        if function_code == FC_WRITE_MULTIPLE:
            if address != sm.CMD_BLOCK_ADDR or count != 4 or set_values is None:
                self.rejected_writes += 1
                return ExcCodes.ILLEGAL_ADDRESS
            try:
                self.execute(sm.decode_command([int(v) for v in set_values]))
            except ValueError:
                self.rejected_writes += 1
                return ExcCodes.ILLEGAL_VALUE
            return None
        if function_code == FC_READ_HOLDING:
            off = sm.STATUS_BLOCK_ADDR - start_address
            registers[off:off + sm.STATUS_BLOCK_LEN] = sm.encode_status(self.status())
            return None
        self.rejected_writes += 1
        return ExcCodes.ILLEGAL_FUNCTION

    def sim_device(self) -> SimDevice:
        return SimDevice(
            id=self.address,
            simdata=[
                SimData(sm.CMD_BLOCK_ADDR, count=4, values=0, datatype=DataType.REGISTERS),
                SimData(sm.STATUS_BLOCK_ADDR, count=sm.STATUS_BLOCK_LEN, values=0,
                        datatype=DataType.REGISTERS),
            ],
            action=self.modbus_action,
        )


def _select_free_reads(transport: object) -> None:
    """pyserial's ``read`` uses select(), which fails for fds >= 1024 ("filedescriptor out of range"),
    i.e. as soon as one process holds a few hundred ports. pymodbus reads only when epoll says the fd
    is readable and the fd is non-blocking, so a plain ``os.read`` is equivalent; errors become
    SerialException so the transport closes cleanly (e.g. when the port vanishes)."""
    ser = getattr(transport, "sync_serial", None)
    if ser is None or getattr(ser, "fd", None) is None:
        return
    fd = ser.fd

    def read(size: int = 1) -> bytes:
        try:
            return os.read(fd, size)
        except (BlockingIOError, InterruptedError):
            return b""
        except OSError as exc:
            raise serial.SerialException(f"read failed: {exc}") from None

    ser.read = read


class _Server(ModbusSerialServer):
    """pymodbus' serial server with two device-like fixes on every (re)opened port: select-free reads,
    and the RTU inter-frame silence rule (a partial frame followed by silence is discarded, as a real
    controller does after t3.5), which pymodbus' server lacks, so line garbage cannot wedge the bus."""

    gap_s = FRAME_GAP_S
    resyncs = 0

    def callback_new_connection(self):
        handler = super().callback_new_connection()
        made, received = handler.connection_made, handler.data_received
        last = [0.0]

        def connection_made(transport) -> None:
            _select_free_reads(transport)
            made(transport)

        def data_received(data: bytes) -> None:
            now = time.monotonic()
            if handler.recv_buffer and now - last[0] > self.gap_s:
                handler.recv_buffer = b""
                self.resyncs += 1
            last[0] = now
            received(data)

        handler.connection_made = connection_made
        handler.data_received = data_received
        return handler


class SirenBus:
    """Several siren controllers sharing one RS-485 line (one serial port, different unit ids)."""

    def __init__(self, port: str, sirens: list[SimSiren], *, baudrate: int = 19200) -> None:
        if not sirens:
            raise SirenSimError("a bus needs at least one siren")
        ids = [s.address for s in sirens]
        if len(set(ids)) != len(ids) or not all(1 <= i <= 247 for i in ids):
            raise SirenSimError(f"unit ids must be unique and 1..247, got {ids}")
        self.port = port
        self.baudrate = baudrate
        self.sirens = {s.address: s for s in sirens}
        self._server: ModbusSerialServer | None = None

    def _trace_packet(self, sending: bool, data: bytes) -> bytes:
        if sending and data:
            siren = self.sirens.get(data[0])
            if siren is not None and siren.unresponsive:
                return b""
        return data

    async def start(self) -> SirenBus:
        self._server = _Server(
            [s.sim_device() for s in self.sirens.values()],
            port=self.port, baudrate=self.baudrate, timeout=1, reconnect_delay=0.2,
            ignore_missing_devices=True, trace_packet=self._trace_packet,
        )
        try:
            await self._server.serve_forever(background=True)
        except RuntimeError as exc:
            self._server = None
            raise SirenSimError(f"cannot serve sirens on {self.port}: {exc}") from None
        return self

    @property
    def resyncs(self) -> int:
        """Partial frames discarded after line silence (garbage on the bus)."""
        return self._server.resyncs if self._server is not None else 0

    async def close(self) -> None:
        if self._server is not None:
            await self._server.shutdown()
            self._server = None

    async def __aenter__(self) -> SirenBus:
        return await self.start()

    async def __aexit__(self, *exc: object) -> None:
        await self.close()


async def _main(args: list[str] | None = None) -> None:  # `python -m simulators.siren PORT [N]`
    import sys

    argv = sys.argv[1:] if args is None else args
    port, n = argv[0], int(argv[1]) if len(argv) > 1 else 1
    async with SirenBus(port, [SimSiren(address=i + 1) for i in range(n)]):
        await asyncio.Event().wait()


if __name__ == "__main__":
    asyncio.run(_main())
