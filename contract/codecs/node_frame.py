"""UART framing between a dozor field node (MicroPython noise / air node) and its gateway (sans-IO).

The node sends, the gateway decodes. 115200 baud 8N1 is the default link. Everything is little-endian
so MicroPython's ``struct`` with ``"<..."`` formats builds it directly. Golden frames live in
``contract/vectors/node_frame.json``; the firmware's codec is checked against the same file.

Frame layout::

    offset  size  field
    0       2     SYNC     0xA5 0x5A
    2       1     VER      1
    3       1     TYPE     see below
    4       2     SEQ      uint16, +1 per frame sent (any type), wraps 65535 -> 0; 0 after boot
    6       1     LEN      payload length, 0..64
    7       LEN   PAYLOAD  struct-packed, see below
    7+LEN   2     CRC      CRC-16/CCITT-FALSE over VER..end of PAYLOAD (bytes 2 .. 6+LEN), uint16 LE

CRC-16/CCITT-FALSE: poly 0x1021, init 0xFFFF, not reflected, xorout 0; crc16(b"123456789") == 0x29B1.
In pure (Micro)Python::

    def crc16(data, crc=0xFFFF):
        for b in data:
            crc ^= b << 8
            for _ in range(8):
                crc = ((crc << 1) ^ 0x1021) & 0xFFFF if crc & 0x8000 else (crc << 1) & 0xFFFF
        return crc

Payloads (``cdB`` = centi-decibel, i.e. dB x 100, signed int16; ``*_ms`` / ``*_s`` are node uptime, the
gateway stamps wall-clock time on receipt)::

    TYPE 1 LEVELS  "<IhhhhB"   13 bytes, once per second
        uptime_s u32, laeq cdB, lafmax cdB, la10 cdB, la90 cdB, flags u8 (bit0 clipped, bit1 siren_tonal)
    TYPE 2 EVENT   "<IIhhhBB"  16 bytes, one per detected pass-by
        start_ms u32, duration_ms u32, lafmax cdB, laeq cdB, sel cdB,
        cls u8 (0 other, 1 exhaust, 2 siren, 3 horn), flags u8 (bit0 siren_suppressed, bit1 clipped)
    TYPE 3 AIR     "<IHHhHI"   16 bytes, air node sample
        uptime_s u32, pm2_5 (0.1 ug/m3) u16, pm10 (0.1 ug/m3) u16, temperature (0.01 degC) i16,
        humidity (0.01 %RH) u16, pressure (Pa) u32; "missing" = 0xFFFF / 0x7FFF / 0xFFFFFFFF
    TYPE 4 STATUS  "<IBBHhHH"  14 bytes, at boot and every 60 s
        uptime_s u32, fw_major u8, fw_minor u8, boot_count u16, cal_offset cdB i16,
        clip_count u16, error_bits u16

TYPE values 0x80..0xFF are reserved for gateway -> node commands (none are defined in version 1).

Receiver rules (what ``decode`` does):

- bytes before SYNC are skipped and counted (``resync_bytes``);
- VER != 1 or LEN > 64: ``bad_header``, skip one byte and hunt for SYNC again;
- CRC mismatch: ``bad_crc``, skip one byte and hunt again (a real frame may start inside the garbage);
- good CRC but unknown TYPE: ``unknown_type``; wrong LEN for the TYPE: ``bad_length``;
  out-of-range codes (cls > 3): ``bad_payload`` -- the whole frame is consumed;
- sequence numbers go through ``SeqTracker``: gaps are counted as ``seq_lost``, repeats as
  ``seq_duplicate``, a restart at 0 or a backwards jump (node reboot) as ``seq_reset``.
"""

from __future__ import annotations

import re
import struct
from dataclasses import dataclass
from enum import IntEnum

from contract.codecs.validate import Counters

SYNC = b"\xa5\x5a"
VERSION = 1
HEADER_LEN = 7
CRC_LEN = 2
MAX_PAYLOAD = 64
MISSING_U16 = 0xFFFF
MISSING_I16 = 0x7FFF
MISSING_U32 = 0xFFFFFFFF


def crc16(data: bytes, crc: int = 0xFFFF) -> int:
    """CRC-16/CCITT-FALSE, bitwise, the same few lines the firmware runs."""
    for b in data:
        crc ^= b << 8
        for _ in range(8):
            crc = ((crc << 1) ^ 0x1021) & 0xFFFF if crc & 0x8000 else (crc << 1) & 0xFFFF
    return crc


class FrameType(IntEnum):
    LEVELS = 1
    EVENT = 2
    AIR = 3
    STATUS = 4


class EventClass(IntEnum):
    OTHER = 0
    EXHAUST = 1
    SIREN = 2
    HORN = 3


