# dozor node <-> gateway UART framing, MicroPython port of contract/codecs/node_frame.py.
# Checked against contract/vectors/node_frame.json by tests/firmware (same golden bytes as the gateway).
# Frame: A5 5A | VER=1 | TYPE | SEQ u16 LE | LEN | PAYLOAD | CRC-16/CCITT-FALSE (VER..PAYLOAD) u16 LE
import struct

SYNC = b"\xa5\x5a"
VERSION = 1
HEADER_LEN = 7
CRC_LEN = 2
MAX_PAYLOAD = 64
MISSING_U16 = 0xFFFF
MISSING_I16 = 0x7FFF
MISSING_U32 = 0xFFFFFFFF

LEVELS = 1
EVENT = 2
AIR = 3
STATUS = 4
FORMATS = {LEVELS: "<IhhhhB", EVENT: "<IIhhhBB", AIR: "<IHHhHI", STATUS: "<IBBHhHH"}


def crc16(data, crc=0xFFFF):
    for b in data:
        crc ^= b << 8
        for _ in range(8):
            crc = ((crc << 1) ^ 0x1021) & 0xFFFF if crc & 0x8000 else (crc << 1) & 0xFFFF
    return crc


def cdb(value):
    v = int(round(value * 100))
    if v < -32768 or v > 32767:
        raise ValueError("level %r dB does not fit a centi-dB int16" % value)
    return v


def encode_raw(ftype, seq, payload):
    if len(payload) > MAX_PAYLOAD:
        raise ValueError("payload of %d bytes exceeds %d" % (len(payload), MAX_PAYLOAD))
    head = struct.pack("<BBHB", VERSION, ftype, seq & 0xFFFF, len(payload))
    return SYNC + head + payload + struct.pack("<H", crc16(head + payload))


def pack_levels(uptime_s, laeq, lafmax, la10, la90, clipped=False, siren_tonal=False):
    flags = (1 if clipped else 0) | (2 if siren_tonal else 0)
    return struct.pack(FORMATS[LEVELS], uptime_s, cdb(laeq), cdb(lafmax), cdb(la10), cdb(la90), flags)


def pack_event(start_ms, duration_ms, lafmax, laeq, sel, cls=0, siren_suppressed=False, clipped=False):
    if cls < 0 or cls > 3:
        raise ValueError("event class %r out of range 0..3" % cls)
    flags = (1 if siren_suppressed else 0) | (2 if clipped else 0)
    return struct.pack(FORMATS[EVENT], start_ms, duration_ms, cdb(lafmax), cdb(laeq), cdb(sel), cls, flags)


def _scaled(v, k, missing):
    return missing if v is None else int(round(v * k))


def pack_air(uptime_s, pm2_5, pm10, temperature, humidity, pressure):
    return struct.pack(FORMATS[AIR], uptime_s, _scaled(pm2_5, 10, MISSING_U16), _scaled(pm10, 10, MISSING_U16),
                       _scaled(temperature, 100, MISSING_I16), _scaled(humidity, 100, MISSING_U16),
                       MISSING_U32 if pressure is None else int(pressure))


def pack_status(uptime_s, fw_major, fw_minor, boot_count, cal_offset, clip_count, error_bits):
    return struct.pack(FORMATS[STATUS], uptime_s, fw_major, fw_minor, min(boot_count, 0xFFFF),
                       cdb(cal_offset), min(clip_count, 0xFFFF), error_bits & 0xFFFF)


def unpack(ftype, payload):
    """Payload -> dict, the same field names as the contract's dataclasses."""
    v = struct.unpack(FORMATS[ftype], payload)
    if ftype == LEVELS:
        return {"type": "levels", "uptime_s": v[0], "laeq": v[1] / 100, "lafmax": v[2] / 100,
                "la10": v[3] / 100, "la90": v[4] / 100, "clipped": bool(v[5] & 1), "siren_tonal": bool(v[5] & 2)}
    if ftype == EVENT:
        if v[5] > 3:
            raise ValueError("event class out of range")
        return {"type": "event", "start_ms": v[0], "duration_ms": v[1], "lafmax": v[2] / 100,
                "laeq": v[3] / 100, "sel": v[4] / 100, "cls": v[5], "siren_suppressed": bool(v[6] & 1),
                "clipped": bool(v[6] & 2)}
    if ftype == AIR:
        return {"type": "air", "uptime_s": v[0], "pm2_5": None if v[1] == MISSING_U16 else v[1] / 10,
                "pm10": None if v[2] == MISSING_U16 else v[2] / 10,
                "temperature": None if v[3] == MISSING_I16 else v[3] / 100,
                "humidity": None if v[4] == MISSING_U16 else v[4] / 100,
                "pressure": None if v[5] == MISSING_U32 else v[5]}
    return {"type": "status", "uptime_s": v[0], "fw_major": v[1], "fw_minor": v[2], "boot_count": v[3],
            "cal_offset": v[4] / 100, "clip_count": v[5], "error_bits": v[6]}


def _bump(counters, key, n=1):
    counters[key] = counters.get(key, 0) + n


def decode(buffer, counters):
    """(consumed, (seq, ftype, body) | None); the receiver rules of the contract codec."""
    if not isinstance(buffer, bytes):
        buffer = bytes(buffer)
    i = buffer.find(SYNC)
    if i < 0:
        n = len(buffer) - (1 if len(buffer) and buffer[-1] == 0xA5 else 0)
        if n:
            _bump(counters, "resync_bytes", n)
        return n, None
    if i > 0:
        _bump(counters, "resync_bytes", i)
        return i, None
    if len(buffer) < HEADER_LEN:
        return 0, None
    ver, ftype, seq, length = struct.unpack_from("<BBHB", buffer, 2)
    if ver != VERSION or length > MAX_PAYLOAD:
        _bump(counters, "bad_header")
        return 1, None
    total = HEADER_LEN + length + CRC_LEN
    if len(buffer) < total:
        return 0, None
    crc = struct.unpack_from("<H", buffer, HEADER_LEN + length)[0]
    if crc16(buffer[2:HEADER_LEN + length]) != crc:
        _bump(counters, "bad_crc")
        return 1, None
    if ftype not in FORMATS:
        _bump(counters, "unknown_type")
        return total, None
    if length != struct.calcsize(FORMATS[ftype]):
        _bump(counters, "bad_length")
        return total, None
    try:
        body = unpack(ftype, buffer[HEADER_LEN:HEADER_LEN + length])
    except ValueError:
        _bump(counters, "bad_payload")
        return total, None
    _bump(counters, "frames")
    return total, (seq, ftype, body)


class Sender:
    """Numbers frames (0 after boot, +1 per frame of any type, wraps at 65536) and writes them out."""

    def __init__(self, write):
        self.write = write  # callable(bytes) -> None, e.g. a UART's write
        self.seq = 0
        self.sent = 0
        self.errors = 0

    def send(self, ftype, payload):
        frame = encode_raw(ftype, self.seq, payload)
        self.seq = (self.seq + 1) & 0xFFFF
        try:
            self.write(frame)
            self.sent += 1
        except OSError:
            self.errors += 1
        return frame
