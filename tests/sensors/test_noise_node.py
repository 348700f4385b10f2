"""Noise node driver against the simulated MicroPython node over a real pty link (node_frame)."""

from __future__ import annotations

import json
from pathlib import Path

from contract.codecs import node_frame as nf
from contract.models import DeviceKind, DeviceState
from gateway.counters import Counters
from gateway.devices.sensors.noise_node import NoiseNodeDriver
from simulators.sensors import SimNoiseNode
from tests.sensors.helpers import Sink, device, uart_bus, wait_until

LEVELS = (62.5, 71.25, 65.0, 55.75)


def driver(link, sink, counters=None):
    return NoiseNodeDriver(device("noise_node", dev_id="noise-1"), bus=uart_bus(link.a, 115200), sink=sink,
                           counters=counters)


async def test_golden_stream_byte_by_byte(link):
    """The contract's golden byte stream (garbage, bad header, bad CRC, unknown type, bad length and three
    good frames), written one byte at a time: exactly the documented counters and frames come out."""
    vectors = json.loads((Path(nf.__file__).parents[1] / "vectors" / "node_frame.json").read_text())
    stream = bytes.fromhex(vectors["stream"]["hex"])
    want = vectors["stream"]["expect_counters"]
    sink = Sink()
    async with SimNoiseNode(link.b, levels=LEVELS, period_s=3600) as sim:
        drv = driver(link, sink)
        await drv.start()
        try:
            await wait_until(lambda: drv.stats["node_status"] == 1, "boot status")
            for b in stream:
                sim.write_raw(bytes([b]))
            await wait_until(lambda: drv.stats["frames"] == 1 + want["frames"], "golden frames")
        finally:
            await drv.close()
    for name, n in want.items():
        assert drv.stats[name] == n + (1 if name == "frames" else 0), name
    golden = {f["name"]: f["body"] for f in vectors["frames"]}
    quiet, siren = golden["levels_quiet_street"], golden["levels_clipped_siren"]
    assert [r.metrics for r in sink.readings] == [{k: quiet[k] for k in ("laeq", "lafmax", "la10", "la90")},
                                                  {k: siren[k] for k in ("laeq", "lafmax", "la10", "la90")}]
    assert sink.readings[1].flags == ("clipped", "siren_tonal")
    (_, kind, _, data), = sink.events
    assert kind == "noise_pass_by" and data["class"] == "exhaust" and data["lafmax"] == 97.42


async def test_levels_events_air_and_faults(link):
    sink, counters = Sink(), Counters()
    async with SimNoiseNode(link.b, levels=LEVELS, period_s=0.02) as sim:
        drv = driver(link, sink, counters)
        await drv.start()
        try:
            await wait_until(lambda: len(sink.readings) >= 3, "levels")
            sim.send_event(nf.EventClass.EXHAUST, lafmax=91.5, duration_ms=2000)
            sim.send_air()
            sim.repeat_last()  # duplicate seq: dropped
            sim.skip(3)  # a gap of 3
            sim.inject_garbage(bytes(range(1, 40)))
            sim.corrupt_next(1)
            sim.truncate_next(1)
            await wait_until(lambda: len(sink.events) == 1 and drv.stats["bad_crc"] >= 1
                             and sim.counters["truncated"] == 1, "event and faults")
            n = len(sink.readings)
            await wait_until(lambda: len(sink.readings) >= n + 3, "levels after the faults")
            assert (await drv.status()).state is DeviceState.IDLE
        finally:
            await drv.close()
    levels = [r for r in sink.readings if "laeq" in r.metrics]
    air = [r for r in sink.readings if "pm2_5" in r.metrics]
    assert all(r.metrics == {"laeq": 62.5, "lafmax": 71.25, "la10": 65.0, "la90": 55.75} for r in levels)
    assert all(r.kind is DeviceKind.NOISE_NODE and r.device == "noise-1" for r in sink.readings)
    assert len(air) == 1 and air[0].metrics == {"pm2_5": 12.3, "pm10": 20.1, "temperature": 18.5,
                                                 "humidity": 55.0, "pressure": 101325.0}
    device_id, kind, _, data = sink.events[0]
    assert (device_id, kind, data["class"], data["lafmax"], data["duration_s"]) == (
        "noise-1", "noise_pass_by", "exhaust", 91.5, 2.0)
    assert drv.stats["seq_duplicate"] == 1
    assert drv.stats["seq_lost"] >= 3  # the skip, plus frames destroyed by the faults
    assert drv.stats["resync_bytes"] >= 39
    assert counters.get("noise-1.seq_duplicate") == 1


