"""Alert path end to end on a real Mosquitto, with protocol-level fake gateways verifying the hub's JWS."""

from __future__ import annotations

import asyncio

from contract.command import Action, Signal
from contract.models import AckStage, DeviceKind
from tests.hub.fakegw import FakeGateway
from tests.hub.helpers import api, eventually, hub_token, make_config, running_hub

SIREN, SPEAKER = DeviceKind.SIREN, DeviceKind.SPEAKER


def gateways(port, hub, specs):
    keys = hub.keys.verification_keys()
    return {gw: FakeGateway(port, gw, keys, devs, behaviour=b).start() for gw, devs, b in specs}


def registered(hub, *gws):
    return lambda: all(hub.registry.state_of(g) == "online" and hub.registry.devices_of(g) for g in gws)


async def test_alert_reaches_every_gateway_once_and_acks_aggregate(mosquitto, tmp_path):
    cfg = make_config(tmp_path, mosquitto.port)
    async with running_hub(cfg) as hub, api(cfg, hub_token(hub)) as http:
        fakes = gateways(mosquitto.port, hub, [
            ("gw-a", [("siren-1", SIREN), ("siren-2", SIREN), ("spk-1", SPEAKER), ("pm-1", DeviceKind.SDS011)], "ok"),
            ("gw-b", [("siren-1", SIREN)], "ok"),
        ])
        await eventually(registered(hub, "gw-a", "gw-b"), what="births")
        r = await http.post("/api/v1/alerts", json={"zones": ["north"], "signal": "air-raid", "mode": "exercise",
                                                    "duration_s": 120, "message": {"en": "Take shelter"}})
        assert r.status_code == 201, r.text
        alert = r.json()
        assert alert["mode"] == "exercise" and alert["status"] == "active" and alert["summary"]["total"] == 4

        await eventually(lambda: hub.engine.alerts[alert["id"]].summary().confirmed == 4, what="4/4 confirmed")
        detail = (await http.get(f"/api/v1/alerts/{alert['id']}")).json()
        assert detail["summary"]["confirmed"] == 4
        # exactly one verified command per gateway, carrying all its alerting devices (not the dust sensor)
        a_cmds, b_cmds = fakes["gw-a"].commands_for(alert["id"]), fakes["gw-b"].commands_for(alert["id"])
        assert len(a_cmds) == 1 and len(b_cmds) == 1
        assert sorted(a_cmds[0].targets) == ["siren-1", "siren-2", "spk-1"]
        assert a_cmds[0].act is Action.ACTIVATE and a_cmds[0].params.signal is Signal.AIR_RAID
        assert a_cmds[0].mode.value == "exercise" and a_cmds[0].aud == "gw-a"
        assert a_cmds[0].exp - a_cmds[0].iat == cfg.hub.command_ttl_s
        assert not fakes["gw-a"].rejected and not fakes["gw-b"].rejected
        states = {(d["gateway"], d["device"]): d for d in detail["devices"]}
        assert states[("gw-a", "spk-1")]["state"] == "playing"
        assert states[("gw-a", "siren-1")]["state"] == "sounding"
        assert all(d["confirm_ms"] is not None and d["attempts"] == 1 for d in detail["devices"])
        s = detail["summary"]
        assert s["failed"] == s["unreachable"] == s["pending"] == 0
        assert s["first_confirm_ms"] <= s["p50_confirm_ms"] <= s["p99_confirm_ms"] <= s["last_confirm_ms"]

        # the public zone state went out retained, marked exercise
        zs = hub.engine.zone_states["north"]
        assert zs.status.value == "active" and zs.alert == alert["id"] and zs.mode.value == "exercise"
        assert zs.headline["en"].startswith("EXERCISE: ")

        # all-clear: an update of the same alert, version+1, the all-clear signal, tracked the same way
        r = await http.post(f"/api/v1/alerts/{alert['id']}/all-clear")
        assert r.status_code == 200, r.text
        assert r.json()["version"] == 2 and r.json()["status"] == "all_clear"
        await eventually(lambda: len(fakes["gw-b"].commands_for(alert["id"])) == 2, what="all-clear command")
        clear = fakes["gw-b"].commands_for(alert["id"])[1]
        assert clear.params.signal is Signal.ALL_CLEAR and clear.params.duration_s <= cfg.hub.all_clear_duration_s
        await eventually(lambda: hub.engine.alerts[alert["id"]].summary().confirmed == 4, what="all-clear acks")
        assert hub.engine.zone_states["north"].status.value == "all_clear"
        assert hub.engine.alerts[alert["id"]].history[0]["summary"]["confirmed"] == 4

        # stop: signed stop commands, done acks confirm it
        r = await http.post(f"/api/v1/alerts/{alert['id']}/stop")
        assert r.status_code == 200 and r.json()["status"] == "stopped"
        await eventually(lambda: [c.act for c in fakes["gw-a"].commands_for(alert["id"])][-1] is Action.STOP,
                         what="stop command")
        await eventually(lambda: hub.engine.alerts[alert["id"]].summary().confirmed == 4, what="stop done acks")
        assert hub.engine.zone_states["north"].status.value == "idle"
        for f in fakes.values():
            f.stop()


