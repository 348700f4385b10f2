"""Property tests: random sequences of operator actions (start, confirm, stop, all-clear, cancel, acks, time
passing) by random people against a real engine. Every accepted change is one the pure lifecycle allows,
every refused one is one it refuses (or the two-person / overlap policy refuses), and no siren ever gets
commands from two alerts at once: each command goes to devices its alert holds at that moment, and per
device the commanding alert never switches back to an earlier one."""

from __future__ import annotations

import asyncio
import itertools

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from contract.models import Ack, AckStage
from hub.alerts.lifecycle import Facts, IllegalTransition, Op, State, allowed, next_state
from hub.errors import AlertConflict, AlertStateError, NotAllowed
from hub.models import AlertRequest
from tests.hub.engine_harness import OPERATOR, OPERATOR2, SUPERVISOR, SUPERVISOR2, keys_for, make_rig

PEOPLE = [OPERATOR, OPERATOR2, SUPERVISOR, SUPERVISOR2]
ZONE_SETS = [["north"], ["south"], ["centre"], ["north", "south"]]
SIGNALS = ["air-raid", "chemical", "radiation", "test", "silent-test", "all-clear"]

person = st.sampled_from(PEOPLE)
start = st.tuples(st.just("start"), st.sampled_from(ZONE_SETS), st.sampled_from(SIGNALS),
                  st.sampled_from(["actual", "exercise"]), person, st.booleans())
update = st.tuples(st.sampled_from(["confirm", "stop", "all_clear", "cancel"]), st.integers(0, 7), person)
ack = st.tuples(st.just("ack"), st.integers(0, 7), st.sampled_from([AckStage.SOUNDING, AckStage.DONE]))
wait = st.tuples(st.just("wait"), st.sampled_from([1.0, 20.0, 130.0, 700.0]))
actions = st.lists(st.one_of(start, update, update, ack, wait), min_size=1, max_size=25)

counter = itertools.count()


@pytest.fixture(scope="module")
def keys(tmp_path_factory):
    return keys_for(tmp_path_factory.mktemp("keys"))


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(seq=actions)
def test_no_illegal_transition_is_accepted_and_no_siren_serves_two_alerts(tmp_path, keys, seq):
    asyncio.run(_scenario(tmp_path, keys, seq))


async def _scenario(tmp_path, keys, seq) -> None:
    rig = make_rig(tmp_path, keys, db=f"p{next(counter)}.sqlite")
    e = rig.engine
    per_device: dict[tuple[str, str], list[str]] = {}
    capture = e.publish_nowait

    def guarded(topic, payload, qos, retain):
        ok = capture(topic, payload, qos, retain)
        claims = rig.sent[-1][1]
        alert = e.alerts[claims.alert]
        assert alert.status is not State.PENDING_CONFIRMATION and alert.sent
        for dev in claims.targets:
            key = (claims.aud, dev)
            assert e.holder.get(key) == claims.alert, f"{claims.alert} commanded {key} held by {e.holder.get(key)}"
            history = per_device.setdefault(key, [])
            if history and history[-1] != claims.alert:
                assert claims.alert not in history, f"{key} went back to {claims.alert}: {history}"
            history.append(claims.alert)
        return ok

    e.publish_nowait = guarded
    ids: list[str] = []
    try:
        for action in seq:
            before = {i: (a.status, Facts(sent=a.sent, phase_open=a.tracking)) for i, a in e.alerts.items()}
            kind = action[0]
            if kind == "start":
                _, zones, signal, mode, who, glass = action
                req = AlertRequest(zones=zones, signal=signal, mode=mode, duration_s=300, break_glass=glass,
                                   reason="drill of the break-glass path" if glass else None)
                n = len(rig.sent)
                try:
                    out = await e.start(req, who)
                except (AlertStateError, AlertConflict, NotAllowed):
                    assert len(rig.sent) == n  # a refused start sends nothing
                    continue
                assert signal != "all-clear"
                ids.append(out.id)
                waits = e.needs_second_person(req) and not glass
                assert out.status == ("pending_confirmation" if waits else "active")
                assert (len(rig.sent) > n) == (not waits)
            elif kind in ("confirm", "stop", "all_clear", "cancel") and ids:
                alert_id = ids[action[1] % len(ids)]
                status, facts = before[alert_id]
                n = len(rig.sent)
                if kind == "confirm" and status is State.PENDING_CONFIRMATION and \
                        rig.now[0] >= e.alerts[alert_id].confirm_by:
                    status = next_state(status, Op.EXPIRE, facts)  # the window closed before the call
                try:
                    out = await getattr(e, kind)(alert_id, action[2])
                except (AlertStateError, AlertConflict, NotAllowed) as exc:
                    if isinstance(exc, AlertStateError) and not isinstance(exc, AlertConflict):
                        with pytest.raises(IllegalTransition):
                            next_state(status, Op(kind), facts)
                    assert e.alerts[alert_id].status is status  # a refusal changes nothing
                    assert len(rig.sent) == n
                    continue
                assert Op(kind) in allowed(status, facts)
                assert out.status == next_state(status, Op(kind), facts)
            elif kind == "ack" and ids:
                alert_id = ids[action[1] % len(ids)]
                alert = e.alerts[alert_id]
                for c in [c for c in rig.commands(alert_id)]:
                    e.on_ack(Ack(gateway=c.aud, cmd=c.jti, alert=alert_id, stage=action[2], devices=c.targets,
                                 ts=rig.now[0]))
                await asyncio.sleep(0)
                assert alert.status is before[alert_id][0]  # acks never change the lifecycle state
            elif kind == "wait":
                rig.advance(action[1])
                for i, (status, facts) in before.items():
                    now = e.alerts[i].status
                    if now is not status:
                        assert now == next_state(status, Op.EXPIRE, facts)  # the clock only ever expires
            for a in e.alerts.values():  # waiting and unsent alerts never hold a siren
                if not a.sent:
                    assert a.id not in e.holder.values()
    finally:
        await e.close()
        e.store.close()
