"""A UART bus object: owns one serial port for one point-to-point sensor (ESPHome style).

The port is opened with pyserial (which configures baud rate and raw mode), then read without pyserial's
``select()`` (unusable above fd 1024): the fd is non-blocking and the event loop calls us when it is
readable (``loop.add_reader``). Every chunk read goes to ``on_data``. Writes go straight to the fd, and
what the kernel does not take at once is queued and flushed when the fd is writable.

When the port fails (read error, EOF, the device node vanished with its USB adapter) the bus closes it,
counts ``uart_lost``, logs once, and a supervisor reopens it every ``reopen_s`` until it is back
(``uart_opened``). ``on_state_change(open)`` callbacks let the driver re-initialise its sensor.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
from collections.abc import Callable
from dataclasses import dataclass

import serial

from gateway.counters import Counters
from gateway.errors import BusError
from runtime.supervise import reap

READ_CHUNK = 4096
MAX_PENDING_WRITE = 64 * 1024


@dataclass(frozen=True, slots=True)
class UartSettings:
    """What a UART bus needs; ``gateway.config.BusConfig`` (kind "uart") has the same fields."""

    name: str
    port: str
    baudrate: int = 9600
    reopen_s: float = 1.0


class UartBus:
    kind = "uart"

    def __init__(self, cfg: UartSettings, *, on_data: Callable[[bytes], None] | None = None,
                 counters: Counters | None = None,
                 log: logging.Logger | logging.LoggerAdapter | None = None) -> None:
        self.cfg = cfg
        self.name = cfg.name
        self.on_data = on_data
        self.counters = counters if counters is not None else Counters()
        self.log = log or logging.getLogger("dozor.gateway.uart")
        self.on_state_change: list[Callable[[bool], None]] = []
        self.devices: list[str] = []
        self._ser: serial.Serial | None = None
        self._fd = -1
        self._loop: asyncio.AbstractEventLoop | None = None
        self._out = bytearray()
        self._writer_on = False
        self._wake = asyncio.Event()
        self._supervisor: asyncio.Task | None = None
        self._closed = False
        self._was_open = False

    def register(self, device_id: str) -> None:
        self.devices.append(device_id)

    @property
    def connected(self) -> bool:
        return self._fd >= 0

    # ------------------------------------------------------------ lifecycle
    async def start(self) -> UartBus:
        self._loop = asyncio.get_running_loop()
        self._closed = False
        if not self._open():
            self.counters.inc("uart_open_failed")
            self.log.warning("uart %s: cannot open %s yet; retrying every %.1fs", self.name, self.cfg.port,
                             self.cfg.reopen_s)
        self._supervisor = asyncio.create_task(self._supervise(), name=f"uart {self.name}")
        return self

    async def close(self) -> None:
        self._closed = True
        if self._supervisor is not None:
            await reap(self._supervisor)
            self._supervisor = None
        self._drop_port()

    async def __aenter__(self) -> UartBus:
        return await self.start()

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    def _open(self) -> bool:
        assert self._loop is not None
        if self.connected:
            return True
        try:
            ser = serial.Serial(self.cfg.port, baudrate=self.cfg.baudrate, timeout=0, write_timeout=0)
        except (serial.SerialException, OSError, ValueError) as exc:
            self.log.debug("uart %s: cannot open %s: %s", self.name, self.cfg.port, exc)
            self._note(False)
            return False
        self._ser = ser
        self._fd = ser.fd
        os.set_blocking(self._fd, False)
        with contextlib.suppress(serial.SerialException, OSError):
            ser.reset_input_buffer()  # stale bytes from before we owned the port
        self._loop.add_reader(self._fd, self._on_readable)
        self._note(True)
        return True

    def _drop_port(self) -> None:
        if self._fd >= 0 and self._loop is not None:
            self._loop.remove_reader(self._fd)
            if self._writer_on:
                self._loop.remove_writer(self._fd)
        self._writer_on = False
        self._out.clear()
        if self._ser is not None:
            with contextlib.suppress(Exception):
                self._ser.close()
        self._ser = None
        self._fd = -1

    def _lost(self, why: str) -> None:
        self._drop_port()
        self.log.warning("uart %s: port %s lost (%s); reopening every %.1fs", self.name, self.cfg.port, why,
                         self.cfg.reopen_s)
        self._note(False)
        self._wake.set()

    def _note(self, ok: bool) -> None:
        if ok == self._was_open:
            return
        self._was_open = ok
        if ok:
            self.counters.inc("uart_opened")
            self.log.info("uart %s: port %s open", self.name, self.cfg.port)
        else:
            self.counters.inc("uart_lost")
        for cb in list(self.on_state_change):
            try:
                cb(ok)
            except Exception:
                self.counters.inc("uart_callback_errors")
                self.log.exception("uart %s: state callback failed", self.name)

    async def _supervise(self) -> None:
        while not self._closed:
            # an open port is woken by _lost() (or a write to a closed port); only a closed one polls to reopen
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), None if self.connected else self.cfg.reopen_s)
            self._wake.clear()
            if not self.connected and not self._closed:
                await asyncio.sleep(0)  # let a vanished device node settle before retrying
                self._open()

    # ------------------------------------------------------------ I/O
    def _on_readable(self) -> None:
        try:
            data = os.read(self._fd, READ_CHUNK)
        except (BlockingIOError, InterruptedError):
            return
        except OSError as exc:
            self.counters.inc("uart_read_errors")
            self._lost(f"read: {exc.strerror or exc}")
            return
        if not data:
            self._lost("end of file")
            return
        self.counters.inc("uart_rx_bytes", len(data))
        if self.on_data is None:
            self.counters.inc("uart_rx_unclaimed_bytes", len(data))
            return
        try:
            self.on_data(data)
        except Exception:  # a driver bug must not kill the reader
            self.counters.inc("uart_handler_errors")
            self.log.exception("uart %s: data handler failed", self.name)

    def write(self, data: bytes) -> None:
        """Queue bytes for the device. Raises BusError("unreachable") while the port is closed."""
        if not self.connected:
            self._wake.set()
            raise BusError("unreachable", f"uart {self.name}: port {self.cfg.port} is not open")
        if len(self._out) + len(data) > MAX_PENDING_WRITE:
            self.counters.inc("uart_tx_overflow")
            raise BusError("overflow", f"uart {self.name}: {len(self._out)} bytes already waiting")
        self._out += data
        self._flush()

    def _flush(self) -> None:
        while self._out and self._fd >= 0:
            try:
                n = os.write(self._fd, self._out)
            except (BlockingIOError, InterruptedError):
                break
            except OSError as exc:
                self.counters.inc("uart_write_errors")
                self._lost(f"write: {exc.strerror or exc}")
                return
            self.counters.inc("uart_tx_bytes", n)
            del self._out[:n]
        assert self._loop is not None
        if self._fd < 0:
            return
        if self._out and not self._writer_on:
            self._loop.add_writer(self._fd, self._flush)
            self._writer_on = True
        elif not self._out and self._writer_on:
            self._loop.remove_writer(self._fd)
            self._writer_on = False
