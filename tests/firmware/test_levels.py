"""The noise node's level maths under MicroPython: A-weighting, Fast detector, per-second metrics, events.

References: IEC 61672-1 A(f) values and Fast tone-burst responses (sensing.md 2.1 and 2.4), an
independent scipy implementation, and the gateway's DSP (gateway/noise/dsp.py) on the same samples.
"""

from __future__ import annotations

import numpy as np
import pytest
from scipy import signal

FS = 48_000


def amp_for(db: float) -> float:
    """Peak (full-scale units) of a sine reading `db` dB SPL on a -26 dBFS microphone."""
    return 10 ** ((db - 120.0) / 20)


def run_meter(mpy, x: np.ndarray, eq: str = "none", threshold: float | None = None) -> dict:
    code = f"""
import levels, struct, json
from array import array
m = levels.LevelMeter(eq={eq!r}, threshold_db={threshold!r})
data = open('/x.f32', 'rb').read()
n = len(data) // 4
B = 4800
buf = array('f', bytes(4 * B))
for start in range(0, n, B):
    k = min(B, n - start)
    vals = struct.unpack_from('<%df' % k, data, 4 * start)
    for i in range(k):
        buf[i] = vals[i]
    m.feed(buf, k)
print('RESULT ' + json.dumps({{'seconds': m.take_seconds(), 'events': m.take_events()}}))
"""
    return mpy.json(code, files={"x.f32": x.astype("<f4").tobytes()})


def tone(freq: float, db: float, seconds: float) -> np.ndarray:
    t = np.arange(int(seconds * FS)) / FS
    return amp_for(db) * np.sin(2 * np.pi * freq * t)


def test_a_weighting_follows_iec_61672_curve(mpy):
    # analog A(f) from IEC 61672-1 Annex E (sensing.md 2.1); SOS 48 kHz set deviates < 0.1 dB here
    def a_db(f: float) -> float:  # IEC 61672-1 Annex E, exact pole frequencies
        f1, f2, f3, f4 = 20.598997, 107.65265, 737.86223, 12194.217
        r = f4**2 * f**4 / ((f**2 + f1**2) * np.sqrt((f**2 + f2**2) * (f**2 + f3**2)) * (f**2 + f4**2))
        return 20 * np.log10(r) + 1.9997

    # exact base-10 third-octave frequencies, 31.5 Hz .. 16 kHz
    ref = {round(1000 * 10 ** (k / 10), 2): a_db(1000 * 10 ** (k / 10)) for k in (-15, -12, -9, -6, -3, 0, 3, 6, 9, 12)}
    code = ("import levels, json\nout = {}\nfor f in FREQS:\n"
            "    out[str(f)] = levels.tone_level(f, 10 ** ((94.0 - 120.0) / 20))\n"
            "print('RESULT ' + json.dumps(out))").replace("FREQS", repr(list(ref)))
    got = mpy.json(code)
    for f, a in ref.items():
        assert got[str(f)] - 94.0 == pytest.approx(a, abs=0.15), f"{f} Hz"


