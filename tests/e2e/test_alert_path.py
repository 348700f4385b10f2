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
from hub.identity import Role
from simulators.brokers import free_port
from simulators.city import City, CityPlan
from tests.tokens import add_user, admin_token

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
    env = {"DOZOR_HUB_URL": url, "DOZOR_TOKEN": token,
           "SUPERVISOR_TOKEN": add_user(tmp_path / "hub", "marta", Role.supervisor)}
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
    args = ["alert", "start", "--signal", "air-raid", "--actual", "--duration", "60", "--no-wait"]
    for z in zones:
        args += ["--zone", z]
    code, out, err = await run_cli(*args, env=env)
    assert code == 4, err  # an Actual air raid waits for a second person; its id is on stdout
    code, out, err = await run_cli("alert", "confirm", out.strip(), "--yes", "--json", "--wait", "30",
                                   env={**env, "DOZOR_TOKEN": env["SUPERVISOR_TOKEN"]})
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
    code, _, err = await run_cli("alert", "start", "--zone", "atlantis", "--signal", "air-raid", "--exercise",
                                 env=env)
    assert code == 1 and "unknown zone" in err and "atlantis" in err
    code, _, err = await run_cli("alert", "list", env={**env, "DOZOR_TOKEN": "wrong"})
    assert code == 1 and "token" in err
    code, _, err = await run_cli("gateways", env={**env, "DOZOR_HUB_URL": f"http://127.0.0.1:{free_port()}"})
    assert code == 1 and "not reachable" in err


async def test_cli_refuses_contradictions_prints_ids_and_names_phases(system):
    plan, city, env = system
    zone = plan.zones_config()[0]["id"]
    base = ["alert", "start", "--zone", zone, "--signal", "test"]
    for extra, words in ((["--duration", "5"], "--exercise or --actual"),
                         (["--exercise", "--actual"], "--exercise or --actual"),
                         (["--exercise", "--wait", "5", "--no-wait"], "contradict"),
                         (["--exercise", "--wait", "-1"], "0 or more seconds")):
        code, _, err = await run_cli(*base, *extra, env=env)
        assert code == 2 and words in err, (extra, err)
    code, _, err = await run_cli("alert", "start", "--zone", zone, "--signal", "all-clear", "--exercise", env=env)
    assert code == 2 and "update of the alert it ends" in err
    async with httpx.AsyncClient() as http:  # and the hub itself refuses it with a sentence
        r = await http.post(f"{env['DOZOR_HUB_URL']}/api/v1/alerts", json={
            "zones": [zone], "signal": "all-clear", "mode": "exercise"},
            headers={"Authorization": f"Bearer {env['DOZOR_TOKEN']}"})
    assert r.status_code == 409 and "update of the alert it ends" in r.json()["detail"]
    assert sum(1 for s in city.sirens() for e in s.log if e.cmd is sm.Cmd.ACTIVATE) == 0

    code, out, err = await run_cli(*base, "--exercise", "--duration", "120", "--no-wait", env=env)
    assert code == 0, err
    alert_id = out.strip()
    assert alert_id.startswith("A-") and out == alert_id + "\n"  # only the id on stdout, for scripts
    code, out, err = await run_cli("alert", "all-clear", alert_id, "--wait", "30", env=env)
    assert code == 0, err
    sirens = plan.sirens_per_gateway * sum(1 for i in range(plan.gateways) if plan.zone_of(i) == zone)
    assert f"all-clear: {sirens}/{sirens} confirmed" in out  # progress names the phase
    code, _, err = await run_cli("alert", "cancel", alert_id, env=env)
    assert code == 1 and "409" in err and "ended properly" in err
    code, _, err = await run_cli("alert", "stop", alert_id, "--wait", "-3", env=env)
    assert code == 2
    code, out, _ = await run_cli("alert", "list", env={**env, "COLUMNS": "40"})
    assert code == 0 and alert_id in out  # never cut, however narrow the terminal
