"""Sans-IO and store-level checks: the sealed envelope, the replay guard (property-based), key files, the hub key
ring (activate refusal and --force), enrollment and reset, the gateway's replay floor, stop scoping in the
executor, and `dozor sim city --hub-config`."""

from __future__ import annotations

import json
import os

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from hypothesis import given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from contract import command as cc
from contract.models import AckStage, Action, Signal
from contract.signed import MAX_SESSION_STEP, WINDOW, ReplayGuard, Unverified, open_sealed, seal, split
from dozor.cli import app
from gateway.errors import ConfigError as GatewayConfigError
from gateway.identity import load_or_create as load_identity
from gateway.replay import StateStore
from hub.errors import ConfigError
from hub.gwtrust import UNKNOWN_RECHECK_S, TrustStore, Verifier
from hub.keys import KeyRefused, KeyRing
from runtime import keyfiles
from tests.gateway.helpers import AckLog, SirenRig, make_config, sign

KEY = Ed25519PrivateKey.generate()
KID = cc.key_id(KEY.public_key())
runner = CliRunner()


@settings(max_examples=300, deadline=None)
@given(payload=st.binary(max_size=300).filter(lambda b: b"\n" not in b), flip=st.integers(0, 10_000))
def test_seal_verifies_only_the_exact_bytes(payload, flip):
    wire = seal(payload, KEY, KID)
    assert open_sealed(wire, {KID: KEY.public_key()}) == payload
    body, kid, sig = split(wire)
    assert body == payload and kid == KID and len(sig) == 64
    if payload:
        i = flip % len(payload)
        tampered = payload[:i] + bytes([payload[i] ^ 1]) + payload[i + 1:]
        with pytest.raises(Unverified) as exc:
            open_sealed(tampered + wire[len(payload):], {KID: KEY.public_key()})
        assert exc.value.reason == "bad_signature"
    with pytest.raises(Unverified) as exc:
        open_sealed(payload, {KID: KEY.public_key()})
    assert exc.value.reason in ("unsigned", "empty")
    with pytest.raises(Unverified) as exc:
        open_sealed(wire, {"other": KEY.public_key()})
    assert exc.value.reason == "unknown_key"


@settings(max_examples=300, deadline=None)
@given(steps=st.lists(st.tuples(st.integers(0, 3), st.integers(0, 40)), min_size=1, max_size=80))
def test_replay_guard_admits_each_session_counter_once_and_never_goes_back(steps):
    guard, admitted = ReplayGuard(), set()
    for session, ctr in steps:
        before = (guard.session, guard.high)
        try:
            guard.admit(session, ctr)
        except Unverified as exc:
            assert exc.reason in ("replayed", "stale_session")
            assert (session, ctr) in admitted or session < guard.session or (ctr == 0 and guard.will_seen)
            assert (guard.session, guard.high) == before
            continue
        assert (session, ctr) not in admitted and session >= before[0]
        admitted.add((session, ctr))
    restored = ReplayGuard.from_floor(guard.floor())  # after a hub restart nothing up to the floor passes
    for session, ctr in admitted:
        if session == guard.session and 0 < ctr <= guard.high:
            with pytest.raises(Unverified):
                restored.admit(session, ctr)


@given(steps=st.lists(st.one_of(st.integers(1, 3 * WINDOW), st.integers(-WINDOW - 5, WINDOW + 5)), min_size=1,
                     max_size=200))
@settings(max_examples=300)
def test_replay_guard_window_matches_a_plain_set_of_every_counter_and_stays_small(steps):
    """An independent model: every admitted counter in a set, never trimmed. The guard's bitmap must accept and
    refuse exactly as it does (a counter admitted once, nothing WINDOW or more below the highest), with memory
    bounded by WINDOW bits whatever the traffic (a set of counters used to grow to 2 x WINDOW ints)."""
    guard, seen, high = ReplayGuard(), set(), -1
    ctr = 0
    for step in steps:
        ctr = step if step > WINDOW + 5 else max(1, ctr + step)  # jumps ahead, or near the last counter
        fresh = ctr not in seen and ctr > high - WINDOW
        try:
            guard.admit(7, ctr)
            assert fresh, f"ctr {ctr} admitted twice or too old (high {high})"
            seen.add(ctr)
            high = max(high, ctr)
        except Unverified as exc:
            assert not fresh and exc.reason == "replayed", (ctr, high, exc)
        assert guard.high == high and guard.window.bit_length() <= WINDOW


