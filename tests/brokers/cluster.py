"""A city on a 3-node NATS cluster, with real processes: `dozor hub run` and one `dozor gateway run` per gateway
(simulated sirens on a Modbus pty; optionally a simulated noise node on a UART pty), each with the cluster's node
URLs in its own order, so a test decides who sits on the node it kills. A ``Watcher`` (an MQTT client on a node
that is not killed) timestamps every birth, so a move to a surviving node is measured, not assumed."""

from __future__ import annotations

import asyncio
import contextlib
import json
from dataclasses import dataclass, field
from pathlib import Path

import aiomqtt

from contract import topics
from contract.models import GatewayState, decode
from contract.signed import split
from dozor.client import HubClient
from simulators.brokers import free_port
from simulators.nats import NatsCluster
from simulators.pty_link import PtyLink
from simulators.sensors import SimNoiseNode
from tests.e2e.test_zero_loss import run_dozor, spawn, until
from tests.gateway.helpers import SirenRig
from tests.tokens import admin_token

ZONES = {"z1": ["gw-a", "gw-b"], "z2": ["gw-c"]}


def rotated(urls: list[str], first: int) -> list[str]:
    return urls[first:] + urls[:first]


def toml_list(urls: list[str]) -> str:
    return "[" + ", ".join(f'"{u}"' for u in urls) + "]"


class Watcher:
    """An MQTT client on one node: every message under dozor/v1/ with its arrival time (loop clock)."""

    def __init__(self, cluster: NatsCluster, node: int, client_id: str) -> None:
        self.cluster, self.node, self.client_id = cluster, node, client_id
        self.messages: list[tuple[float, str, bytes, bool]] = []
        self._stack = contextlib.AsyncExitStack()

    async def __aenter__(self) -> Watcher:
        c = self.cluster
        for attempt in range(3):  # the observer, not the system under test: a slow subscribe on a loaded machine
            try:               # (NATS creates a JetStream consumer for it) is tried again
                client = await self._stack.enter_async_context(aiomqtt.Client(
                    "127.0.0.1", c.nodes[self.node].mqtt_port, identifier=self.client_id, username=c.username,
                    password=c.password, protocol=aiomqtt.ProtocolVersion.V311, clean_session=True))
                await client.subscribe("dozor/v1/#", qos=1)
                break
            except aiomqtt.MqttError:
                with contextlib.suppress(aiomqtt.MqttError):
                    await self._stack.aclose()
                self._stack = contextlib.AsyncExitStack()
                if attempt == 2:
                    raise
                await asyncio.sleep(1)
        self._task = asyncio.create_task(self._read(client))
        return self

    async def _read(self, client: aiomqtt.Client) -> None:
        loop = asyncio.get_running_loop()
        async for m in client.messages:
            self.messages.append((loop.time(), m.topic.value, bytes(m.payload), m.retain))

    async def __aexit__(self, *exc: object) -> None:
        self._task.cancel()
        await asyncio.gather(self._task, return_exceptions=True)
        with contextlib.suppress(aiomqtt.MqttError):
            await self._stack.aclose()

    def births(self, gw: str) -> list[tuple[float, GatewayState, bool]]:
        out = []
        for t, topic, payload, retain in self.messages:
            if topic == topics.gw(gw, "state") and payload:
                s = decode(GatewayState, split(payload)[0])
                if s.state == "online":
                    out.append((t, s, retain))
        return out

    def last(self, topic: str) -> bytes | None:
        found = [p for _, t, p, _ in self.messages if t == topic and p]
        return found[-1] if found else None

    async def until(self, pred, what: str, within: float = 60.0) -> None:  # a protocol deadline, not a speed claim
        loop = asyncio.get_running_loop()
        end = loop.time() + within
        while not pred():
            if loop.time() > end:
                raise AssertionError(f"timed out waiting for {what}; saw {[m[1] for m in self.messages][-12:]}")
            await asyncio.sleep(0.05)


@dataclass
class Gateway:
    id: str
    first: int  # the index of the node its URL list starts with
    rig: SirenRig
    cfg: Path
    proc: asyncio.subprocess.Process | None = None
    noise: SimNoiseNode | None = None


@dataclass
class NatsCity:
    cluster: NatsCluster
    client: HubClient
    hub_first: int
    gateways: dict[str, Gateway]
    tmp: Path
    procs: list[asyncio.subprocess.Process] = field(default_factory=list)

    def confirmed(self, alert_id: str) -> bool:
        s = self.client.alert(alert_id).summary
        return s.total > 0 and s.confirmed == s.total and s.failed == 0

    def activations(self) -> int:
        return sum(g.rig.activations() for g in self.gateways.values())

    def online(self) -> dict[str, int]:
        """Gateway id -> session, of the gateways the hub shows online."""
        return {g.id: g.session for g in self.client.gateways() if g.state == "online"}


def unreachable(city: NatsCity) -> set[str]:
    """Gateways with a device the hub sees as unreachable (its port never opened)."""
    return {d.gateway for d in city.client.devices() if d.state == "unreachable"}