async def test_node_reboot_and_cable_loss(link):
    sink, counters = Sink(), Counters()
    async with SimNoiseNode(link.b, levels=LEVELS, period_s=0.02) as sim:
        drv = driver(link, sink, counters)
        await drv.start()
        try:
            await wait_until(lambda: len(sink.readings) >= 2, "levels")
            sim.reboot()
            await wait_until(lambda: drv.stats["seq_reset"] == 1 and drv.node.boot_count == 2, "reboot seen")
            link.vanish()
            await wait_until(lambda: not drv.uart.connected, "the driver notices")
            assert (await drv.status()).state is DeviceState.UNREACHABLE
            link.restore()
            n = len(sink.readings)
            await wait_until(lambda: len(sink.readings) >= n + 3, "levels after the reconnect")
            sim.error_bits = 0x0004
            sim.send_status()
            await wait_until(lambda: drv.node.error_bits == 4, "fault status")
            assert (await drv.status()).state is DeviceState.FAULT
        finally:
            await drv.close()
    assert counters.get("uart_lost") == 1 and counters.get("uart_opened") == 2


async def test_port_missing_at_start_is_opened_when_it_appears(link):
    sink, counters = Sink(), Counters()
    link.vanish()  # the USB adapter is not plugged in when the gateway boots
    drv = driver(link, sink, counters)
    await drv.start()
    try:
        assert counters.get("uart_open_failed") == 1 and not drv.uart.connected
        assert (await drv.status()).state is DeviceState.UNREACHABLE
        link.restore()
        async with SimNoiseNode(link.b, levels=LEVELS, period_s=0.02):
            await wait_until(lambda: len(sink.readings) >= 2, "levels once the port is there")
    finally:
        await drv.close()
    assert counters.get("uart_opened") == 1


async def test_status_is_reported_and_a_reflash_reannounces(link):
    """STATUS -> DeviceInfo.fw and the heartbeat detail; a reboot with new firmware (a reflash) calls the
    info listeners once more (the gateway re-publishes its birth); a node that reboots right after its first
    frame (same seq 0, new content) is a reset, not a dropped duplicate."""
    sink, counters = Sink(), Counters()
    announced: list[str | None] = []
    async with SimNoiseNode(link.b, levels=LEVELS, period_s=3600, fw=(1, 2), boot_count=4) as sim:
        drv = driver(link, sink, counters)
        drv.info_listeners.append(lambda: announced.append(drv.info().fw))
        assert drv.info().fw is None  # nothing heard yet
        await drv.start()
        try:
            await wait_until(lambda: drv.node is not None, "boot status")
            st = await drv.status()
            assert (st.state, st.detail) == (DeviceState.IDLE, "fw 1.2 boots 4 errors 0x0000")
            assert nf.parse_status_detail(st.detail) == ("1.2", 4, 0)
            sim.fw = (1, 3)
            sim.reboot()  # seq 0 again, boot 5, fw 1.3
            await wait_until(lambda: drv.info().fw == "1.3", "new firmware seen")
            sim.reboot()  # seq 0 once more right away: same seq as the last frame, different body
            await wait_until(lambda: drv.node.boot_count == 6, "second reboot seen")
            sim.send_levels()
            await wait_until(lambda: len(sink.readings) == 1, "levels after the reboots")
        finally:
            await drv.close()
    assert announced == ["1.2", "1.3"]  # first STATUS after the birth, then the reflash
    assert drv.stats["node_reboots"] == 2 and drv.stats["node_fw_changes"] == 1
    assert drv.stats["seq_reset"] == 2 and drv.stats["seq_duplicate"] == 0
    assert counters.get("noise-1.node_reboots") == 2
