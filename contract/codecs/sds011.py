"""Nova SDS011 dust sensor over UART, 9600 8N1 (sans-IO).

Sensor -> host, 10 bytes::

    AA  C0|C5  D1 D2 D3 D4  ID1 ID2  CS  AB        CS = (D1 + D2 + D3 + D4 + ID1 + ID2) & 0xFF

``C0`` is a measurement: PM2.5 = (D2 * 256 + D1) / 10, PM10 = (D4 * 256 + D3) / 10 ug/m3.
``C5`` is the reply to a configuration command: D1 = the command (``Sub``), D2..D4 its data.

Host -> sensor, 19 bytes::

    AA B4 SUB d1 .. d12 ID1 ID2 CS AB              CS = sum(bytes 2..16) & 0xFF, ID FF FF = every sensor

Golden vector: ``AA C0 D4 04 3A 0A A1 60 1D AB`` -> PM2.5 123.6, PM10 261.8, device id 0xA160.
Checksums are always computed (one public driver ships a wrong constant).

The gateway runs the sensor in query mode with a duty cycle (``DutyCycle``): wake, discard the readings
of a warm-up period (15 s, the fan must settle), average the readings of a short window, sleep.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import IntEnum

from contract.codecs.validate import Counters

HEAD = 0xAA
TAIL = 0xAB
CMD_DATA = 0xC0
CMD_REPLY = 0xC5
CMD_HOST = 0xB4
FRAME_LEN = 10
COMMAND_LEN = 19
ALL_SENSORS = 0xFFFF
MAX_PM = 999.9


class Sub(IntEnum):
    REPORTING_MODE = 2  # data[0]: 0 query / 1 set; data[1]: 0 active, 1 query
    QUERY = 4
    DEVICE_ID = 5
    SLEEP_WORK = 6  # data[0]: 0 query / 1 set; data[1]: 0 sleep, 1 work
    FIRMWARE = 7
    WORKING_PERIOD = 8  # data[0]: 0 query / 1 set; data[1]: 0 continuous, n = every n minutes


@dataclass(frozen=True, slots=True)
class Measurement:
    pm2_5: float
    pm10: float
    device_id: int

    def metrics(self) -> dict[str, float]:
        return {"pm2_5": self.pm2_5, "pm10": self.pm10}


@dataclass(frozen=True, slots=True)
class Reply:
    sub: Sub
    data: bytes  # 3 bytes
    device_id: int


@dataclass(frozen=True, slots=True)
class Command:
    sub: Sub
    data: bytes = b""  # up to 12 bytes, zero padded
    device_id: int = ALL_SENSORS


def checksum(data: bytes) -> int:
    return sum(data) & 0xFF


def _pm(value: float) -> int:
    raw = round(value * 10)
    if not 0 <= raw <= 0xFFFF:
        raise ValueError(f"PM value {value} does not fit the SDS011 frame")
    return raw


def encode(frame: Measurement | Reply) -> bytes:
    """Sensor side (the simulator): a 10-byte measurement or reply frame."""
    if isinstance(frame, Measurement):
        a, b = _pm(frame.pm2_5), _pm(frame.pm10)
        body = bytes([a & 0xFF, a >> 8, b & 0xFF, b >> 8, frame.device_id >> 8, frame.device_id & 0xFF])
        kind = CMD_DATA
    else:
        if len(frame.data) != 3:
            raise ValueError("reply data is 3 bytes")
        body = bytes([int(frame.sub)]) + frame.data + bytes([frame.device_id >> 8, frame.device_id & 0xFF])
        kind = CMD_REPLY
    return bytes([HEAD, kind]) + body + bytes([checksum(body), TAIL])


def _framed(buffer: bytes, c: Counters, kinds: tuple[int, ...], length: int) -> tuple[int, bytes | None]:
    """The framing both directions share: resync to HEAD, command byte, length, TAIL, checksum.
    Returns (bytes to consume, None) while there is no good frame, else (0, body) for a whole good frame."""
    i = buffer.find(bytes([HEAD]))
    if i != 0:
        n = len(buffer) if i < 0 else i
        c["resync_bytes"] += n
        return n, None
    if len(buffer) < 2:
        return 0, None
    if buffer[1] not in kinds:
        c["bad_header"] += 1
        return 1, None
    if len(buffer) < length:
        return 0, None
    if buffer[length - 1] != TAIL:
        c["bad_header"] += 1
        return 1, None
    body = buffer[2:length - 2]
    if checksum(body) != buffer[length - 2]:
        c["bad_checksum"] += 1
        return 1, None
    return 0, body


def decode(buffer: bytes, counters: Counters | None = None) -> tuple[int, Measurement | Reply | None]:
    """Host side: one sensor frame from the start of ``buffer`` (sans-IO, resyncs on garbage)."""
    c = counters if counters is not None else Counters()
    used, body = _framed(buffer, c, (CMD_DATA, CMD_REPLY), FRAME_LEN)
    if body is None:
        return used, None
    device_id = (body[4] << 8) | body[5]
    if buffer[1] == CMD_DATA:
        frame: Measurement | Reply = Measurement(((body[1] << 8) | body[0]) / 10,
                                                 ((body[3] << 8) | body[2]) / 10, device_id)
    else:
        try:
            sub = Sub(body[0])
        except ValueError:
            c["bad_payload"] += 1
            return FRAME_LEN, None
        frame = Reply(sub, bytes(body[1:4]), device_id)
    c["frames"] += 1
    return FRAME_LEN, frame


def encode_command(cmd: Command) -> bytes:
    """Host side: a 19-byte command frame."""
    if len(cmd.data) > 12:
        raise ValueError("command data is at most 12 bytes")
    body = bytes([int(cmd.sub)]) + cmd.data.ljust(12, b"\x00") + bytes([cmd.device_id >> 8,
                                                                        cmd.device_id & 0xFF])
    return bytes([HEAD, CMD_HOST]) + body + bytes([checksum(body), TAIL])


def decode_command(buffer: bytes, counters: Counters | None = None) -> tuple[int, Command | None]:
    """Sensor side (the simulator): one host command from the start of ``buffer``."""
    c = counters if counters is not None else Counters()
    used, body = _framed(buffer, c, (CMD_HOST,), COMMAND_LEN)
    if body is None:
        return used, None
    try:
        sub = Sub(body[0])
    except ValueError:
        c["bad_payload"] += 1
        return COMMAND_LEN, None
    c["frames"] += 1
    return COMMAND_LEN, Command(sub, bytes(body[1:13]), (body[13] << 8) | body[14])


# Host commands by name, so drivers and tests never copy byte constants.
def query_data(device_id: int = ALL_SENSORS) -> Command:
    return Command(Sub.QUERY, b"", device_id)


def set_query_mode(device_id: int = ALL_SENSORS) -> Command:
    return Command(Sub.REPORTING_MODE, b"\x01\x01", device_id)


def set_active_mode(device_id: int = ALL_SENSORS) -> Command:
    return Command(Sub.REPORTING_MODE, b"\x01\x00", device_id)


def sleep(device_id: int = ALL_SENSORS) -> Command:
    return Command(Sub.SLEEP_WORK, b"\x01\x00", device_id)


def work(device_id: int = ALL_SENSORS) -> Command:
    return Command(Sub.SLEEP_WORK, b"\x01\x01", device_id)


def set_working_period(minutes: int, device_id: int = ALL_SENSORS) -> Command:
    if not 0 <= minutes <= 30:
        raise ValueError("working period is 0 (continuous) .. 30 minutes")
    return Command(Sub.WORKING_PERIOD, bytes([1, minutes]), device_id)


def firmware_version(device_id: int = ALL_SENSORS) -> Command:
    return Command(Sub.FIRMWARE, b"", device_id)


class Phase(IntEnum):
    SLEEPING = 0
    WARMING = 1
    READING = 2


@dataclass
class DutyCycle:
    """Query-mode duty cycle, driven by the caller's clock (sans-IO).

    Every ``interval_s`` the sensor is woken; measurements during the first ``warmup_s`` are discarded
    (counted ``warmup_discarded``); then one query per ``sample_s`` for ``read_s``; the mean of those
    samples becomes the result and the sensor is put to sleep again. ``poll(now)`` returns the commands
    to send now; ``on_measurement(now, m)`` takes what the sensor answered; ``take()`` returns a result.
    """

    interval_s: float = 145.0
    warmup_s: float = 15.0
    read_s: float = 5.0
    sample_s: float = 1.0
    device_id: int = ALL_SENSORS
    counters: Counters = field(default_factory=Counters)
    phase: Phase = Phase.SLEEPING
    _cycle_start: float | None = None
    _next_query: float = 0.0
    _samples: list[Measurement] = field(default_factory=list)
    _result: Measurement | None = None

    def poll(self, now: float) -> list[Command]:
        out: list[Command] = []
        if self.phase is Phase.SLEEPING:
            if self._cycle_start is None or now >= self._cycle_start + self.interval_s:
                self._cycle_start = now
                self._samples = []
                self.phase = Phase.WARMING
                out.append(work(self.device_id))
        if self.phase is Phase.WARMING and self._cycle_start is not None and \
                now >= self._cycle_start + self.warmup_s:
            self.phase = Phase.READING
            self._next_query = now
        if self.phase is Phase.READING and self._cycle_start is not None:
            if now >= self._cycle_start + self.warmup_s + self.read_s:
                self._finish()
                out.append(sleep(self.device_id))
            elif now >= self._next_query:
                self._next_query = now + self.sample_s
                out.append(query_data(self.device_id))
        return out

    def on_measurement(self, now: float, m: Measurement) -> bool:
        """Return True if the measurement counts (from our sensor, taken after warm-up)."""
        if self.device_id != ALL_SENSORS and m.device_id != self.device_id:
            self.counters["wrong_device_id"] += 1
            return False
        if self.phase is Phase.READING:
            self._samples.append(m)
            return True
        self.counters["warmup_discarded"] += 1
        return False

    def _finish(self) -> None:
        self.phase = Phase.SLEEPING
        if not self._samples:
            self.counters["cycle_without_samples"] += 1
            return
        n = len(self._samples)
        self._result = Measurement(round(sum(s.pm2_5 for s in self._samples) / n, 1),
                                   round(sum(s.pm10 for s in self._samples) / n, 1),
                                   self._samples[-1].device_id)

    def take(self) -> Measurement | None:
        result, self._result = self._result, None
        return result
