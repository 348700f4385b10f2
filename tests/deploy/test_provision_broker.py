"""`dozor provision`: the generated broker config enforces mutual TLS, per-identity ACLs, client-id binding and
revocation. Real Mosquitto on the generated file, real paho clients holding each provisioned identity."""

from __future__ import annotations

import json
import re
import shutil
import stat
import threading
import time

import pytest

from hub.gwtrust import TrustStore
from runtime import pki
from simulators.brokers import free_port
from tests.deploy.helpers import ROOT, GeneratedBroker, city_dir, connect, dozor, dozor_json

pytestmark = pytest.mark.integration


@pytest.fixture
def city(tmp_path):
    root, port = city_dir(), free_port()
    dozor("provision", "init", str(root), "--broker-host", "127.0.0.1", "--port", str(port), "--bind", "127.0.0.1",
          "--hub-state-dir", str(tmp_path / "hub-state"), "--store-url", "")
    for gw, zone in (("gw-a", "podil"), ("gw-b", "obolon")):
        dozor("provision", "gateway", gw, "--zone", zone, str(root), "--state-dir", str(tmp_path / gw))
    try:
        with GeneratedBroker(root, port) as broker:
            yield root, broker
    finally:
        shutil.rmtree(root.parent, ignore_errors=True)


def ident(root, who):
    base = root / "gateways" / who if who.startswith("gw-") else root / "hub"
    name = "client" if who.startswith("gw-") or who == "hub" else "ingest"
    return {"ca": root / "ca.crt", "cert": base / f"{name}.crt", "key": base / f"{name}.key"}


def test_layout_and_private_key_modes(city, tmp_path):
    root, _ = city
    for rel in ("ca.crt", "broker/mosquitto.conf", "broker/acl", "broker/crl.pem", "hub/hub.toml",
                "hub/zones.json", "gateways/gw-a/gateway.toml", "gateways/gw-a/ca.crt", "gateways/gw-a/client.crt",
                "gateways/gw-a/client.key"):
        assert (root / rel).is_file(), rel
    secrets = [p for p in root.rglob("*") if p.is_file() and (p.suffix == ".key" or p.name == "compose.env")]
    secrets += [tmp_path / "hub-state" / "hub-signing-key", root / "hub" / "admin-token"]
    assert stat.S_IMODE((tmp_path / "hub-state").stat().st_mode) == 0o700
    assert len(secrets) >= 7
    for p in secrets:
        assert stat.S_IMODE(p.stat().st_mode) & 0o077 == 0, f"{p} is readable by group/others"
    conf = (root / "broker" / "mosquitto.conf").read_text()
    assert "require_certificate true" in conf and "use_username_as_clientid true" in conf
    assert "allow_anonymous false" in conf
    # the hub's registry: both gateways are in their zones
    zones = {z["id"]: z["gateways"] for z in json.loads((root / "hub" / "zones.json").read_text())}
    assert zones == {"podil": ["gw-a"], "obolon": ["gw-b"]}
    listed = dozor_json("provision", "list", str(root))
    assert [(g["gateway"], g["revoked"]) for g in listed["gateways"]] == [("gw-a", False), ("gw-b", False)]


def test_anonymous_and_foreign_certificates_are_refused(city, tmp_path):
    root, broker = city
    anon = connect(broker.port, ca=root / "ca.crt")
    assert not anon.connected.is_set() and anon.disconnected.is_set()
    # a certificate from another CA, with a gateway's name on it
    other_ca = pki.make_ca("another city")
    fake = pki.issue(other_ca, "gw-a")
    fake.write(tmp_path / "fake.crt", tmp_path / "fake.key")
    forged = connect(broker.port, ca=root / "ca.crt", cert=tmp_path / "fake.crt", key=tmp_path / "fake.key")
    assert not forged.connected.is_set() and forged.disconnected.is_set()
    good = connect(broker.port, **ident(root, "gw-a"))
    assert good.connected.is_set()
    good.close()


