"""HTTP API: bearer auth, readable validation errors, state errors, metrics and health."""

from __future__ import annotations

from contract.models import DeviceKind
from tests.hub.fakegw import FakeGateway
from tests.hub.helpers import api, eventually, hub_token, make_config, running_hub


async def test_auth_validation_and_errors(mosquitto, tmp_path):
    cfg = make_config(tmp_path, mosquitto.port)
    async with running_hub(cfg) as hub, api(cfg, hub_token(hub)) as http, api(cfg, None) as anon, \
            api(cfg, "wrong-token-wrong-token") as forged:
        r = await anon.get("/api/v1/alerts")
        assert r.status_code == 401 and r.json()["error"] == "unauthorized"
        assert "missing bearer token" in r.json()["detail"]
        r = await forged.post("/api/v1/alerts", json={"zones": ["north"], "signal": "air-raid", "mode": "actual"})
        assert r.status_code == 401 and "token rejected" in r.json()["detail"]
        assert not hub.engine.alerts
        assert (await anon.get("/healthz")).json()["ok"] is True

        # mode is required: never implicitly real
        r = await http.post("/api/v1/alerts", json={"zones": ["north"], "signal": "air-raid"})
        assert r.status_code == 422 and r.json()["error"] == "invalid_request"
        assert "mode: field required" in r.json()["detail"] and "exercise" in r.json()["detail"]
        r = await http.post("/api/v1/alerts", json={"zones": ["north"], "signal": "whistle", "mode": "actual"})
        assert r.status_code == 422 and r.json()["detail"].startswith("signal:")
        r = await http.post("/api/v1/alerts", json={"zones": [], "signal": "test", "mode": "exercise"})
        assert r.status_code == 422 and "zones" in r.json()["detail"]
        r = await http.post("/api/v1/alerts", json={"zones": ["north"], "signal": "test", "mode": "exercise",
                                                    "duration_s": 99999})
        assert r.status_code == 422 and "duration_s" in r.json()["detail"]
        r = await http.post("/api/v1/alerts", content=b"{not json", headers={"Content-Type": "application/json"})
        assert r.status_code == 422
        r = await http.post("/api/v1/alerts", json={"zones": ["atlantis"], "signal": "test", "mode": "exercise"})
        assert r.status_code == 400 and r.json()["error"] == "unknown_zone"
        assert "atlantis" in r.json()["detail"] and "north" in r.json()["detail"]
        # a known zone whose gateways have not announced any siren yet
        r = await http.post("/api/v1/alerts", json={"zones": ["north"], "signal": "test", "mode": "exercise"})
        assert r.status_code == 400 and r.json()["error"] == "no_targets"
        r = await http.get("/api/v1/alerts/A-nope")
        assert r.status_code == 404 and r.json()["error"] == "not_found"
        assert not hub.engine.alerts

        gw = FakeGateway(mosquitto.port, "gw-c", hub.keys.verification_keys(), [("siren-1", DeviceKind.SIREN)]).start()
        await eventually(lambda: hub.registry.devices_of("gw-c"), what="birth")
        r = await http.post("/api/v1/alerts", json={"zones": ["south"], "signal": "silent-test", "mode": "exercise",
                                                    "duration_s": 30})
        assert r.status_code == 201
        alert_id = r.json()["id"]
        # silent test: a done ack confirms
        await eventually(lambda: hub.engine.alerts[alert_id].summary().confirmed == 1, what="silent test done")
        assert hub.engine.alerts[alert_id].tracks[("gw-c", "siren-1")].state == "done"
        assert ("gw-a", "spk-1") in hub.engine.alerts[alert_id].tracks
        assert (await http.post(f"/api/v1/alerts/{alert_id}/cancel")).json()["status"] == "cancelled"
        r = await http.post(f"/api/v1/alerts/{alert_id}/cancel")
        assert r.status_code == 409 and r.json()["error"] == "bad_state"
        # gw-a/spk-1 is not confirmed silent (its gateway never answered): a stop is still accepted (invariant 10)
        r = await http.post(f"/api/v1/alerts/{alert_id}/stop")
        assert r.status_code == 200 and r.json()["status"] == "cancelled"
        assert hub.engine.zone_states["south"].status.value == "cancelled"
        listed = (await http.get("/api/v1/alerts")).json()
        assert [a["id"] for a in listed] == [alert_id] and "devices" not in listed[0]
        zones = {z["id"]: z for z in (await http.get("/api/v1/zones")).json()}
        # an explicitly listed device counts even before its gateway announced it (gw-a/spk-1): the gateway
        # is the authority, and an unknown one shows up as unreachable rather than silently missing
        assert zones["south"]["status"] == "cancelled" and zones["south"]["alerting_devices"] == 2
        assert zones["north"]["alerting_devices"] == 0

        assert (await anon.get("/metrics")).status_code == 401  # metrics need a role (or the metrics token)
        metrics = (await http.get("/metrics")).text
        assert "dozor_hub_api_auth_failures_total 3.0" in metrics
        assert 'dozor_hub_api_bad_requests_total{code="unknown_zone"} 1.0' in metrics
        assert 'dozor_hub_alerts_total{mode="exercise",signal="silent-test"} 1.0' in metrics
        assert 'dozor_hub_acks_total{stage="done"}' in metrics
        gw.stop()


async def test_busy_api_port_is_a_clear_error(mosquitto, tmp_path):
    import socket

    import pytest

    from hub.app import Hub
    from hub.errors import ConfigError

    with socket.create_server(("127.0.0.1", 0)) as busy:
        cfg = make_config(tmp_path, mosquitto.port, api_port=busy.getsockname()[1])
        hub = Hub(cfg)
        with pytest.raises(ConfigError, match="cannot serve the API on .* another hub running"):
            await hub.run()
        hub.store.close()
