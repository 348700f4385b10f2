"""Real processes for the trust tests: `dozor hub run` and `dozor gateway run` as child processes on a real
Mosquitto, sirens simulated in this process on ptys (their controllers outlive a gateway's kill -9, as in a
street cabinet), and every operator step through the `dozor` CLI as docs/operations.md prints it."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import paho.mqtt.client as paho

from contract import topics
from simulators.brokers import free_port, wait_port
from tests.gateway.helpers import SirenRig
from tests.tokens import admin_token

DOZOR = str(Path(sys.executable).with_name("dozor"))
ZONE = "z1"


RUN: list[tuple[str, ...]] = []  # every `dozor` command the trust tests ran, to check the docs against


async def dozor(*args: str, check: bool = True, env: dict | None = None) -> subprocess.CompletedProcess:
    """Run the `dozor` CLI without blocking the event loop (the simulated sirens live on it)."""
    RUN.append(tuple(args))
    proc = await asyncio.create_subprocess_exec(DOZOR, *args, stdout=asyncio.subprocess.PIPE,
                                                stderr=asyncio.subprocess.PIPE, env={**os.environ, **(env or {})})
    out, err = await asyncio.wait_for(proc.communicate(), 60)
    res = subprocess.CompletedProcess([DOZOR, *args], proc.returncode, out.decode(), err.decode())
    if check:
        assert res.returncode == 0, f"dozor {' '.join(args)} -> {res.returncode}\n{res.stdout}\n{res.stderr}"
    return res


def spawn(args: list[str], log_path: Path) -> subprocess.Popen:
    with open(log_path, "ab") as log:
        return subprocess.Popen([DOZOR, *args], stdout=log, stderr=subprocess.STDOUT,
                                env={**os.environ, "PYTHONUNBUFFERED": "1"})


async def wait(pred, what: str, limit_s: float = 30.0, every: float = 0.05):
    """Poll until pred() (sync or async) is truthy. The limit only bounds a failing test; nothing asserts
    durations."""
    deadline = time.monotonic() + limit_s
    while True:
        value = pred()
        if asyncio.iscoroutine(value):
            value = await value
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(every)


class HubProc:
    def __init__(self, tmp: Path, broker_url: str, gateways: list[str], **hub: object) -> None:
        self.dir = tmp
        self.port = free_port()
        (tmp / "zones.json").write_text(json.dumps([{"id": ZONE, "name": "Zone 1", "gateways": gateways}]))
        settings = {"state_dir": '"hub"', "api_port": self.port, "zones": '"zones.json"', "confirm_deadline_s": 1.0,
                    "max_retries": 2, **{k: json.dumps(v) for k, v in hub.items()}}
        self.config = tmp / "hub.toml"
        self.config.write_text("[hub]\n" + "".join(f"{k} = {v}\n" for k, v in settings.items())
                               + f'[mqtt]\nurl = "{broker_url}"\nclient_id = "hub-{self.port}"\n'
                               + "[two_person]\nactual = []\n")  # stop tests: one operator sends Actual alerts
        self.state = tmp / "hub"
        self.proc: subprocess.Popen | None = None
        self.http: httpx.AsyncClient | None = None

    async def start(self) -> HubProc:
        token = admin_token(self.state)  # the first user, as `dozor users add NAME --role admin` makes it
        self.proc = spawn(["hub", "run", "--config", str(self.config)], self.dir / "hub.log")
        await asyncio.to_thread(wait_port, self.port, timeout=30)
        self.env = {"DOZOR_HUB_URL": f"http://127.0.0.1:{self.port}", "DOZOR_TOKEN": token}
        self.http = httpx.AsyncClient(base_url=f"http://127.0.0.1:{self.port}", timeout=10,
                                 headers={"Authorization": f"Bearer {token}"})
        return self

    async def stop(self) -> None:
        if self.http is not None:
            await self.http.aclose()
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                await asyncio.to_thread(self.proc.wait, 15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                await asyncio.to_thread(self.proc.wait)

    # ------------------------------------------------------------ views
    async def gateways(self) -> dict[str, dict]:
        return {g["id"]: g for g in (await self.http.get("/api/v1/gateways")).json()}

    async def alert(self, alert_id: str) -> dict:
        return (await self.http.get(f"/api/v1/alerts/{alert_id}")).json()

    async def device_states(self, alert_id: str) -> dict[tuple[str, str], str]:
        return {(d["gateway"], d["device"]): d["state"] for d in (await self.alert(alert_id))["devices"]}

    async def metric(self, name: str, **labels: str) -> float:
        total = 0.0
        for line in (await self.http.get("/metrics")).text.splitlines():
            if not line.startswith(name + "{") and not line.startswith(name + " "):
                continue
            if all(f'{k}="{v}"' in line for k, v in labels.items()):
                total += float(line.rsplit(" ", 1)[1])
        return total

    async def start_alert(self, signal_: str = "air-raid", mode: str = "actual", duration_s: int = 600) -> str:
        res = await dozor("alert", "start", "--zone", ZONE, "--signal", signal_, "--duration", str(duration_s), "--json",
                    "--no-wait", "--exercise" if mode == "exercise" else "--actual", env=self.env)
        return json.loads(res.stdout)["id"]

    async def stop_alert(self, alert_id: str) -> subprocess.CompletedProcess:
        """`dozor alert stop ID` as an operator presses it (returns at once; exit 0 = accepted)."""
        return await dozor("alert", "stop", alert_id, "--wait", "0", "--json", env=self.env, check=False)

    async def kid(self) -> str:
        return (await self.http.get("/healthz")).json()["kid"]


class GatewayProc:
    """One street cabinet: `dozor gateway run` in a child process, its sirens on a pty in this process."""

    def __init__(self, tmp: Path, gid: str, broker_url: str, hub: HubProc, rig: SirenRig, *,
                 heartbeat_s: float = 1.0) -> None:
        self.id, self.hub, self.rig, self.broker_url, self.heartbeat_s = gid, hub, rig, broker_url, heartbeat_s
        self.dir = tmp / gid
        self.dir.mkdir(parents=True, exist_ok=True)
        self.state = self.dir / "state"
        self.config = self.dir / "gateway.toml"
        self.proc: subprocess.Popen | None = None

    async def setup(self) -> GatewayProc:
        self.pin((await dozor("hub", "pubkey", "--config", str(self.hub.config))).stdout)
        return self

    def pin(self, hub_keys_toml: str) -> None:
        """Write the config with the [trust.hub_keys] lines exactly as `dozor hub pubkey` printed them."""
        devices = "".join(f'[[device]]\nid = "{d}"\nkind = "siren"\nbus = "{b}"\naddress = {a}\n'
                          "spinup_timeout_s = 3\n" for d, b, a in self.rig.devices())
        self.config.write_text(
            f'[gateway]\nid = "{self.id}"\nzone = "{ZONE}"\nstate_dir = "{self.state}"\n'
            f"heartbeat_s = {self.heartbeat_s}\ndurable_replay = false\n"
            f'[mqtt]\nurl = "{self.broker_url}"\nkeepalive_s = 5\nreconnect_min_s = 0.1\nreconnect_max_s = 0.5\n'
            "[trust]\nmax_activation_s = 900\n" + hub_keys_toml +
            f'[[bus]]\nname = "{self.rig.name}"\nport = "{self.rig.port}"\nkind = "modbus"\ntimeout_s = 0.2\n'
            "reopen_s = 0.2\n" + devices)

    async def enroll(self) -> dict:
        """As docs/operations.md: print the gateway's identity key on the gateway, enroll it on the hub."""
        ident = json.loads((await dozor("gateway", "identity", str(self.config), "--json")).stdout)
        return json.loads((await dozor("gateways", "enroll", self.id, "--pubkey", ident["public_key"], "--config",
                                       str(self.hub.config), "--json")).stdout)

    def start(self) -> GatewayProc:
        self.proc = spawn(["gateway", "run", "--config", str(self.config)], self.dir / "gateway.log")
        return self

    async def kill9(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        await asyncio.to_thread(self.proc.wait)

    async def stop(self) -> None:
        """SIGTERM: the gateway stops its devices and exits (it needs the loop to answer on the siren bus)."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                await asyncio.to_thread(self.proc.wait, 15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                await asyncio.to_thread(self.proc.wait)

    def wipe_state(self) -> None:
        shutil.rmtree(self.state, ignore_errors=True)

    async def online(self) -> bool:
        g = (await self.hub.gateways()).get(self.id)
        return bool(g and g["state"] == "online" and g["devices"])

    def sounding(self) -> int:
        return sum(1 for s in self.rig.sirens if s.sounding)


class Tap:
    """An MQTT client that records (and can replay) what goes over a gateway's topics: what an attacker on
    the broker could capture."""

    def __init__(self, port: int, pattern: str = f"{topics.ROOT}/gw/+/+") -> None:
        self.port = port
        self.messages: list[tuple[str, bytes, bool]] = []
        self.c = paho.Client(paho.CallbackAPIVersion.VERSION2, protocol=paho.MQTTv311)
        self.c.on_message = lambda c, u, m: self.messages.append((m.topic, bytes(m.payload), bool(m.retain)))
        self.c.connect("127.0.0.1", port)
        self.c.subscribe(pattern, qos=1)
        self.c.loop_start()
        self._pub: paho.Client | None = None

    def _publisher(self) -> paho.Client:
        """A second connection, subscribed to nothing, that publishes. Published on the recording connection, a
        message the tap is subscribed to comes back to it, and paho (no TCP_NODELAY) writes that copy's PUBACK
        and then the next PUBLISH: Nagle holds the PUBLISH until the broker's delayed ACK (40 ms on Linux), per
        message. Everything published is still recorded in ``messages`` by the subscription."""
        if self._pub is None:
            connected = threading.Event()
            pub = paho.Client(paho.CallbackAPIVersion.VERSION2, protocol=paho.MQTTv311)
            pub.on_connect = lambda c, u, f, rc, p: connected.set()
            pub.connect("127.0.0.1", self.port)
            pub.loop_start()
            assert connected.wait(10), "the tap's publishing connection did not come up"
            self._pub = pub
        return self._pub

    def of(self, gateway: str, channel: str) -> list[bytes]:
        return [p for t, p, _ in list(self.messages) if t == topics.gw(gateway, channel)]

    def publish(self, topic: str, payload: bytes, *, retain: bool = False) -> None:
        self._publisher().publish(topic, payload, qos=1, retain=retain).wait_for_publish(5)

    def close(self) -> None:
        for client in (self.c, self._pub):
            if client is not None:
                client.disconnect()
                client.loop_stop()


def doc_commands(section: str) -> list[list[str]]:
    """The `dozor ...` lines of the first fenced block under ``### {section}`` in docs/operations.md."""
    text = (Path(__file__).resolve().parents[2] / "docs" / "operations.md").read_text()
    body = text.split(f"### {section}\n", 1)[1]
    block = body.split("```", 2)[1]
    return [line.split("#", 1)[0].split()[1:] for line in block.splitlines() if line.startswith("dozor ")]


def assert_docs_ran(section: str) -> None:
    """Every command docs/operations.md shows in ``section`` was run by a test as printed: the same sub-command
    and the same options (upper-case words in the docs are placeholders: a key id, a gateway id, a path)."""
    for cmd in doc_commands(section):
        words: list[str] = []
        for w in cmd:  # the sub-command: the words before the first option or placeholder
            if w.startswith("-") or w.isupper() or w.endswith(".toml"):
                break
            words.append(w)
        options = {w for w in cmd if w.startswith("-")}
        assert any(tuple(r[:len(words)]) == tuple(words) and options <= set(r) for r in RUN), \
            f"docs/operations.md ({section}) shows `dozor {' '.join(cmd)}` but no test ran it"
