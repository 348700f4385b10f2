"""The whole alert path at the level where operators act: `dozor` CLI invocations against a `dozor hub run`
process, a real Mosquitto, and real gateway instances driving Modbus siren controllers on ptys."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import sys
from pathlib import Path

import httpx
import pytest

from contract.codecs import siren_modbus as sm
from dozor.commands.sim_city import enrolling_factory, hub_keys_from
from simulators.brokers import free_port
from simulators.city import City, CityPlan
from tests.tokens import admin_token

pytestmark = pytest.mark.integration
DOZOR = [str(Path(sys.executable).with_name("dozor"))]


async def run_cli(*args: str, env: dict[str, str]) -> tuple[int, str, str]:
    proc = await asyncio.create_subprocess_exec(*DOZOR, *args, stdout=asyncio.subprocess.PIPE,
                                                stderr=asyncio.subprocess.PIPE, env={**os.environ, **env})
    out, err = await proc.communicate()
    return proc.returncode, out.decode(), err.decode()


@pytest.fixture
async def system(mosquitto, tmp_path):
    plan = CityPlan(gateways=3, sirens_per_gateway=2, zones=2)
    (tmp_path / "zones.json").write_text(json.dumps(plan.zones_config()))
    port = free_port()
    (tmp_path / "hub.toml").write_text(
        f'[hub]\nstate_dir = "hub"\napi_port = {port}\nzones = "zones.json"\nconfirm_deadline_s = 5\n'
        f'[mqtt]\nurl = "{mosquitto.url}"\n')
    token = admin_token(tmp_path / "hub")
    hub = await asyncio.create_subprocess_exec(*DOZOR, "hub", "run", "--config", str(tmp_path / "hub.toml"),
                                               stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE)
    url = f"http://127.0.0.1:{port}"
    async with httpx.AsyncClient() as http:
        for _ in range(200):
            with contextlib.suppress(httpx.TransportError):  # not listening yet
                if (await http.get(f"{url}/healthz")).status_code == 200:
                    break
            await asyncio.sleep(0.05)
        else:
            hub.kill()
            pytest.fail("hub did not come up: " + (await hub.stderr.read()).decode()[-2000:])
    keys = hub_keys_from(tmp_path / "hub", [])
    city = await City(plan, mosquitto.url, keys, tmp_path / "city", enrolling_factory(tmp_path / "hub"), spinup_s=0.2,
                      heartbeat_s=1.0).start()
    env = {"DOZOR_HUB_URL": url, "DOZOR_TOKEN": token}
    # wait until the hub has seen every gateway's birth
    for _ in range(200):
        code, out, _ = await run_cli("gateways", "--json", env=env)
        if code == 0 and sum(g["state"] == "online" for g in json.loads(out)) == plan.gateways:
            break
        await asyncio.sleep(0.1)
    else:
        pytest.fail("gateways did not come online")
    yield plan, city, env
    await city.stop()
    hub.terminate()
    await hub.wait()


async def test_operator_drill_sounds_every_siren_then_all_clear_then_stop(system):
    plan, city, env = system
    zones = [z["id"] for z in plan.zones_config()]
    args = ["alert", "start", "--signal", "air-raid", "--duration", "60", "--json", "--wait", "30"]
    for z in zones:
        args += ["--zone", z]
    code, out, err = await run_cli(*args, env=env)
    alert = json.loads(out)
    assert code == 0, err
    assert alert["mode"] == "actual" and alert["summary"]["total"] == plan.sirens_total
    assert alert["summary"]["confirmed"] == plan.sirens_total
    assert {d["state"] for d in alert["devices"]} == {"sounding"}
    # the simulated controllers really sound, each activated exactly once with the air-raid pattern
    sirens = city.sirens()
    assert sum(s.sounding for s in sirens) == plan.sirens_total
    for s in sirens:
        acts = [e for e in s.log if e.cmd is sm.Cmd.ACTIVATE]
        assert [(e.pattern, e.duration_s) for e in acts] == [(sm.Pattern.WAIL, 60)]

    code, out, err = await run_cli("alert", "all-clear", alert["id"], "--json", "--wait", "30", env=env)
    assert code == 0, err
    clear = json.loads(out)
    assert clear["id"] == alert["id"] and clear["version"] > alert["version"]
    assert clear["summary"]["confirmed"] == plan.sirens_total
    assert all(s.log[-1].pattern is sm.Pattern.STEADY for s in sirens)

    code, out, err = await run_cli("alert", "stop", alert["id"], "--json", "--wait", "30", env=env)
    assert code == 0, err
    for _ in range(100):
        if not any(s.sounding for s in sirens):
            break
        await asyncio.sleep(0.05)
    assert not any(s.sounding for s in sirens)

    code, out, _ = await run_cli("alert", "list", "--json", env=env)
    assert [a["id"] for a in json.loads(out)] == [alert["id"]]


async def test_exercise_is_explicit_and_cli_errors_are_readable(system):
    plan, city, env = system
    zone = plan.zones_config()[0]["id"]
    code, out, err = await run_cli("alert", "start", "--zone", zone, "--signal", "test", "--exercise", "--json",
                                   "--duration", "5", env=env)
    assert code == 0, err
    assert json.loads(out)["mode"] == "exercise"
    code, _, err = await run_cli("alert", "start", "--zone", "atlantis", "--signal", "air-raid", env=env)
    assert code == 1 and "unknown zone" in err and "atlantis" in err
    code, _, err = await run_cli("alert", "list", env={**env, "DOZOR_TOKEN": "wrong"})
    assert code == 1 and "token" in err
    code, _, err = await run_cli("gateways", env={**env, "DOZOR_HUB_URL": f"http://127.0.0.1:{free_port()}"})
    assert code == 1 and "not reachable" in err
