"""The alert lifecycle as data: states, operator/clock operations, allowed transitions. Pure: no I/O, no clock.

    pending_confirmation --confirm--> active --stop--> stopped --all_clear--> all_clear --stop--> stopped
            |  \\--cancel--> withdrawn      |  \\--all_clear--> all_clear
            \\--expire--> expired (unsent)  |--cancel--> cancelled
                                           \\--expire--> expired --all_clear / cancel--> ...

``next_state(state, op, facts)`` returns the new state or raises ``IllegalTransition`` with a sentence an
operator can act on (the API answers it as HTTP 409). Two facts the state alone cannot say are passed in:
``sent`` (the alert's commands ever left: False for a request that expired or was withdrawn unconfirmed) and
``phase_open`` (the current phase is still being tracked: a stop that has not completed yet). The engine
(hub/alerts/engine.py) asks this module before every change; dispatch, tracking, zone states and
persistence live in the sibling modules.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class State(StrEnum):
    PENDING_CONFIRMATION = "pending_confirmation"  # an Actual waiting for a second person; nothing sent
    ACTIVE = "active"
    STOPPED = "stopped"
    ALL_CLEAR = "all_clear"
    CANCELLED = "cancelled"
    EXPIRED = "expired"  # its duration (or, unsent, its confirmation window) ran out
    WITHDRAWN = "withdrawn"  # a request cancelled before anyone confirmed it; nothing was sent


class Op(StrEnum):
    CONFIRM = "confirm"
    STOP = "stop"
    ALL_CLEAR = "all_clear"
    CANCEL = "cancel"
    EXPIRE = "expire"  # the clock: a request's window or an active alert's duration ran out


class Phase(StrEnum):
    """What the sirens are told in the current phase (each phase is tracked per device)."""

    ACTIVATE = "activate"
    ALL_CLEAR = "all_clear"
    STOP = "stop"


@dataclass(frozen=True, slots=True)
class Facts:
    sent: bool = True  # commands for this alert have ever left the hub
    phase_open: bool = False  # the current phase is still tracked (e.g. a stop not yet confirmed everywhere)


@dataclass(frozen=True, slots=True)
class Rule:
    to: State
    guard: str | None = None  # a Facts attribute that must be true
    refusal: str = ""  # the sentence when the guard fails


TRANSITIONS: dict[tuple[State, Op], Rule] = {
    (State.PENDING_CONFIRMATION, Op.CONFIRM): Rule(State.ACTIVE),
    (State.PENDING_CONFIRMATION, Op.CANCEL): Rule(State.WITHDRAWN),
    (State.PENDING_CONFIRMATION, Op.EXPIRE): Rule(State.EXPIRED),
    (State.ACTIVE, Op.STOP): Rule(State.STOPPED),
    (State.ACTIVE, Op.ALL_CLEAR): Rule(State.ALL_CLEAR),
    (State.ACTIVE, Op.CANCEL): Rule(State.CANCELLED),
    (State.ACTIVE, Op.EXPIRE): Rule(State.EXPIRED),
    (State.ALL_CLEAR, Op.STOP): Rule(State.STOPPED),
    # A stop is always accepted while a target of the current stop is not yet confirmed silent (invariant 10)
    (State.STOPPED, Op.STOP): Rule(State.STOPPED, "phase_open", "it is already stopped and every siren confirmed "
                                   "silent"),
    (State.CANCELLED, Op.STOP): Rule(State.CANCELLED, "phase_open", "it was cancelled and every siren confirmed "
                                     "silent"),
    (State.STOPPED, Op.ALL_CLEAR): Rule(State.ALL_CLEAR),
    (State.STOPPED, Op.CANCEL): Rule(State.CANCELLED, "phase_open",
                                     "its stop has completed, so it ended properly; a cancel would tell residents "
                                     "it was sent in error"),
    (State.EXPIRED, Op.ALL_CLEAR): Rule(State.ALL_CLEAR, "sent",
                                        "it expired before a second operator confirmed it; nothing was sent, so "
                                        "there is nothing to clear"),
    (State.EXPIRED, Op.CANCEL): Rule(State.CANCELLED, "sent",
                                     "it expired before a second operator confirmed it; nothing was sent, so "
                                     "there is nothing to cancel"),
}

# Refusals without a rule: one sentence per (state, op), else per state, else a generic one.
_WHY: dict[tuple[State, Op], str] = {
    (State.PENDING_CONFIRMATION, Op.STOP): "it is waiting for a second operator and nothing has sounded; "
                                          "cancel the request instead",
    (State.PENDING_CONFIRMATION, Op.ALL_CLEAR): "it is waiting for a second operator and nothing has sounded; "
                                               "cancel the request instead",
    (State.ALL_CLEAR, Op.CANCEL): "the all-clear was given, so it ended properly; a cancel would tell residents "
                                  "it was sent in error",
    (State.ALL_CLEAR, Op.ALL_CLEAR): "the all-clear was already given",
    (State.CANCELLED, Op.CANCEL): "it is already cancelled",
    (State.EXPIRED, Op.CONFIRM): "its confirmation window ran out, nothing was sent; start a new request",
    (State.EXPIRED, Op.STOP): "it already ended (expired); the sirens stop on their own at the end of the duration",
}
# Where what was sent changes the sentence: an expired request that was never confirmed sounded nothing.
_WHY_UNSENT: dict[tuple[State, Op], str] = {
    (State.EXPIRED, Op.STOP): "it expired before a second operator confirmed it; nothing was sent, so nothing "
                              "is sounding",
}
_WHY_CONFIRM = "it is not waiting for confirmation"
_WHY_STATE: dict[State, str] = {
    State.CANCELLED: "it was cancelled",
    State.WITHDRAWN: "the request was withdrawn before anyone confirmed it; nothing was sent",
}

LIVE = frozenset({State.ACTIVE, State.ALL_CLEAR})  # states in which the alert's sirens may be sounding
WAITING = frozenset({State.PENDING_CONFIRMATION})
TERMINAL = frozenset({State.CANCELLED, State.WITHDRAWN})  # (a cancelled alert still takes a repeated stop)


class IllegalTransition(Exception):  # noqa: N818 - a refusal, not a crash
    """The operation is not allowed in this state; ``str(exc)`` is the sentence for the operator."""

    def __init__(self, state: State, op: Op, why: str) -> None:
        self.state, self.op, self.why = state, op, why
        super().__init__(f"cannot {op.value.replace('_', '-')}: {why}")


def next_state(state: State | str, op: Op | str, facts: Facts = Facts()) -> State:
    """The state after ``op``, or IllegalTransition with the reason."""
    state, op = State(state), Op(op)
    rule = TRANSITIONS.get((state, op))
    if rule is None:
        why = (None if facts.sent else _WHY_UNSENT.get((state, op))) or _WHY.get((state, op)) or _WHY_STATE.get(state) or (
            _WHY_CONFIRM if op is Op.CONFIRM else f"it is {state.value.replace('_', ' ')}")
        raise IllegalTransition(state, op, why)
    if rule.guard is not None and not getattr(facts, rule.guard):
        raise IllegalTransition(state, op, rule.refusal)
    return rule.to


def allowed(state: State | str, facts: Facts = Facts()) -> list[Op]:
    """The operations ``state`` accepts with these facts (for help texts and property tests)."""
    out = []
    for op in Op:
        try:
            next_state(state, op, facts)
        except IllegalTransition:
            continue
        out.append(op)
    return out


def initial_state(needs_confirmation: bool) -> State:
    """A new alert waits for a second person when the two-person policy says so; otherwise it starts active."""
    return State.PENDING_CONFIRMATION if needs_confirmation else State.ACTIVE
