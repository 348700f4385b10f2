"""Plantower PMS5003 dust sensor over UART, 9600 8N1 (sans-IO).

Sensor -> host data frame, 32 bytes, big-endian 16-bit words::

    42 4D  LEN=28  pm1_0_cf1 pm2_5_cf1 pm10_cf1  pm1_0 pm2_5 pm10  n0_3 n0_5 n1_0 n2_5 n5_0 n10  reserved  CS

CS = 16-bit sum of bytes 0..29 (including 42 4D). The ``pmX`` (atmospheric environment) values are the
ones to use outdoors; ``*_cf1`` refer to a factory reference aerosol. ``nX`` are particles > X um per 0.1 L.
In passive mode the sensor answers a command with an 8-byte frame ``42 4D 00 04 CMD DATA CS``.

Host -> sensor command, 7 bytes: ``42 4D CMD DATAH DATAL CSH CSL`` (CS = 16-bit sum of the first 5).
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, fields
from enum import IntEnum

from contract.codecs.validate import Counters

START = b"\x42\x4d"
DATA_LEN = 28
ACK_LEN = 4
FRAME_LEN = 4 + DATA_LEN
COMMAND_LEN = 7


class Cmd(IntEnum):
    READ = 0xE2  # passive mode: send one data frame
    MODE = 0xE1  # data 0 = passive, 1 = active
    SLEEP = 0xE4  # data 0 = sleep, 1 = wake


@dataclass(frozen=True, slots=True)
class Data:
    pm1_0_cf1: int
    pm2_5_cf1: int
    pm10_cf1: int
    pm1_0: int
    pm2_5: int
    pm10: int
    n0_3: int
    n0_5: int
    n1_0: int
    n2_5: int
    n5_0: int
    n10: int
    reserved: int = 0

    def metrics(self) -> dict[str, float]:
        return {"pm1_0": float(self.pm1_0), "pm2_5": float(self.pm2_5), "pm10": float(self.pm10)}


@dataclass(frozen=True, slots=True)
class CommandAck:
    cmd: int
    data: int


@dataclass(frozen=True, slots=True)
class Command:
    cmd: Cmd
    data: int = 0


def _sum16(data: bytes) -> int:
    return sum(data) & 0xFFFF


def encode(frame: Data | CommandAck) -> bytes:
    """Sensor side (the simulator)."""
    if isinstance(frame, Data):
        values = [getattr(frame, f.name) for f in fields(Data)]
        if any(not 0 <= v <= 0xFFFF for v in values):
            raise ValueError("PMS5003 values are 0..65535")
        head = START + struct.pack(">H13H", DATA_LEN, *values)
    else:
        head = START + struct.pack(">HBB", ACK_LEN, frame.cmd & 0xFF, frame.data & 0xFF)
    return head + struct.pack(">H", _sum16(head))


def decode(buffer: bytes, counters: Counters | None = None) -> tuple[int, Data | CommandAck | None]:
    """Host side: one frame from the start of ``buffer`` (sans-IO, resyncs on garbage)."""
    c = counters if counters is not None else Counters()
    i = buffer.find(START)
    if i != 0:
        n = (len(buffer) - (1 if buffer.endswith(START[:1]) else 0)) if i < 0 else i
        if n:
            c["resync_bytes"] += n
        return n, None
    if len(buffer) < 4:
        return 0, None
    (length,) = struct.unpack_from(">H", buffer, 2)
    if length not in (DATA_LEN, ACK_LEN):
        c["bad_header"] += 1
        return 1, None
    total = 4 + length
    if len(buffer) < total:
        return 0, None
    (cs,) = struct.unpack_from(">H", buffer, total - 2)
    if _sum16(buffer[:total - 2]) != cs:
        c["bad_checksum"] += 1
        return 1, None
    c["frames"] += 1
    if length == ACK_LEN:
        return total, CommandAck(buffer[4], buffer[5])
    return total, Data(*struct.unpack_from(">13H", buffer, 4))


def encode_command(cmd: Command) -> bytes:
    head = START + struct.pack(">BH", int(cmd.cmd), cmd.data & 0xFFFF)
    return head + struct.pack(">H", _sum16(head))


def decode_command(buffer: bytes, counters: Counters | None = None) -> tuple[int, Command | None]:
    """Sensor side (the simulator): one 7-byte host command."""
    c = counters if counters is not None else Counters()
    i = buffer.find(START)
    if i != 0:
        n = (len(buffer) - (1 if buffer.endswith(START[:1]) else 0)) if i < 0 else i
        if n:
            c["resync_bytes"] += n
        return n, None
    if len(buffer) < COMMAND_LEN:
        return 0, None
    (cs,) = struct.unpack_from(">H", buffer, 5)
    if _sum16(buffer[:5]) != cs:
        c["bad_checksum"] += 1
        return 1, None
    try:
        cmd = Cmd(buffer[2])
    except ValueError:
        c["bad_payload"] += 1
        return COMMAND_LEN, None
    c["frames"] += 1
    return COMMAND_LEN, Command(cmd, (buffer[3] << 8) | buffer[4])


def passive_mode() -> Command:
    return Command(Cmd.MODE, 0)


def active_mode() -> Command:
    return Command(Cmd.MODE, 1)


def read() -> Command:
    return Command(Cmd.READ, 0)


def sleep() -> Command:
    return Command(Cmd.SLEEP, 0)


def wake() -> Command:
    return Command(Cmd.SLEEP, 1)
