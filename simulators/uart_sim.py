"""The device side of a simulated UART sensor: port handling (reopen when the cable comes back), frame sending and
the fault injection every UART sim shares (see ``simulators/sensors.py`` for the devices and the fault list).
Split from ``simulators/sensors.py`` so each stays one sitting's read."""

from __future__ import annotations

import asyncio
import contextlib
import errno
import logging
import os
import random
from collections import Counter
from typing import Any, Generic, TypeVar

import serial

from contract.codecs.validate import Counters as CodecCounters
from contract.codecs.validate import FrameStream
from contract.errors import DozorError

log = logging.getLogger("dozor.sim.sensors")
C = TypeVar("C")


class SensorSimError(DozorError):
    pass


class UartDeviceSim(Generic[C]):
    """A device on one serial port: sends frames (with faults), decodes host commands, reopens the port."""

    baudrate = 9600

    def __init__(self, port: str, *, reopen_s: float = 0.05, seed: int | None = None) -> None:
        self.port = port
        self.reopen_s = reopen_s
        self.rng = random.Random(seed)
        self.counters: Counter[str] = Counter()
        self.codec_counters = CodecCounters()
        self.commands: list[C] = []
        self.stuck: Any = None  # when set, every measurement repeats this value
        self.powered = True
        self._ser: serial.Serial | None = None
        self._fd = -1
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stream: FrameStream[C] | None = None
        self._tasks: list[asyncio.Task] = []
        self._corrupt = 0
        self._truncate = 0
        self._reopen = asyncio.Event()

    # ------------------------------------------------------------ lifecycle
    async def start(self) -> UartDeviceSim[C]:
        self._loop = asyncio.get_running_loop()
        self._open()
        self._tasks.append(asyncio.create_task(self._reopener(), name=f"sim {self.port} reopen"))
        self._tasks.append(asyncio.create_task(self.behave(), name=f"sim {self.port}"))
        return self

    async def close(self) -> None:
        for t in self._tasks:
            t.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks.clear()
        self._drop()

    async def __aenter__(self) -> UartDeviceSim[C]:
        return await self.start()

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    @property
    def connected(self) -> bool:
        return self._fd >= 0

    def _open(self) -> bool:
        assert self._loop is not None
        try:
            self._ser = serial.Serial(self.port, baudrate=self.baudrate, timeout=0)
        except (serial.SerialException, OSError, ValueError):
            return False
        self._fd = self._ser.fd
        os.set_blocking(self._fd, False)
        self._stream = FrameStream(self.decode_command, counters=self.codec_counters)
        self._loop.add_reader(self._fd, self._on_readable)
        self.counters["opened"] += 1
        self.on_open()
        return True

    def _drop(self) -> None:
        if self._fd >= 0 and self._loop is not None:
            self._loop.remove_reader(self._fd)
        if self._ser is not None:
            with contextlib.suppress(Exception):
                self._ser.close()
        self._ser, self._fd = None, -1

    def _lost(self) -> None:
        self._drop()
        self.counters["lost"] += 1
        self._reopen.set()

    async def _reopener(self) -> None:
        while True:
            await self._reopen.wait()
            self._reopen.clear()
            if self.powered and not self._open():
                await asyncio.sleep(self.reopen_s)
                self._reopen.set()

    def _on_readable(self) -> None:
        try:
            data = os.read(self._fd, 4096)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            self._lost()
            return
        if not data:
            self._lost()
            return
        assert self._stream is not None
        for cmd in self._stream.feed(data):
            self.commands.append(cmd)
            self.counters["commands"] += 1
            try:
                self.on_command(cmd)
            except Exception:
                self.counters["command_errors"] += 1
                log.exception("sim %s: command handler failed", self.port)

    # ------------------------------------------------------------ sending and faults
    def write_raw(self, data: bytes) -> bool:
        if self._fd < 0:
            self.counters["lost_while_closed"] += 1
            return False
        try:
            os.write(self._fd, data)
        except BlockingIOError:
            self.counters["tx_overflow"] += 1
            return False
        except OSError as exc:
            if exc.errno in (errno.EIO, errno.EBADF, errno.ENXIO):
                self._lost()
            self.counters["lost_while_closed"] += 1
            return False
        return True

    def send_frame(self, frame: bytes, *, checksum_at: int = -2) -> bool:
        """Send one encoded frame, applying a pending corrupt/truncate fault."""
        if self._corrupt:
            self._corrupt -= 1
            b = bytearray(frame)
            b[checksum_at] ^= 0x5A
            self.counters["corrupted"] += 1
            return self.write_raw(bytes(b))
        if self._truncate:
            self._truncate -= 1
            self.counters["truncated"] += 1
            return self.write_raw(frame[:len(frame) // 2])
        ok = self.write_raw(frame)
        if ok:
            self.counters["sent"] += 1
        return ok

    def inject_garbage(self, data: bytes | int) -> None:
        """Noise on the line: the given bytes, or n random bytes."""
        if isinstance(data, int):
            data = bytes(self.rng.randrange(256) for _ in range(data))
        self.counters["garbage_bytes"] += len(data)
        self.write_raw(data)

    def power_off(self) -> None:
        """The sensor loses power: it stops talking and listening (the cable stays; the gateway hears silence)."""
        self.powered = False
        self.counters["power_off"] += 1
        self._drop()

    def power_on(self) -> None:
        """Power is back: factory state (``on_power_on``), port reopened."""
        self.powered = True
        self.on_power_on()
        self._open()

    def on_power_on(self) -> None:
        pass

    def corrupt_next(self, n: int = 1) -> None:
        self._corrupt += n

    def truncate_next(self, n: int = 1) -> None:
        self._truncate += n

    # ------------------------------------------------------------ per kind
    @staticmethod
    def decode_command(buffer: bytes, counters: CodecCounters) -> tuple[int, C | None]:
        return len(buffer), None  # devices that take no commands ignore what they hear

    def on_command(self, cmd: C) -> None:
        pass

    def on_open(self) -> None:
        pass

    async def behave(self) -> None:
        await asyncio.Event().wait()