async def test_silent_gateway_gets_retries_with_new_jti_then_unreachable(mosquitto, tmp_path):
    cfg = make_config(tmp_path, mosquitto.port, confirm_deadline_s=0.3, max_retries=2,
                      two_person={"actual": []})
    async with running_hub(cfg) as hub, api(cfg, hub_token(hub)) as http:
        fakes = gateways(mosquitto.port, hub, [
            ("gw-a", [("siren-1", SIREN), ("spk-1", SPEAKER)], "ok"),
            ("gw-b", [("siren-1", SIREN)], "silent"),
            ("gw-c", [("siren-1", SIREN)], "reject:busy"),
            ("gw-d", [("siren-1", SIREN)], "accept_only"),
        ])
        await eventually(registered(hub, "gw-a", "gw-b", "gw-c", "gw-d"), what="births")
        r = await http.post("/api/v1/alerts", json={"zones": ["all"], "signal": "air-raid", "mode": "actual",
                                                    "duration_s": 60})
        alert_id = r.json()["id"]
        alert = hub.engine.alerts[alert_id]
        await eventually(lambda: not alert.tracking, what="tracking to finish")
        silent = fakes["gw-b"].commands_for(alert_id)
        assert len(silent) == 1 + cfg.hub.max_retries
        assert len({c.jti for c in silent}) == len(silent)  # a new jti for every retry, same alert
        # confirmed devices are never re-sent
        assert len(fakes["gw-a"].commands_for(alert_id)) == 1
        d = {(t.gateway, t.device): t for t in alert.tracks.values()}
        assert d[("gw-b", "siren-1")].state == "unreachable" and d[("gw-b", "siren-1")].reason == "no_ack"
        assert d[("gw-c", "siren-1")].state == "rejected" and d[("gw-c", "siren-1")].reason == "busy"
        assert len(fakes["gw-c"].commands_for(alert_id)) == 1  # a definite refusal is escalated, not retried
        assert d[("gw-d", "siren-1")].state == "failed" and d[("gw-d", "siren-1")].reason == "timeout"
        s = alert.summary()
        assert (s.total, s.confirmed, s.failed, s.unreachable, s.pending) == (5, 2, 2, 1, 0)
        outcomes = {(e["gateway"], e["outcome"]) for e in alert.escalations}
        assert outcomes == {("gw-b", "unreachable"), ("gw-c", "rejected"), ("gw-d", "failed")}
        metrics = (await http.get("/metrics")).text
        assert 'dozor_hub_alert_escalations_total{outcome="unreachable",reason="no_ack"} 1.0' in metrics
        assert "dozor_hub_command_retries_total 4.0" in metrics  # gw-b and gw-d, twice each
        detail = (await http.get(f"/api/v1/alerts/{alert_id}")).json()
        assert {e["outcome"] for e in detail["escalations"]} == {"unreachable", "rejected", "failed"}
        audit = (await http.get(f"/api/v1/alerts/{alert_id}/log")).json()
        kinds = [e["kind"] for e in audit]
        assert kinds[0] == "start" and kinds.count("retry") == cfg.hub.max_retries and kinds.count("escalation") == 3

        # a late ack still counts: the silent gateway wakes up and answers the last command
        fakes["gw-b"].behaviour = "ok"
        last = silent[-1]
        fakes["gw-b"]._ack(last.jti, alert_id, AckStage.SOUNDING, ("siren-1",))
        await eventually(lambda: d[("gw-b", "siren-1")].state == "sounding", what="late ack")
        for f in fakes.values():
            f.stop()


