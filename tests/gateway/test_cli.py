"""`dozor gateway check-config` and `dozor sim ...` through the real Typer app."""

from __future__ import annotations

import json
from pathlib import Path

from typer.testing import CliRunner

from dozor.cli import app

ROOT = Path(__file__).resolve().parents[2]
runner = CliRunner()


def test_check_config_ok_and_json():
    res = runner.invoke(app, ["gateway", "check-config", str(ROOT / "examples" / "gateway.toml"), "--json"])
    assert res.exit_code == 0, res.output
    doc = json.loads(res.stdout)
    assert doc["ok"] and doc["gateway"] == "gw-podil-01" and len(doc["devices"]) == 7
    assert {"id": "mic-1", "kind": "microphone"} in doc["devices"]


def test_no_example_pins_a_published_key_and_check_config_warns_loudly_about_one(tmp_path):
    from contract.command import PUBLISHED_TEST_KIDS, key_id, private_key_from_seed_b64

    vectors = json.loads((ROOT / "contract" / "vectors" / "commands.json").read_text())
    published = key_id(private_key_from_seed_b64(vectors["hub_seed_TEST_ONLY"]).public_key())
    assert published in PUBLISHED_TEST_KIDS
    for example in sorted((ROOT / "examples").glob("gateway*.toml")):
        res = runner.invoke(app, ["gateway", "check-config", str(example), "--json"])
        assert res.exit_code == 0, res.output
        doc = json.loads(res.stdout)
        assert not set(doc["hub_keys"]) & PUBLISHED_TEST_KIDS and doc["warnings"] == [], example
    risky = tmp_path / "risky.toml"
    risky.write_text((ROOT / "examples" / "gateway.toml").read_text().replace(
        '"sskk-Yj00o2HjagU" = "PW9OvOic2BzsaNI9GHc7e5PJhdfibbL1SxRaLNxTlv8"',
        f'"{published}" = "{vectors["hub_public_key"]}"').replace('"gateway-assets/', f'"{ROOT}/examples/gateway-assets/'))
    res = runner.invoke(app, ["gateway", "check-config", str(risky)])
    assert res.exit_code == 0 and "WARNING" in res.stderr and "PUBLISHED TEST KEY" in res.stderr
    doc = json.loads(runner.invoke(app, ["gateway", "check-config", str(risky), "--json"]).stdout)
    assert len(doc["warnings"]) == 1 and published in doc["warnings"][0]


def test_check_config_reports_problems_with_exit_2(tmp_path):
    bad = tmp_path / "bad.toml"
    bad.write_text((ROOT / "examples" / "gateway.toml").read_text().replace("address = 4", "address = 4000"))
    res = runner.invoke(app, ["gateway", "check-config", str(bad), "--json"])
    assert res.exit_code == 2
    doc = json.loads(res.stdout)
    assert doc["ok"] is False and any("device[3].address" in p for p in doc["problems"])


def test_sim_group_has_the_device_simulators():
    res = runner.invoke(app, ["sim", "--help"])
    assert res.exit_code == 0 and "siren" in res.stdout and "speaker" in res.stdout
    res = runner.invoke(app, ["sim", "siren"])
    assert res.exit_code != 0 and "exactly one of --port" in res.output


async def test_sim_siren_cli_serves_controllers_on_a_virtual_cable(tmp_path):
    import asyncio
    import os
    import signal
    import sys

    from pymodbus.client import AsyncModbusSerialClient

    from contract.codecs import siren_modbus as sm

    tty = tmp_path / "tty-sim"
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-c", "from dozor.cli import app; app()", "sim", "siren", "--link", str(tty), "--count", "2",
        "--spinup", "0", cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)},
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    try:
        line = await asyncio.wait_for(proc.stdout.readline(), 30)
        assert b"gateway side of the cable" in line
        await asyncio.wait_for(proc.stdout.readline(), 30)  # "2 siren(s) ... on ..." = serving
        client = AsyncModbusSerialClient(str(tty), timeout=1, retries=1)
        assert await client.connect()
        try:
            addr, regs = sm.encode_command(sm.Cmd.ACTIVATE, pattern=sm.Pattern.WAIL, duration_s=5, seq=9)
            assert not (await client.write_registers(addr, regs, device_id=2)).isError()
            rr = await client.read_holding_registers(sm.STATUS_BLOCK_ADDR, count=sm.STATUS_BLOCK_LEN, device_id=2)
            assert sm.decode_status(rr.registers).status is sm.Status.SOUNDING
        finally:
            client.close()
        proc.send_signal(signal.SIGINT)
        out, _ = await asyncio.wait_for(proc.communicate(), 30)
        assert b"unit 2: 1 activation(s)" in out and b"unit 1: 0 activation(s)" in out
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
