"""Issue 13: throttle blips in the training family (``simulators.noise_throttle``)."""

from __future__ import annotations

import numpy as np

from gateway.noise.dsp import MeterConfig
from gateway.noise.pipeline import AnalyzerConfig, analyze_array
from simulators import noise_sources as src
from simulators import noise_throttle as thr
from simulators.noise_measure import laeq_db, lafmax_db
from simulators.noise_scene import STREET_MIX, generate

FS = 48_000


def test_one_opening_covers_the_closest_approach_and_each_opens_within_its_rise_time():
    t = np.arange(int(12 * FS)) / FS
    for seed in range(20):
        rng = np.random.default_rng(seed)
        env, meta = thr.envelope(rng, t, 6.0)
        lo, hi = thr.THROTTLE_RANGES["blips"]
        assert lo <= meta["throttle_blips"] <= hi == 4 and len(meta["throttle_starts"]) == meta["throttle_blips"]
        assert env[int(6.0 * FS)] > 0.999  # open at the closest approach
        assert env.min() >= 0.0 and env.max() <= 1.0 + 1e-12
        rise_max = thr.THROTTLE_RANGES["rise_s"][1]
        for a in meta["throttle_starts"]:
            i = int(round((a + rise_max) * FS)) + 1
            if 0 <= int(a * FS) and i < t.size:
                assert env[i] > 0.999  # open within the longest rise time of its start
        g = thr.gain(env, meta["throttle_closed_db"])
        assert np.isclose(20 * np.log10(g.min()), -meta["throttle_closed_db"], atol=0.05) or env.min() > 0
        assert np.isclose(g.max(), 1.0)


def test_the_throttle_draws_from_its_own_generator_and_only_touches_loud_exhausts():
    mix = {**STREET_MIX, "exhaust": 2, "legal": 2}
    for seed in (3, 8):
        off = generate(seed, duration_s=20.0, full_scale_db=130.0, mix={**mix, "throttle": 0.0})
        on = generate(seed, duration_s=20.0, full_scale_db=130.0, mix={**mix, "throttle": 1.0})
        revs = ("rpm", "f0_hz")  # a throttled engine's rpm climbs while it is open: its labelled range with it
        strip = [{k: v for k, v in s.items() if not k.startswith("throttle_") and not ("throttle_blips" in s
                  and k in revs)} for s in on.sources]
        assert strip == [{k: v for k, v in s.items() if not (k in revs and s["kind"] in ("exhaust_car",
                          "exhaust_moto"))} for s in off.sources]  # every other draw is the same
        loud = [s for s in on.sources if s["kind"] in ("exhaust_car", "exhaust_moto")]
        assert loud and all("throttle_blips" in s for s in loud)
        assert not any("throttle_blips" in s for s in on.sources if s not in loud)
        assert not any("throttle_blips" in s for s in off.sources)
    default = generate(5, duration_s=12.0, full_scale_db=130.0)  # generate's own default mix: no throttle
    assert not any("throttle_blips" in s for s in default.sources)


def _pass_by(seed: int, closed_db: float | None) -> tuple[float, float]:
    """One loud car passing 7.5 m away at 105 dB over a 60 dB street, steady or (``closed_db``) revving: the
    ``onset`` feature of its event and how far the event's maximum lies from the closest approach."""
    t = np.arange(int(12 * FS)) / FS
    boost = gain = None
    if closed_db is not None:
        env, _ = thr.envelope(np.random.default_rng([seed, 1]), t, 6.0)
        boost, gain = 0.3 * env, thr.gain(env, closed_db)
    x, _ = src.engine(np.random.default_rng(seed), t, FS, loud=True, moto=False, t_peak=6.0, speed=8.0, dist=7.5,
                      rpm_boost=boost)
    if gain is not None:
        x = x * gain
    bg, _ = src.background(np.random.default_rng([seed, 2]), t.size, FS)
    audio = x * 10 ** ((105.0 - lafmax_db(x, FS, 130.0)) / 20) + bg * 10 ** ((60.0 - laeq_db(bg, FS, 130.0)) / 20)
    _, events = analyze_array(audio.astype(np.float32), AnalyzerConfig(meter=MeterConfig(fs=FS, full_scale_db=130.0)))
    ev = max(events, key=lambda e: e.levels.lafmax)
    return ev.features["onset"], abs(ev.peak - 6.0)


def test_a_revving_exhaust_rises_steeply_and_keeps_its_maximum_at_the_closest_approach():
    steady = [_pass_by(seed, None)[0] for seed in range(6)]
    revving = [_pass_by(seed, 12.0) for seed in range(6)]
    onsets = [o for o, _ in revving]
    assert max(steady) < 6.0 and np.median(onsets) >= np.median(steady) + 4.0, (steady, onsets)
    assert max(d for _, d in revving) <= 1.0, revving  # the opening at the closest approach makes the LAFmax