async def test_failed_device_is_retried_and_a_permanent_failure_keeps_its_reason(mosquitto, tmp_path):
    zones = [{"id": "z", "gateways": ["gw-a", "gw-b"]}]
    cfg = make_config(tmp_path, mosquitto.port, zones=zones, confirm_deadline_s=0.3, max_retries=2,
                      two_person={"actual": []})
    async with running_hub(cfg) as hub, api(cfg, hub_token(hub)) as http:
        fakes = gateways(mosquitto.port, hub, [
            ("gw-a", [("siren-1", SIREN)], "fail_once:unreachable"),  # a Modbus timeout, then fine
            ("gw-b", [("siren-1", SIREN)], "fail:fault:rotor"),
        ])
        await eventually(registered(hub, "gw-a", "gw-b"), what="births")
        r = await http.post("/api/v1/alerts", json={"zones": ["z"], "signal": "air-raid", "mode": "actual"})
        alert = hub.engine.alerts[r.json()["id"]]
        await eventually(lambda: not alert.tracking, what="tracking to finish")
        a, b = alert.tracks[("gw-a", "siren-1")], alert.tracks[("gw-b", "siren-1")]
        assert a.state == "sounding" and len(fakes["gw-a"].commands_for(alert.id)) == 2
        assert b.state == "failed" and b.reason == "fault:rotor"
        assert len(fakes["gw-b"].commands_for(alert.id)) == 1 + cfg.hub.max_retries
        metrics = (await http.get("/metrics")).text
        assert 'dozor_hub_alert_escalations_total{outcome="failed",reason="fault"} 3.0' in metrics
        assert 'dozor_hub_alert_escalations_total{outcome="failed",reason="unreachable"} 1.0' in metrics
        for f in fakes.values():
            f.stop()


async def test_slow_hook_never_delays_commands(mosquitto, tmp_path):
    cfg = make_config(tmp_path, mosquitto.port)
    async with running_hub(cfg) as hub, api(cfg, hub_token(hub)) as http:
        events: list[str] = []
        release = asyncio.Event()

        async def slow_hook(alert, states):
            events.append(f"hook-start:{alert.id}:{','.join(s.zone for s in states)}")
            await release.wait()  # a resident notifier stuck on a slow provider
            events.append("hook-end")

        async def broken_hook(alert, states):
            raise RuntimeError("provider down")

        hub.engine.hooks += [slow_hook, broken_hook]
        fakes = gateways(mosquitto.port, hub, [("gw-c", [("siren-1", SIREN)], "ok")])
        await eventually(registered(hub, "gw-c"), what="birth")
        r = await http.post("/api/v1/alerts", json={"zones": ["south"], "signal": "air-raid", "mode": "exercise"})
        assert r.status_code == 201
        alert = hub.engine.alerts[r.json()["id"]]
        await eventually(lambda: alert.summary().confirmed == 1, what="siren confirmed while the hook hangs")
        assert events == [f"hook-start:{alert.id}:south"]  # the hook started, in parallel, and is still stuck
        assert "hook-end" not in events
        metrics = (await http.get("/metrics")).text
        assert 'dozor_hub_hook_errors_total{hook="test_slow_hook_never_delays_commands.<locals>.broken_hook"} 1.0' \
            in metrics
        release.set()
        await eventually(lambda: "hook-end" in events, what="hook end")
        fakes["gw-c"].stop()


async def test_a_refusal_for_when_a_command_was_issued_is_retried_with_a_fresh_one(mosquitto, tmp_path):
    """A gateway that restarted uncleanly refuses commands issued before its restart (iat has whole seconds, so a
    command issued in the same second is among them). That says nothing about the alert: the hub re-sends a
    freshly issued command instead of giving the device up (found by the stop-after-crash rounds)."""
    cfg = make_config(tmp_path, mosquitto.port, confirm_deadline_s=0.3, max_retries=3, two_person={"actual": []})
    async with running_hub(cfg) as hub, api(cfg, hub_token(hub)) as http:
        fakes = gateways(mosquitto.port, hub, [("gw-a", [("siren-1", SIREN)], "reject_once:issued_before_restart"),
                                               ("gw-c", [("siren-1", SIREN)], "reject:busy")])
        await eventually(registered(hub, "gw-a", "gw-c"), what="births")
        r = await http.post("/api/v1/alerts", json={"zones": ["all"], "signal": "air-raid", "mode": "actual",
                                                    "duration_s": 60})
        alert = hub.engine.alerts[r.json()["id"]]
        await eventually(lambda: not alert.tracking, what="tracking to finish")
        d = {(t.gateway, t.device): t for t in alert.tracks.values()}
        assert d[("gw-a", "siren-1")].state == "sounding"
        sent = fakes["gw-a"].commands_for(alert.id)
        assert len(sent) == 2 and sent[0].jti != sent[1].jti  # refused once, then a fresh command
        assert d[("gw-c", "siren-1")].state == "rejected"  # a refusal about the command itself stays final
        assert len(fakes["gw-c"].commands_for(alert.id)) == 1
        for f in fakes.values():
            f.stop()
