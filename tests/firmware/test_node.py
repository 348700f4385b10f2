"""Node robustness under MicroPython with a stub HAL: boot counter, safe mode, config, watchdog, noise app."""

from __future__ import annotations

import json

import numpy as np
import pytest

from contract.codecs import node_frame as cf

KEY = "ab" * 32
GOOD = {"device_id": "N-017", "zone": "Z1", "node": "noise", "key": KEY, "cal_offset_db": 0.5}


def test_boot_counter_enters_safe_mode_after_repeated_failed_boots(mpy):
    code = """
import bootmgr, json
reasons = []
for i in range(5):
    st, reason = bootmgr.on_boot('watchdog')
    reasons.append(reason)
healthy = bootmgr.mark_healthy()
st, after = bootmgr.on_boot('power')
print('RESULT ' + json.dumps([reasons, healthy, st, after]))
"""
    reasons, healthy, st, after = mpy.json(code)
    assert reasons[:3] == [None, None, None]
    assert reasons[3] == "3 failed boots in a row (last reset: watchdog)"
    assert reasons[4].startswith("4 failed boots")
    assert healthy["failed"] == 0 and healthy["boots"] == 5
    assert after is None and st["boots"] == 6 and st["failed"] == 1


def test_unfinished_flash_forces_safe_mode_and_keeps_app_out(mpy):
    code = """
import bootmgr, app, json
open('/.flashing', 'w').write('copy levels.mpy (7/12)')
st, reason = bootmgr.on_boot('power')
print('RESULT ' + json.dumps([reason, app.run()]))
"""
    out = mpy.run(code)
    reason, ran = json.loads(out.splitlines()[-1][len("RESULT "):])
    assert reason == "the last flash did not finish (copy levels.mpy (7/12))"
    assert ran is None
    assert "flash in progress or interrupted" in out


@pytest.mark.parametrize(("change", "needle"), [
    ({"zone": None}, "config.json has no 'zone'"),
    ({"device_id": "N 017!"}, "'device_id' is 'N 017!'"),
    ({"key": "xyz"}, "'key' must be 64 lowercase hex digits"),
    ({"cal_offset_db": 35}, "'cal_offset_db' is 35: expected a number from -20 to +20 dB"),
    ({"node": "siren"}, "'node' is 'siren': expected 'noise' or 'air'"),
    ({"mic": "sph9999"}, "'mic' is 'sph9999'"),
])
def test_config_errors_are_sentences(mpy, change, needle):
    cfg = {k: v for k, v in {**GOOD, **change}.items() if v is not None}
    code = "import config, json\nprint('RESULT ' + json.dumps(config.load()))"
    loaded, errors = mpy.json(code, files={"config.json": json.dumps(cfg)})
    assert loaded is None
    assert any(needle in e for e in errors), errors


def test_config_damaged_or_missing(mpy):
    code = ("import config, json\nprint('RESULT ' + json.dumps([config.load(), config.load('/nope.json')]))")
    (c1, e1), (c2, e2) = mpy.json(code, files={"config.json": "{not json"})
    assert c1 is None and "damaged (not valid JSON)" in e1[0]
    assert c2 is None and "never provisioned" in e2[0]


def test_good_config_and_bad_config_select_mode(mpy):
    code = """
import app, json, hal, nodeframe
a = app.App()
mode = a.start()
a.send_status()
print('RESULT ' + json.dumps([mode, a.safe, [x.hex() for x in hal.LINK_WRITES]]))
"""
    mode, safe, writes = mpy.json(code, files={"config.json": json.dumps(GOOD)})
    assert mode == "noise" and safe is None
    _, fr = cf.decode(bytes.fromhex(writes[0]))
    assert fr.body.boot_count == 1 and fr.body.cal_offset == 0.5 and fr.body.error_bits == 0
    mode, safe, writes = mpy.json(code, files={"config.json": json.dumps({**GOOD, "zone": ""})})
    assert mode == "safe" and safe.startswith("bad config: config.json 'zone'")
    _, fr = cf.decode(bytes.fromhex(writes[0]))
    assert fr.body.error_bits & 0x0001 and fr.body.error_bits & 0x0002  # safe mode + config error