def test_replay_guard_bounds_session_steps_and_old_counters():
    guard = ReplayGuard()
    guard.admit(5, 1)
    with pytest.raises(Unverified, match="session_jump"):
        guard.admit(5 + MAX_SESSION_STEP + 1, 1)
    guard.admit(5 + MAX_SESSION_STEP, 1)  # a plausible step
    guard.admit(guard.session, WINDOW + 10)
    with pytest.raises(Unverified, match="replayed"):
        guard.admit(guard.session, 5)  # below the window: too old to judge, refused
    guard.admit(guard.session, 0)  # the session's last-will: once
    with pytest.raises(Unverified, match="replayed"):
        guard.admit(guard.session, 0)


def test_key_files_are_0600_and_refused_when_others_can_read_them(tmp_path):
    ident = load_identity(tmp_path / "gw")
    path = tmp_path / "gw" / "identity-key"
    assert path.stat().st_mode & 0o777 == 0o600
    assert load_identity(tmp_path / "gw").kid == ident.kid  # reused
    assert ident.public_b64 not in path.read_text() and len(path.read_text().strip()) == 43
    os.chmod(path, 0o644)
    with pytest.raises(GatewayConfigError, match="readable by group or others"):
        load_identity(tmp_path / "gw")
    with pytest.raises(keyfiles.KeyFileError):
        keyfiles.load(path)


def test_key_ring_refuses_activation_unless_every_online_gateway_pins_the_key(tmp_path):
    ring = KeyRing(tmp_path)
    first = ring.load()
    staged = ring.stage()["kid"]
    keys = ring.load()
    assert keys.kid == first.kid and staged in keys.all_kids and staged in keys.public_keys_b64()
    with pytest.raises(KeyRefused) as exc:
        ring.activate(staged, gateways={"gw-1": (first.kid, staged), "gw-2": (first.kid,)})
    assert exc.value.gateways == ["gw-2"]
    out = ring.activate(staged, gateways={"gw-2": (first.kid,)}, force=True)
    assert out["changed"] and out["not_trusting"] == ["gw-2"] and ring.load().kid == staged
    with pytest.raises(ConfigError, match="active"):
        ring.retire(staged)
    ring.retire(first.kid)
    assert first.kid not in ring.load().all_kids
    with pytest.raises(ConfigError, match="retired"):
        ring.activate(first.kid, gateways={})
    assert (tmp_path / "hub-keys" / f"{staged}.key").stat().st_mode & 0o777 == 0o600


def test_enrollment_is_never_on_first_use_and_a_new_key_or_reset_is_a_new_epoch(tmp_path):
    store, cli = TrustStore(tmp_path), TrustStore(tmp_path)  # the hub's connection and the CLI's
    counted: list[tuple[str, str]] = []
    epochs: list[str] = []
    verifier = Verifier(store, count=lambda ch, r: counted.append((ch, r)), on_epoch=lambda g, e: epochs.append(g))
    assert verifier.open("gw-1", "state", seal(b"{}", KEY, KID)) is None and counted[-1] == ("state", "not_enrolled")
    enr, changed = cli.enroll("gw-1", cc.b64url(cc.public_raw(KEY.public_key())))
    assert changed and enr.epoch == 1 and not cli.enroll("gw-1", enr.public_key)[1]
    verifier.refresh()  # the hub's trust task does this every 0.5 s (an id just refused is re-checked once a second)
    assert verifier.open("gw-1", "state", seal(b"{}", KEY, KID)) == b"{}"
    assert verifier.admit("gw-1", "state", 7, 1) and not verifier.admit("gw-1", "state", 7, 1)
    assert not verifier.admit("gw-1", "heartbeat", 3, 9) and counted[-1] == ("heartbeat", "stale_session")
    other = Ed25519PrivateKey.generate()
    enr2, _ = cli.enroll("gw-1", cc.b64url(cc.public_raw(other.public_key())))
    assert enr2.epoch == 2 and enr2.clear_retained
    verifier.refresh()
    assert epochs == ["gw-1"]
    assert verifier.admit("gw-1", "state", 1, 1)  # the new epoch starts afresh: a low session is fine
    with pytest.raises(ConfigError, match="reason"):
        store.reset("gw-1", reason=" ")
    assert store.reset("gw-1", reason="restored from an old backup").epoch == 3
    assert [h["action"] for h in store.history("gw-1")] == ["enroll", "reenroll", "reset"]
    with pytest.raises(ConfigError, match="not enrolled"):
        store.reset("gw-9", reason="x")
    store.close()
    cli.close()


