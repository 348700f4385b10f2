"""The command executor with real drivers on simulated sirens (pty + Modbus RTU), in-process, no broker."""

from __future__ import annotations

import asyncio
import json
import sys
from pathlib import Path

from contract import command as cc
from contract.codecs import siren_modbus as sm
from contract.models import AckStage, Action, Signal
from gateway.app import Gateway
from tests.gateway.helpers import GW, VECTORS, AckLog, SirenRig, make_config, sign

SPEAKER = Path(__file__).resolve().parents[2] / "simulators" / "speaker.py"


def order(acks: AckLog, jti: str) -> list[str]:
    return [a.stage.value for a in acks.for_cmd(jti)]


async def test_activate_sounds_every_target_and_acks_in_order(gw, rig):
    token = sign(targets=tuple(rig.device_ids), params=cc.CommandParams(signal=Signal.AIR_RAID, duration_s=1))
    claims = await gw.executor.handle(token)
    jti = claims.jti
    await gw.acks.wait(lambda a: a.devices_at(jti, AckStage.DONE) == set(rig.device_ids))
    assert order(gw.acks, jti) == ["accepted", "sounding", "done"]  # batched: one ack per stage
    assert gw.acks.for_cmd(jti)[1].devices == tuple(rig.device_ids)
    assert all(a.mode.value == "exercise" for a in gw.acks.for_cmd(jti))
    assert rig.activations() == 2
    assert [e.pattern for e in rig.sirens[0].log] == [sm.Pattern.WAIL, sm.Pattern.NONE]  # activate, then stop
    assert gw.counters.get("local_stop_timer") == 2


async def test_golden_vectors_refused_with_their_reason_and_nothing_sounds(tmp_path, rig):
    cfg = make_config(tmp_path, buses={rig.name: str(rig.port)}, sirens=rig.devices())
    cfg = cfg.model_copy(update={"gateway": cfg.gateway.model_copy(update={"id": VECTORS["audience"]})})
    acks = AckLog()
    async with Gateway(cfg) as g:
        g.ack_listeners.append(acks)
        g.executor.clock = lambda: VECTORS["now"]
        g.executor.devices = {"siren-1": g.devices["siren-1"], "siren-2": g.devices["siren-2"]}
        for case in VECTORS["cases"]:
            if case["expect"] == "ok":
                continue
            n = len(acks.acks)
            assert await g.executor.handle(case["token"]) is None
            assert len(acks.acks) == n + 1, case["name"]
            ack = acks.acks[-1]
            assert (ack.stage, ack.reason) == (AckStage.REJECTED, case["expect"]), case["name"]
            assert ack.token_sha256 == cc.token_sha256(case["token"])
        assert rig.activations() == 0 and all(not s.log for s in rig.sirens)
        assert g.counters.get("cmd_rejected_bad_signature") == 2


async def test_unknown_target_and_unsupported_action_are_refused(tmp_path, rig):
    extra = '[[device]]\nid = "speaker-1"\nkind = "speaker"\n'
    cfg = make_config(tmp_path, buses={rig.name: str(rig.port)}, sirens=rig.devices(), extra=extra)
    acks = AckLog()
    async with Gateway(cfg) as g:
        g.ack_listeners.append(acks)
        for token, reason in [
            (sign(targets=("siren-1", "siren-9")), "unknown_target"),
            (sign(targets=("siren-1", "speaker-1"),
                  params=cc.CommandParams(signal=Signal.SILENT_TEST, duration_s=5)), "unsupported"),
        ]:
            assert await g.executor.handle(token) is None
            assert (acks.acks[-1].stage, acks.acks[-1].reason) == (AckStage.REJECTED, reason)
        assert all(not s.log for s in rig.sirens)  # the siren-1 half of either command did not run either


async def test_retry_for_the_same_alert_re_acks_without_restarting(gw, rig):
    first = sign(targets=("siren-1",), alert="A-7", params=cc.CommandParams(signal=Signal.AIR_RAID, duration_s=30))
    c1 = await gw.executor.handle(first)
    await gw.acks.wait(lambda a: "siren-1" in a.devices_at(c1.jti, AckStage.SOUNDING))
    retry = sign(targets=("siren-1",), alert="A-7", params=cc.CommandParams(signal=Signal.AIR_RAID, duration_s=30))
    c2 = await gw.executor.handle(retry)
    await gw.acks.wait(lambda a: "siren-1" in a.devices_at(c2.jti, AckStage.SOUNDING))
    assert order(gw.acks, c2.jti) == ["accepted", "sounding"]
    assert rig.sirens[0].activations == 1 and gw.counters.get("cmd_retry_joined") == 1
    stop = await gw.executor.handle(sign(targets=("siren-1",), alert="A-7", act=Action.STOP,
                                         params=cc.CommandParams()))
    await gw.acks.wait(lambda a: "siren-1" in a.devices_at(stop.jti, AckStage.DONE))
    for jti in (c1.jti, c2.jti, stop.jti):
        await gw.acks.wait(lambda a, j=jti: "siren-1" in a.devices_at(j, AckStage.DONE))
    assert not rig.sirens[0].sounding
    assert rig.sirens[0].log[-1].cmd is sm.Cmd.STOP