FORMATS: dict[FrameType, str] = {
    FrameType.LEVELS: "<IhhhhB",
    FrameType.EVENT: "<IIhhhBB",
    FrameType.AIR: "<IHHhHI",
    FrameType.STATUS: "<IBBHhHH",
}


def _cdb(value: float) -> int:
    v = round(value * 100)
    if not -32768 <= v <= 32767:
        raise ValueError(f"level {value} dB does not fit a centi-dB int16")
    return v


@dataclass(frozen=True, slots=True)
class Levels:
    uptime_s: int
    laeq: float
    lafmax: float
    la10: float
    la90: float
    clipped: bool = False
    siren_tonal: bool = False

    def pack(self) -> bytes:
        flags = (1 if self.clipped else 0) | (2 if self.siren_tonal else 0)
        return struct.pack(FORMATS[FrameType.LEVELS], self.uptime_s, _cdb(self.laeq), _cdb(self.lafmax),
                           _cdb(self.la10), _cdb(self.la90), flags)

    @classmethod
    def unpack(cls, payload: bytes) -> Levels:
        up, a, b, c, d, flags = struct.unpack(FORMATS[FrameType.LEVELS], payload)
        return cls(up, a / 100, b / 100, c / 100, d / 100, bool(flags & 1), bool(flags & 2))

    def metrics(self) -> dict[str, float]:
        return {"laeq": self.laeq, "lafmax": self.lafmax, "la10": self.la10, "la90": self.la90}


@dataclass(frozen=True, slots=True)
class NoiseEvent:
    start_ms: int
    duration_ms: int
    lafmax: float
    laeq: float
    sel: float
    cls: EventClass
    siren_suppressed: bool = False
    clipped: bool = False

    def pack(self) -> bytes:
        flags = (1 if self.siren_suppressed else 0) | (2 if self.clipped else 0)
        return struct.pack(FORMATS[FrameType.EVENT], self.start_ms, self.duration_ms, _cdb(self.lafmax),
                           _cdb(self.laeq), _cdb(self.sel), int(self.cls), flags)

    @classmethod
    def unpack(cls, payload: bytes) -> NoiseEvent:
        start, dur, fmax, eq, sel, kind, flags = struct.unpack(FORMATS[FrameType.EVENT], payload)
        return cls(start, dur, fmax / 100, eq / 100, sel / 100, EventClass(kind), bool(flags & 1),
                   bool(flags & 2))


@dataclass(frozen=True, slots=True)
class AirSample:
    uptime_s: int
    pm2_5: float | None
    pm10: float | None
    temperature: float | None
    humidity: float | None
    pressure: int | None

    def pack(self) -> bytes:
        def scaled(v: float | None, k: int, missing: int) -> int:
            return missing if v is None else round(v * k)
        return struct.pack(FORMATS[FrameType.AIR], self.uptime_s, scaled(self.pm2_5, 10, MISSING_U16),
                           scaled(self.pm10, 10, MISSING_U16), scaled(self.temperature, 100, MISSING_I16),
                           scaled(self.humidity, 100, MISSING_U16),
                           MISSING_U32 if self.pressure is None else int(self.pressure))

    @classmethod
    def unpack(cls, payload: bytes) -> AirSample:
        up, pm25, pm10, t, rh, p = struct.unpack(FORMATS[FrameType.AIR], payload)
        return cls(up, None if pm25 == MISSING_U16 else pm25 / 10, None if pm10 == MISSING_U16 else pm10 / 10,
                   None if t == MISSING_I16 else t / 100, None if rh == MISSING_U16 else rh / 100,
                   None if p == MISSING_U32 else p)

    def metrics(self) -> dict[str, float]:
        values = {"pm2_5": self.pm2_5, "pm10": self.pm10, "temperature": self.temperature,
                  "humidity": self.humidity, "pressure": self.pressure}
        return {k: float(v) for k, v in values.items() if v is not None}


@dataclass(frozen=True, slots=True)
class NodeStatus:
    uptime_s: int
    fw_major: int
    fw_minor: int
    boot_count: int
    cal_offset: float
    clip_count: int
    error_bits: int

    def pack(self) -> bytes:
        return struct.pack(FORMATS[FrameType.STATUS], self.uptime_s, self.fw_major, self.fw_minor,
                           self.boot_count, _cdb(self.cal_offset), self.clip_count, self.error_bits)

    @classmethod
    def unpack(cls, payload: bytes) -> NodeStatus:
        up, ma, mi, boots, cal, clips, errs = struct.unpack(FORMATS[FrameType.STATUS], payload)
        return cls(up, ma, mi, boots, cal / 100, clips, errs)

    @property
    def fw(self) -> str:
        """``"major.minor"``, the firmware version as the node reports it (DeviceInfo.fw in the gateway birth)."""
        return f"{self.fw_major}.{self.fw_minor}"

    def detail(self) -> str:
        """The node's health as the gateway reports it in ``DeviceStatus.detail`` of its heartbeats:
        ``"fw 1.2 boots 3 errors 0x0004"`` (the hub reads it back with ``parse_status_detail``)."""
        return f"fw {self.fw} boots {self.boot_count} errors {self.error_bits:#06x}"


