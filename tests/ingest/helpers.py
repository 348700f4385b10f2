"""Ingest test helpers: a hub config with a [store], a real paho publisher, exact counts read back from
the real stores."""

from __future__ import annotations

import json
import threading
from pathlib import Path

import paho.mqtt.client as paho

from contract import topics
from contract.models import Reading, TelemetryBatch
from hub.config import HubConfig, parse_config
from simulators.brokers import free_port
from simulators.tsdb import InfluxDB1, VictoriaMetrics

ZONES = [{"id": "north", "gateways": ["gw-n1", "gw-n2"]}, {"id": "south", "gateways": ["gw-s1"]},
         {"id": "all", "gateways": ["gw-n1", "gw-n2", "gw-s1"]}]
NOISE = ("laeq", "lafmax", "la10", "la90")


def store_config(tmp: Path, broker_port: int, store: InfluxDB1 | VictoriaMetrics | None, *,
                 client_id: str = "hub-ingest-test", **extra: object) -> HubConfig:
    (tmp / "zones.json").write_text(json.dumps(ZONES))
    data: dict = {
        "hub": {"state_dir": "state", "api_port": free_port(), "zones": "zones.json", "flush_interval_s": 0.05},
        "mqtt": {"url": f"mqtt://127.0.0.1:{broker_port}", "client_id": client_id},
        "store": {"kind": "none"},
    }
    if isinstance(store, InfluxDB1):
        data["store"] = {"kind": "v1", "url": store.url, "database": store.database}
    elif isinstance(store, VictoriaMetrics):
        data["store"] = {"kind": "v2", "url": store.url, "database": "dozor"}
    data["store"].update({"flush_interval_s": 0.05, "backoff_cap_s": 0.5, "timeout_s": 2, **extra})
    return parse_config(data, base=tmp)


def noise_batch(gateway: str, seq: int, n: int, *, session: int = 1, t0: float = 1_767_225_600.0) -> TelemetryBatch:
    """``n`` noise readings (4 metrics each), distinct timestamps per (session, seq, i)."""
    base = t0 + session * 100_000 + seq * n
    return TelemetryBatch(gateway=gateway, session=session, seq=seq, readings=tuple(
        Reading(device="noise-1", kind="noise_node", ts=base + i,
                metrics={"laeq": 50.0 + (i % 7), "lafmax": 70.0, "la10": 55.0, "la90": 40.0}) for i in range(n)))


class Publisher:
    """A real paho MQTT 3.1.1 client; ``publish_all`` returns once the broker PUBACKed every message."""

    def __init__(self, port: int, client_id: str = "test-publisher") -> None:
        self.client = paho.Client(paho.CallbackAPIVersion.VERSION2, client_id=client_id,
                                  protocol=paho.MQTTv311)
        self.client.max_inflight_messages_set(1000)
        self.client.max_queued_messages_set(0)
        connected = threading.Event()
        self.client.on_connect = lambda *a: connected.set()
        self.client.connect("127.0.0.1", port)
        self.client.loop_start()
        if not connected.wait(10):
            raise AssertionError("publisher did not connect")

    def publish_all(self, messages: list[tuple[str, bytes]], timeout: float = 30.0) -> None:
        infos = [self.client.publish(topic, payload, qos=1) for topic, payload in messages]
        for info in infos:
            info.wait_for_publish(timeout)
            assert info.is_published(), "broker did not PUBACK"

    def batches(self, batches: list[TelemetryBatch]) -> None:
        self.publish_all([(topics.gw(b.gateway, "telemetry"), b.to_bytes()) for b in batches])

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


def vm_samples(vm: VictoriaMetrics, match: str) -> int:
    vm.flush()
    return sum(len(s["values"]) for s in vm.export(match))


def influx_count(db: InfluxDB1, query: str) -> int:
    res = db.query(query)["results"][0]
    series = res.get("series") or []
    return int(sum(v for s in series for row in s["values"] for v in row[1:] if v is not None))
