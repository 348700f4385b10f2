"""The two-person rule where operators act: `dozor` CLI processes against a `dozor hub run` process, a real
Mosquitto, real gateways driving Modbus siren controllers on ptys, and a resident webhook receiver on
loopback. Counts are taken at the simulated siren controllers and at the receiver."""

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
from hub.residents.loopback import serve_app
from simulators.brokers import free_port
from simulators.city import City, CityPlan
from tests.residents.receivers import WebhookReceiver
from tests.tokens import add_user

pytestmark = pytest.mark.integration
DOZOR = [str(Path(sys.executable).with_name("dozor"))]


async def cli(*args: str, env: dict[str, str], stdin: bytes | None = None) -> tuple[int, str, str]:
    proc = await asyncio.create_subprocess_exec(*DOZOR, *args, stdin=asyncio.subprocess.PIPE,
                                                stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
                                                env={**os.environ, "COLUMNS": "200", **env})
    out, err = await proc.communicate(stdin)
    return proc.returncode, out.decode(), err.decode()


class System:
    def __init__(self, plan, city, url, tokens, receiver, metrics_token) -> None:
        self.plan, self.city, self.url, self.tokens, self.receiver = plan, city, url, tokens, receiver
        self.metrics_token = metrics_token

    def env(self, who: str) -> dict[str, str]:
        return {"DOZOR_HUB_URL": self.url, "DOZOR_TOKEN": self.tokens[who]}

    def activations(self) -> int:
        return sum(1 for s in self.city.sirens() for e in s.log if e.cmd is sm.Cmd.ACTIVATE)

    async def chain(self, alert_id: str) -> list[dict]:
        async with httpx.AsyncClient() as http:
            r = await http.get(f"{self.url}/api/v1/audit", params={"alert": alert_id},
                               headers={"Authorization": f"Bearer {self.tokens['viewer']}"})
        return r.json()

    async def metric(self, name: str) -> float:
        async with httpx.AsyncClient() as http:
            r = await http.get(f"{self.url}/metrics", headers={"Authorization": f"Bearer {self.metrics_token}"})
        return sum(float(line.rsplit(" ", 1)[1]) for line in r.text.splitlines() if line.startswith(name))


@contextlib.asynccontextmanager
async def running(mosquitto, tmp: Path, *, window_s: float = 120):
    plan = CityPlan(gateways=2, sirens_per_gateway=2, zones=2)
    (tmp / "zones.json").write_text(json.dumps(plan.zones_config()))
    rx = WebhookReceiver()
    async with serve_app(rx.app) as hooks:
        port = free_port()
        (tmp / "hub.toml").write_text(
            f'[hub]\nstate_dir = "hub"\napi_port = {port}\nzones = "zones.json"\nconfirm_deadline_s = 5\n'
            f'[mqtt]\nurl = "{mosquitto.url}"\n'
            f'[two_person]\nconfirm_window_s = {window_s}\n'
            f'[residents]\npublic_url = "http://127.0.0.1:{port}"\n'
            f'[[residents.webhooks]]\nurl = "{hooks}/hook/city"\nsecret = "0123456789abcdef0123"\n')
        tokens = {name: add_user(tmp / "hub", name, role) for name, role in (
            ("olena", Role.operator), ("marta", Role.supervisor), ("ivan", Role.supervisor),
            ("viewer", Role.viewer))}
        hub = await asyncio.create_subprocess_exec(*DOZOR, "hub", "run", "--config", str(tmp / "hub.toml"),
                                                   stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE)
        url = f"http://127.0.0.1:{port}"
        async with httpx.AsyncClient() as http:
            for _ in range(300):
                with contextlib.suppress(httpx.TransportError):
                    if (await http.get(f"{url}/healthz")).status_code == 200:
                        break
                await asyncio.sleep(0.05)
            else:
                hub.kill()
                pytest.fail("hub did not come up: " + (await hub.stderr.read()).decode()[-2000:])
        city = await City(plan, mosquitto.url, hub_keys_from(tmp / "hub", []), tmp / "city", enrolling_factory(tmp / "hub"),
                          spinup_s=0.2, heartbeat_s=1.0).start()
        system = System(plan, city, url, tokens, rx, tokens["viewer"])
        try:
            for _ in range(200):
                code, out, _ = await cli("gateways", "--json", env=system.env("viewer"))
                if code == 0 and sum(g["state"] == "online" for g in json.loads(out)) == plan.gateways:
                    break
                await asyncio.sleep(0.1)
            else:
                pytest.fail("gateways did not come online")
            yield system
        finally:
            await city.stop()
            hub.terminate()
            await hub.wait()


def zone_args(system: System) -> list[str]:
    return [a for z in system.plan.zones_config() for a in ("--zone", z["id"])]


