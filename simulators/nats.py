"""A real clustered MQTT broker for tests and benchmarks: three ``nats-server`` nodes (Debian's package, 2.9)
with JetStream and MQTT enabled, clustered over loopback routes. Every port binds to 127.0.0.1.

    with NatsCluster() as cluster:             # three nodes, JetStream meta leader elected, MQTT answering
        cluster.urls                           # ["mqtt://127.0.0.1:P1", ...]: the gateway/hub ``urls`` list
        cluster.kill(1)                        # kill -9 of node 1 (its data dir is kept)
        cluster.start_node(1)                  # back on the same ports
        cluster.meta_leader()                  # "n0" | "n2" | ... (from the monitoring endpoint)

What NATS gives MQTT (and dozor relies on): MQTT 3.1.1, QoS 0 and 1 (QoS 2 is refused), retained messages,
wills, and persistent sessions (``clean_session = false``). Sessions, QoS 1 messages and retained messages
live in JetStream streams (``$MQTT_sess``, ``$MQTT_msgs``, ``$MQTT_rmsgs``) replicated on all three nodes
(``stream_replicas``, ``consumer_replicas``), so a client that loses its node resumes its session on another
one. There is no ``$share`` (the hub's ingest does not use it). A ``.`` or a space in a topic is refused:
dozor's gateway and zone ids may contain ``.``, so a city on NATS 2.9 must use ids without one.

Every node runs the deployed config, ``deploy/nats/nats.conf``, with its ports, names and passwords in its
environment. Auth in this fixture: one user with a random password (MQTT ``username``/``password``) on every node,
and a random password on the cluster routes; plain TCP on loopback. Production needs TLS on the MQTT listener and the
routes, per-gateway users and permissions: see docs/operations.md ("A clustered broker").
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import shutil
import socket
import subprocess
import tempfile
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from simulators.brokers import BrokerError, free_port, wait_port

NODES = 3
CONFIG = Path(__file__).resolve().parents[1] / "deploy" / "nats" / "nats.conf"  # one node; filled in by env


def binary() -> str:
    found = shutil.which("nats-server") or next((p for p in ("/usr/bin/nats-server", "/usr/sbin/nats-server")
                                                 if Path(p).exists()), None)
    if not found:
        raise BrokerError("nats-server is not installed: run `./run deps` (apt-get install nats-server)")
    return found


@dataclass
class NatsNode:
    index: int
    client_port: int
    cluster_port: int
    mqtt_port: int
    http_port: int
    dir: Path
    proc: subprocess.Popen | None = None

    @property
    def name(self) -> str:
        return f"n{self.index}"

    @property
    def url(self) -> str:
        return f"mqtt://127.0.0.1:{self.mqtt_port}"

    @property
    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None


class NatsCluster:
    """Three nats-server nodes with JetStream and MQTT, on free loopback ports, in one temporary folder."""

    stop_timeout_s = 10.0

    def __init__(self, nodes: int = NODES, *, username: str = "dozor", password: str | None = None,
                 config: Path | None = None) -> None:
        self.binary = binary()
        self.dir = Path(tempfile.mkdtemp(prefix="dozor-nats-"))
        self.username = username
        # nats-server parses an environment value as a config value: letters and digits, a letter first, stay text
        self.password = password or "p" + secrets.token_hex(16)
        self._route_password = "r" + secrets.token_hex(16)
        self.config = config or CONFIG
        self.nodes = self._fresh_nodes(nodes)

    def _fresh_nodes(self, count: int) -> list[NatsNode]:
        """``count`` nodes on newly picked free ports, each with an empty data dir."""
        nodes = [NatsNode(i, free_port(), free_port(), free_port(), free_port(), self.dir / f"n{i}")
                 for i in range(count)]
        for n in nodes:
            shutil.rmtree(n.dir, ignore_errors=True)
            n.dir.mkdir()
        return nodes

    @property
    def urls(self) -> list[str]:
        return [n.url for n in self.nodes]

    def env(self, n: NatsNode) -> dict[str, str]:
        """The environment that makes ``deploy/nats/nats.conf`` node ``n`` of this cluster."""
        others = [o for o in self.nodes if o is not n]
        routes = [f"nats-route://route:{self._route_password}@127.0.0.1:{o.cluster_port}" for o in others]
        routes += routes[-1:] * (2 - len(routes))  # the file names two routes (a smaller test cluster repeats one)
        return {"NATS_NAME": n.name, "NATS_CLIENT": f"127.0.0.1:{n.client_port}",
                "NATS_HTTP": f"127.0.0.1:{n.http_port}", "NATS_CLUSTER": f"127.0.0.1:{n.cluster_port}",
                "NATS_ROUTE_A": routes[0], "NATS_ROUTE_B": routes[1], "NATS_MQTT": f"127.0.0.1:{n.mqtt_port}",
                "NATS_STORE": str(n.dir / "js"), "NATS_USER": self.username, "NATS_PASSWORD": self.password,
                "NATS_ROUTE_PASSWORD": self._route_password}

    # ------------------------------------------------------------------ lifecycle
    def start(self, timeout: float = 60.0) -> NatsCluster:
        for n in self.nodes:
            self.start_node(n.index, wait=False)
        try:
            for n in self.nodes:
                wait_port(n.mqtt_port, timeout)
            self.wait_ready(timeout)
        except BrokerError:
            tails = " | ".join(f"{n.name}: {self.log(n.index)[-400:]}" for n in self.nodes)
            self.stop()
            raise BrokerError(f"the NATS cluster did not come up: {tails}") from None
        return self

    def start_node(self, i: int, *, wait: bool = True) -> None:
        n = self.nodes[i]
        if n.alive:
            return
        log = open(n.dir / "nats.log", "ab")  # noqa: SIM115 - owned by the child
        env = {k: v for k, v in os.environ.items() if not k.startswith("NATS_")} | self.env(n)
        n.proc = subprocess.Popen([self.binary, "-c", str(self.config)], stdout=log, stderr=log,
                                  stdin=subprocess.DEVNULL, env=env)
        log.close()
        if wait:
            wait_port(n.mqtt_port, 30)

    def kill(self, i: int) -> None:
        """``kill -9`` of one node: no goodbye to the cluster or its clients (its data dir stays)."""
        n = self.nodes[i]
        if n.proc is not None and n.proc.poll() is None:
            n.proc.kill()
            n.proc.wait()
        n.proc = None

    def stop_node(self, i: int) -> None:
        n = self.nodes[i]
        if n.proc is not None and n.proc.poll() is None:
            n.proc.terminate()
            try:
                n.proc.wait(self.stop_timeout_s)
            except subprocess.TimeoutExpired:
                n.proc.kill()
                n.proc.wait()
        n.proc = None

    def stop(self) -> None:
        for n in self.nodes:
            self.stop_node(n.index)

    def close(self) -> None:
        self.stop()
        shutil.rmtree(self.dir, ignore_errors=True)

    def __enter__(self) -> NatsCluster:
        try:
            return self.start()
        except BrokerError as first:  # a port picked as free taken meanwhile (parallel test workers): once more
            self.nodes = self._fresh_nodes(len(self.nodes))
            try:
                return self.start()
            except BrokerError:
                self.close()
                raise first from None

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ------------------------------------------------------------------ readiness
    def jsz(self, i: int) -> dict:
        """The node's JetStream monitoring document (``/jsz``), or {} when it does not answer."""
        n = self.nodes[i]
        with contextlib.suppress(OSError, ValueError), urllib.request.urlopen(  # noqa: S310 - loopback http
                f"http://127.0.0.1:{n.http_port}/jsz", timeout=2) as r:
            return json.loads(r.read())
        return {}

    def meta_leader(self, among: list[int] | None = None) -> str | None:
        """The JetStream meta leader as the live nodes (or ``among``) agree on it, else None."""
        seen = set()
        for n in self.nodes:
            if (among is None and not n.alive) or (among is not None and n.index not in among):
                continue
            seen.add((self.jsz(n.index).get("meta_cluster") or {}).get("leader"))
        return seen.pop() if len(seen) == 1 and None not in seen and "" not in seen else None

    def wait_ready(self, timeout: float = 60.0) -> None:
        """Until the live nodes agree on a meta leader and every live node's MQTT listener answers a CONNECT
        (the first CONNECT creates the replicated MQTT streams, so this also waits for those)."""
        deadline = time.monotonic() + timeout
        while self.meta_leader() is None:
            if time.monotonic() > deadline:
                raise BrokerError(f"no JetStream meta leader after {timeout:g}s")
            time.sleep(0.1)
        for n in self.nodes:
            while n.alive and not self.mqtt_answers(n.index):
                if time.monotonic() > deadline:
                    raise BrokerError(f"{n.name}: MQTT did not accept a CONNECT within {timeout:g}s")
                time.sleep(0.2)

    def mqtt_answers(self, i: int) -> bool:
        """One raw MQTT 3.1.1 CONNECT (clean session) to node ``i``: True if CONNACK says accepted."""
        n = self.nodes[i]
        user, pw = self.username.encode(), self.password.encode()

        def s(b: bytes) -> bytes:
            return len(b).to_bytes(2, "big") + b

        body = s(b"MQTT") + bytes([4, 0b11000010]) + (10).to_bytes(2, "big") + s(b"probe-" + n.name.encode()) \
            + s(user) + s(pw)
        packet = bytes([0x10, len(body)]) + body
        try:
            with socket.create_connection(("127.0.0.1", n.mqtt_port), timeout=5) as sock:
                sock.sendall(packet)
                ack = sock.recv(4)
                sock.sendall(b"\xe0\x00")  # DISCONNECT
                return len(ack) == 4 and ack[0] == 0x20 and ack[3] == 0
        except OSError:
            return False

    def log(self, i: int) -> str:
        p = self.nodes[i].dir / "nats.log"
        return p.read_text(errors="replace") if p.exists() else ""
