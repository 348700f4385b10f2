"""End to end: TelemetryBatch over real Mosquitto (QoS 1) -> in-process hub -> real VictoriaMetrics / InfluxDB 1.6,
with exact counts: store outages are spooled, a hub restart loses nothing (persistent ingest session),
duplicates are written once, malformed batches are counted."""

from __future__ import annotations

import asyncio

import pytest

from contract import topics
from contract.models import (
    Ack,
    AckStage,
    DeviceState,
    DeviceStatus,
    GatewayState,
    Heartbeat,
    Mode,
    OutboxStats,
)
from hub.app import Hub
from tests.gwident import Sealer, enroll
from tests.hub.helpers import api, eventually, hub_token
from tests.hub.helpers import running_hub as hub_running
from tests.ingest.helpers import NOISE, Publisher, influx_count, noise_batch, store_config, vm_samples

pytestmark = pytest.mark.integration


async def spooled_out(hub: Hub, lines: int) -> None:
    """Wait until the hub's spool has written ``lines`` lines to the store and holds nothing."""
    spool = hub.ingest.spool
    await eventually(lambda: spool.counters["written_lines"] >= lines and spool.pending_lines == 0
                     and hub.ingest.buffered_lines == 0, 30, f"{lines} lines written")


async def test_batches_reach_victoriametrics_exactly_once_with_zone_tags(mosquitto, victoria, tmp_path):
    cfg = store_config(tmp_path, mosquitto.port, victoria)
    pub = Publisher(mosquitto.port)
    try:
        async with hub_running(cfg) as hub:
            stats = hub.ingest.stats()
            assert stats["ingest.last_batch_ms"] == 0 and stats["spool.last_write_ms"] == 0  # no telemetry yet
            batches = [noise_batch(gw, seq, 25) for gw in ("gw-n1", "gw-s1") for seq in range(20)]
            await asyncio.to_thread(pub.batches, batches)
            await asyncio.to_thread(pub.batches, batches[:7])  # at-least-once redelivery: same (gw, session, seq)
            bad = [(topics.gw("gw-n1", "telemetry"), b"{not json"),
                   (topics.gw("gw-n1", "telemetry"), noise_batch("gw-s1", 99, 1).to_bytes()),  # gateway mismatch
                   (topics.gw("gw-n1", "telemetry"), b'{"v":1,"gateway":"gw-n1","session":1,"seq":5}')]
            await asyncio.to_thread(pub.publish_all, bad)
            await eventually(lambda: hub.pipeline.counters["batches"] == 40
                             and hub.pipeline.counters["duplicate_batches"] == 7, what="batches and duplicates")
            await spooled_out(hub, 40 * 25)
            assert hub.pipeline.counters["readings"] == 40 * 25
            malformed = {k[1]: v for k, v in _samples(hub, "dozor_hub_malformed_messages_total").items()
                         if k[0] == "telemetry"}
            assert malformed == {"bad_json": 1, "gateway_mismatch": 1, "invalid": 1}
            assert hub.ingest.spool.counters["dead_lines"] == 0
            async with api(cfg, hub_token(hub)) as http:  # /metrics needs a role (or the metrics token)
                text = (await http.get("/metrics")).text
            assert 'dozor_hub_telemetry_ingest_total{name="ingest.duplicate_batches"} 7.0' in text
            assert 'dozor_hub_telemetry_ingest_total{name="spool.written_lines"} 1000.0' in text
            assert 'dozor_hub_telemetry_queue{name="store_up"} 1.0' in text
            # the path's freshness (bench.ingest stops its clock at the last write): both set by the traffic and
            # exported as they are (the path is idle now, so /metrics and stats() read the same values)
            stats = hub.ingest.stats()
            for name in ("ingest.last_batch_ms", "spool.last_write_ms"):
                assert stats[name] > 0
                exported = [float(line.rsplit(" ", 1)[1]) for line in text.splitlines()
                            if line.startswith(f'dozor_hub_telemetry_queue{{name="{name}"}} ')]
                assert exported == [stats[name]]
            # a batch that leaves no lines (a redelivered duplicate) does not move the last batch's time
            await asyncio.to_thread(pub.batches, batches[:3])
            await eventually(lambda: hub.pipeline.counters["duplicate_batches"] == 10, what="3 more duplicates")
            assert hub.ingest.stats()["ingest.last_batch_ms"] == stats["ingest.last_batch_ms"]
    finally:
        pub.close()
    await asyncio.to_thread(victoria.flush)
    for gw, zone in (("gw-n1", "north"), ("gw-s1", "south")):
        for metric in NOISE:
            series = await asyncio.to_thread(victoria.export, f'noise_node_{metric}{{gateway="{gw}"}}')
            assert [s["metric"]["zone"] for s in series] == [zone]
            assert sum(len(s["values"]) for s in series) == 20 * 25
    assert await asyncio.to_thread(vm_samples, victoria, '{__name__=~"noise_node_.*",gateway=~"gw-n1|gw-s1"}') == \
        40 * 25 * len(NOISE)


