"""Malformed payloads on every gateway channel are counted per channel and reason, never raised."""

from __future__ import annotations

import json

from hypothesis import given, settings
from hypothesis import strategies as st

from contract import topics
from contract.models import DeviceKind, Event, Reading, TelemetryBatch
from hub.metrics import HubMetrics
from hub.mqtt import MODELS, SIGNED, Dispatcher
from tests.hub.fakegw import FakeGateway
from tests.hub.helpers import api, eventually, hub_token, make_config, running_hub

CHANNELS = sorted(MODELS)
json_values = st.recursive(st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
                           lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner,
                                                                                       max_size=4), max_leaves=12)
payloads = st.one_of(st.binary(max_size=300), json_values.map(lambda v: json.dumps(v).encode()),
                     st.fixed_dictionaries({"gateway": st.just("gw-x"), "v": st.just(1)}, optional={
                         "session": st.integers(-3, 3), "state": st.text(max_size=8), "seq": st.integers(-1, 2),
                         "ts": st.floats(allow_nan=False), "stage": st.text(max_size=8), "cmd": st.text(max_size=8),
                     }).map(lambda d: json.dumps(d).encode()))


def total(metrics: HubMetrics, name: str) -> float:
    return sum(s.value for m in metrics.registry.collect() for s in m.samples if s.name == name)


@settings(max_examples=150, deadline=None)
@given(channel=st.sampled_from(CHANNELS), payload=payloads)
def test_dispatcher_never_raises_and_counts_every_drop(channel, payload):
    metrics = HubMetrics()
    d = Dispatcher(metrics)
    seen = []
    d.on(channel, seen.append)
    d.dispatch(topics.gw("gw-x", channel), payload)
    dropped = total(metrics, "dozor_hub_malformed_messages_total")
    assert dropped + len(seen) == 1  # either handled or counted as malformed: never silently lost


def test_foreign_and_bad_topics_are_counted():
    metrics = HubMetrics()
    d = Dispatcher(metrics)
    d.dispatch("dozor/v1/gw/gw-x/bogus", b"{}")
    d.dispatch("dozor/v1/gw/bad id/ack", b"{}")
    d.dispatch("elsewhere/x", b"{}")
    assert total(metrics, "dozor_hub_malformed_messages_total") == 3


def test_gateway_mismatch_and_handler_bugs_are_counted():
    metrics = HubMetrics()
    d = Dispatcher(metrics)
    d.on("heartbeat", lambda msg: 1 / 0)
    hb = b'{"gateway": "gw-y", "session": 1, "seq": 1, "ts": 1, "uptime_s": 1}'
    d.dispatch(topics.gw("gw-x", "heartbeat"), hb)  # payload claims another gateway
    d.dispatch(topics.gw("gw-y", "heartbeat"), hb)  # valid, but the handler is broken
    text = metrics.render().decode()
    assert 'dozor_hub_malformed_messages_total{channel="heartbeat",reason="gateway_mismatch"} 1.0' in text
    assert 'dozor_hub_malformed_messages_total{channel="heartbeat",reason="handler_error"} 1.0' in text


async def test_garbage_on_every_channel_over_the_broker_then_alerting_still_works(mosquitto, tmp_path):
    cfg = make_config(tmp_path, mosquitto.port)
    async with running_hub(cfg) as hub, api(cfg, hub_token(hub)) as http:
        gw = FakeGateway(mosquitto.port, "gw-c", hub.keys.verification_keys(), [("siren-1", DeviceKind.SIREN)]).start()
        await eventually(lambda: hub.registry.devices_of("gw-c"), what="birth")
        garbage = [b"", b"\xff\xfe", b"null", b"[]", b'{"v": 2}', b"x" * 300_000,
                   b'{"gateway": "gw-c", "state": "online", "session": -1, "ts": 0}']
        for channel in CHANNELS:
            for payload in garbage:
                gw.publish_raw(channel, payload)
        # telemetry is decoded as it comes; the signed channels refuse anything not sealed by gw-c's key first
        unsigned = [c for c in CHANNELS if c in SIGNED]
        await eventually(lambda: total(hub.metrics, "dozor_hub_malformed_messages_total") == len(garbage)
                         and total(hub.metrics, "dozor_hub_gateway_messages_unverified_total")
                         == len(unsigned) * len(garbage), what="every malformed payload counted")
        metrics = (await http.get("/metrics")).text
        assert 'dozor_hub_malformed_messages_total{channel="telemetry",reason="bad_json"}' in metrics
        assert 'dozor_hub_malformed_messages_total{channel="telemetry",reason="too_large"} 1.0' in metrics
        for channel in unsigned:
            assert f'dozor_hub_gateway_messages_unverified_total{{channel="{channel}",reason="unsigned"}} 5.0' in metrics
            assert f'dozor_hub_gateway_messages_unverified_total{{channel="{channel}",reason="bad_format"}} 1.0' \
                in metrics
            assert f'dozor_hub_gateway_messages_unverified_total{{channel="{channel}",reason="empty"}} 1.0' in metrics
        assert hub.registry.state_of("gw-c") == "online"  # the last good state is kept
        # valid telemetry and events (on the hub's separate ingest connection) reach the ingest handlers
        seen = []
        hub.dispatcher.on("telemetry", seen.append)
        batch = TelemetryBatch(gateway="gw-c", session=1, seq=1, readings=(
            Reading(device="pm-1", kind=DeviceKind.SDS011, ts=1.0, metrics={"pm2_5": 3.5}),))
        gw.publish_raw("telemetry", batch.to_bytes())
        gw.publish_raw("event", gw.sealer(Event(gateway="gw-c", id="e-1", kind="noise", ts=1.0), session=True))
        await eventually(lambda: seen == [batch], what="telemetry handed to ingest")
        await eventually(lambda: total(hub.metrics, "dozor_hub_ingest_messages_total") == 2, what="ingest count")
        r = await http.post("/api/v1/alerts", json={"zones": ["south"], "signal": "test", "mode": "exercise"})
        assert r.status_code == 201
        await eventually(lambda: hub.engine.alerts[r.json()["id"]].summary().confirmed == 1, what="alert after garbage")
        gw.stop()