def test_a_new_state_dir_sets_a_floor_and_an_old_one_keeps_it(tmp_path):
    with StateStore(tmp_path / "a.db") as s:
        floor = s.floor
        assert s.issued_before_floor(floor - 1) and not s.issued_before_floor(floor)
    with StateStore(tmp_path / "a.db") as s:
        assert s.floor == floor


async def test_stop_and_all_clear_silence_only_their_own_alert_and_a_stop_never_expires(tmp_path):
    from gateway.app import Gateway

    async with SirenRig(tmp_path, 2) as rig:
        cfg = make_config(tmp_path, buses={rig.name: str(rig.port)}, sirens=rig.devices())
        async with Gateway(cfg) as g:
            acks = AckLog()
            g.ack_listeners.append(acks)
            g.store.floor = 0
            new = await g.executor.handle(sign(targets=tuple(rig.device_ids), alert="A-new",
                                               params=cc.CommandParams(signal=Signal.AIR_RAID, duration_s=60)))
            await acks.wait(lambda a: a.devices_at(new.jti, AckStage.SOUNDING) == set(rig.device_ids))
            now = int(__import__("time").time())
            old_stop = await g.executor.handle(sign(targets=tuple(rig.device_ids), alert="A-old", act=Action.STOP,
                                                    params=cc.CommandParams(), iat=now - 3000, exp=now - 2970))
            assert old_stop is not None  # expired long ago, still executed: a stop is never refused for its age
            await acks.wait(lambda a: a.devices_at(old_stop.jti, AckStage.DONE) == set(rig.device_ids))
            old_clear = await g.executor.handle(sign(targets=tuple(rig.device_ids), alert="A-old",
                                                     params=cc.CommandParams(signal=Signal.ALL_CLEAR, duration_s=5)))
            await acks.wait(lambda a: a.devices_at(old_clear.jti, AckStage.DONE) == set(rig.device_ids))
            assert all(s.sounding for s in rig.sirens) and rig.activations() == 2
            stop = await g.executor.handle(sign(targets=tuple(rig.device_ids), alert="A-new", act=Action.STOP,
                                                params=cc.CommandParams()))
            await acks.wait(lambda a: a.devices_at(stop.jti, AckStage.DONE) == set(rig.device_ids))
            assert not any(s.sounding for s in rig.sirens)


def test_sim_city_hub_config_refuses_a_bad_config(tmp_path):
    res = runner.invoke(app, ["sim", "city", "--gateways", "1", "--hub-config", str(tmp_path / "nope.toml")])
    assert res.exit_code == 2 and "nope.toml" in res.output


