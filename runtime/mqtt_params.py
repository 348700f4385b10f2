"""The MQTT client layer's plain parts: connection parameters, the last-will, the broker node list and the
errors (``runtime.mqtt`` re-exports them; ``MqttSession`` there drives paho)."""

from __future__ import annotations

import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass

OnMessage = Callable[[str, bytes, int, int, bool], None]


class MqttLinkError(Exception):
    """The MQTT connection failed or is gone (the root of this layer's errors)."""


class PublishTimeout(MqttLinkError):
    """No PUBACK within the publish timeout."""


class PubackStalled(MqttLinkError):
    """A PUBACK is overdue by ``stuck_puback_s``: the session is closed as dead."""


class BrokerList:
    """The nodes of one broker, tried in turn. ``order="random"`` shuffles them once per client (a fleet then
    spreads over the nodes and does not all land on the first one); either way every node is tried once per
    round. One node: always that node."""

    def __init__(self, endpoints: Sequence[tuple[str, int]], order: str = "in_order", *,
                 rng: random.Random | None = None) -> None:
        if not endpoints:
            raise ValueError("a broker needs at least one host:port")
        if order not in ("in_order", "random"):
            raise ValueError(f"order must be 'in_order' or 'random', not {order!r}")
        self.endpoints = list(endpoints)
        if order == "random":
            (rng or random.Random()).shuffle(self.endpoints)
        self._i = 0
        self.switches = 0  # how often the client moved to another node

    @property
    def current(self) -> tuple[str, int]:
        return self.endpoints[self._i]

    def failed(self) -> tuple[str, int]:
        """The connection to ``current`` failed or was lost: the next node (returned) is tried next."""
        if len(self.endpoints) > 1:
            self._i = (self._i + 1) % len(self.endpoints)
            self.switches += 1
        return self.current

    def __len__(self) -> int:
        return len(self.endpoints)


@dataclass(frozen=True)
class Will:
    topic: str
    payload: bytes
    qos: int = 1
    retain: bool = True


@dataclass(frozen=True)
class MqttParams:
    host: str
    port: int
    client_id: str
    username: str | None = None
    password: str | None = None
    keepalive_s: int = 30
    clean_session: bool = True
    will: Will | None = None
    tls: dict[str, str | None] | None = None  # ca_certs, certfile, keyfile
    connect_timeout_s: float = 5.0
    publish_timeout_s: float = 10.0
    stuck_puback_s: float = 15.0  # 0: off
    max_inflight: int = 100
    manual_ack: bool = False
    # packets read per readable event at most: 1 is paho's own (one packet per ``loop_read``); more saves the event
    # loop's round trip per packet on a connection that receives a stream (the hub's ingest), while the loop's other
    # callbacks wait at most that many packets
    read_burst: int = 1
