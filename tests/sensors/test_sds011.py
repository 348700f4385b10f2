"""SDS011 driver against the simulated sensor over a real pty link (pyserial on both ends)."""

from __future__ import annotations

from contract.codecs import sds011 as sds
from contract.models import DeviceKind, DeviceState
from gateway.counters import Counters
from gateway.devices.sensors.sds011 import Sds011Driver
from simulators.sensors import SimSds011
from tests.sensors.helpers import Sink, device, uart_bus, wait_until

GOLDEN = (123.6, 261.8)  # contract/vectors/sds011.json: AA C0 D4 04 3A 0A A1 60 1D AB
FAST = dict(interval_s=0.4, warmup_s=0.1, read_s=0.12, sample_s=0.03, device_id=0xA160)


def driver(link, sink, counters=None, **over):
    return Sds011Driver(device("sds011", **{**FAST, **over}), bus=uart_bus(link.a), sink=sink, counters=counters)


async def test_golden_readings_in_query_mode_with_duty_cycle(link):
    sink = Sink()
    async with SimSds011(link.b, values=GOLDEN, device_id=0xA160, period_s=0.02) as sim:
        drv = driver(link, sink)
        await drv.start()
        try:
            await wait_until(lambda: len(sink.readings) >= 2, "two duty cycles")
            assert (await drv.status()).state is DeviceState.IDLE
        finally:
            await drv.close()
    assert sim.query_mode, "the driver puts the sensor in query mode"
    assert sim.counters["wakes"] >= 2 and sim.counters["sleeps"] >= 1, sim.counters
    assert sim.counters["queries_answered"] >= 2
    for r in sink.readings:
        assert r.device == "s-1" and r.kind is DeviceKind.SDS011
        assert r.metrics == {"pm2_5": 123.6, "pm10": 261.8}
    assert drv.stats["bad_checksum"] == drv.stats["resync_bytes"] == 0
    # the driver's own bytes on the wire are the documented commands (checksums computed, never copied)
    wire = [c for c in sim.commands if c.sub is sds.Sub.REPORTING_MODE]
    assert wire and sds.encode_command(wire[0]).hex(" ") == "aa b4 02 01 01 00 00 00 00 00 00 00 00 00 00 a1 60 05 ab"


async def test_lost_mode_command_warmup_discard_and_mode_restore(link):
    """The set-query-mode command is lost on the line: the sensor keeps streaming in active mode. What
    arrives before the warm-up is over is discarded, and the driver sets query mode again."""
    sink = Sink()
    link.drop_next(sds.COMMAND_LEN, "ab")
    async with SimSds011(link.b, values=GOLDEN, period_s=0.01) as sim:
        drv = driver(link, sink)
        await drv.start()
        try:
            await wait_until(lambda: len(sink.readings) >= 2 and drv.stats["warmup_discarded"] > 0, "warm-up")
        finally:
            await drv.close()
    assert sim.query_mode and drv.stats["mode_restored"] >= 1
    assert link.counters.dropped["ab"] == sds.COMMAND_LEN
    assert all(r.metrics == {"pm2_5": 123.6, "pm10": 261.8} for r in sink.readings)


async def test_garbage_bad_checksums_and_partial_frames_are_counted_and_survived(link):
    sink = Sink()
    counters = Counters()
    async with SimSds011(link.b, values=GOLDEN, period_s=0.02) as sim:
        drv = driver(link, sink, counters)
        await drv.start()
        try:
            await wait_until(lambda: len(sink.readings) >= 1, "first reading")
            sim.inject_garbage(b"\x00\x13\x37\xfe" * 4)
            sim.corrupt_next(2)
            sim.truncate_next(1)
            await wait_until(lambda: sim.counters["truncated"] == 1 and sim.counters["corrupted"] == 2,
                             "faults sent")
            before = len(sink.readings)
            await wait_until(lambda: len(sink.readings) >= before + 2, "readings after the faults")
        finally:
            await drv.close()
    assert drv.stats["bad_checksum"] >= 2
    assert drv.stats["resync_bytes"] >= 16
    assert drv.stats["bad_header"] >= 1  # the truncated frame ran into the next one
    assert all(r.metrics == {"pm2_5": 123.6, "pm10": 261.8} for r in sink.readings)
    # mirrored into the gateway counters (they go out in every heartbeat)
    assert counters.get("s-1.bad_checksum") == drv.stats["bad_checksum"]
    assert counters.get("s-1.resync_bytes") == drv.stats["resync_bytes"]


async def test_port_vanishes_and_comes_back(link):
    sink = Sink()
    counters = Counters()
    async with SimSds011(link.b, values=GOLDEN, period_s=0.02) as sim:
        drv = driver(link, sink, counters)
        await drv.start()
        try:
            await wait_until(lambda: len(sink.readings) >= 1, "first reading")
            link.vanish()
            await wait_until(lambda: not drv.uart.connected, "the driver notices")
            assert (await drv.status()).state is DeviceState.UNREACHABLE
            link.restore()
            await wait_until(lambda: drv.uart.connected and sim.connected, "both ends reopen")
            n = len(sink.readings)
            await wait_until(lambda: len(sink.readings) >= n + 2, "readings after the reconnect")
        finally:
            await drv.close()
    assert counters.get("uart_lost") == 1 and counters.get("uart_opened") == 2
    assert sim.counters["opened"] == 2
    assert all(r.metrics == {"pm2_5": 123.6, "pm10": 261.8} for r in sink.readings)


async def test_sensor_power_cycle(link):
    """The sensor loses power (silence: unreachable) and comes back in its factory active mode."""
    sink, counters = Sink(), Counters()
    async with SimSds011(link.b, values=GOLDEN, period_s=0.02) as sim:
        drv = driver(link, sink, counters)
        await drv.start()
        try:
            await wait_until(lambda: len(sink.readings) >= 1, "first reading")
            sim.power_off()
            await wait_until(lambda: drv.stats["cycle_without_samples"] >= 1, "a cycle without answers")
            assert (await drv.status()).state is DeviceState.UNREACHABLE
            sim.power_on()
            assert not sim.query_mode
            n = len(sink.readings)
            await wait_until(lambda: len(sink.readings) >= n + 2 and sim.query_mode, "back in query mode")
            assert (await drv.status()).state is DeviceState.IDLE
        finally:
            await drv.close()
    assert drv.stats["mode_restored"] >= 1
    assert counters.get("uart_lost") == 0, "the cable never went away"
    assert all(r.metrics == {"pm2_5": 123.6, "pm10": 261.8} for r in sink.readings)
