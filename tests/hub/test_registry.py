"""Gateway registry over a real broker: births, last-will, sessions, heartbeat timeouts, persistence."""

from __future__ import annotations

import time

import paho.mqtt.client as paho

from contract import topics
from contract.models import DeviceKind, DeviceState, GatewayState
from hub.app import Hub
from tests.hub.fakegw import FakeGateway
from tests.hub.helpers import api, eventually, hub_token, make_config, running_hub


def publish_retained(port: int, topic: str, payload: bytes) -> None:
    c = paho.Client(paho.CallbackAPIVersion.VERSION2, protocol=paho.MQTTv311)
    c.connect("127.0.0.1", port)
    c.loop_start()
    c.publish(topic, payload, qos=1, retain=True).wait_for_publish(5)
    c.disconnect()
    c.loop_stop()


async def test_last_will_offline_rebirth_online_and_stale_will_ignored(mosquitto, tmp_path):
    cfg = make_config(tmp_path, mosquitto.port)
    async with running_hub(cfg) as hub, api(cfg, hub_token(hub)) as http:
        gw = FakeGateway(mosquitto.port, "gw-a", hub.keys.verification_keys(),
                         [("siren-1", DeviceKind.SIREN), ("spk-1", DeviceKind.SPEAKER)], session=1).start()
        await eventually(lambda: hub.registry.state_of("gw-a") == "online", what="birth")
        gw.crash()  # no DISCONNECT: the broker sends the retained last-will (offline, session 1)
        await eventually(lambda: hub.registry.state_of("gw-a") == "offline", what="last-will")
        assert hub.registry.gateways["gw-a"].reason == "last-will"

        gw.start(session=2)
        await eventually(lambda: hub.registry.state_of("gw-a") == "online", what="re-birth")
        # a late last-will of the old connection must not mark the re-born gateway offline
        stale = GatewayState(gateway="gw-a", state="offline", session=1, ts=time.time())
        publish_retained(mosquitto.port, topics.gw("gw-a", "state"), gw.sealer.will(stale))
        await eventually(lambda: hub.gwtrust.verifier.unverified_of("gw-a") >= 1, what="stale state counted")
        assert 'reason="stale_session"} 1.0' in hub.metrics.render().decode()
        assert hub.registry.state_of("gw-a") == "online"
        assert hub.registry.gateways["gw-a"].session == 2

        gw.heartbeat({"siren-1": DeviceState.FAULT}, faults={"siren-1": ("battery_low",)})
        await eventually(lambda: hub.registry.gateways["gw-a"].status, what="heartbeat")
        gws = (await http.get("/api/v1/gateways")).json()
        assert gws[0]["id"] == "gw-a" and gws[0]["state"] == "online" and gws[0]["session"] == 2
        assert gws[0]["last_heartbeat_age_s"] is not None
        devs = {d["id"]: d for d in gws[0]["devices"]}
        assert devs["siren-1"]["state"] == "fault" and devs["siren-1"]["faults"] == ["battery_low"]
        south = (await http.get("/api/v1/devices", params={"zone": "south"})).json()
        assert [(d["gateway"], d["id"]) for d in south] == [("gw-a", "spk-1")]
        north = (await http.get("/api/v1/devices", params={"zone": "north"})).json()
        assert {d["id"] for d in north} == {"siren-1", "spk-1"}
        r = await http.get("/api/v1/devices", params={"zone": "nowhere"})
        assert r.status_code == 400 and r.json()["error"] == "unknown_zone"
        gw.stop()


async def test_heartbeat_timeout_marks_offline_and_heartbeat_revives(mosquitto, tmp_path):
    cfg = make_config(tmp_path, mosquitto.port)
    async with running_hub(cfg) as hub:
        gw = FakeGateway(mosquitto.port, "gw-b", hub.keys.verification_keys(), [("siren-1", DeviceKind.SIREN)],
                         heartbeat_s=0.2).start()
        await eventually(lambda: hub.registry.state_of("gw-b") == "online", what="birth")
        await eventually(lambda: hub.registry.state_of("gw-b") == "offline", what="heartbeat timeout")
        assert hub.registry.gateways["gw-b"].reason == "heartbeat timeout"
        gw.heartbeat(session=0)  # a heartbeat of an older session is ignored
        gw.heartbeat()
        await eventually(lambda: hub.registry.state_of("gw-b") == "online", what="revived by heartbeat")
        gw.stop()


async def test_registry_survives_a_hub_restart_as_unknown(mosquitto, tmp_path):
    cfg = make_config(tmp_path, mosquitto.port)
    async with running_hub(cfg) as hub:
        gw = FakeGateway(mosquitto.port, "gw-c", hub.keys.verification_keys(), [("siren-9", DeviceKind.SIREN)]).start()
        await eventually(lambda: hub.registry.state_of("gw-c") == "online", what="birth")
    cold = Hub(cfg)  # not running: knows the fleet from SQLite, but not whether it is online
    assert cold.registry.state_of("gw-c") == "unknown"
    assert cold.registry.devices_of("gw-c") == {"siren-9": DeviceKind.SIREN}
    cold.store.close()
    async with running_hub(cfg) as hub:  # the retained birth brings it back
        await eventually(lambda: hub.registry.state_of("gw-c") == "online", what="retained birth")
    gw.stop()
