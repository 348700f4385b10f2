"""Simulated sensors speaking their real byte protocols from the device side (contract codecs).

UART sensors sit on a serial port, usually one end of a ``PtyLink`` (``b_link``), and reopen it by
themselves when the cable vanishes and comes back:

- ``SimSds011``: Nova SDS011 (active or query mode, sleep/work, replies to configuration commands).
- ``SimPms5003``: Plantower PMS5003 (active or passive mode, sleep/wake).
- ``SimNoiseNode``: the dozor MicroPython noise node (node_frame: LEVELS every second, EVENT, AIR, STATUS).

Fault injection, on every UART sim: ``inject_garbage(data | n)``, ``corrupt_next(n)`` (bad checksum / CRC),
``truncate_next(n)`` (only the first half of the frame goes out: a partial frame), ``stuck`` (the
sensor keeps repeating one value), ``power_off()`` / ``power_on()`` (silence, then the sensor's factory
state). A pulled USB adapter is the cable's: ``PtyLink.vanish()`` / ``restore()``.
Counters (``sent``, ``corrupted``, ``truncated``, ``garbage_bytes`` ...) say what was sent, so a test can
compare with what the gateway counted.

``SimBme280`` is an I2C chip: an object with the register reads and writes ``smbus2.SMBus`` offers
(``read_i2c_block_data``, ``write_byte_data``, ``read_byte_data``), with forced-mode measurements,
NACKs (``nack_next``), a detached chip (``detach()``) and a wrong chip id.
"""

from __future__ import annotations

import asyncio
import errno
import logging
import threading
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from contract.codecs import bme280 as bme
from contract.codecs import node_frame as nf
from contract.codecs import pms5003 as pms
from contract.codecs import sds011 as sds
from simulators.uart_sim import UartDeviceSim

log = logging.getLogger("dozor.sim.sensors")


def _value(source: Any) -> Any:
    return source() if callable(source) else source


# ---------------------------------------------------------------------------------------------- SDS011
class SimSds011(UartDeviceSim[sds.Command]):
    """SDS011: starts awake in active mode (factory default) reporting every ``period_s``."""

    baudrate = 9600

    def __init__(self, port: str, *, values: tuple[float, float] | Callable[[], tuple[float, float]] | None = None,
                 device_id: int = 0xA160, period_s: float = 1.0, **kw: Any) -> None:
        super().__init__(port, **kw)
        self.values = values if values is not None else self._random_values
        self.device_id = device_id
        self.period_s = period_s
        self.query_mode = False
        self.awake = True

    def on_power_on(self) -> None:
        self.query_mode, self.awake = False, True  # factory default: active mode, fan running

    def _random_values(self) -> tuple[float, float]:
        pm25 = round(self.rng.uniform(5, 40), 1)
        return pm25, round(pm25 * self.rng.uniform(1.2, 2.0), 1)

    def measurement(self) -> sds.Measurement:
        pm25, pm10 = self.stuck if self.stuck is not None else _value(self.values)
        return sds.Measurement(pm25, pm10, self.device_id)

    def send_measurement(self) -> None:
        self.counters["measurements"] += 1
        self.send_frame(sds.encode(self.measurement()))

    decode_command = staticmethod(sds.decode_command)

    def on_command(self, cmd: sds.Command) -> None:
        if cmd.device_id not in (sds.ALL_SENSORS, self.device_id):
            self.counters["not_for_me"] += 1
            return
        d = cmd.data
        if cmd.sub is sds.Sub.QUERY:
            if self.awake:
                self.counters["queries_answered"] += 1
                self.send_measurement()
            else:
                self.counters["queries_while_asleep"] += 1
            return
        if cmd.sub is sds.Sub.REPORTING_MODE and d[0] == 1:
            self.query_mode = d[1] == 1
        elif cmd.sub is sds.Sub.SLEEP_WORK and d[0] == 1:
            self.awake = d[1] == 1
            self.counters["wakes" if self.awake else "sleeps"] += 1
        state = {sds.Sub.REPORTING_MODE: int(self.query_mode), sds.Sub.SLEEP_WORK: int(self.awake)}
        self.send_frame(sds.encode(sds.Reply(cmd.sub, bytes([d[0], state.get(cmd.sub, d[1]), 0]), self.device_id)))

    async def behave(self) -> None:
        while True:
            await asyncio.sleep(self.period_s)
            if self.powered and self.awake and not self.query_mode:
                self.send_measurement()