def test_a_gateway_cannot_publish_or_read_under_another(city):
    root, broker = city
    hub = connect(broker.port, **ident(root, "hub"), client_id="dozor-hub")
    assert hub.connected.is_set()
    hub.client.subscribe("dozor/v1/gw/#", qos=1)
    assert hub.subscribed.wait(5)
    a = connect(broker.port, **ident(root, "gw-a"), client_id="dozor-gw-gw-a")
    b = connect(broker.port, **ident(root, "gw-b"), client_id="dozor-gw-gw-b")
    assert a.connected.is_set() and b.connected.is_set()
    a.client.subscribe("dozor/v1/gw/gw-b/cmd", qos=1)
    a.client.subscribe("dozor/v1/gw/gw-a/cmd", qos=1)
    b.client.subscribe("dozor/v1/gw/gw-b/cmd", qos=1)
    time.sleep(0.3)
    a.client.publish("dozor/v1/gw/gw-b/ack", b"forged by gw-a", qos=1).wait_for_publish(5)
    a.client.publish("dozor/v1/gw/gw-b/cmd", b"forged cmd by gw-a", qos=1).wait_for_publish(5)
    a.client.publish("dozor/v1/gw/gw-a/event", b"own event", qos=1).wait_for_publish(5)
    hub.client.publish("dozor/v1/gw/gw-b/cmd", b"for gw-b", qos=1).wait_for_publish(5)
    hub.client.publish("dozor/v1/gw/gw-a/cmd", b"for gw-a", qos=1).wait_for_publish(5)
    for _ in range(100):
        if b.messages and len(a.messages) >= 1 and any(t.endswith("gw-a/event") for t, _ in hub.messages):
            break
        time.sleep(0.05)
    time.sleep(0.3)  # give any wrongly allowed delivery the same chance to arrive
    hub_seen = [(t, p) for t, p in hub.messages if not t.endswith("/cmd")]
    assert hub_seen == [("dozor/v1/gw/gw-a/event", b"own event")]
    assert b.messages == [("dozor/v1/gw/gw-b/cmd", b"for gw-b")]  # not the forged command
    assert a.messages == [("dozor/v1/gw/gw-a/cmd", b"for gw-a")]  # not gw-b's command
    for c in (a, b, hub):
        c.close()


def test_a_gateway_cannot_take_over_another_client_id(city):
    root, broker = city
    b = connect(broker.port, **ident(root, "gw-b"), client_id="dozor-gw-gw-b")
    assert b.connected.is_set()
    for stolen in ("dozor-gw-gw-b", "gw-b", "dozor-hub"):
        a = connect(broker.port, **ident(root, "gw-a"), client_id=stolen)
        assert a.connected.is_set()  # accepted, but under its own identity
        a.close()
    hub = connect(broker.port, **ident(root, "hub"), client_id="dozor-hub")
    hub.client.publish("dozor/v1/gw/gw-b/cmd", b"still here?", qos=1).wait_for_publish(5)
    b.client.subscribe("dozor/v1/gw/gw-b/cmd", qos=1)
    assert b.subscribed.wait(5)
    hub.client.publish("dozor/v1/gw/gw-b/cmd", b"still here", qos=1).wait_for_publish(5)
    for _ in range(100):
        if b.messages:
            break
        time.sleep(0.05)
    assert not b.disconnected.is_set(), "gw-a's credentials disconnected gw-b"
    assert b.messages == [("dozor/v1/gw/gw-b/cmd", b"still here")]
    b.close()
    hub.close()


def test_a_revoked_gateway_is_refused_after_the_broker_reloads(city, tmp_path):
    root, broker = city
    trust = TrustStore(tmp_path / "hub-state")
    assert set(trust.all()) == {"gw-a", "gw-b"}
    assert connect(broker.port, **ident(root, "gw-b")).connected.is_set()
    out = dozor_json("provision", "revoke", "gw-b", str(root))
    assert out["revoked"] is True and out["hub_enrollment_removed"] is True
    assert set(trust.all()) == {"gw-a"}  # the hub no longer trusts anything gw-b signs
    assert trust.history("gw-b")[-1]["action"] == "revoke"
    trust.close()
    broker.reload()
    for _ in range(50):  # SIGHUP is asynchronous: wait until the CRL is in force
        c = connect(broker.port, **ident(root, "gw-b"))
        if not c.connected.is_set():
            break
        c.close()
        time.sleep(0.1)
    assert not c.connected.is_set() and c.disconnected.is_set()
    a = connect(broker.port, **ident(root, "gw-a"))
    assert a.connected.is_set()  # the others are untouched
    a.close()
    zones = {z["id"]: z["gateways"] for z in json.loads((root / "hub" / "zones.json").read_text())}
    assert zones == {"podil": ["gw-a"], "obolon": []}
    assert [g["revoked"] for g in dozor_json("provision", "list", str(root))["gateways"]] == [False, True]
    again = dozor("provision", "gateway", "gw-b", "--zone", "obolon", str(root), check=False)
    assert again.returncode == 1 and "revoked" in again.stderr


def test_init_again_keeps_identities(city, tmp_path):
    root, _ = city
    before = {p: p.read_bytes() for p in root.rglob("*.key")}
    dozor("provision", "init", str(root), "--broker-host", "127.0.0.1", "--port", "1", "--bind", "127.0.0.1",
          "--hub-state-dir", str(tmp_path / "hub-state"), "--store-url", "")
    assert {p: p.read_bytes() for p in root.rglob("*.key")} == before


