"""PMS5003 driver (passive and active mode) against the simulated sensor over a real pty link."""

from __future__ import annotations

import pytest

from contract.codecs import pms5003 as pms
from contract.models import DeviceKind
from gateway.counters import Counters
from gateway.devices.sensors.pms5003 import Pms5003Driver
from gateway.errors import ConfigError
from simulators.sensors import SimPms5003
from tests.sensors.helpers import Sink, device, uart_bus, wait_until

GOLDEN = (11, 17, 21)  # reference/sensing.md worked example: atmospheric PM1.0/2.5/10


def driver(link, sink, counters=None, **over):
    opts = {"mode": "passive", "interval_s": 0.05, "warmup_s": 0.1, **over}
    return Pms5003Driver(device("pms5003", **opts), bus=uart_bus(link.a), sink=sink, counters=counters)


async def test_passive_mode_golden_readings_and_faults(link):
    sink, counters = Sink(), Counters()
    async with SimPms5003(link.b, values=GOLDEN, period_s=0.02) as sim:
        drv = driver(link, sink, counters)
        await drv.start()
        try:
            await wait_until(lambda: len(sink.readings) >= 3, "passive readings")
            assert sim.passive and sim.awake
            sim.inject_garbage(b"\x42\x00\x4d\x11" * 3)  # header look-alikes
            sim.corrupt_next(1)
            sim.truncate_next(1)
            await wait_until(lambda: sim.counters["corrupted"] == 1 and sim.counters["truncated"] == 1, "faults")
            n = len(sink.readings)
            await wait_until(lambda: len(sink.readings) >= n + 3, "readings after the faults")
        finally:
            await drv.close()
    assert all(r.metrics == {"pm1_0": 11.0, "pm2_5": 17.0, "pm10": 21.0} and r.kind is DeviceKind.PMS5003
               for r in sink.readings)
    assert drv.stats["bad_checksum"] >= 2  # the corrupted frame, and the truncated one running into the next
    assert drv.stats["resync_bytes"] >= 12
    assert drv.stats["no_response"] >= 1  # the reads whose answer was destroyed
    assert counters.get("s-1.bad_checksum") == drv.stats["bad_checksum"]
    assert sim.counters["reads_answered"] >= len(sink.readings)


async def test_active_mode_averages_and_discards_warmup(link):
    sink = Sink()
    values = iter([(10, 20, 30), (12, 22, 32)] * 10_000)
    async with SimPms5003(link.b, values=lambda: next(values), period_s=0.01):
        drv = driver(link, sink, mode="active", interval_s=0.3, warmup_s=0.15)
        await drv.start()
        try:
            await wait_until(lambda: len(sink.readings) >= 2, "averaged readings")
        finally:
            await drv.close()
    assert drv.stats["warmup_discarded"] > 0
    for r in sink.readings:
        assert 10.0 <= r.metrics["pm1_0"] <= 12.0 and 20.0 <= r.metrics["pm2_5"] <= 22.0


async def test_port_vanishes_and_comes_back(link):
    sink, counters = Sink(), Counters()
    async with SimPms5003(link.b, values=GOLDEN, period_s=0.02) as sim:
        drv = driver(link, sink, counters)
        await drv.start()
        try:
            await wait_until(lambda: len(sink.readings) >= 1, "first reading")
            link.vanish()
            await wait_until(lambda: not drv.uart.connected, "the driver notices")
            link.restore()
            n = len(sink.readings)
            await wait_until(lambda: len(sink.readings) >= n + 2, "readings after the reconnect")
        finally:
            await drv.close()
    assert counters.get("uart_lost") == 1 and counters.get("uart_opened") == 2
    assert sim.counters["opened"] == 2
    # after the reconnect the driver set passive mode again
    assert [c.cmd for c in sim.commands].count(pms.Cmd.MODE) >= 2


def test_bad_options_fail_at_construction_with_the_key_name(tmp_path):
    with pytest.raises(ConfigError, match="mode"):
        Pms5003Driver(device("pms5003", mode="sometimes"), bus=uart_bus(tmp_path / "x"))
    with pytest.raises(ConfigError, match="intervall_s"):
        Pms5003Driver(device("pms5003", intervall_s=5), bus=uart_bus(tmp_path / "x"))
    with pytest.raises(ConfigError, match="needs `bus`"):
        Pms5003Driver(device("pms5003", bus=None))