# ---------------------------------------------------------------------------------------------- PMS5003
def pms_data(pm1: int, pm25: int, pm10: int) -> pms.Data:
    return pms.Data(pm1, pm25, pm10, pm1, pm25, pm10, 2112, 620, 121, 8, 2, 0)


class SimPms5003(UartDeviceSim[pms.Command]):
    """PMS5003: starts awake in active mode, a frame every ``period_s``; passive mode answers READ."""

    baudrate = 9600

    def __init__(self, port: str, *, values: tuple[int, int, int] | Callable[[], tuple[int, int, int]] | None = None,
                 period_s: float = 1.0, **kw: Any) -> None:
        super().__init__(port, **kw)
        self.values = values if values is not None else self._random_values
        self.period_s = period_s
        self.passive = False
        self.awake = True

    def on_power_on(self) -> None:
        self.passive, self.awake = False, True

    def _random_values(self) -> tuple[int, int, int]:
        pm25 = self.rng.randint(3, 40)
        return max(0, pm25 - 3), pm25, pm25 + self.rng.randint(2, 15)

    def data(self) -> pms.Data:
        return pms_data(*(self.stuck if self.stuck is not None else _value(self.values)))

    def send_data(self) -> None:
        self.counters["measurements"] += 1
        self.send_frame(pms.encode(self.data()))

    decode_command = staticmethod(pms.decode_command)

    def on_command(self, cmd: pms.Command) -> None:
        if cmd.cmd is pms.Cmd.READ:
            if self.awake and self.passive:
                self.counters["reads_answered"] += 1
                self.send_data()
            return
        if cmd.cmd is pms.Cmd.MODE:
            self.passive = cmd.data == 0
        elif cmd.cmd is pms.Cmd.SLEEP:
            self.awake = cmd.data == 1
        self.send_frame(pms.encode(pms.CommandAck(int(cmd.cmd), cmd.data)))

    async def behave(self) -> None:
        while True:
            await asyncio.sleep(self.period_s)
            if self.powered and self.awake and not self.passive:
                self.send_data()


# ---------------------------------------------------------------------------------------------- noise node
class SimNoiseNode(UartDeviceSim[None]):
    """The MicroPython noise node: STATUS on boot, LEVELS every ``period_s``; events and air on demand."""

    baudrate = 115200

    def __init__(self, port: str, *, levels: tuple[float, float, float, float] |
                 Callable[[], tuple[float, float, float, float]] | None = None, period_s: float = 1.0,
                 boot_count: int = 1, fw: tuple[int, int] = (1, 2), **kw: Any) -> None:
        super().__init__(port, **kw)
        self.fw = fw  # (major, minor) in STATUS frames; change it and reboot() to act out a reflash
        self.levels = levels if levels is not None else self._random_levels
        self.period_s = period_s
        self.boot_count = boot_count
        self.seq = 0
        self.uptime_s = 0
        self.error_bits = 0
        self.last_frame: bytes | None = None

    def _random_levels(self) -> tuple[float, float, float, float]:
        eq = round(self.rng.uniform(50, 70), 2)
        return eq, round(eq + self.rng.uniform(3, 12), 2), round(eq + 2.5, 2), round(eq - 6, 2)

    def send_body(self, body: nf.Body) -> bool:
        frame = nf.encode(nf.Frame(self.seq, body))
        self.seq = (self.seq + 1) & 0xFFFF
        self.last_frame = frame
        self.counters[f"sent_{type(body).__name__.lower()}"] += 1
        return self.send_frame(frame)

    def send_levels(self) -> bool:
        eq, fmax, l10, l90 = self.stuck if self.stuck is not None else _value(self.levels)
        return self.send_body(nf.Levels(self.uptime_s, eq, fmax, l10, l90))

    def send_event(self, cls: nf.EventClass = nf.EventClass.EXHAUST, lafmax: float = 88.5,
                   duration_ms: int = 2400) -> bool:
        return self.send_body(nf.NoiseEvent(self.uptime_s * 1000, duration_ms, lafmax, lafmax - 6,
                                            lafmax - 2, cls))

    def send_air(self, sample: nf.AirSample | None = None) -> bool:
        return self.send_body(sample or nf.AirSample(self.uptime_s, 12.3, 20.1, 18.5, 55.0, 101325))

    def send_status(self) -> bool:
        return self.send_body(nf.NodeStatus(self.uptime_s, *self.fw, self.boot_count, 0.0, 0, self.error_bits))

    def repeat_last(self) -> None:
        """Send the previous frame again (same seq): a duplicate the gateway must drop."""
        if self.last_frame is not None:
            self.counters["repeated"] += 1
            self.write_raw(self.last_frame)

    def skip(self, n: int) -> None:
        """Lose n frames before they reach the wire (the gateway sees a sequence gap)."""
        self.seq = (self.seq + n) & 0xFFFF

    def reboot(self) -> None:
        self.seq, self.uptime_s = 0, 0
        self.boot_count += 1
        self.send_status()

    def on_open(self) -> None:
        self.send_status()

    def on_power_on(self) -> None:
        self.seq, self.uptime_s = 0, 0
        self.boot_count += 1

    async def behave(self) -> None:
        while True:
            await asyncio.sleep(self.period_s)
            if self.powered:
                self.uptime_s += 1
                self.send_levels()