def test_steady_tone_and_fast_tone_bursts(mpy):
    # 1 s of silence-free 1 kHz at 94 dB, then bursts of 200 ms and 50 ms in separate seconds
    # seconds: 0-1 steady, 2 silence, 3 a 200 ms burst, 4 silence, 5 a 50 ms burst
    silence = np.zeros(FS)
    b200 = np.concatenate([np.zeros(FS // 4), tone(1000, 94.0, 0.2), np.zeros(FS - FS // 4 - FS // 5)])
    b50 = np.concatenate([np.zeros(FS // 4), tone(1000, 94.0, 0.05), np.zeros(FS - FS // 4 - FS // 20)])
    x = np.concatenate([tone(1000, 94.0, 2.0), silence, b200, silence, b50])
    secs = run_meter(mpy, x)["seconds"]
    assert len(secs) == 6
    assert secs[1]["laeq"] == pytest.approx(94.0, abs=0.05)
    assert secs[1]["lafmax"] == pytest.approx(94.0, abs=0.05)
    assert secs[1]["la10"] == pytest.approx(94.0, abs=0.05) and secs[1]["la90"] == pytest.approx(94.0, abs=0.05)
    # IEC 61672-1 Fast tone-burst response: 200 ms -> -1.0 dB, 50 ms -> -4.8 dB (sensing.md 2.4)
    assert secs[3]["lafmax"] - 94.0 == pytest.approx(-1.0, abs=0.1)
    assert secs[5]["lafmax"] - 94.0 == pytest.approx(-4.8, abs=0.1)
    # LAeq of a 200 ms burst in one second: 10 log10(0.2) = -7.0 dB
    assert secs[3]["laeq"] - 94.0 == pytest.approx(-7.0, abs=0.05)
    # the second after the tone stopped: Fast decays 34.7 dB/s, so LAF runs from ~90 down to ~59 dB
    assert secs[2]["la90"] == pytest.approx(94.0 - 34.7 * 0.91, abs=1.0)
    assert secs[2]["la10"] == pytest.approx(94.0 - 34.7 * 0.19, abs=1.0)


def _scipy_reference(x: np.ndarray) -> list[dict]:
    """Independent float64 implementation: same SOS set, per-sample Fast, 10 Hz LAF, numpy percentiles."""
    rows = [(-2.00026996133106, 1.00027056142719, -1.060868438509278, -0.163987445885926),
            (4.35912384203144, 3.09120265783884, 1.208419926363593, -0.273166998428332),
            (-0.70930303489759, -0.29071868393580, 1.982242159753048, -0.982298594928989)]
    sos = np.array([[1, b1, b2, 1, -na1, -na2] for b1, b2, na1, na2 in rows])
    sos[0, :3] *= 0.169994948147430
    y = signal.sosfilt(sos, x)
    a = np.exp(-1 / (FS * 0.125))
    fast = signal.lfilter([1 - a], [1, -a], y * y)
    k = 120 + 10 * np.log10(2)
    out = []
    for s in range(x.size // FS):
        seg = slice(s * FS, (s + 1) * FS)
        laf = 10 * np.log10(fast[seg][FS // 10 - 1::FS // 10]) + k
        out.append({"laeq": 10 * np.log10(np.mean(y[seg] ** 2)) + k,
                    "lafmax": 10 * np.log10(fast[seg].max()) + k,
                    "la10": np.percentile(laf, 90), "la90": np.percentile(laf, 10)})
    return out


def street(seconds: int, seed: int) -> np.ndarray:
    """Pink-ish noise with a passing loud source: levels that move within each second."""
    rng = np.random.default_rng(seed)
    white = rng.standard_normal(seconds * FS)
    b, a = signal.butter(1, 500 / (FS / 2))  # tilt towards low frequencies like traffic
    x = signal.lfilter(b, a, white) * 0.02 + white * 0.0005
    env = 1 + 4 * np.exp(-(((np.arange(x.size) / FS) - seconds / 2) ** 2) / 0.3)
    return x * env


def test_agrees_with_independent_float64_reference(mpy):
    x = street(3, seed=1)
    got = run_meter(mpy, x, eq="none")["seconds"]
    want = _scipy_reference(x)
    assert len(got) == len(want) == 3
    for g, w in zip(got, want, strict=True):
        for key in ("laeq", "lafmax", "la10", "la90"):
            assert g[key] == pytest.approx(w[key], abs=0.02), key


def test_agrees_with_gateway_dsp_within_0_2_db(mpy):
    """The same samples through the firmware (SOS set) and the gateway's meter (bilinear A, float32)."""
    from gateway.noise.dsp import FRAME_HZ, LevelMeter, MeterConfig, summarize

    x = np.concatenate([street(2, seed=2), tone(100, 70, 1), tone(1000, 85, 1), tone(4000, 80, 1)])
    fw = run_meter(mpy, x, eq="none")["seconds"]
    gw = LevelMeter(MeterConfig())
    frames = gw.feed(x.astype(np.float32))
    assert len(fw) == frames.size // FRAME_HZ == 5
    for s, f in enumerate(fw):
        ref = summarize(frames[s * FRAME_HZ:(s + 1) * FRAME_HZ], gw.k_db)
        for key in ("laeq", "lafmax", "la10", "la90"):
            assert f[key] == pytest.approx(getattr(ref, key), abs=0.2), f"second {s} {key}"


def test_threshold_event_with_laf_trace(mpy):
    x = np.concatenate([tone(1000, 60, 2.0), tone(1000, 95, 1.0), tone(1000, 60, 2.0)])
    res = run_meter(mpy, x, threshold=85.0)
    assert len(res["seconds"]) == 5
    assert len(res["events"]) == 1
    ev = res["events"][0]
    assert ev["lafmax"] == pytest.approx(95.0, abs=0.1)
    # 1 s above, then the Fast decay from 95 to below 82 dB (~0.4 s) and 2 ticks of hold
    assert 1300 <= ev["duration_ms"] <= 1700
    assert 2000 <= ev["start_ms"] <= 2200
    assert ev["sel"] == pytest.approx(ev["laeq"] + 10 * np.log10(ev["duration_ms"] / 1000), abs=0.01)
    trace = [v / 10 for v in ev["trace_ddb"]]
    assert trace[0] == pytest.approx(60.0, abs=0.2)  # pre-trigger part of the trace
    assert max(trace) == pytest.approx(95.0, abs=0.2)
    assert len(trace) >= 10 + 10  # 0.5 s before + the event at 10 Hz
    assert not ev["clipped"]


def test_clipped_samples_are_counted(mpy):
    code = """
import levels, json
from array import array
raw = array('i', [0, 0x7FFFFF00, -0x80000000, 0x100, 0x7FFFFE00])
out = array('f', bytes(20))
c = levels.i32_to_float(raw, out, 5)
print('RESULT ' + json.dumps([c, list(out)]))
"""
    clips, vals = mpy.json(code)
    assert clips == 2
    assert vals[3] == pytest.approx(1 / 2**23)
    assert vals[1] == pytest.approx(1.0, abs=1e-6)


def test_unknown_microphone_is_a_clear_error(mpy):
    err = mpy.run("import levels\nlevels.LevelMeter(eq='sph9999')", expect_error=True)
    assert "unknown microphone equaliser 'sph9999'" in err
