# The virtual board's `machine` module (its "ROM"): enough of MicroPython's ESP32 `machine` API for the
# dozor HAL to run. Peripherals are simulated: the watchdog counts feeds, UARTs record what is written
# and answer nothing, I2C has no devices, and I2S delivers a steady 1 kHz tone at 74 dB SPL, paced by
# the clock (reads block like DMA). `reset()` asks the bridge for a hard reset.
import math
import time

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


class UART:
    def __init__(self, id, baudrate=9600, **kw):
        self.id = id
        self.baudrate = baudrate
        self.written = 0

    def init(self, *a, **kw):
        pass

    def write(self, data):
        self.written += len(data)
        return len(data)

    def read(self, n=-1):
        return None

    def any(self):
        return 0


class I2C:
    def __init__(self, id, **kw):
        self.id = id

    def scan(self):
        return []

    def readfrom_mem(self, addr, reg, n):
        raise OSError(19)

    def writeto_mem(self, addr, reg, data):
        raise OSError(19)


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