async def test_gateway_timer_stops_a_siren_whose_stop_was_lost(tmp_path, rig):
    """The hub never sends a stop and the controller's own timer is broken: the gateway stops it."""
    for s in rig.sirens:
        s.honour_duration = False
    cfg = make_config(tmp_path, buses={rig.name: str(rig.port)}, sirens=rig.devices(), max_activation_s=1)
    acks = AckLog()
    async with Gateway(cfg) as g:
        g.ack_listeners.append(acks)
        c = await g.executor.handle(sign(targets=("siren-1",),
                                         params=cc.CommandParams(signal=Signal.AIR_RAID, duration_s=600)))
        await acks.wait(lambda a: "siren-1" in a.devices_at(c.jti, AckStage.SOUNDING))
        assert rig.sirens[0].sounding
        await acks.wait(lambda a: "siren-1" in a.devices_at(c.jti, AckStage.DONE), within=10)
        assert not rig.sirens[0].sounding
        assert g.counters.get("duration_capped") == 1 and g.counters.get("local_stop_timer") == 1


async def test_controller_stops_by_itself_when_the_gateway_is_cut_off(gw, rig):
    c = await gw.executor.handle(sign(targets=("siren-1",),
                                      params=cc.CommandParams(signal=Signal.AIR_RAID, duration_s=1)))
    await gw.acks.wait(lambda a: "siren-1" in a.devices_at(c.jti, AckStage.SOUNDING))
    rig.link.unplug()  # the gateway's stop will be lost on the wire
    deadline = asyncio.get_running_loop().time() + 10
    while rig.sirens[0].sounding:
        assert asyncio.get_running_loop().time() < deadline, "siren kept sounding"
        await asyncio.sleep(0.1)
    await gw.acks.wait(lambda a: "siren-1" in a.devices_at(c.jti, AckStage.DONE))
    assert "stop not confirmed" in gw.acks.for_cmd(c.jti)[-1].detail
    assert gw.counters.get("device_stop_failed") == 1
    assert [e.cmd for e in rig.sirens[0].log] == [sm.Cmd.ACTIVATE]  # the stop never arrived


async def test_faults_become_failed_acks_with_reasons(gw, rig):
    rig.sirens[0].inject_fault(sm.Fault.AMPLIFIER)
    rig.sirens[1].unresponsive = True
    c = await gw.executor.handle(sign(targets=tuple(rig.device_ids)))
    await gw.acks.wait(lambda a: len(a.devices_at(c.jti, AckStage.FAILED)) == 2)
    reasons = {a.reason: a.devices for a in gw.acks.for_cmd(c.jti) if a.stage is AckStage.FAILED}
    assert reasons == {"fault:amplifier": ("siren-1",), "unreachable": ("siren-2",)}
    statuses = {s.id: s for s in await gw.device_statuses()}
    assert statuses["siren-2"].state.value == "unreachable"
    assert "amplifier" in statuses["siren-1"].faults


async def test_silent_test_pass_and_fail(gw, rig):
    rig.sirens[1].inject_fault(sm.Fault.AMPLIFIER)
    c = await gw.executor.handle(sign(targets=tuple(rig.device_ids),
                                      params=cc.CommandParams(signal=Signal.SILENT_TEST, duration_s=5)))
    await gw.acks.wait(lambda a: len(a.devices_at(c.jti, AckStage.DONE) | a.devices_at(c.jti, AckStage.FAILED)) == 2)
    assert gw.acks.devices_at(c.jti, AckStage.DONE) == {"siren-1"}
    failed = [a for a in gw.acks.for_cmd(c.jti) if a.stage is AckStage.FAILED]
    assert failed[0].reason == "selftest_failed" and failed[0].devices == ("siren-2",)
    assert rig.activations() == 0


