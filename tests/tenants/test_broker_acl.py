"""Several cities on one provisioned Mosquitto (`dozor provision tenant`): the generated ACL keeps each city's
hub and gateways to their own topics. Real Mosquitto on the generated config (mutual TLS), real paho clients
holding each provisioned identity; the same gateway id `gw-1` exists in two cities."""

from __future__ import annotations

import shutil
import time

import pytest

from simulators.brokers import free_port
from tests.deploy.helpers import GeneratedBroker, city_dir, connect, dozor, dozor_json

pytestmark = pytest.mark.integration


@pytest.fixture
def cities(tmp_path):
    root, port = city_dir(), free_port()
    dozor("provision", "init", str(root), "--broker-host", "127.0.0.1", "--port", str(port), "--bind", "127.0.0.1",
          "--hub-state-dir", str(tmp_path / "hub-state"), "--store-url", "")
    dozor("provision", "gateway", "gw-a", "--zone", "podil", str(root), "--state-dir", str(tmp_path / "gw-a"))
    for tenant in ("odesa", "bucha"):
        out = dozor_json("provision", "tenant", tenant, str(root), "--hub-state-dir", str(tmp_path / f"hub-{tenant}"),
                         "--store-url", "")
        assert out["topics"] == f"dozor/v1/{tenant}/" and out["admin_token_written"] is True
        gw = dozor_json("provision", "gateway", "gw-1", "--zone", "center", "--tenant", tenant, str(root),
                        "--state-dir", str(tmp_path / f"gw-1-{tenant}"))
        assert gw["mqtt_username"] == f"gw-1@{tenant}"
    try:
        with GeneratedBroker(root, port) as broker:
            yield root, broker
    finally:
        shutil.rmtree(root.parent, ignore_errors=True)


def ident(root, tenant: str, who: str) -> dict:
    base = root / "tenants" / tenant if tenant else root
    if who in ("hub", "ingest"):
        return {"ca": root / "ca.crt", "cert": base / "hub" / f"{'client' if who == 'hub' else 'ingest'}.crt",
                "key": base / "hub" / f"{'client' if who == 'hub' else 'ingest'}.key"}
    return {"ca": root / "ca.crt", "cert": base / "gateways" / who / "client.crt",
            "key": base / "gateways" / who / "client.key"}


def wait_for(pred, what: str) -> None:
    for _ in range(200):
        if pred():
            return
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


def test_bundles_and_configs_name_their_tenant(cities):
    root, _ = cities
    gw_toml = (root / "tenants" / "bucha" / "gateways" / "gw-1" / "gateway.toml").read_text()
    hub_toml = (root / "tenants" / "bucha" / "hub" / "hub.toml").read_text()
    assert 'tenant = "bucha"' in gw_toml and 'tenant = "bucha"' in hub_toml
    assert 'client_id = "dozor-hub@bucha"' in hub_toml
    assert "tenant =" not in (root / "gateways" / "gw-a" / "gateway.toml").read_text()  # default city unchanged
    listed = dozor_json("provision", "list", str(root))
    assert [t["tenant"] for t in listed["tenants"]] == ["bucha", "odesa"]
    # each city has its own hub signing key
    keys = [tuple(listed["hub_keys"])] + [tuple(t["hub_keys"]) for t in listed["tenants"]]
    assert len(set(keys)) == 3
    from hub.config import load_config
    assert load_config(root / "tenants" / "bucha" / "hub" / "hub.toml").hub.tenant == "bucha"


