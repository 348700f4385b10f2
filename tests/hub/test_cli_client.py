"""`dozor hub pubkey` and the CLI's HTTP client against a real running hub."""

from __future__ import annotations

import asyncio
import json

import pytest
from typer.testing import CliRunner

from contract.command import key_id, public_key_from_b64
from contract.models import DeviceKind
from dozor.cli import app
from dozor.client import HubClient, HubClientError
from gateway.config import load_config as load_gateway_config
from simulators.brokers import free_port
from tests.gateway.helpers import HUB_KID, HUB_PUB, config_text
from tests.hub.fakegw import FakeGateway
from tests.hub.helpers import eventually, hub_token, make_config, running_hub, write_toml


def test_pubkey_prints_kid_and_key_and_is_stable(tmp_path):
    cfg = make_config(tmp_path, 1883)
    path = write_toml(tmp_path, cfg)
    runner = CliRunner()
    first = runner.invoke(app, ["hub", "pubkey", "--config", str(path), "--json"])
    assert first.exit_code == 0, first.output
    doc = json.loads(first.output)
    assert key_id(public_key_from_b64(doc["public_key"])) == doc["kid"]
    text = runner.invoke(app, ["hub", "pubkey", "--config", str(path)])
    assert f'"{doc["kid"]}" = "{doc["public_key"]}"' in text.output
    # exactly the lines gateway.toml accepts: pasted in place of a gateway's [trust.hub_keys] table, it loads
    gw_toml = config_text(tmp_path / "gw-state").replace(f'[trust.hub_keys]\n"{HUB_KID}" = "{HUB_PUB}"\n',
                                                          text.stdout)
    assert HUB_KID not in gw_toml
    (tmp_path / "gateway.toml").write_text(gw_toml)
    assert load_gateway_config(tmp_path / "gateway.toml").trust.hub_keys == {doc["kid"]: doc["public_key"]}
    staged = runner.invoke(app, ["hub", "keys", "stage", "--config", str(path), "--json"])
    new = json.loads(staged.stdout)["kid"]
    text = runner.invoke(app, ["hub", "pubkey", "--config", str(path)])  # during a rotation: both keys
    (tmp_path / "gateway.toml").write_text(config_text(tmp_path / "gw-state").replace(
        f'[trust.hub_keys]\n"{HUB_KID}" = "{HUB_PUB}"\n', text.stdout))
    assert set(load_gateway_config(tmp_path / "gateway.toml").trust.hub_keys) == {doc["kid"], new}
    bad = runner.invoke(app, ["hub", "pubkey", "--config", str(tmp_path / "nope.toml")])
    assert bad.exit_code == 2 and "cannot read hub config" in bad.output
    (tmp_path / "zones.json").write_text('[{"id": "x"}]')
    bad = runner.invoke(app, ["hub", "run", "--config", str(path)])
    assert bad.exit_code == 2 and "needs 'gateways' and/or 'devices'" in bad.output


def test_client_explains_an_unreachable_hub():
    url = f"http://127.0.0.1:{free_port()}"
    with HubClient(url, "t") as client, pytest.raises(HubClientError) as err:
        client.alerts()
    assert str(err.value) == f"hub not reachable at {url} — is `dozor hub run` up?"


