"""The hub over MQTT with TLS (mqtts://): it verifies the broker against the configured CA, and refuses a broker
whose certificate it cannot verify."""

from __future__ import annotations

import asyncio
import json
import ssl

import paho.mqtt.client as mqtt
import pytest

from contract import topics
from hub.app import Hub
from hub.config import parse_config
from simulators.brokers import Mosquitto, free_port, make_test_pki
from tests.hub.helpers import ZONES, running_hub
from tests.tokens import admin_token

pytestmark = pytest.mark.integration


@pytest.fixture
def tls_broker():
    with Mosquitto(tls=True) as broker:
        yield broker


def config(tmp_path, url: str, ca):
    (tmp_path / "zones.json").write_text(json.dumps(ZONES))
    admin_token(tmp_path / "state")
    return parse_config({"hub": {"state_dir": "state", "api_port": free_port(), "zones": "zones.json"},
                         "mqtt": {"url": url, "client_id": "dozor-hub-tls", "ca_file": str(ca)}}, base=tmp_path)


def retained_hub_state(broker: Mosquitto) -> dict:
    got: list[bytes] = []
    c = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv311)
    c.tls_set(ca_certs=str(broker.pki["ca"]), cert_reqs=ssl.CERT_REQUIRED)
    c.on_message = lambda _c, _u, msg: got.append(msg.payload)
    c.connect("127.0.0.1", broker.port)
    c.subscribe(topics.HUB_STATE, qos=1)
    for _ in range(100):
        c.loop(0.05)
        if got:
            break
    c.disconnect()
    assert got, "no retained hub state over TLS"
    return json.loads(got[-1])


async def test_hub_connects_over_tls_and_announces_itself(tls_broker, tmp_path):
    cfg = config(tmp_path, tls_broker.url, tls_broker.pki["ca"])
    assert cfg.mqtt.tls and cfg.mqtt.port == tls_broker.port
    async with running_hub(cfg):
        state = await asyncio.to_thread(retained_hub_state, tls_broker)
    assert state["state"] == "online"


async def test_hub_refuses_a_broker_it_cannot_verify(tls_broker, tmp_path):
    other_ca = make_test_pki(tmp_path)["ca"]  # a CA that did not sign this broker's certificate
    hub = Hub(config(tmp_path, tls_broker.url, other_ca))
    task = asyncio.create_task(hub.run())
    try:
        for _ in range(40):  # several reconnect attempts: none may succeed
            assert not hub.mqtt.connected.is_set()
            await asyncio.sleep(0.05)
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
    assert not hub.mqtt.connected.is_set()
