"""Simulated siren controllers: the behaviour (no I/O) and the Modbus RTU server on a pty link."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pymodbus.client import AsyncModbusSerialClient
from pymodbus.exceptions import ModbusIOException

from contract.codecs import siren_modbus as sm
from simulators.pty_link import PtyLink
from simulators.siren import SimSiren, SirenBus, SirenSimError

VECTORS = json.loads((Path(sm.__file__).parents[1] / "vectors" / "siren_modbus.json").read_text())


def block(cmd, pattern=sm.Pattern.NONE, duration=0, seq=1):
    return sm.decode_command(sm.encode_command(cmd, pattern=pattern, duration_s=duration, seq=seq)[1])


def test_activation_spins_up_sounds_and_stops_by_itself():
    s = SimSiren(address=1, spinup_s=1.5)
    s.execute(block(sm.Cmd.ACTIVATE, sm.Pattern.WAIL, 10, seq=7), now=100.0)
    assert s.status(100.0).status is sm.Status.SPINNING_UP
    st_ = s.status(101.6)
    assert st_.status is sm.Status.SOUNDING and st_.seq == 7 and st_.remaining_s == 10
    assert s.status(111.6).status is sm.Status.IDLE  # its own DURATION_S ran out
    assert s.activations == 1


def test_stop_amplifier_fault_and_broken_timer():
    s = SimSiren(address=1, spinup_s=0)
    s.execute(block(sm.Cmd.ACTIVATE, sm.Pattern.STEADY, 5), now=0)
    s.execute(block(sm.Cmd.STOP, seq=2), now=1)
    assert s.status(1).status is sm.Status.IDLE
    s.inject_fault(sm.Fault.AMPLIFIER | sm.Fault.DOOR_OPEN)
    s.execute(block(sm.Cmd.ACTIVATE, sm.Pattern.WAIL, 5, seq=3), now=2)
    st_ = s.status(2)
    assert st_.status is sm.Status.FAULT and set(st_.fault_names) == {"amplifier", "door_open"}
    s.clear_fault()
    s.honour_duration = False
    s.execute(block(sm.Cmd.ACTIVATE, sm.Pattern.WAIL, 1, seq=4), now=10)
    assert s.status(1000).status is sm.Status.SOUNDING  # only a STOP ends it now


def test_silent_test_pass_and_fail():
    s = SimSiren(address=1, selftest_s=1.0)
    s.execute(block(sm.Cmd.SILENT_TEST), now=0)
    assert s.status(0.5).status is sm.Status.SILENT_TEST
    st_ = s.status(1.5)
    assert st_.status is sm.Status.IDLE and st_.selftest == 1
    s.inject_fault(sm.Fault.AMPLIFIER)
    s.execute(block(sm.Cmd.SILENT_TEST, seq=2), now=2)
    assert s.status(3.5).selftest == 2


def test_battery_low_shows_in_status():
    s = SimSiren(address=1, battery_dv=130)
    s.inject_fault(sm.Fault.BATTERY_LOW)
    st_ = s.status(0)
    assert "battery_low" in st_.fault_names and st_.battery_v <= 11.0


def test_bus_refuses_bad_unit_ids():
    with pytest.raises(SirenSimError):
        SirenBus("/dev/null", [SimSiren(address=1), SimSiren(address=1)])
    with pytest.raises(SirenSimError):
        SirenBus("/dev/null", [SimSiren(address=248)])


@pytest.fixture
async def modbus_rig():
    async with PtyLink() as link:
        sirens = [SimSiren(address=1, spinup_s=0), SimSiren(address=2, spinup_s=0)]
        async with SirenBus(link.b, sirens) as bus:
            client = AsyncModbusSerialClient(link.a, baudrate=19200, timeout=0.3, retries=0)
            assert await client.connect()
            client.bus = bus
            try:
                yield link, sirens, client
            finally:
                client.close()


async def test_golden_vector_over_modbus_and_shared_bus(modbus_rig):
    link, sirens, client = modbus_rig
    vec = VECTORS["activate_wail_180_seq7"]
    rr = await client.write_registers(vec["address"], vec["registers"], device_id=2)
    assert not rr.isError()
    assert sirens[1].activations == 1 and sirens[0].activations == 0
    rr = await client.read_holding_registers(sm.STATUS_BLOCK_ADDR, count=sm.STATUS_BLOCK_LEN, device_id=2)
    status = sm.decode_status(rr.registers)
    assert status.status is sm.Status.SOUNDING and status.seq == 7 and status.fw == "1.4"
    rr = await client.read_holding_registers(sm.STATUS_BLOCK_ADDR, count=sm.STATUS_BLOCK_LEN, device_id=1)
    assert sm.decode_status(rr.registers).status is sm.Status.IDLE


async def test_bad_requests_get_exception_responses(modbus_rig):
    _, sirens, client = modbus_rig
    rr = await client.write_registers(0, [1, 0, 10, 1], device_id=1)  # activate without a pattern
    assert rr.isError()
    rr = await client.write_registers(0, [9, 1, 10, 1], device_id=1)  # unknown command code
    assert rr.isError()
    rr = await client.write_register(1, 5, device_id=1)  # half a command block
    assert rr.isError()
    rr = await client.write_registers(10, [0] * 7, device_id=1)  # status block is read-only
    assert rr.isError()
    assert sirens[0].activations == 0 and sirens[0].rejected_writes >= 3


async def test_unresponsive_unit_is_silent_while_its_neighbour_answers(modbus_rig):
    _, sirens, client = modbus_rig
    sirens[0].unresponsive = True
    with pytest.raises(ModbusIOException):
        await client.read_holding_registers(sm.STATUS_BLOCK_ADDR, count=sm.STATUS_BLOCK_LEN, device_id=1)
    rr = await client.read_holding_registers(sm.STATUS_BLOCK_ADDR, count=sm.STATUS_BLOCK_LEN, device_id=2)
    assert not rr.isError()
    sirens[0].unresponsive = False
    rr = await client.read_holding_registers(sm.STATUS_BLOCK_ADDR, count=sm.STATUS_BLOCK_LEN, device_id=1)
    assert not rr.isError()


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(garbage=st.binary(min_size=1, max_size=64))
async def test_line_garbage_never_breaks_the_server(modbus_rig, garbage):
    link, sirens, client = modbus_rig
    link.inject(garbage, "ab")
    await asyncio.sleep(0.08)  # line silence: a controller drops a partial frame after t3.5
    # The server resynchronises: a clean request is answered within a few retries.
    for _ in range(5):
        try:
            rr = await client.read_holding_registers(sm.STATUS_BLOCK_ADDR, count=sm.STATUS_BLOCK_LEN, device_id=2)
        except ModbusIOException:
            await asyncio.sleep(0.05)
            continue
        if not rr.isError():
            break
    else:
        raise AssertionError(f"server never recovered after {garbage!r}")


async def test_a_partial_frame_followed_by_silence_is_discarded(modbus_rig):
    link, sirens, client = modbus_rig
    link.inject(b"\x01\x10\x00\x00\x00\x7b\xf6", "ab")  # FC16 header announcing 246 more bytes, then nothing
    await asyncio.sleep(0.2)
    rr = await client.read_holding_registers(sm.STATUS_BLOCK_ADDR, count=sm.STATUS_BLOCK_LEN, device_id=2)
    assert not rr.isError() and client.bus.resyncs == 1
    assert sirens[0].log == []
