"""The lite gateway's command side (simulators/city_lite_sirens.py) without a broker: the contract's checks and the
real gateway's ack sequence (docs/protocol.md), asserted as counts and order."""

from __future__ import annotations

import asyncio
import itertools
import time
from collections import Counter

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from contract.command import CommandClaims, CommandParams, key_id, sign_command
from contract.models import Ack, Action, DeviceState, Mode, Signal
from simulators.city_lite_sirens import LiteSirens

HUB = Ed25519PrivateKey.generate()
KID = key_id(HUB.public_key())
_jti = itertools.count(1)


def command(act: Action = Action.ACTIVATE, *, aud: str = "gw-1", alert: str = "a1", signal: Signal = Signal.AIR_RAID,
            targets: tuple[str, ...] = ("siren-1", "siren-2"), duration_s: int = 60, iat: int | None = None,
            key: Ed25519PrivateKey = HUB) -> bytes:
    now = int(time.time()) if iat is None else iat
    params = CommandParams(signal=signal, duration_s=duration_s) if act is Action.ACTIVATE else CommandParams()
    claims = CommandClaims(aud=aud, jti=f"jti-{next(_jti):06d}", iat=now, exp=now + 120, act=act, targets=targets,
                           params=params, alert=alert, mode=Mode.EXERCISE)
    return sign_command(claims, key, kid=KID).encode()


def sirens(**kw) -> tuple[LiteSirens, list[Ack], Counter]:
    acks: list[Ack] = []
    counters: Counter = Counter()
    return LiteSirens("gw-1", ["siren-1", "siren-2"], keys={KID: HUB.public_key()}, emit=acks.append,
                      counters=counters, **kw), acks, counters


async def turn() -> None:
    for _ in range(3):
        await asyncio.sleep(0)


def stages(acks: list[Ack]) -> list[tuple[str, tuple[str, ...], str | None]]:
    return [(a.stage.value, a.devices, a.detail) for a in acks]


async def test_activate_then_retry_joins_then_stop():
    s, acks, c = sirens()
    s.handle(command(alert="a1"))
    await turn()
    assert stages(acks) == [("accepted", ("siren-1", "siren-2"), None), ("sounding", ("siren-1", "siren-2"), None)]
    assert s.sounding == 2 and {d.state for d in s.statuses()} == {DeviceState.SOUNDING}
    s.handle(command(alert="a1"))  # the hub's retry (new jti, same alert): acked again, not restarted
    await turn()
    assert stages(acks)[2:] == [("accepted", ("siren-1", "siren-2"), None), ("sounding", ("siren-1", "siren-2"), None)]
    assert c["device_activated"] == 2 and c["cmd_retry_joined"] == 2
    s.handle(command(Action.STOP, alert="a1"))
    await turn()
    done = [a for a in acks[4:] if a.stage.value == "done"]
    assert acks[4].stage.value == "accepted" and len(done) == 3  # both activation commands and the stop itself
    assert s.sounding == 0 and c["cmd_rejected"] == 0


async def test_stop_and_all_clear_are_scoped_to_their_alert():
    s, acks, c = sirens()
    s.handle(command(alert="a1", targets=("siren-1",)))
    await turn()
    s.handle(command(Action.STOP, alert="old", targets=("siren-1", "siren-2")))
    await turn()
    assert ("done", ("siren-1",), "not sounding for this alert") in stages(acks)
    assert s.runs["siren-1"].alert == "a1" and c["stop_other_alert"] == 1
    s.handle(command(alert="a2", signal=Signal.ALL_CLEAR, targets=("siren-1",)))
    await turn()
    assert stages(acks)[-1] == ("done", ("siren-1",), "another alert holds the device")
    assert s.runs["siren-1"].alert == "a1" and s.sounding == 1


async def test_the_local_timer_ends_an_activation_and_spinup_comes_first():
    s, acks, c = sirens(spinup_s=0.05)
    finished = asyncio.Event()
    s.emit = lambda a: (acks.append(a), a.stage.value == "done" and finished.set())
    s.handle(command(duration_s=1, targets=("siren-1",)))
    assert [d.state for d in s.statuses()] == [DeviceState.SPINNING_UP, DeviceState.IDLE]
    await asyncio.wait_for(finished.wait(), 60)  # bounds a failing test only
    assert [a.stage.value for a in acks] == ["accepted", "sounding", "done"]
    assert c["local_stop_timer"] == 1 and s.sounding == 0


@pytest.mark.parametrize(("payload", "reason"), [
    (lambda: command(aud="gw-2"), "wrong_audience"),
    (lambda: command(key=Ed25519PrivateKey.generate()), "bad_signature"),
    (lambda: command(targets=("siren-9",)), "unknown_target"),
    (lambda: command(iat=int(time.time()) - 30), "before_floor"),
    (lambda: b"not a token", "malformed"),
])
async def test_refusals_are_counted_and_acked_and_drive_nothing(payload, reason):
    s, acks, c = sirens(floor=int(time.time()) - 10)
    assert s.handle(payload()) is None
    await turn()
    assert [(a.stage.value, a.reason) for a in acks] == [("rejected", reason)]
    assert c["cmd_rejected"] == 1 and c[f"cmd_rejected_{reason}"] == 1 and s.sounding == 0 and not s.runs


async def test_replay_and_commands_from_before_a_restart_are_refused_but_a_stop_is_not():
    s, acks, c = sirens(not_before=time.time() + 2)  # a restarted lite gateway: its replay store was in memory
    s.handle(command())
    s.handle(command(Action.STOP))
    await turn()
    assert [(a.stage.value, a.reason) for a in acks][:2] == [("rejected", "issued_before_restart"),
                                                            ("accepted", None)]
    s2, acks2, c2 = sirens()
    token = command()
    s2.handle(token)
    s2.handle(token)
    await turn()
    assert c2["cmd_rejected_replayed"] == 1 and c2["device_activated"] == 2