# ---------------------------------------------------------------------------------------------- BME280
@dataclass
class Climate:
    temperature: float = 21.5
    pressure: float = 101325.0
    humidity: float = 48.0


class SimBme280:
    """A BME280 behind an I2C bus, offering the calls ``smbus2.SMBus`` offers. Thread-safe."""

    def __init__(self, address: int = 0x76, *, climate: Climate | Callable[[], Climate] | None = None,
                 calibration: bme.Calibration = bme.EXAMPLE_CALIBRATION, measuring_polls: int = 1,
                 chip_id: int = bme.CHIP_ID) -> None:
        self.address = address
        self.climate = climate if climate is not None else Climate()
        self.cal = calibration
        self.measuring_polls = measuring_polls
        self.regs = bytearray(256)
        self.regs[bme.REG_CHIP_ID] = chip_id
        a, b = calibration.pack()
        self.regs[bme.REG_CALIB_A:bme.REG_CALIB_A + len(a)] = a
        self.regs[bme.REG_CALIB_B:bme.REG_CALIB_B + len(b)] = b
        self.attached = True
        self.counters: Counter[str] = Counter()
        self._nack = 0
        self._measuring = 0
        self._lock = threading.Lock()

    def _check(self, addr: int) -> None:
        if not self.attached or addr != self.address:
            self.counters["nack"] += 1
            raise OSError(errno.EREMOTEIO, "Remote I/O error")
        if self._nack:
            self._nack -= 1
            self.counters["nack"] += 1
            raise OSError(errno.EREMOTEIO, "Remote I/O error")

    def nack_next(self, n: int = 1) -> None:
        self._nack += n

    def detach(self) -> None:
        self.attached = False

    def attach(self) -> None:
        self.attached = True

    def read_i2c_block_data(self, i2c_addr: int, register: int, length: int) -> list[int]:
        with self._lock:
            self._check(i2c_addr)
            if register == bme.REG_STATUS and length == 1:
                if self._measuring:
                    self._measuring -= 1
                    return [bme.STATUS_MEASURING]
                return [0]
            if register == bme.REG_DATA:
                self.counters["data_reads"] += 1
            return list(self.regs[register:register + length])

    def read_byte_data(self, i2c_addr: int, register: int) -> int:
        return self.read_i2c_block_data(i2c_addr, register, 1)[0]

    def write_byte_data(self, i2c_addr: int, register: int, value: int) -> None:
        with self._lock:
            self._check(i2c_addr)
            if register == bme.REG_RESET and value == bme.RESET_WORD:
                self.regs[bme.REG_CTRL_HUM:bme.REG_CONFIG + 1] = bytes(4)
                return
            self.regs[register] = value & 0xFF
            if register == bme.REG_CTRL_MEAS and value & 0b11 == bme.MODE_FORCED:
                c = _value(self.climate)
                raw = bme.raw_for(self.cal, c.temperature, c.pressure, c.humidity)
                self.regs[bme.REG_DATA:bme.REG_DATA + bme.DATA_LEN] = bme.pack_data(raw)
                self.regs[bme.REG_CTRL_MEAS] = value & ~0b11  # back to sleep after the measurement
                self._measuring = self.measuring_polls
                self.counters["measurements"] += 1


SIMS: dict[str, type[UartDeviceSim[Any]]] = {"sds011": SimSds011, "pms5003": SimPms5003, "noise-node": SimNoiseNode}
