"""A list of broker URLs: the config grammar (url still works, urls for a cluster's nodes, readable mistakes in
both check-config commands), the node rotation in runtime.mqtt, and real gateways and hub connections moving
to the next node when theirs is refused or killed (two real Mosquittos: each stands in for a cluster node)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import random
import shutil

import aiomqtt
import pytest
from typer.testing import CliRunner

from contract import topics
from contract.broker import BrokerAddress
from contract.models import GatewayState, HubState, decode
from contract.signed import split
from dozor.cli import app
from gateway.app import Gateway
from gateway.config import parse_config
from hub.config import MqttSettings
from hub.metrics import HubMetrics
from hub.mqtt import Dispatcher, HubMqtt
from runtime.mqtt import BrokerList
from simulators.brokers import Mosquitto, free_port
from tests.deploy.helpers import ROOT
from tests.gateway.helpers import SirenRig, config_text

runner = CliRunner()


# ------------------------------------------------------------------ the rotation
def test_in_order_stays_on_a_node_until_it_fails_then_goes_round():
    nodes = BrokerList([("a", 1), ("b", 2), ("c", 3)])
    assert nodes.current == ("a", 1) and nodes.current == ("a", 1)
    assert [nodes.failed() for _ in range(4)] == [("b", 2), ("c", 3), ("a", 1), ("b", 2)]
    assert nodes.switches == 4


def test_random_order_is_a_per_client_shuffle_that_still_tries_every_node_each_round():
    eps = [(f"n{i}", 1883) for i in range(5)]
    firsts = set()
    for seed in range(40):
        nodes = BrokerList(eps, "random", rng=random.Random(seed))
        firsts.add(nodes.current)
        assert sorted([nodes.current] + [nodes.failed() for _ in range(4)]) == eps
    assert len(firsts) >= 4  # a fleet spreads over the nodes


def test_one_node_never_switches_and_bad_arguments_are_refused():
    nodes = BrokerList([("a", 1)])
    assert nodes.failed() == ("a", 1) and nodes.switches == 0
    with pytest.raises(ValueError, match="at least one"):
        BrokerList([])
    with pytest.raises(ValueError, match="in_order"):
        BrokerList([("a", 1)], "sideways")


# ------------------------------------------------------------------ the config grammar
def test_the_single_url_key_still_works_and_urls_lists_the_nodes(tmp_path):
    one = parse_config(config_text(tmp_path / "s", mqtt_url="mqtts://mq.example"), file="g.toml", base=tmp_path)
    assert one.mqtt.endpoints == (("mq.example", 8883),) and one.mqtt.tls and one.mqtt.port == 8883
    text = config_text(tmp_path / "s").replace('url = "mqtt://127.0.0.1:1"',
                                                'urls = ["mqtt://mq1:1883", "mqtt://mq2", "mqtt://[::1]:1999"]\n'
                                                'url_order = "random"')
    many = parse_config(text, file="g.toml", base=tmp_path).mqtt
    assert many.endpoints == (("mq1", 1883), ("mq2", 1883), ("::1", 1999)) and many.url_order == "random"
    assert many.shown == "mqtt://mq1:1883,mqtt://mq2,mqtt://[::1]:1999" and not many.tls
    hub = MqttSettings(urls=("mqtts://a:8883", "mqtts://b:8883"), ca_file=tmp_path / "ca.crt")
    assert hub.tls and hub.tls_files()["ca_certs"].endswith("ca.crt") and hub.for_ingest().endpoints == hub.endpoints


BAD_LISTS = [  # (the [mqtt] lines, the key the problem is reported at, words of the sentence)
    ('url = "mqtt://a:1"\nurls = ["mqtt://b:1"]', "mqtt", "either url (one broker) or urls"),
    ("urls = []", "mqtt", "urls is empty"),
    ('urls = ["mqtt://a:1", "mqtt://a:1"]', "mqtt", "lists 'mqtt://a:1' twice"),
    ('urls = ["mqtt://a:1", "mqtts://b:8883"]', "mqtt", "mixes mqtt:// and mqtts://"),
    ('urls = ["mqtt://a:1", "http://b"]', "mqtt.urls[1]", "use mqtt://HOST:PORT"),
    ('urls = ["mqtt://a:99999"]', "mqtt.urls[0]", "must be a number 1..65535"),
    ('urls = "mqtt://a:1"', "mqtt.urls", 'must be a list like ["a", "b"]'),
    ('urls = ["mqtt://a:1"]\nurl_order = "roundrobin"', "mqtt.url_order", "must be one of 'in_order' or 'random'"),
]


@pytest.mark.parametrize(("lines", "key", "words"), BAD_LISTS, ids=[b[2][:24] for b in BAD_LISTS])
def test_gateway_check_config_explains_a_bad_broker_list(tmp_path, lines, key, words):
    text = config_text(tmp_path / "s").replace('url = "mqtt://127.0.0.1:1"', lines)
    path = tmp_path / "gateway.toml"
    path.write_text(text)
    res = runner.invoke(app, ["gateway", "check-config", str(path), "--json"])
    assert res.exit_code == 2, res.output
    details = json.loads(res.stdout)["details"]
    assert [d["key"] for d in details] == [key], details
    assert words in details[0]["message"] and details[0]["line"] is not None


@pytest.mark.parametrize(("lines", "key", "words"), BAD_LISTS, ids=[b[2][:24] for b in BAD_LISTS])
def test_hub_check_config_explains_a_bad_broker_list(tmp_path, lines, key, words):
    for f in ("hub.toml", "zones.json", "shelters.geojson"):
        shutil.copy(ROOT / "examples" / f, tmp_path / f)
    path = tmp_path / "hub.toml"
    text = path.read_text()
    url_line = next(line for line in text.splitlines() if line.startswith("url = \"mqtt"))
    path.write_text(text.replace(url_line, lines, 1))
    res = runner.invoke(app, ["hub", "check-config", str(path), "--json"])
    assert res.exit_code == 2, res.output
    details = json.loads(res.stdout)["details"]
    assert [d["key"] for d in details] == [key], details
    assert words in details[0]["message"] and details[0]["line"] is not None


def test_a_good_broker_list_passes_both_checks(tmp_path):
    for f in ("hub.toml", "zones.json", "shelters.geojson"):
        shutil.copy(ROOT / "examples" / f, tmp_path / f)
    path = tmp_path / "hub.toml"
    text = path.read_text()
    url_line = next(line for line in text.splitlines() if line.startswith("url = \"mqtt"))
    path.write_text(text.replace(url_line, 'urls = ["mqtt://mq1:1883", "mqtt://mq2:1883"]', 1))
    res = runner.invoke(app, ["hub", "check-config", str(path), "--json"])
    assert res.exit_code == 0 and json.loads(res.stdout)["mqtt"] == "mqtt://mq1:1883,mqtt://mq2:1883", res.output
    gw = tmp_path / "gateway.toml"
    gw.write_text(config_text(tmp_path / "s").replace('url = "mqtt://127.0.0.1:1"', 'urls = ["mqtt://a:1", "mqtt://b:2"]'))
    res = runner.invoke(app, ["gateway", "check-config", str(gw), "--json"])
    assert res.exit_code == 0 and json.loads(res.stdout)["mqtt"] == "mqtt://a:1,mqtt://b:2", res.output


def test_sim_city_refuses_a_bad_broker_list_before_starting_anything(tmp_path):
    res = runner.invoke(app, ["sim", "city", "--gateways", "1", "--hub-key", "k=v", "--state-dir", str(tmp_path),
                              "--broker", "mqtt://a:1", "--broker", "mqtt://a:1"])
    assert res.exit_code == 2 and "--broker: urls lists 'mqtt://a:1' twice" in res.output.replace("\n", " ")
    res = runner.invoke(app, ["sim", "city", "--gateways", "1", "--hub-key", "k=v", "--state-dir", str(tmp_path),
                              "--broker", "mqtt://a:1,http://b"])
    assert res.exit_code == 2 and "use mqtt://HOST:PORT" in res.output.replace("\n", " ")
    assert BrokerAddress(urls=("mqtt://a:1",)).endpoints == (("a", 1),)


# ------------------------------------------------------------------ real clients, real brokers
class Watcher:
    """Everything retained or published under dozor/v1/ on one broker."""

    def __init__(self, port: int) -> None:
        self.port, self.messages, self._stack = port, [], contextlib.AsyncExitStack()

    async def __aenter__(self) -> Watcher:
        client = await self._stack.enter_async_context(
            aiomqtt.Client("127.0.0.1", self.port, protocol=aiomqtt.ProtocolVersion.V311))
        await client.subscribe("dozor/v1/#", qos=1)
        self._task = asyncio.create_task(self._read(client))
        return self

    async def _read(self, client: aiomqtt.Client) -> None:
        async for m in client.messages:
            self.messages.append((m.topic.value, bytes(m.payload)))

    async def __aexit__(self, *exc: object) -> None:
        self._task.cancel()
        await asyncio.gather(self._task, return_exceptions=True)
        with contextlib.suppress(aiomqtt.MqttError):
            await self._stack.aclose()

    def payloads(self, topic: str) -> list[bytes]:
        return [p for t, p in self.messages if t == topic and p]

    async def until(self, pred, within: float = 20.0) -> None:  # a protocol deadline, not a speed assertion
        loop = asyncio.get_running_loop()
        end = loop.time() + within
        while not pred():
            assert loop.time() < end, f"timed out; saw {[t for t, _ in self.messages][-10:]}"
            await asyncio.sleep(0.05)


def births(w: Watcher, gw: str) -> list[GatewayState]:
    out = [decode(GatewayState, split(p)[0]) for p in w.payloads(topics.gw(gw, "state"))]
    return [s for s in out if s.state == "online"]


async def test_a_gateway_skips_a_refusing_node_and_moves_on_when_its_node_is_killed(tmp_path):
    dead = free_port()  # nothing listens here: connection refused
    with Mosquitto() as a, Mosquitto() as b:
        async with SirenRig(tmp_path, 1) as rig:
            text = config_text(tmp_path / "state", buses={rig.name: str(rig.port)}, sirens=rig.devices()).replace(
                'url = "mqtt://127.0.0.1:1"', f'urls = ["mqtt://127.0.0.1:{dead}", "{a.url}", "{b.url}"]')
            cfg = parse_config(text, file="g.toml", base=tmp_path)
            gw = Gateway(cfg)
            task = asyncio.create_task(gw.run())
            try:
                async with Watcher(a.port) as wa:
                    await wa.until(lambda: births(wa, cfg.gateway.id))
                first = births(wa, cfg.gateway.id)[-1].session
                assert gw.counters.get("mqtt_broker_switches") == 1  # the refusing node, then a
                async with Watcher(b.port) as wb:
                    await asyncio.to_thread(a.kill)  # kill -9 of the node the gateway is on
                    await wb.until(lambda: births(wb, cfg.gateway.id))
                assert births(wb, cfg.gateway.id)[-1].session > first
                assert gw.counters.get("mqtt_broker_switches") == 2 and gw.counters.get("mqtt_disconnects") == 2
            finally:
                task.cancel()
                await asyncio.gather(task, return_exceptions=True)


async def test_the_hub_connections_skip_a_refusing_node_and_publish_their_birth_on_the_next():
    dead = free_port()
    with Mosquitto() as a:
        cfg = MqttSettings(urls=(f"mqtt://127.0.0.1:{dead}", a.url), client_id="hub-urls", reconnect_min_s=0.05,
                           reconnect_max_s=0.2)
        metrics = HubMetrics()
        control = HubMqtt(cfg, Dispatcher(metrics), metrics)
        ingest = HubMqtt(cfg, Dispatcher(metrics), metrics, control=False)
        tasks = [asyncio.create_task(c.run()) for c in (control, ingest)]
        try:
            async with Watcher(a.port) as w:
                await asyncio.wait_for(asyncio.gather(control.connected.wait(), ingest.connected.wait()), 20)
                await w.until(lambda: w.payloads(topics.HUB_STATE))
            assert decode(HubState, w.payloads(topics.HUB_STATE)[-1]).state == "online"
            for kind in ("control", "ingest"):
                assert metrics.registry.get_sample_value("dozor_hub_mqtt_broker_switches_total",
                                                         {"connection": kind}) == 1
        finally:
            for t in tasks:
                t.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)


async def test_on_a_node_list_the_birth_goes_out_again_once_the_session_is_healthy(tmp_path):
    """A cluster may drop a retained write made during a leader election and still ack it: with several nodes a
    gateway publishes its birth a second time ``healthy_s`` after connecting (same session); with one it does not."""
    with Mosquitto() as a, Mosquitto() as b:
        async with SirenRig(tmp_path, 1) as rig:
            base = config_text(tmp_path / "state", buses={rig.name: str(rig.port)}, sirens=rig.devices(),
                               extra_mqtt="healthy_s = 0.5\n")
            cfg = parse_config(base.replace('url = "mqtt://127.0.0.1:1"', f'urls = ["{a.url}", "{b.url}"]'),
                               file="g.toml", base=tmp_path)
            gw = Gateway(cfg)
            async with Watcher(a.port) as w:
                task = asyncio.create_task(gw.run())
                try:
                    await w.until(lambda: len(births(w, cfg.gateway.id)) >= 2)
                    assert len({s.session for s in births(w, cfg.gateway.id)}) == 1
                    assert gw.counters.get("mqtt_births") == 1 and gw.counters.get("mqtt_births_updated") == 1
                finally:
                    task.cancel()
                    await asyncio.gather(task, return_exceptions=True)


async def test_on_a_node_list_the_hub_refreshes_its_retained_state():
    with Mosquitto() as a, Mosquitto() as b:
        cfg = MqttSettings(urls=(a.url, b.url), client_id="hub-refresh", healthy_s=0.3, retained_refresh_s=0.3)
        metrics = HubMetrics()
        refreshed = []

        async def refresh() -> None:
            refreshed.append(1)

        control = HubMqtt(cfg, Dispatcher(metrics), metrics, on_refresh=refresh)
        task = asyncio.create_task(control.run())
        try:
            async with Watcher(a.port) as w:
                await w.until(lambda: len(w.payloads(topics.HUB_STATE)) >= 3 and len(refreshed) >= 2)
            assert metrics.registry.get_sample_value("dozor_hub_retained_refreshes_total") >= 2
        finally:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