def test_sim_city_factory_enrolls_and_trusts_the_hubs_keys(tmp_path):
    from dozor.commands.sim_city import enrolling_factory, hub_from_config

    (tmp_path / "zones.json").write_text(json.dumps([{"id": "z", "gateways": ["gw-0001"]}]))
    (tmp_path / "hub.toml").write_text('[hub]\nstate_dir = "hub"\nzones = "zones.json"\n[mqtt]\nurl = "mqtt://x:1"\n')
    backend, keys = hub_from_config(tmp_path / "hub.toml")
    state = backend.state_dir
    assert backend.kind == "sqlite" and state == tmp_path / "hub" and len(keys) == 1
    KeyRing(state).stage()
    assert len(hub_from_config(tmp_path / "hub.toml")[1]) == 2  # active and staged
    factory = enrolling_factory(backend)
    factory({"gateway": {"id": "gw-0001", "state_dir": str(tmp_path / "gw"), "zone": "z"},
             "trust": {"hub_keys": keys}})
    enrolled = TrustStore(state).get("gw-0001")
    assert enrolled is not None and enrolled.kid == load_identity(tmp_path / "gw").kid


def test_a_key_id_that_begins_with_a_dash_is_taken_as_the_kid_not_as_options(tmp_path, monkeypatch):
    """One key id in 64 begins with "-"; with a "c" in it, click once read it as `-c <config>` (a CI run hit it)."""
    import hub.keys

    key = next(k for k in iter(Ed25519PrivateKey.generate, None)
               if (kid := cc.key_id(k.public_key())).startswith("-") and "c" in kid[1:])
    monkeypatch.setattr(hub.keys.Ed25519PrivateKey, "generate", staticmethod(lambda: key))
    (tmp_path / "zones.json").write_text(json.dumps([{"id": "z", "gateways": ["gw-1"]}]))
    cfg = tmp_path / "hub.toml"
    cfg.write_text('[hub]\nstate_dir = "hub"\nzones = "zones.json"\n[mqtt]\nurl = "mqtt://x:1"\n')
    ring = KeyRing(tmp_path / "hub")
    monkeypatch.undo()
    first = ring.load().kid
    monkeypatch.setattr(hub.keys.Ed25519PrivateKey, "generate", staticmethod(lambda: key))
    staged = ring.stage()["kid"]
    assert staged == cc.key_id(key.public_key()) and staged != first
    for argv in (["hub", "keys", "activate", staged, "-c", str(cfg), "--json"],
                 ["hub", "keys", "retire", first, "--config", str(cfg)]):
        res = runner.invoke(app, argv)
        assert res.exit_code == 0, res.output
    assert ring.load().kid == staged and first not in ring.load().all_kids
    res = runner.invoke(app, ["hub", "keys", "retire", "-c", str(cfg), "--", staged])
    assert res.exit_code == 1 and "active" in res.output


def test_history_of_a_gateway_never_enrolled_is_an_error_not_an_empty_success(tmp_path):
    (tmp_path / "zones.json").write_text(json.dumps([{"id": "z", "gateways": ["gw-1"]}]))
    cfg = tmp_path / "hub.toml"
    cfg.write_text('[hub]\nstate_dir = "hub"\nzones = "zones.json"\n[mqtt]\nurl = "mqtt://x:1"\n')
    (tmp_path / "hub").mkdir()
    res = runner.invoke(app, ["gateways", "history", "gw-404", "--config", str(cfg)])
    assert res.exit_code == 1 and "gw-404" in res.output and "never enrolled" in res.output
    res = runner.invoke(app, ["gateways", "history", "--config", str(cfg), "--json"])
    assert res.exit_code == 0 and json.loads(res.stdout) == []


