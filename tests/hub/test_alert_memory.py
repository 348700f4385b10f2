"""Bounded hub state for alerts: memory holds only open alerts (and finished ones for a short while), tick
walks only the open ones, finished alerts stay readable from the store until their retention ends."""

from __future__ import annotations

import asyncio

from contract.models import Ack, AckStage
from hub.models import AlertRequest
from tests.hub.engine_harness import OPERATOR, keys_for, make_rig


async def settle(rig, alert_id, act="stop", stage=AckStage.DONE):
    for c in [c for c in rig.commands(alert_id) if c.act.value == act]:
        rig.engine.on_ack(Ack(gateway=c.aud, cmd=c.jti, alert=alert_id, stage=stage, devices=c.targets,
                              ts=rig.now[0]))
    for _ in range(100):
        if not rig.engine.alerts[alert_id].tracking:
            return
        await asyncio.sleep(0.01)
    raise AssertionError("stop never completed")


async def test_finished_alerts_leave_memory_and_the_store_after_their_retention(tmp_path):
    rig = make_rig(tmp_path, keys_for(tmp_path))
    e = rig.engine
    ids = []
    for _ in range(30):
        out = await e.start(AlertRequest(zones=["south"], signal="test", mode="exercise", duration_s=60), OPERATOR)
        await e.stop(out.id, OPERATOR)
        await settle(rig, out.id)
        ids.append(out.id)
    live = await e.start(AlertRequest(zones=["north"], signal="air-raid", mode="exercise", duration_s=3600),
                         OPERATOR)
    lapsed = await e.start(AlertRequest(zones=["south"], signal="test", mode="exercise", duration_s=5), OPERATOR)
    await settle(rig, live.id, "activate", AckStage.SOUNDING)
    await settle(rig, lapsed.id, "activate", AckStage.SOUNDING)
    rig.advance(10)  # the short one expires; the stopped ones are settled
    assert set(e._open) == {live.id}  # tick looks at the one open alert, not at 31 finished ones
    rig.advance(e.cfg.finished_in_memory_s + 1)
    assert e.prune() == 31
    assert set(e.alerts) == {live.id} and set(e.holder.values()) == {live.id}
    assert len(e.list(limit=1000)) == 32 and e.get(ids[0]).status == "stopped"  # still readable, from the store
    cleared = await e.all_clear(lapsed.id, OPERATOR)  # an update of an alert that had left memory
    assert cleared.status == "all_clear" and lapsed.id in e.alerts
    assert {c.params.signal.value for c in rig.commands(lapsed.id) if c.act.value == "activate"} == {
        "test", "all-clear"}
    e._flush()
    assert e.store.load_audit(ids[0]) and e.store.load_audit(live.id)  # each alert's own log
    rig.now[0] += e.cfg.alert_retention_days * 86400 + 1
    e.prune()
    assert {a.id for a in e.list(limit=1000)} == {lapsed.id, live.id}  # the 30 stopped ones are gone for good
    assert e.store.load_audit(ids[0]) == [] and e.store.load_audit(live.id)  # and their logs with them
    assert e.store._query("SELECT count(*) FROM audit WHERE alert IS NULL") == [(0,)]  # old gateway events too
    await e.close()
    e.store.close()
