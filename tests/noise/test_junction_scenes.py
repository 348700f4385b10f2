"""The junction scene family (simulators.junction_scenes, issue 13): calibration and level truth against the
project's level meter, determinism, declared ranges, overrides, the ADC, the CLI, the docs, and the physics the
family claims (modal engines, tyre law, air absorption, ground, screening, queues and launches)."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from simulators.junction_scenes import FAMILY, QUIET, RANGES, generate, quiet, scene_seeds, scenes
from simulators.junction_scenes.engines import firings, offsets
from simulators.junction_scenes.propagate import Air, delany_bazley
from simulators.junction_scenes.ranges import Coin, Pick, Uni
from simulators.noise_scene import Scene
from tests.noise import family_contract
from tests.noise.spectra import meter

FS = 48_000
ROOT = Path(__file__).resolve().parents[2]
DOCS = ROOT / "docs" / "noise-scenes.md"
PASS = {"lane_distance_m": 7.5, "arrive_frac": 0.5, "through_accel_mps2": 0.0, "turn": False}


def section() -> str:
    return family_contract.section("Junction family")


def one(scene: Scene, cls: str) -> dict:
    got = [s for s in scene.sources if s["class"] == cls and "t_peak" in s]
    assert len(got) == 1, [s["kind"] for s in scene.sources]
    return got[0]


@pytest.fixture(scope="module")
def busy() -> Scene:
    return generate(20261207, duration_s=30.0, n_exhaust_car=2, n_exhaust_moto=1, n_legal_car=4, n_bus=1,
                    n_truck=1, n_moto_legal=1, n_horn=2, n_siren=1, n_bell=1, aps=True, music=True,
                    construction=True, rain=True, wind=True, civil_siren=True, barrier=True)


@pytest.mark.parametrize("full_scale_db", [120.0, 130.0])
def test_a_94_db_calibrator_reads_94_db_on_the_project_meter(full_scale_db: float) -> None:
    scene = generate(1, duration_s=5.0, calibration_tone_db=94.0, full_scale_db=full_scale_db)
    assert meter(scene)[1].laeq == pytest.approx(94.0, abs=0.05)
    assert scene.sources == [{"kind": "calibrator", "class": "none", "laeq_db": 94.0, "f_hz": 1000.0}]


@pytest.mark.parametrize("kind,level,speed,extra", [
    ("n_exhaust_car", 95.0, 8.0, {}),
    ("n_exhaust_car", 112.0, 18.0, {"pop_per_s": 20.0, "pop_db": 14.0}),
    ("n_exhaust_moto", 88.0, 14.0, {"moto_layout": "v_twin"}),
    ("n_legal_car", 70.0, 12.0, {}),
])
def test_an_isolated_passby_reads_its_label_on_the_project_meter(kind, level, speed, extra) -> None:
    lv = {"exhaust_db": level} if "exhaust" in kind else {"legal_car_db": level}
    scene = generate(3, duration_s=12.0, full_scale_db=140.0, **quiet(**{kind: 1}, **PASS, **lv, speed_mps=speed,
                                                                       **extra))
    src = one(scene, "exhaust" if "exhaust" in kind else "other")
    frames, summary = meter(scene)
    assert src["lafmax_7p5_db"] == pytest.approx(level, abs=1e-6)
    assert summary.lafmax == pytest.approx(level, abs=0.15)
    assert abs(frames["lafmax"].argmax() / 10 + 0.05 - src["t_peak"]) <= 0.2
    assert src["t_start"] <= src["t_peak"] <= src["t_end"] and len(src["laf_trace"]) >= 5
    far = generate(3, duration_s=12.0, full_scale_db=140.0, **quiet(**{kind: 1}, **{**PASS, "lane_distance_m": 15.0},
                                                                     **lv, speed_mps=speed, **extra))
    fsrc = one(far, src["class"])
    assert fsrc["lafmax_7p5_db"] == src["lafmax_7p5_db"] and fsrc["lafmax_mic_db"] < level - 3.0
    assert meter(far)[1].lafmax == pytest.approx(fsrc["lafmax_mic_db"], abs=0.15)


def test_a_hard_launch_from_the_queue_reads_its_label() -> None:
    # red until 3.5 s (cycle phase 0.9): the car arrives, queues, and pulls away hard at green, past the pole
    over = quiet(n_exhaust_car=1, exhaust_db=100.0, green_s=20.0, red_s=15.0, cycle_phase=0.9, arrive_frac=0.3,
                 stop_x_m=-12.0, hard_launch=True, limiter_s=0.8, blips=2, turn=False, lane_distance_m=7.5)
    scene = generate(8, duration_s=16.0, full_scale_db=140.0, **over)
    car = one(scene, "exhaust")
    assert car["role"] == "queued" and car["hard_launch"] and car["t_go"] > car["t_stop"]
    assert car["rpm"][1] > 2.5 * car["rpm"][0]
    assert any(e[0] == "blip" for e in car["gear_events"]) and any(e[0] == "shift" for e in car["gear_events"])
    assert meter(scene)[1].lafmax == pytest.approx(100.0, abs=0.15)


def test_deterministic_per_seed_and_different_across_seeds() -> None:
    family_contract.assert_deterministic(generate, scenes, scene_seeds, 6.0)
    assert scene_seeds(3, 99) == [int(x) for x in np.random.SeedSequence([99, 0x4A4E4354]).generate_state(3)]


def test_an_override_does_not_shift_other_draws() -> None:
    base = quiet(n_legal_car=1, n_exhaust_car=1, through_accel_mps2=0.0)
    a = generate(3, duration_s=8.0, **base)
    b = generate(3, duration_s=8.0, **{**base, "rain": True, "exhaust_db": 99.0})
    la, lb = (one(s, "other") for s in (a, b))
    assert la["lafmax_7p5_db"] == lb["lafmax_7p5_db"]
    assert a.labels["draws"]["exhaust_car#0"]["n_modes"] == b.labels["draws"]["exhaust_car#0"]["n_modes"]
    c = generate(3, duration_s=8.0, **{**base, "exhaust_db": (90.0, 91.0), "moto_layout": ["triple"]})
    assert 90.0 <= c.labels["draws"]["exhaust_car#0"]["exhaust_db"] <= 91.0


def test_every_draw_lies_in_its_declared_range(busy: Scene) -> None:
    seen = 0
    for part, log in busy.labels["draws"].items():
        for key, val in log.items():
            spec = RANGES[key]
            seen += 1
            if isinstance(spec, Uni):
                if not (key.startswith("n_") and key in busy.labels["overrides"]):
                    assert spec.lo <= val <= spec.hi, (part, key, val)
                if spec.integer:
                    assert isinstance(val, int)
            elif isinstance(spec, Pick):
                assert val in spec.options, (part, key, val)
            else:
                assert isinstance(spec, Coin) and isinstance(val, bool)
    assert seen > 200
    assert 3.0 <= busy.labels["distance_m"] <= 15.0
    kinds = {s["kind"] for s in busy.sources}
    assert {"aps", "music", "construction", "bell", "siren_civil", "rain", "wind", "traffic_texture"} <= kinds
    assert busy.labels["zone_siren_active"] and busy.labels["screen"] is not None
    for s in busy.sources:
        assert s["class"] in ("exhaust", "siren", "horn", "other", "none")
        if "t_peak" in s:
            assert s["t_start"] <= s["t_peak"] <= s["t_end"] and isinstance(s["overload"], bool)
            assert s["laf_trace_t0"] <= s["t_start"] + 1e-9 and len(s["laf_trace"]) >= 1
        else:
            assert "laeq_db" in s
        if s["kind"] == "horn_two_tone":
            lo, hi = s["f_hz"]
            assert 1.1 - 1e-3 <= hi / lo <= 1.4 + 1e-3
    assert len({s["class"] for s in busy.sources}) == 5


def test_busy_scene_is_finite_json_and_fits_the_contract(busy: Scene) -> None:
    assert busy.audio.shape == (30 * FS,) and busy.audio.dtype == np.float32 and np.all(np.isfinite(busy.audio))
    assert float(np.max(np.abs(busy.audio))) <= 1.0
    json.dumps(busy.labels)
    assert busy.sources is busy.labels["sources"] and busy.labels["family"] == FAMILY == "junction"
    for key in ("v", "generator", "seed", "fs", "duration_s", "distance_m", "mic_height_m", "full_scale_db",
                "zone_siren_active", "sources", "peak_fs", "clipped_samples", "overrides", "draws"):
        assert key in busy.labels


def test_bad_overrides_are_refused() -> None:
    with pytest.raises(ValueError, match="unknown junction-scene override"):
        generate(1, duration_s=2.0, exhaust_level=100)
    with pytest.raises(ValueError, match="siren_pattern"):
        generate(1, duration_s=2.0, siren_pattern="foghorn")
    with pytest.raises(ValueError, match="n_horn"):
        generate(1, duration_s=2.0, n_horn=1.5)
    with pytest.raises(ValueError, match="rain"):
        generate(1, duration_s=2.0, rain="yes")
    with pytest.raises(ValueError, match="exhaust_db"):
        generate(1, duration_s=2.0, exhaust_db=130.0)
    with pytest.raises(ValueError, match="duration_s"):
        generate(1, duration_s=0.5)
    with pytest.raises(ValueError, match="full_scale_db"):
        generate(1, duration_s=2.0, full_scale_db=200.0)
    with pytest.raises(ValueError):
        quiet(bogus=1)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(key=st.sampled_from(sorted(RANGES)), bad=st.one_of(
    st.text(min_size=1, max_size=5), st.just(float("nan")), st.just(float("inf")), st.just(-1e9), st.just(1e9),
    st.just(None), st.just([]), st.just((1.0, 2.0, 3.0)), st.just({"a": 1})))
def test_fuzzed_bad_override_values_raise_value_error(key: str, bad) -> None:
    spec = RANGES[key]
    if isinstance(spec, Pick) and bad in spec.options:
        return
    with pytest.raises(ValueError):
        generate(1, duration_s=1.0, **{key: bad})


def test_clipping_is_flagged_for_a_115_db_exhaust_at_3_m() -> None:
    loud = quiet(n_exhaust_car=1, exhaust_db=115.0, lane_distance_m=3.0, arrive_frac=0.5, turn=False,
                 pop_per_s=20.0)
    clipped = generate(4, duration_s=10.0, full_scale_db=120.0, **loud)
    car = one(clipped, "exhaust")
    assert clipped.labels["clipped_samples"] > 0 and clipped.labels["peak_fs"] > 1.0 and car["overload"]
    assert float(np.max(np.abs(clipped.audio))) <= 1.0 and meter(clipped)[1].clipped > 0
    roomy = generate(4, duration_s=10.0, full_scale_db=150.0, **loud)
    assert roomy.labels["clipped_samples"] == 0 and not one(roomy, "exhaust")["overload"]


def _centroid(scene: Scene, src: dict) -> float:
    i = int(src["t_peak"] * FS)
    seg = scene.audio[max(i - FS // 4, 0):i + FS // 4].astype(float)
    spec = np.abs(np.fft.rfft(seg)) ** 2
    f = np.fft.rfftfreq(seg.size, 1 / FS)
    return float((spec * f).sum() / spec.sum())


def test_spectral_balance_is_drawn_for_legal_and_illegal_vehicles_alike() -> None:
    def centroid(kind: str, bal: float) -> float:
        over = quiet(**{kind: 1}, **PASS, balance_hz=bal, balance_oct=0.5, speed_mps=6.0, tyre_legal_db=0.0,
                     tyre_exhaust_db=-22.0, rasp_db=-18.0, silencer_hz=3000.0, hum_db=-20.0, pop_per_s=0.0)
        s = generate(5, duration_s=10.0, **over)
        return _centroid(s, [x for x in s.sources if "t_peak" in x][0])

    assert centroid("n_exhaust_car", 2500.0) > 2 * centroid("n_exhaust_car", 80.0)
    assert centroid("n_legal_car", 2500.0) > 1.5 * centroid("n_legal_car", 80.0)
    assert centroid("n_legal_car", 2500.0) > centroid("n_exhaust_car", 80.0)


def test_a_v_twin_fires_unevenly_and_a_four_evenly() -> None:
    rpm, thr = np.full(201, 3000.0), np.ones(201)
    p = {"jitter": 0.0, "scatter": 0.0, "misfire": 0.0}
    offs, strokes = offsets("v_twin", 2, 45)
    t, _ = firings(rpm, thr, offs, strokes, p, np.random.default_rng(0))
    gaps = np.diff(t) / (120.0 / 3000.0)
    assert sorted([gaps[0], gaps[1]]) == pytest.approx([315 / 720, 405 / 720], abs=2e-3)
    t4, _ = firings(rpm, thr, *offsets("four", 4, 0), p, np.random.default_rng(0))
    assert np.allclose(np.diff(t4), 0.01, atol=1e-4)
    t2, _ = firings(rpm, thr, *offsets("two_stroke", 1, 0), p, np.random.default_rng(0))
    assert np.allclose(np.diff(t2), 0.02, atol=1e-4)  # a two-stroke fires every revolution


def test_air_absorption_follows_iso_9613_1() -> None:
    a = Air(20.0, 70.0).alpha_db_per_m(np.array([1000.0, 4000.0, 8000.0])) * 1000
    assert a == pytest.approx([4.98, 22.9, 76.6], rel=0.06)  # ISO 9613-2 Table 2, dB/km


def test_grass_reflects_less_than_asphalt_at_grazing_incidence() -> None:
    f = np.array([500.0, 1000.0])
    r = {}
    for name, sigma in (("asphalt", 20000.0), ("grass", 200.0)):
        z = delany_bazley(f, sigma) * 0.1
        r[name] = np.abs((z - 1) / (z + 1))
    assert np.all(r["asphalt"] > 0.9) and np.all(r["grass"] < 0.8)


def test_a_stopped_bus_screens_the_passby_but_not_its_label() -> None:
    base = quiet(n_legal_car=1, **PASS, legal_car_db=78.0, speed_mps=10.0, tyre_legal_db=12.0, mic_height_m=1.5)
    open_ = one(generate(6, duration_s=10.0, **base), "other")
    bus = {"barrier": True, "barrier_h_m": 3.3, "barrier_frac": 0.5, "barrier_x_m": 0.0, "barrier_len_m": 13.0,
           "barrier_on_frac": 0.0, "barrier_stay_s": 40.0}
    hidden = one(generate(6, duration_s=10.0, **{**base, **bus}), "other")
    assert hidden["lafmax_7p5_db"] == open_["lafmax_7p5_db"]
    assert hidden["lafmax_mic_db"] < open_["lafmax_mic_db"] - 5.0


def test_tyre_noise_grows_30_to_35_db_per_decade_of_speed() -> None:
    from simulators.junction_scenes.engines import tyres

    rng = np.random.default_rng(1)
    a = tyres(FS, FS, np.full(101, 6.0), 1000.0, 33.0, rng)
    b = tyres(FS, FS, np.full(101, 18.0), 1000.0, 33.0, rng)
    rise = 20 * np.log10(np.std(b) / np.std(a)) / math.log10(3.0)
    assert rise == pytest.approx(33.0, abs=0.3)


def test_quiet_is_a_dict_of_valid_overrides() -> None:
    assert all(k in RANGES for k in QUIET)
    s = generate(2, duration_s=4.0, **quiet())
    assert [x["kind"] for x in s.sources] == ["mic_self_noise"]
    assert meter(s)[1].laeq < 20.0


def test_the_documented_example_runs() -> None:
    family_contract.run_examples(section())


def test_the_docs_list_every_declared_range() -> None:
    family_contract.assert_ranges_listed(section(), RANGES)


def test_the_documented_command_writes_wav_and_labels_and_bad_args_exit_2(tmp_path: Path) -> None:
    from scipy.io import wavfile

    env = {"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"}  # for the bad-argument runs below
    argv, summary = family_contract.run_documented_command(section(), "simulators.junction_scenes", tmp_path)
    seed, dur = int(argv[argv.index("--seed") + 1]), float(argv[argv.index("--duration") + 1])
    assert summary["family"] == "junction" and [s["seed"] for s in summary["scenes"]] == scene_seeds(2, seed)
    first = summary["scenes"][0]
    out = tmp_path / argv[argv.index("--out") + 1]
    fs, audio = wavfile.read(out / first["wav"])
    again = generate(first["seed"], duration_s=dur)
    assert fs == FS and audio.dtype == np.float32 and audio.tobytes() == again.audio.tobytes()
    assert json.loads((out / first["labels"]).read_text()) == json.loads(json.dumps(again.labels))
    for bad in (["--count", "0"], ["--count", "x"], ["--count", "1", "--duration", "0"]):
        r = subprocess.run([sys.executable, "-m", "simulators.junction_scenes", "--seed", "1", "--out",
                            str(tmp_path), *bad], cwd=tmp_path, capture_output=True, text=True, timeout=60, env=env)
        assert r.returncode == 2, (bad, r.stderr)


def test_block_wise_doppler_has_the_right_size() -> None:
    from simulators.junction_scenes.propagate import CTRL, C, Path, render

    v, n = 20.0, 20 * FS
    tone = np.sin(2 * np.pi * 1000.0 * np.arange(n) / FS)
    tt = np.arange(20 * CTRL + 1) / CTRL
    path = Path(0.0, v * (tt - 10.0), np.full(tt.size, 7.5), 0.4)
    start, y = render(tone, FS, path, 0.4, Air(20.0, 70.0), 1e7, None, n)

    def heard(t: float) -> float:
        i = int(t * FS) - start
        seg = y[i - FS // 4:i + FS // 4] * np.hanning(FS // 2)
        spec = np.abs(np.fft.rfft(seg, 32 * FS))
        k = int(np.argmax(spec))
        a, b, c = np.log(spec[k - 1:k + 2])
        return (k + 0.5 * (a - c) / (a - 2 * b + c)) / 32

    def expected(t: float) -> float:
        tau = t
        for _ in range(60):  # emission time heard at t: t = tau + r(tau) / c
            tau = t - math.hypot(v * (tau - 10.0), 7.5) / C
        x = v * (tau - 10.0)
        return 1000.0 / (1 + v * x / math.hypot(x, 7.5) / C)

    assert heard(4.0) > 1050 and heard(16.0) < 950
    assert heard(4.0) == pytest.approx(expected(4.0), rel=1e-3)
    assert heard(16.0) == pytest.approx(expected(16.0), rel=1e-3)


def test_distractors_and_the_civil_siren_are_scaled_at_the_microphone() -> None:
    scene = generate(12, duration_s=12.0, full_scale_db=130.0, **quiet(aps=True, aps_db=70.0, aps_m=3.0))
    aps = one(scene, "other")
    assert aps["lafmax_mic_db"] == pytest.approx(70.0, abs=0.01)
    assert aps["lafmax_7p5_db"] == pytest.approx(70.0 + 20 * math.log10(3.0 / 7.5), abs=0.01)
    assert meter(scene)[1].lafmax == pytest.approx(70.0, abs=0.15)
    civ = generate(12, duration_s=12.0, full_scale_db=130.0, **quiet(civil_siren=True, civil_db=75.0, civil_m=1000.0))
    src = one(civ, "siren")
    assert src["kind"] == "siren_civil" and civ.labels["zone_siren_active"][0][1] == 12.0
    assert meter(civ)[1].lafmax == pytest.approx(75.0, abs=0.15)


def test_the_queue_discharges_one_headway_apart_and_turns_bend_the_path() -> None:
    from simulators.junction_scenes.traffic import Light, plan, queue_roles

    light = Light(green_s=20.0, red_s=30.0, phase=0.5)  # green at -25..-5, red -5..25, green 25..45
    roles = queue_roles([0.0, 3.0, 10.0, 27.0, 40.0], light, headway=2.0, gap=7.0, x_stop=-10.0)
    assert [r[0] for r in roles] == ["queued", "queued", "queued", "queued", "through"]
    assert [r[2] for r in roles[:4]] == pytest.approx([25.0, 27.0, 29.0, 31.0])  # the late arrival joins the tail
    assert [r[3] for r in roles[:4]] == pytest.approx([-10.0, -17.0, -24.0, -31.0])
    turn = {"side": "away", "after": 5.0, "radius": 10.0}
    mo = plan("through", 10.0, 10.0, 0.0, 3.0, 2.0, 15.0, -10.0, None, 6.0, 0.4, turn, 30.0)
    r = np.hypot(mo.path.x, mo.path.y)
    assert mo.path.y.min() == pytest.approx(6.0) and mo.path.y.max() > 40.0
    assert mo.path.x.max() == pytest.approx(-10.0 + 5.0 + 10.0, abs=1e-6)  # then straight up the side street
    assert 6.3 < r.min() < 8.0  # the bend starts 5 m before the pole: never as close as the lane
    stop = plan("queued", 5.0, 12.0, 0.0, 3.0, 2.0, 15.0, -10.0, 12.0, 6.0, 0.4, None, 30.0)
    t = stop.t0 + np.arange(stop.v.size) / 100
    still = t[stop.v == 0.0]
    assert still.min() == pytest.approx(5.0, abs=0.02) and still.max() == pytest.approx(12.0, abs=0.02)
    assert np.interp(8.0, t, stop.path.x) == pytest.approx(-10.0, abs=0.05)


def test_the_gearbox_shifts_up_on_a_launch_and_starts_a_rolling_car_in_a_fitting_gear() -> None:
    from simulators.junction_scenes.engines import rpm_track

    p = {"idle": 800.0, "shift": 2500.0, "u1": 2.0, "step": 1.5, "launch_rpm": 1200.0, "limiter_s": 0.0}
    rolling = np.full(300, 18.0)
    rpm, thr, events = rpm_track(rolling, p, False, None, 0.0, np.random.default_rng(0))
    assert rpm.max() <= 2500.0 and rpm.min() > 800.0 and not events
    v = np.concatenate([np.zeros(200), np.minimum(2.0 * np.arange(1000) / 100, 15.0)])
    rpm, thr, events = rpm_track(v, p, False, 2.0, 0.0, np.random.default_rng(0))
    shifts = [t for kind, t in events if kind == "shift"]
    assert len(shifts) >= 3 and rpm[:200].max() == 800.0 and rpm.max() <= 2500.0 * 1.01
    i = int(shifts[0] * 100)
    assert rpm[i] < rpm[i - 1] / 1.3 and thr[i] == 0.0  # the rpm drops by the gear step, throttle shut