def test_init_again_keeps_the_api_address_and_says_why_no_new_admin_token(city, tmp_path):
    root, _ = city
    args = ("provision", "init", str(root), "--broker-host", "127.0.0.1", "--bind", "127.0.0.1",
            "--hub-state-dir", str(tmp_path / "hub-state"), "--store-url", "")
    dozor(*args, "--api-host", "0.0.0.0", "--api-port", "9443")
    dozor(*args)  # a refresh without the API flags keeps them
    hub_toml = (root / "hub" / "hub.toml").read_text()
    assert 'api_host = "0.0.0.0"' in hub_toml and "api_port = 9443" in hub_toml
    # a second city folder on a hub state dir that already has users: no token, and a sentence saying so
    other = tmp_path / "other-city"
    out = dozor_json("provision", "init", str(other), "--broker-host", "127.0.0.1", "--bind", "127.0.0.1",
                     "--hub-state-dir", str(tmp_path / "hub-state"), "--store-url", "")
    assert out["admin_token_written"] is False and not (other / "hub" / "admin-token").exists()
    assert "already has users" in out["note"] and "rotate-token admin" in out["note"]
    shown = dozor("provision", "init", str(other), "--broker-host", "127.0.0.1", "--bind", "127.0.0.1",
                  "--hub-state-dir", str(tmp_path / "hub-state"), "--store-url", "")
    assert "already has users" in shown.stderr


def test_the_documented_layout_is_what_provision_writes(city):
    root, _ = city
    text = (ROOT / "docs" / "operations.md").read_text()
    table = text[text.index("| path | what | mode |"):text.index("`init` also creates")]
    paths = re.findall(r"`DIR/([^`]+)`", table)
    assert len(paths) >= 10
    for rel in paths:
        rel = rel.replace("gateways/GW/", "gateways/gw-a/")
        if rel.endswith(".*"):
            assert list(root.glob(rel)), rel
        else:
            assert (root / rel.rstrip("/")).exists(), rel
    for name in re.findall(r"`(gateway\.toml|ca\.crt|client\.crt|client\.key|identity-key)`", table):
        assert (root / "gateways" / "gw-a" / name).exists(), name


def until_set(conn, event) -> bool:
    """Wait for ``event`` (a SUBACK, a message) with no time bound of its own: it ends when the event comes or the
    connection closes (a dead broker, or keepalive's protocol deadline on a silent one). True: the event came."""
    while not event.is_set() and not conn.disconnected.is_set():
        event.wait(0.05)
    return event.is_set()


def test_only_the_hub_ingest_identity_can_send_a_gateway_its_receipts(city):
    """Telemetry receipts (hub -> gateway): the ingest identity may write them, a gateway may read only its own and
    write none (a forged receipt would make a gateway stop re-sending what the broker lost)."""
    root, broker = city
    ingest = connect(broker.port, **ident(root, "ingest"), client_id="dozor-hub-ingest")
    hub = connect(broker.port, **ident(root, "hub"), client_id="dozor-hub")
    a = connect(broker.port, **ident(root, "gw-a"), client_id="dozor-gw-gw-a")
    b = connect(broker.port, **ident(root, "gw-b"), client_id="dozor-gw-gw-b")
    assert all(c.connected.is_set() for c in (ingest, hub, a, b))
    marker = "dozor/v1/gw/gw-a/cmd"  # sent after the receipts: once gw-a has it, any wrongly allowed one came too
    a.client.subscribe([("dozor/v1/gw/gw-a/receipt", 1), (marker, 1)])  # one SUBACK for both
    assert until_set(a, a.subscribed)
    b.client.subscribe([("dozor/v1/gw/gw-a/receipt", 1), ("dozor/v1/gw/gw-b/cmd", 1)])  # another gateway's receipts
    assert until_set(b, b.subscribed)
    marked_a, marked_b = threading.Event(), threading.Event()
    a.client.on_message = lambda _c, _u, m: (a.messages.append((m.topic, m.payload)),
                                             m.topic == marker and marked_a.set())
    b.client.on_message = lambda _c, _u, m: (b.messages.append((m.topic, m.payload)),
                                             m.topic.endswith("gw-b/cmd") and marked_b.set())
    b.client.publish("dozor/v1/gw/gw-a/receipt", b"forged by gw-b", qos=1).wait_for_publish()
    a.client.publish("dozor/v1/gw/gw-a/receipt", b"forged by gw-a itself", qos=1).wait_for_publish()
    ingest.client.publish("dozor/v1/gw/gw-a/receipt", b"from the hub", qos=1).wait_for_publish()
    hub.client.publish(marker, b"marker", qos=1).wait_for_publish()
    hub.client.publish("dozor/v1/gw/gw-b/cmd", b"marker", qos=1).wait_for_publish()
    assert until_set(a, marked_a) and until_set(b, marked_b)
    assert [(t, p) for t, p in a.messages if t != marker] == [("dozor/v1/gw/gw-a/receipt", b"from the hub")]
    assert [t for t, _ in b.messages] == ["dozor/v1/gw/gw-b/cmd"]  # its own command, no receipt of gw-a's
    for c in (a, b, ingest, hub):
        c.close()