async def test_replay_store_survives_a_gateway_restart(tmp_path, rig):
    cfg = make_config(tmp_path, buses={rig.name: str(rig.port)}, sirens=rig.devices())
    async with Gateway(cfg) as g1:
        token = sign(targets=("siren-1",), params=cc.CommandParams(signal=Signal.AIR_RAID, duration_s=1))
        acks = AckLog()
        g1.ack_listeners.append(acks)
        c = await g1.executor.handle(token)
        await acks.wait(lambda a: "siren-1" in a.devices_at(c.jti, AckStage.SOUNDING))
    assert rig.activations() == 1
    async with Gateway(cfg) as g2:  # a new process: same state_dir, nothing in memory
        acks = AckLog()
        g2.ack_listeners.append(acks)
        assert await g2.executor.handle(token) is None
        assert acks.acks[-1].reason == "replayed"
    assert rig.activations() == 1


async def test_port_vanishes_devices_report_unreachable_then_recover(gw, rig):
    assert {s.state.value for s in await gw.device_statuses()} == {"idle"}
    rig.link.vanish()
    await rig.bus.close()
    deadline = asyncio.get_running_loop().time() + 10
    while {s.state.value for s in await gw.device_statuses()} != {"unreachable"}:
        assert asyncio.get_running_loop().time() < deadline
        await asyncio.sleep(0.1)
    c = await gw.executor.handle(sign(targets=("siren-1",)))
    await gw.acks.wait(lambda a: "siren-1" in a.devices_at(c.jti, AckStage.FAILED))
    rig.link.restore()
    await rig.bus.start()
    while {s.state.value for s in await gw.device_statuses()} != {"idle"}:
        assert asyncio.get_running_loop().time() < deadline + 10, "bus never reopened"
        await asyncio.sleep(0.1)
    assert gw.counters.get("bus_lost") >= 1 and gw.counters.get("bus_opened") >= 2