@contextlib.asynccontextmanager
async def nats_city(tmp_path: Path, cluster: NatsCluster, *, hub_first: int, firsts: dict[str, int],
                    noise_on: str | None = None, store_url: str | None = None, spinup_s: float = 0.0):
    """Hub + gateways (``firsts``: gateway id -> the node its URL list starts with) on ``cluster``."""
    api = free_port()
    (tmp_path / "zones.json").write_text(json.dumps([{"id": z, "gateways": gws} for z, gws in ZONES.items()]))
    store = (f'[store]\nkind = "v2"\nurl = "{store_url}"\nflush_interval_s = 0.2\n' if store_url else "")
    hub_toml = tmp_path / "hub.toml"
    hub_toml.write_text(
        f'[hub]\nstate_dir = "hub"\napi_port = {api}\nzones = "zones.json"\nconfirm_deadline_s = 2\n'
        "max_retries = 15\n"
        f"[mqtt]\nurls = {toml_list(rotated(cluster.urls, hub_first))}\n"
        f'username = "{cluster.username}"\npassword = "{cluster.password}"\n'
        "keepalive_s = 5\nreconnect_min_s = 0.1\nreconnect_max_s = 1.0\npublish_timeout_s = 5\nstuck_puback_s = 8\n"
        + store)
    hub_toml.chmod(0o600)  # it holds the broker password
    token = admin_token(tmp_path / "hub")
    stack = contextlib.AsyncExitStack()
    procs: list[asyncio.subprocess.Process] = []
    gateways: dict[str, Gateway] = {}
    try:
        # every gateway is enrolled before the hub starts, as `dozor provision` does (no enrollment race)
        keys = json.loads(await run_dozor("hub", "pubkey", "--config", str(hub_toml), "--json"))
        kid, pub = keys["kid"], keys["public_key"]
        for gid, first in firsts.items():
            zone = next(z for z, gws in ZONES.items() if gid in gws)
            (tmp_path / gid).mkdir()
            rig = await stack.enter_async_context(SirenRig(tmp_path / gid, 2, spinup_s=spinup_s))
            noise_conf, noise = "", None
            if gid == noise_on:
                link = await PtyLink().start()
                stack.push_async_callback(link.close)
                noise = SimNoiseNode(link.b, period_s=3600)  # a frame only when the test sends one
                await stack.enter_async_context(noise)
                noise_conf = (f'[[bus]]\nname = "uart-1"\nport = "{link.a}"\nkind = "uart"\nbaudrate = 115200\n'
                              '[[device]]\nid = "noise-1"\nkind = "noise_node"\nbus = "uart-1"\nstale_s = 86400\n')
            cfg = tmp_path / f"{gid}.toml"
            cfg.write_text(
                f'[gateway]\nid = "{gid}"\nzone = "{zone}"\nstate_dir = "{tmp_path / gid / "state"}"\n'
                "heartbeat_s = 1\n"
                f"[mqtt]\nurls = {toml_list(rotated(cluster.urls, first))}\n"
                f'username = "{cluster.username}"\npassword = "{cluster.password}"\n'
                "keepalive_s = 5\nreconnect_min_s = 0.1\nreconnect_max_s = 1.0\npublish_timeout_s = 5\n"
                "stuck_puback_s = 8\n"
                f'[trust.hub_keys]\n"{kid}" = "{pub}"\n'
                "[telemetry]\nflush_s = 0.3\n"
                f'[[bus]]\nname = "{rig.name}"\nport = "{rig.port}"\nkind = "modbus"\ntimeout_s = 0.3\n'
                + "".join(f'[[device]]\nid = "siren-{k}"\nkind = "siren"\nbus = "{rig.name}"\naddress = {k}\n'
                          for k in (1, 2))
                + noise_conf)
            cfg.chmod(0o600)
            ident = json.loads(await run_dozor("gateway", "identity", str(cfg), "--json"))
            await run_dozor("gateways", "enroll", gid, "--pubkey", ident["public_key"], "--config", str(hub_toml))
            gateways[gid] = Gateway(gid, first, rig, cfg, noise=noise)
        procs.append(await spawn("hub", "run", "--config", str(hub_toml), log=tmp_path / "hub.log"))
        client = HubClient(f"http://127.0.0.1:{api}", token)
        await until(lambda: client.health(), "the hub's API")
        for gw in gateways.values():
            gw.proc = await spawn("gateway", "run", "--config", str(gw.cfg), log=tmp_path / f"{gw.id}.log")
            procs.append(gw.proc)
        city = NatsCity(cluster, client, hub_first, gateways, tmp_path, procs)
        await until(lambda: set(city.online()) == set(firsts), "every gateway online at the hub", attempts=900)
        # the rig, not the system under test: a gateway whose simulated serial port did not open under the load of
        # a shared machine (pymodbus' connect timing out) is started once more before any fault is injected
        for attempt in range(2):
            stuck = await asyncio.to_thread(unreachable, city)
            for _ in range(150):
                if not stuck:
                    break
                await asyncio.sleep(0.1)
                stuck = await asyncio.to_thread(unreachable, city)
            if not stuck:
                break
            assert attempt == 0, f"the simulated devices of {stuck} stayed unreachable (rig)"
            for gid in stuck:
                gw = gateways[gid]
                gw.proc.terminate()
                await gw.proc.wait()
                gw.proc = await spawn("gateway", "run", "--config", str(gw.cfg), log=tmp_path / f"{gid}.log")
                procs.append(gw.proc)
            await until(lambda: set(city.online()) == set(firsts), "every gateway online again", attempts=900)
        yield city
    finally:
        for p in procs:
            if p.returncode is None:
                p.terminate()
        for p in procs:  # one SIGTERM stops each (a process still there after 30 s is killed, and reported)
            try:
                await asyncio.wait_for(p.wait(), 30)
            except TimeoutError:
                p.kill()
                await p.wait()
                raise AssertionError(f"process {p.pid} ignored SIGTERM for 30 s") from None
        await stack.aclose()