def _samples(hub: Hub, name: str) -> dict[tuple[str, ...], float]:
    out = {}
    for metric in hub.metrics.registry.collect():
        for s in metric.samples:
            if s.name == name:
                out[tuple(s.labels.values())] = s.value
    return out


async def test_store_outage_is_spooled_then_written_exactly(mosquitto, victoria, tmp_path):
    cfg = store_config(tmp_path, mosquitto.port, victoria)
    pub = Publisher(mosquitto.port)
    try:
        async with hub_running(cfg) as hub:
            await asyncio.to_thread(pub.batches, [noise_batch("gw-n2", seq, 10) for seq in range(5)])
            await spooled_out(hub, 50)
            await asyncio.to_thread(victoria.stop)
            try:
                await asyncio.to_thread(pub.batches, [noise_batch("gw-n2", seq, 10) for seq in range(5, 30)])
                await eventually(lambda: hub.pipeline.counters["batches"] == 30, what="all batches received")
                await eventually(lambda: hub.ingest.spool.pending_lines == 250, what="250 lines spooled")
                await eventually(lambda: hub.ingest.spool.counters["write_failures"] >= 2, what="retries")
                assert hub.ingest.spool.counters["written_lines"] == 50
            finally:
                await asyncio.to_thread(victoria.start)
            await spooled_out(hub, 300)
    finally:
        pub.close()
    assert await asyncio.to_thread(vm_samples, victoria, '{__name__=~"noise_node_.*",gateway="gw-n2"}') == \
        300 * len(NOISE)


async def test_hub_restart_mid_stream_loses_nothing(mosquitto, influx1, tmp_path):
    """Batches published while the hub is down wait at the broker (persistent ingest session, QoS 1) and
    are written after it comes back: exactly once each."""
    cfg = store_config(tmp_path, mosquitto.port, influx1)
    assert cfg.mqtt.persistent_session
    pub = Publisher(mosquitto.port)
    try:
        async with hub_running(cfg) as hub:
            await asyncio.to_thread(pub.batches, [noise_batch("gw-s1", seq, 20) for seq in range(10)])
            await eventually(lambda: hub.pipeline.counters["batches"] == 10, what="first half")
        # the hub is down (clean shutdown flushed its buffer into the spool and the store)
        await asyncio.to_thread(pub.batches, [noise_batch("gw-s1", seq, 20) for seq in range(10, 25)])
        async with hub_running(cfg) as hub2:
            await eventually(lambda: hub2.pipeline.counters["batches"] == 15, what="queued batches after restart")
            await asyncio.to_thread(pub.batches, [noise_batch("gw-s1", seq, 20) for seq in range(25, 30)])
            await eventually(lambda: hub2.pipeline.counters["batches"] == 20, what="live batches after restart")
            await spooled_out(hub2, 20 * 20)
            assert hub2.pipeline.counters["duplicate_batches"] == 0
    finally:
        pub.close()
    count = await asyncio.to_thread(influx_count, influx1,
                                    "SELECT count(laeq) FROM noise_node WHERE gateway = 'gw-s1'")
    assert count == 30 * 20


