# Hardware access layer: the only module that touches `machine`. Everything else takes what it needs
# from here, so tests swap this one file for a stub and the virtual board supplies a simulated machine.
# ESP32 defaults; pins can be overridden in config.json ("pins": {...}).
import time

import machine

PINS = {"mic_sck": 32, "mic_ws": 25, "mic_sd": 33, "link_tx": 17, "link_rx": 16,
        "sds_tx": 4, "sds_rx": 5, "i2c_scl": 22, "i2c_sda": 21}
_CAUSES = {}
for _name in ("PWRON_RESET", "HARD_RESET", "WDT_RESET", "DEEPSLEEP_RESET", "SOFT_RESET"):
    if hasattr(machine, _name):
        _CAUSES[getattr(machine, _name)] = _name.lower().replace("_reset", "").replace("wdt", "watchdog")


def pins(cfg=None):
    p = dict(PINS)
    if cfg and isinstance(cfg.get("pins"), dict):
        p.update(cfg["pins"])
    return p


def ticks_ms():
    return time.ticks_ms()


def ticks_diff(a, b):
    return time.ticks_diff(a, b)


def watchdog(timeout_ms):
    """Start the hardware watchdog (it cannot be stopped); the caller must feed() it."""
    return machine.WDT(timeout=timeout_ms)


def reset():
    machine.reset()


def reset_cause():
    return _CAUSES.get(machine.reset_cause(), "unknown")


def unique_id():
    return "".join("%02x" % b for b in machine.unique_id())


def link_uart(cfg=None, baud=115200):
    p = pins(cfg)
    return machine.UART(2, baudrate=baud, tx=p["link_tx"], rx=p["link_rx"], timeout=0)


def sds011_uart(cfg=None):
    p = pins(cfg)
    return machine.UART(1, baudrate=9600, tx=p["sds_tx"], rx=p["sds_rx"], timeout=0)


def i2c(cfg=None):
    p = pins(cfg)
    return machine.I2C(0, scl=machine.Pin(p["i2c_scl"]), sda=machine.Pin(p["i2c_sda"]), freq=100000)


class Mic:
    """I2S MEMS microphone (INMP441-style: 24-bit data in 32-bit slots), 48 kHz mono."""

    def __init__(self, cfg=None, rate=48000, ibuf=19200):
        p = pins(cfg)
        self.rate = rate
        self.i2s = machine.I2S(0, sck=machine.Pin(p["mic_sck"]), ws=machine.Pin(p["mic_ws"]),
                               sd=machine.Pin(p["mic_sd"]), mode=machine.I2S.RX, bits=32,
                               format=machine.I2S.MONO, rate=rate, ibuf=ibuf)

    async def readinto(self, buf):
        """Fill buf (an array('i')) with samples; returns the number of bytes read. The DMA read blocks for
        one buffer (50 ms at 48 kHz with 2400 samples); other tasks run between buffers."""
        import asyncio
        await asyncio.sleep_ms(1)  # a real pause: lets the other tasks (and a REPL Ctrl-C) in
        return self.i2s.readinto(buf)

    def read_blocking(self, buf):
        return self.i2s.readinto(buf)

    def close(self):
        self.i2s.deinit()