async def test_an_operators_actual_reaches_no_siren_and_no_resident_until_a_supervisor_confirms(mosquitto, tmp_path):
    async with running(mosquitto, tmp_path) as s:
        code, out, err = await cli("alert", "start", *zone_args(s), "--signal", "air-raid", "--actual",
                                   "--duration", "60", "--message-en", "Go to the shelter", env=s.env("olena"))
        assert code == 4, err  # documented: waiting for a second operator
        alert_id = out.strip()
        assert alert_id.startswith("A-") and f"dozor alert confirm {alert_id}" in err
        code, out, _ = await cli("alert", "pending", "--json", env=s.env("marta"))
        assert [a["id"] for a in json.loads(out)] == [alert_id]
        # the request is durable and visible, and nothing has left the hub
        code, out, _ = await cli("alert", "status", alert_id, "--json", env=s.env("viewer"))
        assert json.loads(out)["status"] == "pending_confirmation"
        await asyncio.sleep(1.0)  # room for anything wrongly sent to arrive before counting
        assert s.activations() == 0 and not s.receiver.received
        assert await s.metric("dozor_hub_commands_sent_total") == 0

        # the confirmer sees the whole alert first; answering no sends nothing
        code, out, err = await cli("alert", "confirm", alert_id, env=s.env("marta"), stdin=b"n\n")
        assert code == 1 and "nothing was sent" in err
        assert "ACTUAL air-raid" in out and "requested by olena (operator)" in out and "Go to the shelter" in out
        assert f"reaches: {s.plan.sirens_total} sirens" in out and "channels: webhook" in out
        assert s.activations() == 0 and not s.receiver.received

        code, out, err = await cli("alert", "confirm", alert_id, "--yes", "--json", "--wait", "30",
                                   env=s.env("marta"))
        assert code == 0, err
        alert = json.loads(out)
        assert alert["status"] == "active" and alert["summary"]["confirmed"] == s.plan.sirens_total
        assert alert["requested_by"]["name"] == "olena" and alert["confirmed_by"]["name"] == "marta"
        assert s.activations() == s.plan.sirens_total  # each siren exactly once, after the confirmation
        await asyncio.wait_for(s.receiver.arrived.wait(), 10)
        body = json.loads(s.receiver.received[0]["body"])
        assert alert_id in json.dumps(body) and body.get("mode", "actual") == "actual"
        code, out, _ = await cli("alert", "pending", "--json", env=s.env("marta"))
        assert json.loads(out) == []
        chain = await s.chain(alert_id)
        assert [(r["action"], r["actor"]["name"], r["actor"]["role"]) for r in chain] == [
            ("alert.request", "olena", "operator"), ("alert.confirm", "marta", "supervisor")]


async def test_self_confirmation_is_refused(mosquitto, tmp_path):
    async with running(mosquitto, tmp_path) as s:
        code, out, _ = await cli("alert", "start", *zone_args(s), "--signal", "chemical", "--actual",
                                 env=s.env("marta"))
        assert code == 4
        alert_id = out.strip()
        code, _, err = await cli("alert", "confirm", alert_id, "--yes", env=s.env("marta"))
        assert code == 1 and "you requested it yourself" in err
        code, _, err = await cli("alert", "confirm", alert_id, "--yes", env=s.env("olena"))
        assert code == 1 and "403" in err  # an operator cannot be the second person
        await asyncio.sleep(0.5)
        assert s.activations() == 0 and not s.receiver.received
        code, out, _ = await cli("alert", "status", alert_id, "--json", env=s.env("viewer"))
        assert json.loads(out)["status"] == "pending_confirmation"


async def test_an_expired_request_never_sends(mosquitto, tmp_path):
    async with running(mosquitto, tmp_path, window_s=2) as s:
        code, out, _ = await cli("alert", "start", *zone_args(s), "--signal", "air-raid", "--actual",
                                 env=s.env("olena"))
        assert code == 4
        alert_id = out.strip()
        for _ in range(200):  # the window (2 s, a protocol deadline) passes; the hub's clock expires it
            code, out, _ = await cli("alert", "status", alert_id, "--json", env=s.env("viewer"))
            if json.loads(out)["status"] == "expired":
                break
            await asyncio.sleep(0.1)
        else:
            pytest.fail("the request never expired")
        code, _, err = await cli("alert", "confirm", alert_id, "--yes", env=s.env("marta"))
        assert code == 1 and "409" in err and "window ran out" in err
        code, out, err = await cli("alert", "confirm", alert_id, env=s.env("marta"), stdin=b"y\n")
        assert code == 1 and "nothing to confirm" in err and "Send this alert now?" not in out + err  # not asked
        code, _, err = await cli("alert", "all-clear", alert_id, env=s.env("marta"))
        assert code == 1 and "nothing to clear" in err
        await asyncio.sleep(0.5)
        assert s.activations() == 0 and not s.receiver.received
        assert await s.metric("dozor_hub_commands_sent_total") == 0


async def test_break_glass_sends_alone_and_is_audited(mosquitto, tmp_path):
    async with running(mosquitto, tmp_path) as s:
        code, _, err = await cli("alert", "start", *zone_args(s), "--signal", "air-raid", "--actual",
                                 "--break-glass", "--reason", "launch seen, no second supervisor on shift",
                                 env=s.env("olena"))
        assert code == 1 and "only a supervisor may break glass" in err and s.activations() == 0
        code, out, err = await cli("alert", "start", *zone_args(s), "--signal", "air-raid", "--actual",
                                   "--break-glass", "--reason", "launch seen, no second supervisor on shift",
                                   "--json", "--wait", "30", env=s.env("ivan"))
        assert code == 0, err
        alert = json.loads(out)
        assert alert["status"] == "active" and alert["break_glass"].startswith("launch seen")
        assert alert["summary"]["confirmed"] == s.plan.sirens_total == s.activations()
        assert await s.metric("dozor_hub_alert_break_glass_total") == 1
        chain = await s.chain(alert["id"])
        glass = [r for r in chain if r["action"] == "alert.break_glass"]
        assert len(glass) == 1 and glass[0]["actor"]["name"] == "ivan"
        assert glass[0]["details"]["reason"].startswith("launch seen")
        await asyncio.wait_for(s.receiver.arrived.wait(), 10)