def test_a_flood_naming_unknown_gateways_costs_one_store_look_up_per_id_and_second(tmp_path):
    """Topics are attacker input: junk naming gateway ids that are not enrolled must not put database queries on
    the hub's message loop per message. An id is looked up again at most once per UNKNOWN_RECHECK_S."""
    looked_up: list[int] = []

    class CountingStore(TrustStore):
        def data_version(self) -> int:
            looked_up.append(1)
            return super().data_version()

    now = [1000.0]
    store, cli = CountingStore(tmp_path), TrustStore(tmp_path)
    verifier = Verifier(store, count=lambda ch, r: None, clock=lambda: now[0])
    looked_up.clear()
    for i in range(300):
        assert verifier.open(f"gw-{i % 3}", "heartbeat", b"junk") is None
    assert len(looked_up) == 3 and verifier.unknown == {"gw-0": 100, "gw-1": 100, "gw-2": 100}
    cli.enroll("gw-1", cc.b64url(cc.public_raw(KEY.public_key())))
    assert verifier.open("gw-1", "state", seal(b"{}", KEY, KID)) is None  # refused a moment ago: not asked again yet
    now[0] += UNKNOWN_RECHECK_S
    assert verifier.open("gw-1", "state", seal(b"{}", KEY, KID)) == b"{}"  # within a second of its enrollment
    assert len(looked_up) == 4
    store.close()
    cli.close()


def test_a_birth_sent_before_enrollment_is_checked_again_once_the_gateway_is_enrolled(tmp_path):
    """A birth goes out once per connection. A gateway enrolled after it came up (a technician enrolls it on
    the hub after powering it) used to stay without devices until it reconnected; forged births stay out."""
    from contract import topics
    from contract.models import DeviceInfo, DeviceKind, GatewayState, Heartbeat
    from hub.metrics import HubMetrics
    from hub.mqtt import HELD_BIRTHS_MAX, Dispatcher
    from tests.gwident import Sealer, public_b64

    d = Dispatcher(HubMetrics())
    d.verifier = Verifier(TrustStore(tmp_path), count=lambda channel, reason: None)
    births, beats = [], []
    d.on("state", births.append)
    d.on("heartbeat", beats.append)
    seal_a, forged = Sealer("gw-a"), Sealer("gw-b", key=Ed25519PrivateKey.generate())
    state = GatewayState(gateway="gw-a", state="online", session=1, ts=1.0,
                         devices=(DeviceInfo(id="siren-1", kind=DeviceKind.SIREN),))
    d.dispatch(topics.gw("gw-a", "state"), seal_a(state))
    d.dispatch(topics.gw("gw-b", "state"), forged(state.model_copy(update={"gateway": "gw-b"})))
    assert not births and set(d.held_births) == {"gw-a", "gw-b"}  # refused: nobody is enrolled yet

    TrustStore(tmp_path).enroll("gw-a", public_b64("gw-a"), actor="test")
    TrustStore(tmp_path).enroll("gw-b", public_b64("gw-b"), actor="test")  # not the key that sealed gw-b's birth
    d.verifier.refresh()
    for gw, sealer in (("gw-a", seal_a), ("gw-b", Sealer("gw-b"))):
        d.dispatch(topics.gw(gw, "heartbeat"), sealer(Heartbeat(gateway=gw, session=1, seq=1, ts=2.0, uptime_s=1.0)))
    assert [(b.gateway, [x.id for x in b.devices]) for b in births] == [("gw-a", ["siren-1"])]
    assert [b.gateway for b in beats] == ["gw-a", "gw-b"] and not d.held_births

    for i in range(HELD_BIRTHS_MAX + 10):  # junk births for ids nobody enrolled: bounded
        d.dispatch(topics.gw(f"gw-x{i}", "state"), b"junk")
    assert len(d.held_births) == HELD_BIRTHS_MAX