def test_a_city_cannot_read_or_write_another_citys_topics(cities):
    root, broker = cities
    conns = []

    def conn(tenant, who):
        c = connect(broker.port, **ident(root, tenant, who))
        assert c.connected.is_set(), (tenant, who, c.rc)
        conns.append(c)
        return c

    try:
        odesa_hub, bucha_hub, city_hub = conn("odesa", "hub"), conn("bucha", "hub"), conn("", "hub")
        odesa_gw, bucha_gw, city_gw = conn("odesa", "gw-1"), conn("bucha", "gw-1"), conn("", "gw-a")
        odesa_hub.client.subscribe("dozor/v1/#", qos=1)  # asks for everything: gets its own city only
        city_hub.client.subscribe("dozor/v1/#", qos=1)
        odesa_gw.client.subscribe("dozor/v1/odesa/gw/gw-1/cmd", qos=1)
        bucha_gw.client.subscribe([("dozor/v1/odesa/gw/gw-1/cmd", 1), ("dozor/v1/odesa/#", 1), ("dozor/v1/#", 1),
                                   ("dozor/v1/bucha/gw/gw-1/cmd", 1)])
        city_gw.client.subscribe([("dozor/v1/#", 1), ("dozor/v1/gw/gw-a/cmd", 1)])
        for c in (odesa_hub, city_hub, odesa_gw, bucha_gw, city_gw):
            assert c.subscribed.wait(5)
        time.sleep(0.3)
        # forbidden: bucha's gateway and hub, and the default city's, writing into odesa's topics
        bucha_gw.client.publish("dozor/v1/odesa/gw/gw-1/ack", b"forged ack from bucha", qos=1).wait_for_publish(5)
        bucha_gw.client.publish("dozor/v1/odesa/gw/gw-1/cmd", b"forged cmd from bucha gw", qos=1).wait_for_publish(5)
        bucha_hub.client.publish("dozor/v1/odesa/gw/gw-1/cmd", b"cmd from bucha hub", qos=1).wait_for_publish(5)
        city_hub.client.publish("dozor/v1/odesa/gw/gw-1/cmd", b"cmd from city hub", qos=1).wait_for_publish(5)
        city_gw.client.publish("dozor/v1/odesa/gw/gw-1/event", b"from the city gw", qos=1).wait_for_publish(5)
        # allowed: each city's own traffic
        odesa_hub.client.publish("dozor/v1/odesa/gw/gw-1/cmd", b"odesa cmd", qos=1).wait_for_publish(5)
        odesa_hub.client.publish("dozor/v1/odesa/zone/center/state", b"odesa zone", qos=1).wait_for_publish(5)
        bucha_hub.client.publish("dozor/v1/bucha/gw/gw-1/cmd", b"bucha cmd", qos=1).wait_for_publish(5)
        city_hub.client.publish("dozor/v1/gw/gw-a/cmd", b"city cmd", qos=1).wait_for_publish(5)
        odesa_gw.client.publish("dozor/v1/odesa/gw/gw-1/ack", b"odesa ack", qos=1).wait_for_publish(5)
        wait_for(lambda: odesa_gw.messages and bucha_gw.messages and
                 any(t.endswith("gw-a/cmd") for t, _ in city_gw.messages) and
                 any(t.endswith("/ack") for t, _ in odesa_hub.messages), "each city's own messages")
        time.sleep(0.3)  # give any wrongly allowed delivery the same chance to arrive
        assert odesa_gw.messages == [("dozor/v1/odesa/gw/gw-1/cmd", b"odesa cmd")]
        assert bucha_gw.messages == [("dozor/v1/bucha/gw/gw-1/cmd", b"bucha cmd")]  # nothing of odesa's
        assert city_gw.messages == [("dozor/v1/gw/gw-a/cmd", b"city cmd")]
        assert {t for t, _ in odesa_hub.messages} <= {"dozor/v1/odesa/gw/gw-1/cmd", "dozor/v1/odesa/zone/center/state",
                                                      "dozor/v1/odesa/gw/gw-1/ack"}
        assert (("dozor/v1/odesa/gw/gw-1/ack", b"odesa ack") in odesa_hub.messages
                and ("dozor/v1/odesa/gw/gw-1/ack", b"forged ack from bucha") not in odesa_hub.messages)
        assert [t for t, _ in city_hub.messages] == ["dozor/v1/gw/gw-a/cmd"]  # the default city: its own only
    finally:
        for c in conns:
            c.close()


def test_an_identity_of_one_city_cannot_take_another_citys_session(cities):
    """The same gateway id in two cities: the broker names them gw-1@odesa and gw-1@bucha, so neither can
    disconnect the other or inherit its session."""
    root, broker = cities
    odesa = connect(broker.port, **ident(root, "odesa", "gw-1"), client_id="gw-1")
    bucha = connect(broker.port, **ident(root, "bucha", "gw-1"), client_id="gw-1")
    try:
        assert odesa.connected.is_set() and bucha.connected.is_set()
        time.sleep(0.3)
        assert not odesa.disconnected.is_set() and not bucha.disconnected.is_set()
    finally:
        odesa.close()
        bucha.close()
