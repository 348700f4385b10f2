# The virtual board's `machine` module (its "ROM"): enough of MicroPython's ESP32 `machine` API for the
# dozor HAL to run. Peripherals are simulated: the watchdog counts feeds (it never resets the board),
# UART 1 at 9600 baud answers like an SDS011 in query mode (PM2.5 12.3, PM10 20.7), other UARTs answer
# nothing, I2C has a BME280 at 0x76 (Bosch example calibration: 25.08 degC), and I2S delivers a steady
# 1 kHz tone at 74 dB SPL, paced by the clock (reads block like DMA). `reset()` asks the bridge for a hard reset.
# UART 2 is the node's link to its gateway (hal.link_uart): what the firmware writes there leaves the board
# through the bridge (`dozor sim board --uart-link PATH` puts it on a second pty; without one it is dropped).
import math
import time
from binascii import hexlify

import _board

PWRON_RESET = 1
HARD_RESET = 2
WDT_RESET = 3
DEEPSLEEP_RESET = 4
SOFT_RESET = 5


def reset():
    _board.reset()
    raise SystemExit


def soft_reset():
    raise SystemExit


def reset_cause():
    return int(_board.reset_cause)


def unique_id():
    return b"\xd0\x20\x00\xb0\xa0\x01"


def freq(*args):
    return 240000000


class WDT:
    def __init__(self, id=0, timeout=5000):
        self.timeout = timeout
        _board.wdt_start(timeout)

    def feed(self):
        _board.wdt_feed()


class Pin:
    IN = 0
    OUT = 1
    PULL_UP = 2

    def __init__(self, pin, mode=-1, pull=-1, value=None):
        self.pin = pin
        self._v = value or 0

    def value(self, v=None):
        if v is None:
            return self._v
        self._v = v

    def __call__(self, v=None):
        return self.value(v)


def _sds011_frame(kind, d):
    body = bytes(d) + b"\xa1\x60"
    return bytes([0xAA, kind]) + body + bytes([sum(body) & 0xFF, 0xAB])


LINK_UART = 2


class UART:
    def __init__(self, id, baudrate=9600, **kw):
        self.id = id
        self.baudrate = baudrate
        self.written = 0
        self.rx = b""
        self.sds011 = id == 1 and baudrate == 9600

    def init(self, *a, **kw):
        pass

    def write(self, data):
        self.written += len(data)
        if self.id == LINK_UART:
            _board.uart_write(self.id, hexlify(data).decode())
        if self.sds011 and len(data) == 19 and data[0] == 0xAA and data[1] == 0xB4:
            if data[2] == 0x04:  # query: PM2.5 12.3, PM10 20.7
                self.rx += _sds011_frame(0xC0, (123, 0, 207, 0))
            else:  # configuration commands are echoed in a C5 reply
                self.rx += _sds011_frame(0xC5, (data[2], data[3], data[4], 0))
        return len(data)

    def read(self, n=-1):
        if not self.rx:
            return None
        out, self.rx = (self.rx, b"") if n < 0 else (self.rx[:n], self.rx[n:])
        return out

    def any(self):
        return len(self.rx)


_BME280 = {0xD0: 0x60, 0xF3: 0}
for _i, _b in enumerate(b"pkCg\x18\xfc}\x8eC\xd6\xd0\x0b'\x0b\x8c\x00\xf9\xff\x8c<\xf8\xc6p\x17\x00K"):
    _BME280[0x88 + _i] = _b
for _i, _b in enumerate(b"j\x01\x00\x13)\x03\x1e"):
    _BME280[0xE1 + _i] = _b
for _i, _b in enumerate(b"eZ\xc0~\xed\x00u0"):
    _BME280[0xF7 + _i] = _b


class I2C:
    def __init__(self, id, **kw):
        self.id = id

    def scan(self):
        return [0x76]

    def readfrom_mem(self, addr, reg, n):
        if addr != 0x76:
            raise OSError(19)
        return bytes(_BME280.get(reg + i, 0) for i in range(n))

    def writeto_mem(self, addr, reg, data):
        if addr != 0x76:
            raise OSError(19)
        for i, b in enumerate(data):
            if reg + i in (0xF2, 0xF4, 0xF5):
                _BME280[reg + i] = b


class I2S:
    RX = 0
    TX = 1
    MONO = 0
    STEREO = 1

    def __init__(self, id, sck=None, ws=None, sd=None, mode=0, bits=32, format=0, rate=48000, ibuf=0):
        self.rate = rate
        self.t0 = time.ticks_ms()
        self.sent = 0
        # 1 kHz sine at 74 dB SPL: peak = 10^((74-120)/20) of full scale, 24-bit data left-justified in 32
        self.amp = 10 ** ((74 - 120) / 20) * 8388607
        self.w = 2 * math.pi * 1000 / rate

    def readinto(self, buf):
        n = len(buf)  # blocks until the whole buffer is due, like a real DMA read
        wait = (self.sent + n) * 1000 // self.rate - time.ticks_diff(time.ticks_ms(), self.t0)
        if wait > 0:
            time.sleep_ms(wait)
        amp, w, s0 = self.amp, self.w, self.sent
        for i in range(n):
            buf[i] = int(amp * math.sin(w * (s0 + i))) << 8
        self.sent += n
        return 4 * n

    def deinit(self):
        pass


class RTC:
    """Wall clock from the host (set via datetime() is kept as an offset for this boot)."""

    def __init__(self, id=0):
        self._set = None

    def datetime(self, dt=None):
        if dt is not None:
            self._set = dt
            return None
        if self._set is not None:
            return self._set
        t = time.localtime()
        return (t[0], t[1], t[2], t[6], t[3], t[4], t[5], 0)

    def init(self, dt):
        self._set = dt