def test_held_births_go_through_after_the_trust_refresh_without_waiting_for_another_message(tmp_path):
    """The hub releases held births after each trust refresh (``Dispatcher.release_held``): a gateway whose birth
    beat its enrollment is online at once, even before its next signed message; a forged birth stays out."""
    from contract import topics
    from contract.models import DeviceInfo, DeviceKind, GatewayState
    from hub.metrics import HubMetrics
    from hub.mqtt import Dispatcher
    from tests.gwident import Sealer, public_b64

    d = Dispatcher(HubMetrics())
    d.verifier = Verifier(TrustStore(tmp_path), count=lambda channel, reason: None)
    births = []
    d.on("state", births.append)
    state = GatewayState(gateway="gw-a", state="online", session=1, ts=1.0,
                         devices=(DeviceInfo(id="siren-1", kind=DeviceKind.SIREN),))
    d.dispatch(topics.gw("gw-a", "state"), Sealer("gw-a")(state))
    forged = Sealer("gw-b", key=Ed25519PrivateKey.generate())
    d.dispatch(topics.gw("gw-b", "state"), forged(state.model_copy(update={"gateway": "gw-b"})))
    assert d.release_held() == 0 and not births  # nobody enrolled yet: both stay held
    TrustStore(tmp_path).enroll("gw-a", public_b64("gw-a"), actor="test")
    TrustStore(tmp_path).enroll("gw-b", public_b64("gw-b"), actor="test")
    d.verifier.refresh()
    assert d.release_held() == 2 and not d.held_births
    assert [b.gateway for b in births] == ["gw-a"]  # the forged one was checked again and refused


def test_an_enrollment_made_while_another_gateway_talks_is_not_lost(tmp_path):
    """The hub loaded gw-a; a technician enrolls gw-b (another process); gw-a's birth then saves its replay floor.
    That write used to take the store's version as seen, so gw-b's enrollment was never loaded: gw-b stayed
    not_enrolled until the next enrollment change (seen in bench.city with six gateways enrolled in a row)."""
    from contract import topics
    from contract.models import DeviceInfo, DeviceKind, GatewayState, Heartbeat
    from hub.metrics import HubMetrics
    from hub.mqtt import Dispatcher
    from tests.gwident import Sealer, public_b64

    TrustStore(tmp_path).enroll("gw-a", public_b64("gw-a"), actor="test")
    now = [1000.0]
    d = Dispatcher(HubMetrics())
    d.verifier = Verifier(TrustStore(tmp_path), count=lambda channel, reason: None, clock=lambda: now[0])
    d.verifier.refresh()
    births, beats = [], []
    d.on("state", births.append)
    d.on("heartbeat", beats.append)
    TrustStore(tmp_path).enroll("gw-b", public_b64("gw-b"), actor="test")  # the CLI, while the hub runs
    seal_a, seal_b = Sealer("gw-a"), Sealer("gw-b")
    d.dispatch(topics.gw("gw-a", "state"), seal_a(GatewayState(
        gateway="gw-a", state="online", session=1, ts=1.0, devices=(DeviceInfo(id="siren-1", kind=DeviceKind.SIREN),))))
    assert [b.gateway for b in births] == ["gw-a"]  # its floor is saved now
    now[0] += 5
    d.dispatch(topics.gw("gw-b", "heartbeat"), seal_b(Heartbeat(gateway="gw-b", session=1, seq=1, ts=2.0,
                                                                uptime_s=1.0)))
    assert [b.gateway for b in beats] == ["gw-b"]


async def test_replay_floors_that_cannot_be_written_wait_for_the_next_write_and_a_newer_one_wins(tmp_path):
    """A failed write (here: the store's database is closed) loses no floor: they are written by the next call,
    except where the gateway's floor moved on meanwhile (the newer snapshot is the one written)."""
    from hub.trustfloors import Floors

    store = TrustStore(tmp_path)
    floors = Floors(store.put_floors, threaded=False)
    floors.take("gw-a", 1, {"session": 1, "high": 5})
    floors.take("gw-b", 1, {"session": 1, "high": 7})
    store.close()
    assert await floors.save() == 0 and set(floors.due) == {"gw-a", "gw-b"}  # kept
    floors.take("gw-a", 1, {"session": 1, "high": 9})  # taken after the failure: newer
    store = TrustStore(tmp_path)
    floors.write = store.put_floors
    try:
        assert await floors.save() == 2 and floors.written == 2
        assert {g: d["high"] for g, (_, d) in store.floors().items()} == {"gw-a": 9, "gw-b": 7}
        floors.take("gw-b", 1, {"session": 1, "high": 8})
        assert floors.save_now() == 1 and store.floors()["gw-b"][1]["high"] == 8  # a clean shutdown's write
    finally:
        store.close()
