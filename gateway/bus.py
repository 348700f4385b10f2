"""A bus object owns one serial port; device drivers register with it (ESPHome style).

``ModbusBus`` wraps pymodbus' ``AsyncModbusSerialClient``: one request in flight at a time (a FIFO
lock), pymodbus errors converted to ``BusError`` at this boundary, and a supervisor that keeps
reopening the port when it vanishes (USB adapter pulled) while requests fail fast as ``unreachable``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
from collections.abc import Callable
from typing import TYPE_CHECKING

import serial

from gateway.config import BusConfig
from gateway.counters import Counters
from gateway.errors import BusError
from runtime.supervise import reap

if TYPE_CHECKING:  # pymodbus is imported only by gateways that have a Modbus bus (footprint on a Pi)
    from pymodbus.client import AsyncModbusSerialClient


def _pymodbus():
    from pymodbus.client import AsyncModbusSerialClient
    from pymodbus.exceptions import ModbusException

    return AsyncModbusSerialClient, ModbusException

# pymodbus logs every unanswered request at ERROR with a frame dump; the gateway counts and reports
# these itself (per bus and per device), so its own logger stays quiet unless something is broken.
CONNECT_TIMEOUT_S = 10.0

logging.getLogger("pymodbus").setLevel(logging.CRITICAL)
logging.getLogger("pymodbus.logging").setLevel(logging.CRITICAL)


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


class ModbusBus:
    kind = "modbus"

    def __init__(self, cfg: BusConfig, *, counters: Counters | None = None,
                 log: logging.LoggerAdapter | logging.Logger | None = None) -> None:
        self.cfg = cfg
        self.name = cfg.name
        self.counters = counters or Counters()
        self.log = log or logging.getLogger("dozor.gateway.bus")
        self._lock = asyncio.Lock()
        self._client: AsyncModbusSerialClient | None = None
        self._supervisor: asyncio.Task | None = None
        self._wake = asyncio.Event()
        self._closed = False
        self.devices: list[str] = []
        self.on_state_change: list[Callable[[bool], None]] = []
        self._was_connected = False

    def register(self, device_id: str) -> None:
        self.devices.append(device_id)

    @property
    def connected(self) -> bool:
        return self._client is not None and self._client.connected

    # ------------------------------------------------------------ lifecycle
    async def start(self) -> ModbusBus:
        await self._open()
        self._supervisor = asyncio.create_task(self._supervise(), name=f"bus {self.name}")
        return self

    async def close(self) -> None:
        self._closed = True
        if self._supervisor is not None:
            await reap(self._supervisor)
        if self._client is not None:
            self._client.close()
            self._client = None

    async def __aenter__(self) -> ModbusBus:
        return await self.start()

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def _open(self) -> bool:
        if self._client is not None:
            self._client.close()
            self._client = None
        if not os.path.exists(self.cfg.port):  # noqa: ASYNC240 - a stat of a device node
            self._note(False)
            return False
        AsyncModbusSerialClient, ModbusException = _pymodbus()
        client = AsyncModbusSerialClient(self.cfg.port, baudrate=self.cfg.baudrate, timeout=self.cfg.timeout_s,
                                         retries=0, reconnect_delay=0, name=f"bus-{self.name}")
        # pymodbus uses its request timeout for connect too. A connect that times out while the loop is
        # busy leaves an orphaned transport holding the port's exclusive lock, and every later reopen
        # fails; opening a local port does not block, so give the open itself a generous timeout.
        params = client.ctx.comm_params
        params.timeout_connect = CONNECT_TIMEOUT_S
        try:
            ok = await client.connect()
        except (OSError, ModbusException) as exc:
            self.log.debug("bus %s: cannot open %s: %s", self.name, self.cfg.port, exc)
            ok = False
        finally:
            params.timeout_connect = self.cfg.timeout_s
        if ok:
            _select_free_reads(client.ctx.transport)
            self._client = client
        else:
            client.close()
        self._note(ok)
        return ok

    def _note(self, ok: bool) -> None:
        if ok != self._was_connected:
            self._was_connected = ok
            if ok:
                self.counters.inc("bus_opened")
                self.log.info("bus %s: port %s open", self.name, self.cfg.port)
            else:
                self.counters.inc("bus_lost")
                self.log.warning("bus %s: port %s unavailable; devices unreachable, retrying every %.1fs",
                                 self.name, self.cfg.port, self.cfg.reopen_s)
            for cb in self.on_state_change:
                cb(ok)

    async def _supervise(self) -> None:
        """Reopen a lost port every reopen_s; while the port is fine, sleep until a request finds it gone."""
        while not self._closed:
            if self.connected:
                await self._wake.wait()
            else:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), self.cfg.reopen_s)
            self._wake.clear()
            if not self.connected:
                async with self._lock:
                    if not self.connected:
                        await self._open()

    # ------------------------------------------------------------ requests
    def _require(self) -> AsyncModbusSerialClient:
        client = self._client
        if client is None or not client.connected:
            self._note(False)
            self._wake.set()
            raise BusError("unreachable", f"bus {self.name}: port {self.cfg.port} is not open")
        return client

    async def read_holding(self, unit: int, address: int, count: int) -> list[int]:
        async with self._lock:
            client = self._require()
            try:
                rr = await client.read_holding_registers(address, count=count, device_id=unit)
            except _pymodbus()[1] as exc:
                self.counters.inc("bus_no_response")
                raise BusError("unreachable", f"unit {unit}: {type(exc).__name__}") from None
            except (OSError, asyncio.InvalidStateError) as exc:
                self.counters.inc("bus_io_error")
                raise BusError("unreachable", f"unit {unit}: {exc}") from None
        if rr.isError():
            self.counters.inc("bus_exception_response")
            raise BusError("exception", f"unit {unit}: {rr}")
        if len(rr.registers) != count:
            self.counters.inc("bus_bad_response")
            raise BusError("bad_response", f"unit {unit}: {len(rr.registers)} registers, wanted {count}")
        return list(rr.registers)

    async def write_registers(self, unit: int, address: int, values: list[int]) -> None:
        async with self._lock:
            client = self._require()
            try:
                rr = await client.write_registers(address, values, device_id=unit)
            except _pymodbus()[1] as exc:
                self.counters.inc("bus_no_response")
                raise BusError("unreachable", f"unit {unit}: {type(exc).__name__}") from None
            except (OSError, asyncio.InvalidStateError) as exc:
                self.counters.inc("bus_io_error")
                raise BusError("unreachable", f"unit {unit}: {exc}") from None
        if rr.isError():
            self.counters.inc("bus_exception_response")
            raise BusError("exception", f"unit {unit}: {rr}")


def make_bus(cfg: BusConfig, **kw) -> ModbusBus:
    if cfg.kind == "modbus":
        return ModbusBus(cfg, **kw)
    raise BusError("unsupported", f"bus kind {cfg.kind!r} has no driver here")

# Note: simulators/siren.py carries the same _select_free_reads workaround for its side of the cable. The
# gateway and the simulators are peers that never import each other, and the contract does no I/O, so the
# twelve lines stay in both places rather than in a shared I/O layer the design does not have.