async def test_speaker_plays_the_pinned_asset_and_refuses_a_changed_one(tmp_path):
    import hashlib
    import wave

    wav = tmp_path / "air.wav"
    with wave.open(str(wav), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(8000)
        w.writeframes(b"\x00\x00" * 800)
    sha = hashlib.sha256(wav.read_bytes()).hexdigest()
    rec = tmp_path / "rec"
    player = json.dumps([sys.executable, str(SPEAKER), "--record", str(rec), "{file}"])
    extra = (f'[[device]]\nid = "speaker-1"\nkind = "speaker"\nplayer = {player}\n'
             f'[device.assets]\n"air-raid" = {{ file = "air.wav", sha256 = "{sha}" }}\n')
    cfg = make_config(tmp_path, extra=extra)
    acks = AckLog()
    async with Gateway(cfg) as g:
        g.ack_listeners.append(acks)
        asset = cc.AssetRef(name="air-raid", sha256=sha)
        c = await g.executor.handle(sign(targets=("speaker-1",),
                                         params=cc.CommandParams(signal=Signal.AIR_RAID, duration_s=30, asset=asset)))
        await acks.wait(lambda a: "speaker-1" in a.devices_at(c.jti, AckStage.DONE), within=20)
        assert order(acks, c.jti) == ["accepted", "playing", "done"]
        from simulators.speaker import read_played

        assert [p["sha256"] for p in read_played(rec)] == [sha]
        wrong = cc.AssetRef(name="air-raid", sha256="b" * 64)
        c2 = await g.executor.handle(sign(targets=("speaker-1",),
                                          params=cc.CommandParams(signal=Signal.AIR_RAID, duration_s=30, asset=wrong)))
        wav.write_bytes(wav.read_bytes() + b"tampered")
        c3 = await g.executor.handle(sign(targets=("speaker-1",),
                                          params=cc.CommandParams(signal=Signal.AIR_RAID, duration_s=30)))
        for cl in (c2, c3):
            await acks.wait(lambda a, j=cl.jti: "speaker-1" in a.devices_at(j, AckStage.FAILED))
            assert acks.for_cmd(cl.jti)[-1].reason == "asset_mismatch"
        assert len(read_played(rec)) == 1


async def test_the_gateway_id_is_the_audience(gw, rig):
    assert gw.id == GW
    bad = sign(aud="gw-other", targets=("siren-1",))
    assert await gw.executor.handle(bad) is None
    assert gw.acks.acks[-1].reason == "wrong_audience" and rig.activations() == 0


async def test_shutdown_stops_running_activations(tmp_path):
    async with SirenRig(tmp_path, 1) as r:
        cfg = make_config(tmp_path, buses={r.name: str(r.port)}, sirens=r.devices())
        acks = AckLog()
        async with Gateway(cfg) as g:
            g.ack_listeners.append(acks)
            c = await g.executor.handle(sign(targets=("siren-1",),
                                             params=cc.CommandParams(signal=Signal.AIR_RAID, duration_s=300)))
            await acks.wait(lambda a: "siren-1" in a.devices_at(c.jti, AckStage.SOUNDING))
        assert not r.sirens[0].sounding and r.sirens[0].log[-1].cmd is sm.Cmd.STOP
        assert "siren-1" in acks.devices_at(c.jti, AckStage.DONE)


async def test_a_lost_answer_to_the_command_write_is_retried(gw, rig):
    rig.link.drop_next(8, "ba")  # the controller's FC16 answer (8 bytes) is lost on the wire
    c = await gw.executor.handle(sign(targets=("siren-1",)))
    await gw.acks.wait(lambda a: "siren-1" in a.devices_at(c.jti, AckStage.SOUNDING))
    assert gw.counters.get("siren_write_retries") == 1 and gw.counters.get("bus_no_response") == 1
    seqs = [e.seq for e in rig.sirens[0].log]
    assert len(seqs) == 2 and seqs[0] == seqs[1]  # the same block twice: idempotent


async def test_a_player_that_fails_is_reported(tmp_path):
    import hashlib

    wav = tmp_path / "a.wav"
    wav.write_bytes(b"not really audio")
    sha = hashlib.sha256(wav.read_bytes()).hexdigest()
    extra = (f'[[device]]\nid = "speaker-1"\nkind = "speaker"\n'
             f'player = ["sh", "-c", "echo no sound card >&2; exit 3", "{{file}}"]\n'
             f'[device.assets]\n"air-raid" = {{ file = "a.wav", sha256 = "{sha}" }}\n')
    acks = AckLog()
    async with Gateway(make_config(tmp_path, extra=extra)) as g:
        g.ack_listeners.append(acks)
        c = await g.executor.handle(sign(targets=("speaker-1",)))
        await acks.wait(lambda a: "speaker-1" in a.devices_at(c.jti, AckStage.FAILED))
        assert order(acks, c.jti) == ["accepted", "playing", "failed"]
        last = acks.for_cmd(c.jti)[-1]
        assert last.reason == "player_failed" and "no sound card" in last.detail


async def test_after_an_unclean_stop_commands_issued_before_the_restart_are_refused(tmp_path, rig):
    """kill -9 may lose the last seen ids (no fsync per command): the restarted gateway refuses every command
    issued before it started, so a captured token cannot be replayed; a freshly issued one works."""
    import sys

    cfg = make_config(tmp_path, buses={rig.name: str(rig.port)}, sirens=rig.devices())
    state = cfg.gateway.state_dir
    captured = sign(targets=("siren-1",), params=cc.CommandParams(signal=Signal.AIR_RAID, duration_s=1))
    proc = await asyncio.create_subprocess_exec(sys.executable, "-c", (
        "import sys, time; from gateway.replay import StateStore\n"
        f"s = StateStore({str(state / 'gateway.db')!r})\n"
        "s.first_sighting('some-other-command-id', int(time.time()) + 60)\n"
        "print('ready', flush=True); time.sleep(60)\n"), stdout=asyncio.subprocess.PIPE)
    assert (await proc.stdout.readline()).strip() == b"ready"
    proc.kill()  # the gateway dies without closing its store
    await proc.wait()
    await asyncio.sleep(1.1)  # the captured token's iat (whole seconds) now lies before the restart
    async with Gateway(cfg) as g:
        acks = AckLog()
        g.ack_listeners.append(acks)
        assert g.store.unclean
        assert await g.executor.handle(captured) is None
        assert acks.acks[-1].reason == "issued_before_restart"
        assert rig.activations() == 0
        iat = int(g.store.not_before) + 1  # the hub's next retry, issued after the restart
        fresh = await g.executor.handle(sign(targets=("siren-1",), iat=iat, exp=iat + 60,
                                             params=cc.CommandParams(signal=Signal.AIR_RAID, duration_s=1)))
        assert fresh is not None
        await acks.wait(lambda a: "siren-1" in a.devices_at(fresh.jti, AckStage.SOUNDING))
    assert rig.activations() == 1
    async with Gateway(cfg) as g:  # the last stop was clean: nothing is refused for being old
        assert not g.store.unclean and g.store.not_before is None


async def test_the_gateway_logs_who_ordered_a_command(gw, rig, caplog):
    caplog.set_level("INFO", logger="dozor.gateway")
    token = sign(targets=tuple(rig.device_ids), params=cc.CommandParams(signal=Signal.AIR_RAID, duration_s=1),
                 alert="A-1", by="olena (operator), confirmed by marta (supervisor)")
    claims = await gw.executor.handle(token)
    assert claims.by == "olena (operator), confirmed by marta (supervisor)"
    lines = [r.getMessage() for r in caplog.records if claims.jti in r.getMessage()]
    assert lines and "by olena (operator), confirmed by marta (supervisor)" in lines[0]
    await gw.acks.wait(lambda a: a.devices_at(claims.jti, AckStage.DONE) == set(rig.device_ids))
