"""Air node firmware under MicroPython: SDS011 frames and duty cycle, BME280 maths, the AIR frame."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from contract.codecs import bme280 as cb
from contract.codecs import node_frame as cf
from contract.codecs import sds011 as cs

SDS = json.loads((Path(cs.__file__).parents[1] / "vectors" / "sds011.json").read_text())


def test_sds011_commands_and_measurements_match_contract_vectors(mpy):
    code = """
import sds011, binascii, json
cmds = {n: binascii.hexlify(getattr(sds011, f)()).decode() for n, f in
        [('query_data', 'query'), ('set_query_mode', 'set_query_mode'), ('sleep', 'sleep'), ('work', 'wake')]}
got = []
for h in HEXES:
    c = {}
    used, r = sds011.parse(binascii.unhexlify(h.replace(' ', '')), c)
    got.append([used, r, c])
print('RESULT ' + json.dumps([cmds, got]))
""".replace("HEXES", repr([m["hex"] for m in SDS["measurements"]] + [SDS["bad"]["bad_checksum"], SDS["bad"]["bad_tail"]]))
    cmds, got = mpy.json(code)
    for name, hexstr in cmds.items():
        assert hexstr == SDS["commands"][name].replace(" ", "").lower(), name
    for m, (used, r, _c) in zip(SDS["measurements"], got, strict=False):
        assert used == 10
        assert r == {"pm2_5": m["expect"]["pm2_5"], "pm10": m["expect"]["pm10"], "id": m["expect"]["device_id"]}
    bad_cs, bad_tail = got[-2], got[-1]
    assert bad_cs[1] is None and bad_cs[2] == {"bad_checksum": 1}
    assert bad_tail[1] is None and bad_tail[2] == {"bad_frame": 1}


@pytest.mark.parametrize("adc", [(415148, 519888, 30000), (300000, 400000, 20000), (600000, 560000, 45000)])
def test_bme280_compensation_equals_contract(mpy, adc):
    cal = cb.EXAMPLE_CALIBRATION
    a, b = cal.pack()
    adc_p, adc_t, adc_h = adc
    code = f"""
import bme280, json
c = bme280.parse_calibration({a!r}, {b!r})
print('RESULT ' + json.dumps(bme280.compensate(c, {adc_p}, {adc_t}, {adc_h})))
"""
    t, p, h = mpy.json(code)
    tf = cb.t_fine(cal, adc_t)
    assert t == cb.temperature_centi(tf) / 100
    assert p == cb.pressure_q24_8(cal, adc_p, tf) / 256
    assert h == cb.humidity_q22_10(cal, adc_h, tf) / 1024
    if adc == (415148, 519888, 30000):
        assert t == 25.08  # the datasheet's worked example


def test_duty_cycle_and_air_frame_decoded_by_gateway_codec(mpy):
    cal = cb.EXAMPLE_CALIBRATION
    a, b = cal.pack()
    raw = cb.Raw(415148, 519888, 30000)
    data = cb.pack_data(raw)
    m1 = cs.encode(cs.Measurement(12.3, 20.7, 0xA160))
    m2 = cs.encode(cs.Measurement(12.5, 21.1, 0xA160))
    code = f"""
import hal, json, binascii, nodeframe
import air_node
hal.load_bme280(0x76, {a!r}, {b!r}, {data!r})
cfg = {{'air_period_s': 60}}
from health import Health
out = []
h = Health()
node = air_node.AirNode(cfg, nodeframe.Sender(out.append), h, hal.sds011_uart(), hal.i2c())
frames = []
t = 0.0
while t < 130:
    # the sensor answers every query; readings during warm-up must be ignored
    if hal.SDS_WRITES and hal.SDS_WRITES[-1][2] == 0x04:
        hal.SDS_REPLIES.append(b'\\x00' + ({m1!r} if int(t) % 2 else {m2!r}))
    if t < 15:
        hal.SDS_REPLIES.append({cs.encode(cs.Measurement(999.9, 999.9, 1))!r})
    node.step(t, int(t))
    t += 0.5
print('RESULT ' + json.dumps([[binascii.hexlify(f).decode() for f in out],
                              [binascii.hexlify(w).decode() for w in hal.SDS_WRITES], h.messages, node.counters]))
"""
    frames_hex, writes_hex, messages, counters = mpy.json(code)
    assert messages == []
    writes = [bytes.fromhex(w) for w in writes_hex]
    cmd = {bytes.fromhex(v.replace(" ", "")): k for k, v in SDS["commands"].items()}
    names = [cmd.get(w, w.hex()) for w in writes]
    assert names[:2] == ["set_query_mode", "work"]
    assert names.count("work") == 3 and names.count("sleep") == 2  # wake at 0, 60, 120 s; sleep at 20, 80 s
    assert counters.get("resync_bytes", 0) > 0  # the injected 0x00 bytes were skipped, not fatal
    decoded = []
    for h in frames_hex:
        used, fr = cf.decode(bytes.fromhex(h))
        assert used == len(bytes.fromhex(h))
        decoded.append(fr)
    assert [f.seq for f in decoded] == [0, 1]
    s = decoded[0].body
    assert isinstance(s, cf.AirSample)
    assert 12.3 <= s.pm2_5 <= 12.5 and 20.7 <= s.pm10 <= 21.1  # the 999.9 warm-up readings were discarded
    assert s.temperature == 25.08
    assert s.pressure == cb.pressure_q24_8(cal, raw.adc_p, cb.t_fine(cal, raw.adc_t)) // 256
    assert s.humidity == pytest.approx(cb.humidity_q22_10(cal, raw.adc_h, cb.t_fine(cal, raw.adc_t)) / 1024, abs=0.01)


def test_missing_bme280_is_reported_and_pm_still_sent(mpy):
    m1 = cs.encode(cs.Measurement(5.0, 8.0, 1))
    code = f"""
import hal, json, nodeframe, air_node, binascii
from health import Health
out = []
h = Health()
node = air_node.AirNode({{'air_period_s': 30}}, nodeframe.Sender(out.append), h, hal.sds011_uart(), hal.i2c())
t = 0.0
while t < 25:
    if hal.SDS_WRITES and hal.SDS_WRITES[-1][2] == 0x04:
        hal.SDS_REPLIES.append({m1!r})
    node.step(t, int(t))
    t += 0.5
print('RESULT ' + json.dumps([[binascii.hexlify(f).decode() for f in out], h.messages, h.error_bits]))
"""
    frames_hex, messages, bits = mpy.json(code)
    assert any("no BME280 on I2C" in m and "check the 4 wires" in m for m in messages)
    assert bits & 0x0004
    _, fr = cf.decode(bytes.fromhex(frames_hex[0]))
    assert fr.body.pm2_5 == 5.0 and fr.body.temperature is None and fr.body.pressure is None


def test_duty_cycle_too_short_is_a_clear_error(mpy):
    err = mpy.run("import sds011\nsds011.DutyCycle(period_s=10)", expect_error=True)
    assert "shorter than warm-up + reading" in err
