# Air node: SDS011 in query mode with a duty cycle, BME280 in forced mode; one AIR frame per cycle.
import asyncio

import hal
import nodeframe
import sds011
from bme280 import BME280
from health import ERR_SENSOR


class AirNode:
    def __init__(self, cfg, sender, health, uart, i2c):
        self.sender = sender
        self.health = health
        self.uart = uart
        self.bme = BME280(i2c)
        self.cycle = sds011.DutyCycle(cfg["air_period_s"])
        self.rx = b""
        self.counters = {}
        try:
            self.bme.probe()
        except OSError as e:
            self.bme = None
            health.error(ERR_SENSOR, "BME280: %s" % e)

    def climate(self):
        if self.bme is None:
            return None, None, None
        try:
            return self.bme.read()
        except OSError as e:
            self.health.error(ERR_SENSOR, "BME280 read failed: %s" % e)
            return None, None, None

    def step(self, now_s, uptime_s):
        """One pass: send due commands, parse replies, emit an AIR frame when a cycle completed."""
        for cmd in self.cycle.poll(now_s):
            self.uart.write(cmd)
        data = self.uart.read()
        if data:
            self.rx += data
            while self.rx:
                used, r = sds011.parse(self.rx, self.counters)
                if used == 0:
                    break
                self.rx = self.rx[used:]
                if r is not None:
                    self.cycle.on_reading(now_s, r)
            if len(self.rx) > 64:  # never let garbage grow without bound
                self.counters["overflow"] = self.counters.get("overflow", 0) + 1
                self.rx = b""
        result = self.cycle.take()
        if result is None:
            return None
        pm25, pm10, n = result
        if n == 0:
            self.health.error(ERR_SENSOR, "SDS011 gave no reading in the last cycle: check its 5 V supply and TX/RX")
        if self.bme is not None:
            self.bme.start_forced()
        t, p, h = self.climate()
        frame = nodeframe.pack_air(uptime_s, pm25, pm10, t, h, None if p is None else int(p))
        self.sender.send(nodeframe.AIR, frame)
        return frame


async def run(cfg, sender, health):
    node = AirNode(cfg, sender, health, hal.sds011_uart(cfg), hal.i2c(cfg))
    t0 = hal.ticks_ms()
    while True:
        ms = hal.ticks_diff(hal.ticks_ms(), t0)
        node.step(ms / 1000, ms // 1000)
        health.beat()
        await asyncio.sleep_ms(200)
