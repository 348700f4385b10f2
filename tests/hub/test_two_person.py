"""The two-person rule in the engine (real store, real keys, a variable clock): what waits, who may confirm,
what expires, break glass, and the actor in every command and audit record."""

from __future__ import annotations

import asyncio

import pytest
from lxml import etree

from contract.models import Ack, AckStage
from hub.errors import AlertStateError, NotAllowed
from hub.models import AlertRequest
from hub.residents import cap
from hub.residents.adapter import from_hub_alert
from tests.hub.engine_harness import OPERATOR, OPERATOR2, SUPERVISOR, SUPERVISOR2, keys_for, make_rig


@pytest.fixture
def rig(tmp_path):
    r = make_rig(tmp_path, keys_for(tmp_path))
    yield r
    r.engine.store.close()


def raid(mode="actual", signal="air-raid", **kw):
    return AlertRequest(zones=["north"], signal=signal, mode=mode, duration_s=300, **kw)


async def ack_all(rig, alert_id, act):
    for c in [c for c in rig.commands(alert_id) if c.act.value == act]:
        rig.engine.on_ack(Ack(gateway=c.aud, cmd=c.jti, alert=alert_id, stage=AckStage.DONE, devices=c.targets,
                              ts=rig.now[0]))
    for _ in range(50):  # let the phase tracker see that nothing is outstanding
        if not rig.engine.alerts[alert_id].tracking:
            return
        await asyncio.sleep(0.01)
    raise AssertionError("the phase never finished")


def audit(rig, alert_id):
    rig.engine._flush()
    return rig.engine.store.load_audit(alert_id)


async def test_an_operators_actual_waits_and_sends_nothing_until_a_supervisor_confirms(rig):
    e = rig.engine
    out = await e.start(raid(), OPERATOR)
    assert out.status == "pending_confirmation" and out.requested_by == OPERATOR and out.confirm_by is not None
    rig.advance(60)
    assert not rig.commands() and not rig.hooks and not e.zone_states and not e.holder
    assert [a.id for a in e.pending()] == [out.id]
    confirmed = await e.confirm(out.id, SUPERVISOR)
    assert confirmed.status == "active" and confirmed.confirmed_by == SUPERVISOR
    assert confirmed.expires_at == pytest.approx(rig.now[0] + 300)  # the duration runs from the confirmation
    cmds = rig.commands(out.id)
    assert len(cmds) == 2 and {c.by for c in cmds} == {"olena (operator), confirmed by marta (supervisor)"}
    await e.stop(out.id, OPERATOR2)
    assert rig.commands(out.id)[-1].by == "taras (operator)" and not e.pending()
    kinds = [(r["kind"], r["actor"]["name"]) for r in audit(rig, out.id)]
    assert kinds == [("request", "olena"), ("confirm", "marta"), ("stop", "taras")]


async def test_confirming_your_own_request_is_refused_even_as_a_supervisor(rig):
    out = await rig.engine.start(raid(), SUPERVISOR)
    with pytest.raises(NotAllowed, match="you requested it yourself") as err:
        await rig.engine.confirm(out.id, SUPERVISOR)
    assert err.value.status == 403 and not rig.commands()
    assert rig.engine.get(out.id).status == "pending_confirmation"
    await rig.engine.confirm(out.id, SUPERVISOR2)
    assert rig.commands(out.id)


async def test_an_operator_cannot_be_the_second_person(rig):
    out = await rig.engine.start(raid(), OPERATOR)
    with pytest.raises(NotAllowed, match="needs a supervisor"):
        await rig.engine.confirm(out.id, OPERATOR2)
    assert not rig.commands()


async def test_an_expired_request_never_sends_and_cannot_be_confirmed(rig):
    e = rig.engine
    out = await e.start(raid(), OPERATOR)
    rig.advance(e.two_person.confirm_window_s + 1)
    assert e.get(out.id).status == "expired" and not e._open
    with pytest.raises(AlertStateError, match="confirmation window ran out") as err:
        await e.confirm(out.id, SUPERVISOR)
    assert err.value.status == 409
    for op in (e.all_clear, e.cancel, e.stop):
        with pytest.raises(AlertStateError):
            await op(out.id, SUPERVISOR)
    rig.advance(3600)
    assert not rig.commands() and not rig.hooks
    assert [(r["kind"], r["actor"]["name"]) for r in audit(rig, out.id)] == [("request", "olena"),
                                                                             ("request_expired", "hub")]


async def test_confirm_at_the_window_edge_without_a_tick_is_still_refused(rig):
    out = await rig.engine.start(raid(), OPERATOR)
    rig.now[0] += rig.engine.two_person.confirm_window_s  # no tick ran: the window is the rule
    with pytest.raises(AlertStateError, match="window ran out"):
        await rig.engine.confirm(out.id, SUPERVISOR)
    assert not rig.commands()


