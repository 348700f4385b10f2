"""Every long-lived hub task runs under the shared supervisor (runtime/supervise.py): a task that fails is
counted (dozor_hub_task_failures_total{task}), logged once with its cause, and restarted; the hub keeps
serving. The fault is real: a hub-keys.json that is valid JSON but names no active key (a half-edited or
damaged key ring) makes the key watcher raise KeyError. Before supervision this ended the whole hub."""

from __future__ import annotations

import json
import logging

from hub.keys import RING_FILE, KeyRing
from tests.hub.helpers import api, eventually, hub_token, make_config, running_hub


def failures(hub, task: str) -> float:
    value = hub.metrics.registry.get_sample_value("dozor_hub_task_failures_total", {"task": task})
    return value or 0.0


async def test_a_failing_task_is_counted_logged_once_and_restarted(mosquitto, tmp_path, caplog):
    cfg = make_config(tmp_path, mosquitto.port)
    caplog.set_level(logging.ERROR, logger="hub.app")
    async with running_hub(cfg) as hub, api(cfg, hub_token(hub)) as http:
        names = {name for name, _ in hub.long_lived_tasks()}
        assert {"mqtt", "mqtt-ingest", "engine", "registry", "flusher", "audit-anchor", "gwtrust", "keys",
                "sd_notify"} <= names
        assert hub.supervisor is not None and set(hub.supervisor.alive()) == names
        assert all(hub.supervisor.alive().values())

        ring = cfg.hub.state_dir / RING_FILE
        good = ring.read_text()
        ring.write_text(json.dumps({"keys": json.loads(good)["keys"]}))  # no "active": KeyError in the watcher
        await eventually(lambda: failures(hub, "keys") >= 1, what="the key watcher's failure counted")

        ring.write_text(good)  # restored; then a new key is staged, as `dozor hub keys stage` does
        staged = KeyRing(cfg.hub.state_dir).stage()["kid"]
        # the restarted watcher sees the change and announces the new set of keys
        await eventually(lambda: staged in hub.mqtt.keys, what="the restarted key watcher")
        assert failures(hub, "keys") == 1
        assert all(hub.supervisor.alive().values())
        assert (await http.get("/api/v1/gateways")).status_code == 200  # the hub kept serving throughout
        metrics = (await http.get("/metrics")).text  # the bounded structures, for soaks and dashboards
        for what in ("alerts", "alerts_open", "alert_command_ids", "telemetry_tail", "gateways", "nodes",
                     "resident_alert_times", "resident_messages"):
            assert f'dozor_hub_state_items{{what="{what}"}}' in metrics, what
        assert 'dozor_hub_task_failures_total{task="keys"} 1.0' in metrics

    lines = [r for r in caplog.records if r.name == "hub.app" and "task keys failed" in r.getMessage()]
    assert len(lines) == 1, [r.getMessage() for r in lines]
    assert "KeyError('active')" in lines[0].getMessage() and "restarting" in lines[0].getMessage()
    assert failures(hub, "engine") == failures(hub, "registry") == failures(hub, "mqtt") == 0


async def test_a_failed_alert_tracker_is_counted_logged_once_and_tracking_goes_on(tmp_path, caplog):
    """An alert's tracker (retries, then escalation) that raises is restarted for the same phase: the alert is
    still retried and its silent sirens still end unreachable and escalated; nothing stops silently. The fault:
    the MQTT connection check the tracker asks before a retry raises once (as a broken client would)."""
    from hub.models import AlertRequest
    from tests.hub.engine_harness import OPERATOR, keys_for, make_rig

    caplog.set_level(logging.ERROR, logger="hub.alerts")
    rig = make_rig(tmp_path, keys_for(tmp_path))
    e = rig.engine
    calls = []

    def connected_then_broken() -> bool:
        calls.append(1)
        if len(calls) == 1:
            raise RuntimeError("MQTT client state unreadable")
        return True

    e.is_connected = connected_then_broken
    out = await e.start(AlertRequest(zones=["south"], signal="air-raid", mode="exercise", duration_s=3600), OPERATOR)
    first = len(rig.commands(out.id))
    alert = e.alerts[out.id]
    await eventually(lambda: not alert.tracking, what="tracking to finish after the restart")
    assert e.metrics.registry.get_sample_value("dozor_hub_task_failures_total", {"task": "alert"}) == 1
    assert len(rig.commands(out.id)) > first  # the restarted tracker retried the unconfirmed sirens
    s = alert.summary()
    assert s.unreachable == s.total == 2 and len(alert.escalations) == 2  # ... and escalated them
    assert out.id not in e._trackers
    lines = [r.getMessage() for r in caplog.records if "alert engine task failed" in r.getMessage()]
    assert len(lines) == 1 and "MQTT client state unreadable" in lines[0] and "restarts" in lines[0], lines
    await e.close()
    e.store.close()
