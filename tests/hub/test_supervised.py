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

    lines = [r for r in caplog.records if r.name == "hub.app" and "task keys failed" in r.getMessage()]
    assert len(lines) == 1, [r.getMessage() for r in lines]
    assert "KeyError('active')" in lines[0].getMessage() and "restarting" in lines[0].getMessage()
    assert failures(hub, "engine") == failures(hub, "registry") == failures(hub, "mqtt") == 0