_DETAIL_RE = re.compile(r"\bfw (\d{1,3})\.(\d{1,3}) boots (\d{1,5}) errors 0x([0-9a-f]{4})\b")


def parse_status_detail(detail: str | None) -> tuple[str, int, int] | None:
    """``(fw, boot_count, error_bits)`` from a ``NodeStatus.detail()`` text anywhere in ``detail``, else None."""
    m = _DETAIL_RE.search(detail or "")
    if m is None:
        return None
    return f"{int(m[1])}.{int(m[2])}", int(m[3]), int(m[4], 16)


Body = Levels | NoiseEvent | AirSample | NodeStatus
BODY_TYPES: dict[FrameType, type] = {FrameType.LEVELS: Levels, FrameType.EVENT: NoiseEvent,
                                     FrameType.AIR: AirSample, FrameType.STATUS: NodeStatus}
TYPE_OF: dict[type, FrameType] = {v: k for k, v in BODY_TYPES.items()}


@dataclass(frozen=True, slots=True)
class Frame:
    seq: int
    body: Body

    @property
    def type(self) -> FrameType:
        return TYPE_OF[type(self.body)]


def encode_raw(ftype: int, seq: int, payload: bytes) -> bytes:
    """Wrap any payload (also used by tests to build frames with unknown types)."""
    if len(payload) > MAX_PAYLOAD:
        raise ValueError(f"payload of {len(payload)} bytes exceeds {MAX_PAYLOAD}")
    head = struct.pack("<BBHB", VERSION, ftype, seq & 0xFFFF, len(payload))
    return SYNC + head + payload + struct.pack("<H", crc16(head + payload))


def encode(frame: Frame) -> bytes:
    return encode_raw(frame.type, frame.seq, frame.body.pack())


def decode(buffer: bytes, counters: Counters | None = None) -> tuple[int, Frame | None]:
    """Decode one frame from the start of ``buffer``; see the receiver rules in the module docstring."""
    c = counters if counters is not None else Counters()
    i = buffer.find(SYNC)
    if i < 0:
        n = len(buffer) - (1 if buffer.endswith(SYNC[:1]) else 0)
        if n:
            c["resync_bytes"] += n
        return n, None
    if i > 0:
        c["resync_bytes"] += i
        return i, None
    if len(buffer) < HEADER_LEN:
        return 0, None
    ver, ftype, seq, length = struct.unpack_from("<BBHB", buffer, 2)
    if ver != VERSION or length > MAX_PAYLOAD:
        c["bad_header"] += 1
        return 1, None
    total = HEADER_LEN + length + CRC_LEN
    if len(buffer) < total:
        return 0, None
    (crc,) = struct.unpack_from("<H", buffer, HEADER_LEN + length)
    if crc16(buffer[2:HEADER_LEN + length]) != crc:
        c["bad_crc"] += 1
        return 1, None
    payload = buffer[HEADER_LEN:HEADER_LEN + length]
    try:
        kind = FrameType(ftype)
    except ValueError:
        c["unknown_type"] += 1
        return total, None
    if length != struct.calcsize(FORMATS[kind]):
        c["bad_length"] += 1
        return total, None
    try:
        body = BODY_TYPES[kind].unpack(payload)
    except ValueError:
        c["bad_payload"] += 1
        return total, None
    c["frames"] += 1
    return total, Frame(seq, body)


class SeqTracker:
    """Counts lost, repeated and restarted sequence numbers of one node's frames."""

    def __init__(self, counters: Counters | None = None) -> None:
        self.counters = counters if counters is not None else Counters()
        self.last: int | None = None

    def update(self, seq: int) -> str:
        """Return ``first``, ``ok``, ``gap``, ``duplicate`` or ``reset``."""
        last, self.last = self.last, seq
        if last is None:
            return "first"
        diff = (seq - last) & 0xFFFF
        if diff == 1:
            return "ok"
        if seq == 0 or diff >= 0x8000:  # a node restarts at 0 after boot
            self.counters["seq_reset"] += 1
            return "reset"
        if diff == 0:
            self.counters["seq_duplicate"] += 1
            return "duplicate"
        self.counters["seq_lost"] += diff - 1
        return "gap"
