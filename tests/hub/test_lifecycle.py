"""The pure lifecycle (hub/alerts/lifecycle.py): the table of allowed transitions and the sentences of its
refusals. No engine, no I/O."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from hub.alerts.lifecycle import TERMINAL, Facts, IllegalTransition, Op, State, allowed, next_state

S, O = State, Op  # noqa: E741 - short names keep the tables readable


@pytest.mark.parametrize(("state", "op", "facts", "to"), [
    (S.PENDING_CONFIRMATION, O.CONFIRM, Facts(sent=False), S.ACTIVE),
    (S.PENDING_CONFIRMATION, O.EXPIRE, Facts(sent=False), S.EXPIRED),
    (S.PENDING_CONFIRMATION, O.CANCEL, Facts(sent=False), S.WITHDRAWN),
    (S.ACTIVE, O.STOP, Facts(), S.STOPPED),
    (S.ACTIVE, O.ALL_CLEAR, Facts(), S.ALL_CLEAR),
    (S.ACTIVE, O.CANCEL, Facts(), S.CANCELLED),
    (S.ACTIVE, O.EXPIRE, Facts(), S.EXPIRED),
    (S.STOPPED, O.CANCEL, Facts(phase_open=True), S.CANCELLED),
    (S.STOPPED, O.ALL_CLEAR, Facts(), S.ALL_CLEAR),
    (S.EXPIRED, O.ALL_CLEAR, Facts(sent=True), S.ALL_CLEAR),
    (S.ALL_CLEAR, O.STOP, Facts(), S.STOPPED),
])
def test_allowed(state, op, facts, to):
    assert next_state(state, op, facts) is to


@pytest.mark.parametrize(("state", "op", "facts", "sentence"), [
    (S.ALL_CLEAR, O.CANCEL, Facts(), "the all-clear was given, so it ended properly"),
    (S.STOPPED, O.CANCEL, Facts(phase_open=False), "its stop has completed"),
    (S.EXPIRED, O.CONFIRM, Facts(sent=False), "confirmation window ran out, nothing was sent"),
    (S.EXPIRED, O.ALL_CLEAR, Facts(sent=False), "nothing was sent, so there is nothing to clear"),
    (S.EXPIRED, O.CANCEL, Facts(sent=False), "nothing was sent, so there is nothing to cancel"),
    (S.PENDING_CONFIRMATION, O.STOP, Facts(sent=False), "waiting for a second operator"),
    (S.ACTIVE, O.CONFIRM, Facts(), "not waiting for confirmation"),
    (S.WITHDRAWN, O.CONFIRM, Facts(sent=False), "withdrawn"),
    (S.CANCELLED, O.CANCEL, Facts(), "already cancelled"),
])
def test_refused_with_a_sentence(state, op, facts, sentence):
    with pytest.raises(IllegalTransition) as err:
        next_state(state, op, facts)
    assert sentence in str(err.value) and str(err.value).startswith(f"cannot {op.value.replace('_', '-')}")


@given(st.sampled_from(list(State)), st.lists(st.tuples(st.sampled_from(list(Op)), st.booleans()), max_size=30))
def test_random_walks_never_leave_a_terminal_state_and_never_confirm_twice(state, walk):
    confirmed = state is not S.PENDING_CONFIRMATION
    for op, phase_open in walk:
        facts = Facts(sent=confirmed, phase_open=phase_open)
        if op not in allowed(state, facts):
            with pytest.raises(IllegalTransition):
                next_state(state, op, facts)
            continue
        assert state not in TERMINAL or (state is S.CANCELLED and op is O.STOP and phase_open)  # a stop lands
        if op is O.CONFIRM:
            assert not confirmed
            confirmed = True
        state = next_state(state, op, facts)
        assert state is not S.PENDING_CONFIRMATION  # nothing ever goes back to waiting


def test_a_stop_on_an_expired_request_says_nothing_was_sent():
    with pytest.raises(IllegalTransition, match="nothing was sent, so nothing is sounding"):
        next_state(State.EXPIRED, Op.STOP, Facts(sent=False))
    with pytest.raises(IllegalTransition, match="stop on their own"):
        next_state(State.EXPIRED, Op.STOP, Facts(sent=True))