async def test_client_typed_calls_and_errors(mosquitto, tmp_path):
    cfg = make_config(tmp_path, mosquitto.port)
    write_toml(tmp_path, cfg)
    async with running_hub(cfg) as hub:
        gw = FakeGateway(mosquitto.port, "gw-c", hub.keys.verification_keys(), [("siren-1", DeviceKind.SIREN)]).start()
        await eventually(lambda: hub.registry.devices_of("gw-c"), what="birth")
        (tmp_path / "admin-token").write_text(hub_token(hub))  # where `dozor hub init` keeps it, beside hub.toml
        client = HubClient.from_config(tmp_path / "hub.toml")
        forged = HubClient(client.base_url, "not-the-token")
        try:
            alert = await asyncio.to_thread(client.create_alert, ["south"], "air-raid", "exercise", duration_s=60,
                                            message={"en": "Shelter now"})
            assert alert.mode.value == "exercise" and alert.message.en == "Shelter now"
            await eventually(lambda: hub.engine.alerts[alert.id].summary().confirmed == 1, what="confirmed")
            detail = await asyncio.to_thread(client.alert, alert.id)
            states = {(d.gateway, d.device): d.state for d in detail.devices}
            assert detail.summary.confirmed == 1 and states[("gw-c", "siren-1")] == "sounding"
            assert [a.id for a in await asyncio.to_thread(client.alerts)] == [alert.id]
            assert (await asyncio.to_thread(client.all_clear, alert.id)).version == 2
            assert (await asyncio.to_thread(client.stop, alert.id)).status == "stopped"
            gws = await asyncio.to_thread(client.gateways)
            assert gws[0].id == "gw-c" and gws[0].state == "online"
            assert [d.id for d in await asyncio.to_thread(client.devices, "south")] == ["siren-1"]
            assert {z.id for z in await asyncio.to_thread(client.zones)} == {"north", "south", "all"}
            with pytest.raises(HubClientError) as err:
                await asyncio.to_thread(client.create_alert, ["mars"], "air-raid", "actual")
            assert err.value.status == 400 and err.value.code == "unknown_zone" and "mars" in str(err.value)
            with pytest.raises(HubClientError) as err:
                await asyncio.to_thread(client.create_alert, ["south"], "air-raid", "for-real")
            assert err.value.status == 422 and "mode" in str(err.value)
            with pytest.raises(HubClientError, match="token rejected") as err:
                await asyncio.to_thread(forged.alerts)
            assert err.value.status == 401
        finally:
            client.close()
            forged.close()
            gw.stop()


def test_client_errors_are_readable_for_odd_answers():
    import httpx

    def answer(request: httpx.Request) -> httpx.Response:
        if request.url.path.endswith("/alerts"):
            return httpx.Response(502, text="<html>bad gateway</html>")
        if request.url.path.endswith("/zones"):
            return httpx.Response(200, json=[{"unexpected": True}])
        return httpx.Response(200, text="not json")

    with HubClient("http://hub.invalid", "t", transport=httpx.MockTransport(answer)) as client:
        with pytest.raises(HubClientError, match=r"hub refused GET /api/v1/alerts \(502\)") as err:
            client.alerts()
        assert err.value.status == 502
        with pytest.raises(HubClientError, match="unexpected answer from the hub"):
            client.zones()
        with pytest.raises(HubClientError, match="not JSON"):
            client.gateways()


def test_client_repeats_only_what_reached_no_leader():
    """503 no_leader with reached_leader false is sent again (here until the 3rd try); with reached_leader true
    (the old leader may have run it) it is never repeated; with no leader_wait_s it is not repeated either."""
    import httpx

    calls: list[str] = []

    def answer(request: httpx.Request) -> httpx.Response:
        calls.append(request.url.path)
        reached = request.url.path.endswith("/stop") and "a-2" in request.url.path
        if reached or len(calls) < 3 or "a-3" in request.url.path:
            return httpx.Response(503, json={"error": "no_leader", "reached_leader": reached, "detail": "x"},
                                  headers={"retry-after": "0"})
        return httpx.Response(200, json=[])

    notes: list[str] = []
    with HubClient("http://hub.invalid", "t", transport=httpx.MockTransport(answer), leader_wait_s=5,
                   on_wait=notes.append) as client:
        assert client.alerts() == [] and len(calls) == 3 and len(notes) == 1
        calls.clear()
        with pytest.raises(HubClientError, match="503") as err:
            client.stop("a-2")
        assert err.value.code == "no_leader" and len(calls) == 1
    with HubClient("http://hub.invalid", "t", transport=httpx.MockTransport(answer), leader_wait_s=0,
                   on_wait=notes.append) as client:
        calls.clear()
        with pytest.raises(HubClientError, match="503") as err:
            client.stop("a-3")  # no time to wait at all: the first answer is the operator's
        assert err.value.code == "no_leader" and len(calls) == 1 and len(notes) == 1
