"""The overlap policy (hub/alerts/policy.py, table in docs/operations.md): one test per row. A real engine
with a real store and keys; every command is verified with the hub's key, as a gateway would."""

from __future__ import annotations

import pytest

from hub.errors import AlertConflict
from hub.models import AlertRequest
from tests.hub.engine_harness import OPERATOR, SUPERVISOR, SUPERVISOR2, keys_for, make_rig


@pytest.fixture
def rig(tmp_path):
    r = make_rig(tmp_path, keys_for(tmp_path), two_person={"actual": []})
    yield r
    r.engine.store.close()


def req(zones, signal, mode, **kw):
    return AlertRequest(zones=zones, signal=signal, mode=mode, duration_s=600, **kw)


def targets(rig, alert_id, act="activate"):
    return {(c.aud, t) for c in rig.commands(alert_id) if c.act.value == act for t in c.targets}


async def test_row1_actual_takes_over_an_exercise_and_the_exercise_never_commands_those_sirens_again(rig):
    e = rig.engine
    drill = await e.start(req(["north"], "air-raid", "exercise"), OPERATOR)
    real = await e.start(req(["north"], "test", "actual"), OPERATOR)  # even the lowest Actual signal
    assert real.supersedes == [drill.id] and e.get(drill.id).superseded_by == [real.id]
    assert targets(rig, real.id) == targets(rig, drill.id) and len(targets(rig, real.id)) == 4
    before = len(rig.commands(drill.id))
    await e.stop(drill.id, OPERATOR)  # its stop must not silence the Actual
    await e.cancel(drill.id, OPERATOR)
    assert len(rig.commands(drill.id)) == before
    assert e.get(drill.id).summary.superseded == 4 and e.get(drill.id).summary.total == 0


async def test_row2_exercise_is_refused_where_an_actual_holds_the_sirens_naming_it(rig):
    e = rig.engine
    real = await e.start(req(["north"], "test", "actual"), OPERATOR)
    with pytest.raises(AlertConflict) as err:
        await e.start(req(["north"], "radiation", "exercise"), OPERATOR)
    assert real.id in str(err.value) and "actual test" in str(err.value) and err.value.status == 409
    assert {c.alert for c in rig.commands()} == {real.id}


async def test_row3_higher_actual_takes_over_a_lower_actual(rig):
    e = rig.engine
    raid = await e.start(req(["north"], "air-raid", "actual"), OPERATOR)
    chem = await e.start(req(["north"], "chemical", "actual"), OPERATOR)
    assert chem.supersedes == [raid.id] and e.holder == {k: chem.id for k in e.alerts[raid.id].tracks}
    await e.all_clear(raid.id, OPERATOR)  # the air raid's all-clear must not tell chemical sirens to stop
    assert rig.commands(raid.id)[-1].params.signal.value == "air-raid"  # nothing new was sent for it


@pytest.mark.parametrize("signal", ["air-raid", "test", "silent-test"])
async def test_row4_equal_or_lower_actual_is_refused_and_told_which_alert_holds_them(rig, signal):
    e = rig.engine
    raid = await e.start(req(["north"], "air-raid", "actual"), OPERATOR)
    with pytest.raises(AlertConflict) as err:
        await e.start(req(["north"], signal, "actual"), OPERATOR)
    assert raid.id in str(err.value) and "north" in str(err.value)
    assert {c.alert for c in rig.commands()} == {raid.id} and len(e.alerts) == 1


async def test_row5_an_alert_in_its_all_clear_or_stop_phase_yields_its_sirens(rig):
    e = rig.engine
    first = await e.start(req(["north"], "air-raid", "actual"), OPERATOR)
    await e.all_clear(first.id, OPERATOR)
    second = await e.start(req(["north"], "air-raid", "actual"), OPERATOR)  # a new attack during the all-clear
    assert second.supersedes == [first.id]
    stopped = await e.start(req(["south"], "test", "exercise"), OPERATOR)
    await e.stop(stopped.id, OPERATOR)
    drill = await e.start(req(["south"], "test", "exercise"), OPERATOR)
    assert drill.supersedes == [stopped.id]


async def test_row6_alerts_on_different_sirens_run_side_by_side(rig):
    e = rig.engine
    a = await e.start(req(["north"], "air-raid", "actual"), OPERATOR)
    b = await e.start(req(["south"], "air-raid", "actual"), OPERATOR)
    assert not a.supersedes and not b.supersedes
    assert targets(rig, a.id).isdisjoint(targets(rig, b.id)) and len(targets(rig, b.id)) == 2


async def test_row7_partial_overlap_moves_only_the_shared_sirens(rig):
    e = rig.engine
    north = await e.start(req(["north"], "test", "actual"), OPERATOR)  # gw-a, gw-b
    centre = await e.start(req(["centre"], "air-raid", "actual"), OPERATOR)  # gw-b, gw-c
    kept = {k for k, t in e.alerts[north.id].tracks.items() if t.superseded_by is None}
    assert {gw for gw, _ in kept} == {"gw-a"} and centre.supersedes == [north.id]
    await e.stop(north.id, OPERATOR)
    assert {c.aud for c in rig.commands(north.id) if c.act.value == "stop"} == {"gw-a"}


async def test_row8_a_pending_request_holds_nothing_and_is_checked_again_when_confirmed(tmp_path):
    rig = make_rig(tmp_path, keys_for(tmp_path))  # default policy: an Actual air raid waits for a second person
    e = rig.engine
    one = await e.start(req(["north"], "air-raid", "actual"), OPERATOR)
    two = await e.start(req(["north"], "air-raid", "actual"), OPERATOR)  # both may wait
    assert one.status == two.status == "pending_confirmation" and not e.holder and not rig.commands()
    await e.confirm(one.id, SUPERVISOR)
    preview = e.preview(two.id)
    assert preview["conflicts"] and one.id in preview["conflicts"][0]
    with pytest.raises(AlertConflict, match=one.id):
        await e.confirm(two.id, SUPERVISOR2)
    assert e.get(two.id).status == "pending_confirmation" and {c.alert for c in rig.commands()} == {one.id}
    rig.engine.store.close()
