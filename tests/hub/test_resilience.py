"""Broker restarts, gateways coming back mid-alert, expiry and overlapping alerts."""

from __future__ import annotations

import threading

import paho.mqtt.client as paho

from contract import topics
from contract.models import DeviceKind, ZoneState
from tests.hub.fakegw import FakeGateway
from tests.hub.helpers import api, eventually, hub_token, make_config, running_hub

SIREN = DeviceKind.SIREN


class ZoneWatch:
    """Subscribes to the public retained zone states, as a resident page or a display board would."""

    def __init__(self, port: int) -> None:
        self.states: dict[str, list[ZoneState]] = {}
        self.lock = threading.Lock()
        self.c = paho.Client(paho.CallbackAPIVersion.VERSION2, protocol=paho.MQTTv311)
        self.c.on_message = self._on
        self.c.on_connect = lambda c, *a: c.subscribe(topics.SUB_ALL_ZONES, qos=1)
        self.c.connect("127.0.0.1", port)
        self.c.loop_start()

    def _on(self, c, u, m) -> None:
        s = ZoneState.model_validate_json(m.payload)
        with self.lock:
            self.states.setdefault(s.zone, []).append(s)

    def last(self, zone: str) -> ZoneState | None:
        with self.lock:
            return (self.states.get(zone) or [None])[-1]

    def close(self) -> None:
        self.c.disconnect()
        self.c.loop_stop()


async def test_gateway_offline_at_alert_time_gets_the_command_when_it_returns(mosquitto, tmp_path):
    cfg = make_config(tmp_path, mosquitto.port, confirm_deadline_s=1.0, max_retries=5)
    async with running_hub(cfg) as hub, api(cfg, hub_token(hub)) as http:
        gw = FakeGateway(mosquitto.port, "gw-c", hub.keys.verification_keys(), [("siren-1", SIREN)]).start()
        await eventually(lambda: hub.registry.state_of("gw-c") == "online", what="birth")
        gw.crash()
        await eventually(lambda: hub.registry.state_of("gw-c") == "offline", what="last-will")
        r = await http.post("/api/v1/alerts", json={"zones": ["south"], "signal": "air-raid", "mode": "exercise"})
        alert = hub.engine.alerts[r.json()["id"]]
        track = alert.tracks[("gw-c", "siren-1")]
        assert track.state == "unreachable" and track.reason == "gateway_offline"  # visible at once
        gw.start(session=2)  # the re-born gateway gets the command without waiting for the next retry
        await eventually(lambda: track.state == "sounding", what="sounding after re-birth")
        assert len(gw.commands_for(alert.id)) == 1  # only the re-sent one reached it (the first was lost)
        gw.stop()


async def test_broker_restart_reconnects_and_restores_retained_states(mosquitto, tmp_path):
    cfg = make_config(tmp_path, mosquitto.port, two_person={"actual": []})
    async with running_hub(cfg) as hub, api(cfg, hub_token(hub)) as http:
        gw = FakeGateway(mosquitto.port, "gw-c", hub.keys.verification_keys(), [("siren-1", SIREN)]).start()
        await eventually(lambda: hub.registry.state_of("gw-c") == "online", what="birth")
        r = await http.post("/api/v1/alerts", json={"zones": ["south"], "signal": "air-raid", "mode": "actual",
                                                    "duration_s": 600})
        version = hub.engine.zone_states["south"].version
        gw.stop()
        mosquitto.restart()  # no persistence: every retained message is gone
        await eventually(lambda: hub.metrics.mqtt_connects.labels("control")._value.get() == 2, what="hub reconnect")
        watch = ZoneWatch(mosquitto.port)
        try:
            # the hub re-published the public zone state, so a fresh subscriber sees the running alert
            await eventually(lambda: watch.last("south") is not None, what="retained zone state")
            state = watch.last("south")
            assert state.status.value == "active" and state.alert == r.json()["id"] and state.version == version
            assert state.mode.value == "actual"
            gw.start(session=2)
            await eventually(lambda: hub.registry.state_of("gw-c") == "online", what="gateway back")
            r2 = await http.post(f"/api/v1/alerts/{r.json()['id']}/all-clear")
            assert r2.status_code == 200
            await eventually(lambda: watch.last("south").status.value == "all_clear", what="all-clear published")
            assert watch.last("south").version == version + 1
        finally:
            watch.close()
            gw.stop()


async def test_alert_started_while_the_broker_is_down_goes_out_on_reconnect(mosquitto, tmp_path):
    cfg = make_config(tmp_path, mosquitto.port, confirm_deadline_s=0.3, max_retries=1)
    async with running_hub(cfg) as hub, api(cfg, hub_token(hub)) as http:
        gw = FakeGateway(mosquitto.port, "gw-c", hub.keys.verification_keys(), [("siren-1", SIREN)]).start()
        await eventually(lambda: hub.registry.state_of("gw-c") == "online", what="birth")
        mosquitto.stop()
        await eventually(lambda: not hub.mqtt.connected.is_set(), what="hub disconnected")
        r = await http.post("/api/v1/alerts", json={"zones": ["south"], "signal": "air-raid", "mode": "exercise"})
        assert r.status_code == 201  # the API keeps working; the alert is recorded and tracked
        alert = hub.engine.alerts[r.json()["id"]]
        metrics = (await http.get("/metrics")).text
        assert 'dozor_hub_publish_errors_total{kind="command"} 2.0' in metrics  # gw-c and gw-a (unknown)
        mosquitto.start()
        await eventually(lambda: alert.tracks[("gw-c", "siren-1")].state == "sounding", what="sent on reconnect")
        # the outage did not burn retries: the first command that could leave reached the gateway
        assert alert.tracks[("gw-c", "siren-1")].confirm_ms is not None
        assert alert.attempt <= 1 and len(gw.commands_for(alert.id)) >= 1
        gw.stop()


async def test_expiry_and_overlapping_alerts_drive_zone_states(mosquitto, tmp_path):
    cfg = make_config(tmp_path, mosquitto.port, all_clear_duration_s=1)
    async with running_hub(cfg) as hub, api(cfg, hub_token(hub)) as http:
        fakes = [FakeGateway(mosquitto.port, g, hub.keys.verification_keys(), [("siren-1", SIREN)]).start()
                 for g in ("gw-a", "gw-c")]
        await eventually(lambda: hub.registry.devices_of("gw-a") and hub.registry.devices_of("gw-c"), what="births")
        long = (await http.post("/api/v1/alerts", json={"zones": ["south", "all"], "signal": "test", "mode": "exercise",
                                                        "duration_s": 600})).json()
        short = (await http.post("/api/v1/alerts", json={"zones": ["south"], "signal": "air-raid",
                                                         "mode": "exercise", "duration_s": 1})).json()
        assert hub.engine.zone_states["south"].alert == short["id"]  # air-raid outranks test: it takes over
        assert short["supersedes"] == [long["id"]]
        await eventually(lambda: hub.engine.alerts[short["id"]].status == "expired", what="expiry")
        # south is still covered by the longer alert: it stays active, now pointing at that one
        south = hub.engine.zone_states["south"]
        assert south.status.value == "active" and south.alert == long["id"] and south.signal.value == "test"
        await http.post(f"/api/v1/alerts/{long['id']}/all-clear")
        assert hub.engine.zone_states["all"].status.value == "all_clear"
        await eventually(lambda: hub.engine.zone_states["all"].status.value == "idle", what="all-clear window end")
        assert hub.engine.zone_states["south"].status.value == "idle"
        assert hub.engine.alerts[long["id"]].status == "all_clear"
        for f in fakes:
            f.stop()