async def test_break_glass_sends_alone_for_a_supervisor_with_a_reason_and_is_audited(rig):
    e = rig.engine
    out = await e.start(raid(break_glass=True, reason="missile launch confirmed by air force"), SUPERVISOR)
    assert out.status == "active" and out.break_glass.startswith("missile")
    assert {c.by for c in rig.commands(out.id)} == {"marta (supervisor), break glass"}
    assert e.metrics.registry.get_sample_value("dozor_hub_alert_break_glass_total",
                                               {"mode": "actual", "signal": "air-raid"}) == 1
    kinds = [r["kind"] for r in audit(rig, out.id)]
    assert kinds == ["break_glass", "start"]


@pytest.mark.parametrize(("who", "reason", "match"), [
    (OPERATOR, "a reason", "only a supervisor may break glass"),
    (SUPERVISOR, None, "needs --reason"),
])
async def test_break_glass_is_refused_without_the_role_or_a_reason(rig, who, reason, match):
    with pytest.raises(NotAllowed, match=match):
        await rig.engine.start(raid(break_glass=True, reason=reason), who)
    assert not rig.commands() and not rig.engine.alerts


async def test_break_glass_can_be_switched_off(tmp_path):
    rig = make_rig(tmp_path, keys_for(tmp_path), two_person={"break_glass": False})
    with pytest.raises(NotAllowed, match="switched off"):
        await rig.engine.start(raid(break_glass=True, reason="emergency"), SUPERVISOR)
    assert not rig.commands()


@pytest.mark.parametrize(("mode", "signal"), [("exercise", "air-raid"), ("actual", "test"),
                                              ("actual", "silent-test")])
async def test_exercises_and_tests_need_one_person_by_default(rig, mode, signal):
    out = await rig.engine.start(raid(mode, signal), OPERATOR)
    assert out.status == "active" and rig.commands(out.id)


async def test_policy_is_per_signal_from_the_config(tmp_path):
    rig = make_rig(tmp_path, keys_for(tmp_path), two_person={"actual": ["chemical"], "exercise": ["air-raid"]})
    assert (await rig.engine.start(raid("actual", "air-raid"), OPERATOR)).status == "active"
    assert (await rig.engine.start(AlertRequest(zones=["south"], signal="air-raid", mode="exercise"),
                                   OPERATOR)).status == "pending_confirmation"


async def test_all_clear_is_never_a_new_alerts_signal(rig):
    with pytest.raises(AlertStateError, match="update of the alert it ends") as err:
        await rig.engine.start(raid("exercise", "all-clear"), OPERATOR)
    assert err.value.status == 409 and not rig.engine.alerts


async def test_a_withdrawn_request_sends_nothing_and_tells_no_resident(rig):
    out = await rig.engine.start(raid(), OPERATOR)
    assert (await rig.engine.cancel(out.id, OPERATOR)).status == "withdrawn"
    with pytest.raises(AlertStateError, match="withdrawn"):
        await rig.engine.confirm(out.id, SUPERVISOR)
    assert not rig.commands() and not rig.hooks


async def test_cancel_is_refused_after_all_clear_and_after_a_completed_stop(rig):
    e = rig.engine
    a = await e.start(raid("exercise"), OPERATOR)
    await e.all_clear(a.id, OPERATOR)
    with pytest.raises(AlertStateError, match="all-clear was given"):
        await e.cancel(a.id, OPERATOR)
    b = await e.start(AlertRequest(zones=["south"], signal="air-raid", mode="exercise"), OPERATOR)
    b_first = b.id
    await e.stop(b.id, OPERATOR)
    assert (await e.cancel(b.id, OPERATOR)).status == "cancelled"  # while the stop is still under way: allowed
    c = await e.start(AlertRequest(zones=["north"], signal="test", mode="exercise"), OPERATOR)
    await e.stop(c.id, OPERATOR)
    await ack_all(rig, c.id, "stop")  # every siren confirmed silent: the stop has completed
    with pytest.raises(AlertStateError, match="stop has completed"):
        await e.cancel(c.id, OPERATOR)
    assert [h[0] for h in rig.hooks if h[1] == "cancelled"] == [b_first]


async def test_the_cap_message_names_who_ordered_it(rig):
    e = rig.engine
    out = await e.start(raid(), OPERATOR)
    await e.confirm(out.id, SUPERVISOR)
    await asyncio.sleep(0)  # the hooks run as tasks beside the commands
    states = next(h[2] for h in rig.hooks if h[0] == out.id)
    xml = cap.render(from_hub_alert(e.get(out.id), states), sender="dozor@test").decode()
    assert "<senderName>dozor — olena (operator), confirmed by marta (supervisor)</senderName>" in xml
    cap.schema().assertValid(etree.fromstring(xml.encode()))