async def test_fleet_and_alert_points_through_the_spool(mosquitto, influx1, tmp_path):
    cfg = store_config(tmp_path, mosquitto.port, influx1)
    pub = Publisher(mosquitto.port)
    ts = 1_767_300_000.0
    try:
        async with hub_running(cfg) as hub:
            birth = GatewayState(gateway="gw-n2", state="online", session=3, ts=ts, heartbeat_s=5)
            hb = Heartbeat(gateway="gw-n2", session=3, seq=1, ts=ts + 1, uptime_s=1,
                           devices=(DeviceStatus(id="siren-1", state=DeviceState.IDLE),
                                    DeviceStatus(id="siren-2", state=DeviceState.FAULT, faults=("amp",))),
                           outbox=OutboxStats(depth=12, bytes=3400, oldest_age_s=7.5))
            stale = GatewayState(gateway="gw-n2", state="offline", session=2, ts=ts + 2)  # an old last-will
            ack = Ack(gateway="gw-n2", cmd="jti-x", alert="A-x", stage=AckStage.REJECTED, reason="expired",
                      ts=ts + 3, mode=Mode.EXERCISE)
            enroll("gw-n2")  # signed by its enrolled identity key (hub.gwtrust), as a gateway does
            seal, old = Sealer("gw-n2", session=3), Sealer("gw-n2", session=2)
            await asyncio.to_thread(pub.publish_all, [
                (topics.gw("gw-n2", "state"), seal(birth)), (topics.gw("gw-n2", "heartbeat"), seal(hb)),
                (topics.gw("gw-n2", "state"), old.will(stale)), (topics.gw("gw-n2", "ack"), seal(ack, session=True))])
            await eventually(lambda: hub.registry.gateways.get("gw-n2") is not None
                             and hub.registry.gateways["gw-n2"].outbox is not None, what="heartbeat")
            await spooled_out(hub, 5)  # birth, heartbeat, 2 device states, ack
            async with api(cfg, hub_token(hub)) as http:
                gw = next(g for g in (await http.get("/api/v1/gateways")).json() if g["id"] == "gw-n2")
            assert gw["outbox"]["depth"] == 12 and gw["outbox"]["oldest_age_s"] == 7.5 and gw["zone"] is None
    finally:
        pub.close()
    q = influx1.query
    state = q("SELECT online, session FROM gateway_state WHERE gateway = 'gw-n2' GROUP BY zone, cause")
    rows = {(s["tags"]["zone"], s["tags"]["cause"]): [r[1:] for r in s["values"]]
            for s in state["results"][0]["series"]}
    assert rows == {("north", "birth"): [[1.0, 3.0]]}  # the stale last-will of session 2 is not a point
    hbs = q("SELECT outbox_depth, outbox_oldest_age_s, devices_not_ok FROM heartbeat "
            "WHERE gateway = 'gw-n2' GROUP BY zone")["results"][0]["series"]
    assert [(s["tags"]["zone"], s["values"][0][1:]) for s in hbs] == [("north", [12.0, 7.5, 1.0])]
    dev = q("SELECT faults FROM device_status WHERE gateway = 'gw-n2' GROUP BY device, state")["results"][0]["series"]
    assert sorted((s["tags"]["device"], s["tags"]["state"]) for s in dev) == [("siren-1", "idle"),
                                                                              ("siren-2", "fault")]
    acks = q("SELECT acks FROM alert_ack WHERE gateway = 'gw-n2' GROUP BY stage, reason, mode")["results"][0]["series"]
    assert [(s["tags"]["stage"], s["tags"]["reason"], s["tags"]["mode"]) for s in acks] == [
        ("rejected", "expired", "exercise")]


async def test_alert_timeline_and_heartbeat_timeout_points(mosquitto, influx1, tmp_path):
    """Zone states and acks of a real alert, and the hub's own heartbeat-timeout verdict, become points."""
    from contract.models import DeviceKind
    from tests.hub.fakegw import FakeGateway

    cfg = store_config(tmp_path, mosquitto.port, influx1)
    gw = None
    try:
        async with hub_running(cfg) as hub, api(cfg, hub_token(hub)) as http:
            gw = FakeGateway(mosquitto.port, "gw-s1", hub.keys.verification_keys(), [("siren-7", DeviceKind.SIREN)],
                             heartbeat_s=0.2).start()
            await eventually(lambda: hub.registry.devices_of("gw-s1"), what="birth")
            r = await http.post("/api/v1/alerts", json={"zones": ["south"], "signal": "test", "mode": "exercise",
                                                        "duration_s": 30})
            assert r.status_code == 201
            alert = r.json()["id"]
            await eventually(lambda: hub.engine.alerts[alert].summary().confirmed == 1, what="sounding")
            # connected and silent (no heartbeats): the hub itself calls the gateway offline after 2 x 0.2 s. The
            # gateway stays connected until the hub has stopped. It used to disconnect first; even with
            # ``FakeGateway.stop`` waiting for its DISCONNECT, CI once saw the last-will instead of this verdict
            # (2026-12-08; not reproduced here: a close with unread bytes resets the connection, one suspect)
            await eventually(lambda: hub.registry.state_of("gw-s1") == "offline", what="offline")
            await eventually(lambda: hub.ingest.spool.counters["written_lines"] >= 5 and hub.ingest.buffered_lines == 0
                             and hub.ingest.spool.pending_lines == 0, what="points written")
            reason = hub.registry.gateways["gw-s1"].reason
    finally:
        if gw is not None:
            gw.stop()
    q = influx1.query
    zones = q(f"SELECT level FROM zone_state WHERE alert = '{alert}' GROUP BY zone, status, mode")["results"][0]
    assert [(s["tags"]["zone"], s["tags"]["status"], s["tags"]["mode"], s["values"][0][1])
            for s in zones["series"]] == [("south", "active", "exercise", 3.0)]
    acks = q(f"SELECT devices FROM alert_ack WHERE alert = '{alert}' GROUP BY gateway, stage")["results"][0]["series"]
    assert {(s["tags"]["gateway"], s["tags"]["stage"]) for s in acks} >= {("gw-s1", "accepted"), ("gw-s1", "sounding")}
    states = q("SELECT online FROM gateway_state WHERE gateway = 'gw-s1' GROUP BY cause, zone")["results"][0]["series"]
    causes = {s["tags"]["cause"]: [row[1] for row in s["values"]] for s in states}
    assert all(s["tags"]["zone"] == "south" for s in states)
    assert causes["birth"] == [1.0]
    assert reason == "heartbeat timeout"  # no last-will: the hub's own verdict
    assert causes == {"birth": [1.0], "heartbeat_timeout": [0.0]}