def test_watchdog_is_fed_only_while_the_node_task_makes_progress(mpy):
    code = """
import asyncio, app, hal, json
app.SUPERVISE_MS = 5
a = app.App()
a.start()
a.wdt = hal.watchdog(app.WDT_MS)
state = {'beating': True}
async def node():
    while True:
        if state['beating']:
            a.health.beat()
        await asyncio.sleep_ms(2)
async def main():
    t = asyncio.create_task(node())
    await a.supervise(t, rounds=10)
    feeds_alive = sum(1 for e in hal.WDT_LOG if e[0] == 'feed')
    state['beating'] = False          # the sensor loop hangs: beats stop
    await asyncio.sleep_ms(20)
    await a.supervise(t, rounds=10)
    feeds_hung = sum(1 for e in hal.WDT_LOG if e[0] == 'feed') - feeds_alive
    t.cancel()
    return feeds_alive, feeds_hung
r = await main()
print('RESULT ' + json.dumps(r))
"""
    alive, hung = mpy.json(code, files={"config.json": json.dumps(GOOD)})
    assert alive >= 8
    assert hung <= 1  # at most the one round that still saw the last beat


def test_boot_is_marked_healthy_only_after_running_a_while(mpy):
    code = """
import asyncio, app, hal, json, bootmgr
app.SUPERVISE_MS = 2
bootmgr.on_boot('watchdog'); bootmgr.on_boot('watchdog')
a = app.App()
a.start()
async def node():
    while True:
        a.health.beat()
        await asyncio.sleep_ms(1)
async def main():
    t = asyncio.create_task(node())
    await a.supervise(t, rounds=3)
    before = bootmgr.state()['failed']
    hal.advance(bootmgr.HEALTHY_AFTER_S * 1000)
    await a.supervise(t, rounds=3)
    t.cancel()
    return before, bootmgr.state()['failed']
print('RESULT ' + json.dumps(await main()))
"""
    before, after = mpy.json(code, files={"config.json": json.dumps(GOOD)})
    assert before == 3 and after == 0


def test_noise_node_sends_levels_the_gateway_decodes(mpy):
    fs = 48_000
    t = np.arange(3 * fs) / fs
    amp = 10 ** ((80.0 - 120.0) / 20)  # 80 dB SPL, 1 kHz
    samples = (np.round(amp * np.sin(2 * np.pi * 1000 * t) * 2**23).astype(np.int64) << 8).astype("<i4")
    code = """
import asyncio, hal, json, nodeframe, noise_node, binascii, config
from health import Health
hal.mic_samples_from_file('/mic.i32')
cfg, errors = config.load()
out = []
h = Health()
try:
    await noise_node.run(cfg, nodeframe.Sender(out.append), h)
except hal.Reset:
    pass
print('RESULT ' + json.dumps([[binascii.hexlify(f).decode() for f in out], h.beats]))
"""
    frames_hex, beats = mpy.json(code, files={"config.json": json.dumps({**GOOD, "mic": "none"}),
                                              "mic.i32": samples.tobytes()})
    assert beats == 60  # 3 s in 50 ms blocks
    frames = [cf.decode(bytes.fromhex(h))[1] for h in frames_hex]
    assert [f.seq for f in frames] == [0, 1, 2]
    assert all(isinstance(f.body, cf.Levels) for f in frames)
    # 1 kHz: A = 0 dB; +0.5 dB calibration offset from the config
    assert frames[2].body.laeq == pytest.approx(80.5, abs=0.05)
    assert frames[2].body.la90 == pytest.approx(80.5, abs=0.05)
    assert not frames[2].body.clipped


def test_selftest_reports_damaged_files_in_words(mpy):
    files = {"config.json": json.dumps(GOOD), "a.mpy": b"good bytes",
             "manifest.json": json.dumps({"version": "1.0.0", "files": {
                 "a.mpy": "0" * 64, "b.mpy": "1" * 64}})}
    code = """
import selftest, hal, json
from array import array
blk = array('i', [((i * 7919) % 2000 - 1000) << 8 for i in range(2400)])
hal.MIC_BLOCKS.append(blk)
print('RESULT ' + json.dumps(selftest.run()))
"""
    r = mpy.json(code, files=files)
    checks = {c["name"]: c for c in r["checks"]}
    assert r["ok"] is False
    assert checks["firmware"]["detail"] == "firmware files damaged: a.mpy (changed), b.mpy (missing); flash again"
    assert checks["config"]["ok"] and checks["dsp"]["ok"] and checks["microphone"]["ok"]
    assert r["config"]["key"] == "<64 hex digits>"  # the secret never leaves the node


def test_selftest_stuck_microphone(mpy):
    code = """
import selftest, hal, json
from array import array
hal.MIC_BLOCKS.append(array('i', [1234] * 2400))
print('RESULT ' + json.dumps(selftest.run()))
"""
    r = mpy.json(code, files={"config.json": json.dumps(GOOD)})
    mic = next(c for c in r["checks"] if c["name"] == "microphone")
    assert mic["ok"] is False and "stuck at 1234" in mic["detail"] and "SD wire" in mic["detail"]
