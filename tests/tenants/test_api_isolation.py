"""Two cities (tenants ``odesa`` and ``bucha``) on one real Mosquitto and one real VictoriaMetrics, each served by
its own real hub process: an operator of one is refused by the other's hub and sees nothing of it, an alert of
one reaches only its own gateways, on its own topics, even where both cities use the same gateway ids, and every
series each hub stores carries its tenant label, which a datasource filter (``extra_label``) enforces."""

from __future__ import annotations

import asyncio
import json
import threading
import time

import httpx
import paho.mqtt.client as paho
import pytest

from contract import topics
from contract.command import public_key_from_b64
from contract.models import DeviceKind, Reading, TelemetryBatch
from tests.hub.fakegw import FakeGateway
from tests.repo.test_migrate import dozor
from tests.tenants.helpers import start_city

pytestmark = pytest.mark.integration


class Tap:
    """Everything under dozor/v1/# on the (ACL-less) test broker: which tenant each message went to."""

    def __init__(self, port: int) -> None:
        self.seen: list[str] = []
        self.lock = threading.Lock()
        self.c = paho.Client(paho.CallbackAPIVersion.VERSION2, client_id="tap", protocol=paho.MQTTv311)
        self.c.on_connect = lambda cl, *_: cl.subscribe("dozor/v1/#", qos=1)
        self.c.on_message = self._on
        self.c.connect("127.0.0.1", port)
        self.c.loop_start()

    def _on(self, _c, _u, msg) -> None:
        with self.lock:
            self.seen.append(msg.topic)

    def topics(self) -> list[str]:
        with self.lock:
            return list(self.seen)

    def close(self) -> None:
        self.c.disconnect()
        self.c.loop_stop()


async def keys_of(http) -> dict:
    health = (await http.get("/healthz")).json()
    return {health["kid"]: public_key_from_b64(health["public_key"])}


def reading(gw: str, value: float) -> bytes:
    r = Reading(device="dust-1", kind=DeviceKind.SDS011, ts=time.time(), metrics={"pm2_5": value})
    return TelemetryBatch(gateway=gw, session=1, seq=1, readings=(r,)).to_bytes()


def exported(vm, match: str, **params: str) -> list[dict]:
    r = httpx.post(vm.url + "/api/v1/export", data={"match[]": match, **params}, timeout=30)
    r.raise_for_status()
    return [json.loads(line)["metric"] for line in r.text.splitlines() if line.strip()]


async def test_operator_and_alert_of_one_city_never_reach_the_other(mosquitto, victoria, tmp_path):
    store = f'[store]\nkind = "v2"\nurl = "{victoria.url}"\nflush_interval_s = 0.2\n'
    # bucha also enrolled odesa's gw-odesa-only by mistake: topics, not enrollment, keep odesa's traffic out
    odesa = start_city(tmp_path, "odesa", mosquitto.url, ["gw-1", "gw-odesa-only"], extra=store)
    bucha = start_city(tmp_path, "bucha", mosquitto.url, ["gw-1"], enrolled=["gw-1", "gw-odesa-only"], extra=store)
    tap = Tap(mosquitto.port)
    fakes: list[FakeGateway] = []
    try:
        async with odesa.http() as a, bucha.http() as b, bucha.http(odesa.token) as a_at_b, \
                odesa.http(bucha.token) as b_at_a:
            # the same gateway id in both cities, each on its tenant's topics and pinning its own hub's key
            fakes = [FakeGateway(mosquitto.port, "gw-1", await keys_of(a), [("siren-1", DeviceKind.SIREN)],
                                 tenant="odesa").start(),
                     FakeGateway(mosquitto.port, "gw-odesa-only", await keys_of(a), [("siren-1", DeviceKind.SIREN)],
                                 tenant="odesa").start(),
                     FakeGateway(mosquitto.port, "gw-1", await keys_of(b), [("siren-1", DeviceKind.SIREN)],
                                 tenant="bucha").start()]
            odesa_gw1, _, bucha_gw1 = fakes
            assert (await keys_of(a)) != (await keys_of(b))  # own signing keys

            async def online(http, n):
                gws = (await http.get("/api/v1/gateways")).json()
                return sum(g["state"] == "online" for g in gws) == n
            for http, n in ((a, 2), (b, 1)):
                await eventually_async(lambda h=http, k=n: online(h, k), "gateways online")

            # the API: the other city's operator token is refused for reading and for commanding
            assert (await a_at_b.get("/api/v1/alerts")).status_code == 401
            assert (await b_at_a.get("/api/v1/gateways")).status_code == 401
            r = await a_at_b.post("/api/v1/alerts", json={"zones": ["center"], "signal": "air-raid",
                                                          "mode": "exercise", "duration_s": 60})
            assert r.status_code == 401

            r = await a.post("/api/v1/alerts", json={"zones": ["center"], "signal": "air-raid", "mode": "exercise",
                                                     "duration_s": 60})
            assert r.status_code == 201, r.text
            alert_id = r.json()["id"]

            async def confirmed():
                return (await a.get(f"/api/v1/alerts/{alert_id}")).json()["summary"]["confirmed"] == 2
            await eventually_async(confirmed, "odesa's alert confirmed by both its gateways")
            assert odesa_gw1.commands_for(alert_id)

            # bucha: nothing of it. No command to its gw-1, no alert, the odesa-only gateway never seen.
            assert bucha_gw1.commands == [] and bucha_gw1.rejected == []
            assert (await b.get("/api/v1/alerts")).json() == []
            assert [g["id"] for g in (await b.get("/api/v1/gateways")).json()] == ["gw-1"]
            assert (await b.get(f"/api/v1/alerts/{alert_id}")).status_code == 404
            assert sorted(g["id"] for g in (await a.get("/api/v1/gateways")).json()) == ["gw-1", "gw-odesa-only"]

            # telemetry: each hub labels what it stores with its tenant
            odesa_gw1.publish_raw("telemetry", reading("gw-1", 11.0))
            bucha_gw1.publish_raw("telemetry", reading("gw-1", 22.0))

            def stored() -> bool:
                victoria.flush()
                return {m.get("tenant") for m in exported(victoria, "sds011_pm2_5")} == {"odesa", "bucha"}
            await eventually_async(lambda: asyncio.to_thread(stored), "both cities' readings stored")
        victoria.flush()
        every = exported(victoria, '{__name__=~".+"}')
        assert len(every) >= 4 and all(m.get("tenant") in ("odesa", "bucha") for m in every), every
        # the datasource filter: with extra_label a query cannot see another tenant's series, whatever it asks
        only_bucha = exported(victoria, '{__name__=~".+"}', extra_label="tenant=bucha")
        assert only_bucha and {m["tenant"] for m in only_bucha} == {"bucha"}
        assert exported(victoria, '{tenant="odesa"}', extra_label="tenant=bucha") == []

        # each city's own audit chain, its signed head retained under its own prefix: `audit verify --broker`
        # of each hub's config checks its head against its own chain and key
        heads = {t: topics.Topics(t).hub_audit_head for t in ("odesa", "bucha")}
        await eventually_async(lambda: asyncio.to_thread(lambda: set(heads.values()) <= set(tap.topics())),
                               "both audit heads retained")
        for city in (odesa, bucha):
            r = await asyncio.to_thread(dozor, "audit", "verify", "--config", str(city.config), "--broker",
                                        mosquitto.url, "--json")
            assert r.returncode == 0, (city.tenant, r.stdout, r.stderr)
        seen = tap.topics()
        by_tenant = {t: {s for s in seen if topics.tenant_of(s) == t} for t in ("", "odesa", "bucha")}
        assert by_tenant[""] == set()  # no city wrote to the default tenant's topics
        assert topics.Topics("odesa").gw("gw-1", "cmd") in by_tenant["odesa"]
        assert topics.Topics("odesa").zone_state("center") in by_tenant["odesa"]
        assert topics.Topics("bucha").gw("gw-1", "cmd") not in by_tenant["bucha"]
        assert topics.Topics("bucha").zone_state("center") not in by_tenant["bucha"]
        assert {topics.Topics(t).hub_state for t in ("odesa", "bucha")} <= set(seen)
    finally:
        tap.close()
        for f in fakes:
            f.stop()
        odesa.stop()
        bucha.stop()


async def eventually_async(pred, what: str, limit_s: float = 20.0) -> None:
    """Await ``pred()`` until truthy; the limit only bounds a failing test."""
    deadline = asyncio.get_running_loop().time() + limit_s
    while not await pred():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.05)

