"""The kerbside scene family (simulators.kerbside_scenes, issue 13): interface, determinism, declared ranges, level
truth against the project's level meter, the canyon, Doppler, engines, the MEMS microphone, the ADC, CLI, docs."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from scipy import signal

from bench import noise_accuracy
from simulators.kerbside_scenes import RANGES, generate, quiet, scene_seeds, scenes
from simulators.kerbside_scenes.canyon import C_AIR, CTRL_HZ, Street, mems, propagate
from simulators.kerbside_scenes.engines import firings
from simulators.kerbside_scenes.ranges import Coin, Pick, Uni
from simulators.noise_scene import Scene
from tests.noise import family_contract
from tests.noise.spectra import meter, peak_frequency

FS = 48_000
ROOT = Path(__file__).resolve().parents[2]
DOCS = ROOT / "docs" / "noise-scenes.md"
FLAT = {"mems_response": False, "t_frac": 0.5, "lane_distance_m": 7.5}


def section() -> str:
    return family_contract.section("Kerbside family")


@pytest.fixture(scope="module")
def busy() -> Scene:
    return generate(20261206, duration_s=30.0, n_siren=1, n_horn=2, n_exhaust_car=2, n_exhaust_moto=1, n_legal_car=2,
                    n_scooter=1, n_ev=1, n_truck=1, n_tram=1, n_music_car=1, n_event=2, platoon=True, rain=True,
                    wind=True, civil_siren=True)


def test_deterministic_per_seed_and_different_across_seeds() -> None:
    family_contract.assert_deterministic(generate, scenes, scene_seeds, 10.0)


def test_an_override_does_not_shift_other_draws() -> None:
    a = generate(3, duration_s=8.0, **quiet(n_legal_car=1, n_exhaust_car=1))
    b = generate(3, duration_s=8.0, **quiet(n_legal_car=1, n_exhaust_car=1, rain=True, exhaust_db=99.0,
                                            near_limit=False))
    la = [s for s in a.sources if s["kind"] == "legal_car"][0]
    lb = [s for s in b.sources if s["kind"] == "legal_car"][0]
    assert la["lafmax_7p5_db"] == lb["lafmax_7p5_db"] and la["t_peak"] == lb["t_peak"]
    assert [s for s in b.sources if s["class"] == "exhaust"][0]["lafmax_7p5_db"] == pytest.approx(99.0, abs=0.01)
    assert a.labels["draws"]["exhaust_car#0"]["pipe_len_m"] == b.labels["draws"]["exhaust_car#0"]["pipe_len_m"]
    c = generate(3, duration_s=8.0, **quiet(n_legal_car=1, n_exhaust_car=1, exhaust_db=(90.0, 91.0),
                                            near_limit=False, moto_layout=["v_twin"]))
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
            elif isinstance(spec, Pick):
                assert val in spec.options, (part, key, val)
            else:
                assert isinstance(spec, Coin) and isinstance(val, bool)
    assert seen > 150
    assert 3.0 <= busy.labels["distance_m"] <= 15.0
    kinds = {s["kind"] for s in busy.sources}
    assert {"scooter", "ev_car", "truck", "tram", "music_car", "siren_civil"} <= kinds
    for s in busy.sources:
        assert s["class"] in ("exhaust", "siren", "horn", "other", "none")
        if s["class"] == "exhaust":
            assert 80.0 - 0.01 <= s["lafmax_7p5_db"] <= 112.0 + 0.01
        if "t_peak" in s:
            assert s["t_start"] <= s["t_peak"] <= s["t_end"]
        if s["class"] == "siren":
            assert len(s["laf_trace"]) > 10 and "laf_trace_t0" in s
        if s["kind"] in ("horn_two_tone", "horn_clipped"):
            lo, hi = s["f_hz"]
            assert 1.1 - 1e-3 <= hi / lo <= 1.4 + 1e-3
    cars = sorted(s["t_cpa"] for s in busy.sources if "t_cpa" in s and s["class"] != "siren")
    assert min(np.diff(cars)) <= 2.5  # a platoon: vehicles pass close together
    assert busy.labels["zone_siren_active"]  # the civil-defence siren is known to the hub


def test_bad_overrides_are_refused() -> None:
    with pytest.raises(ValueError, match="unknown kerbside-scene override"):
        generate(1, duration_s=5.0, exhaust_level=100)
    with pytest.raises(ValueError, match="siren_pattern"):
        generate(1, duration_s=5.0, siren_pattern="foghorn")
    with pytest.raises(ValueError, match="n_horn"):
        generate(1, duration_s=5.0, n_horn=1.5)
    with pytest.raises(ValueError, match="rain"):
        generate(1, duration_s=5.0, rain="yes")
    with pytest.raises(ValueError, match="duration_s"):
        generate(1, duration_s=0.0)


@pytest.mark.parametrize("full_scale_db", [120.0, 130.0])
def test_a_94_db_calibrator_reads_94_db_on_the_level_meter(full_scale_db: float) -> None:
    scene = generate(1, duration_s=5.0, calibration_tone_db=94.0, full_scale_db=full_scale_db)
    assert meter(scene)[1].laeq == pytest.approx(94.0, abs=0.05)


def test_texture_levels_agree_with_the_level_meter() -> None:
    for tex in ("rain", "wind"):
        alone = generate(5, duration_s=12.0, **quiet(distant_db=40.0, self_noise_db=26.0, mems_response=False,
                                                     **{tex: True}))
        parts = [s["laeq_db"] for s in alone.sources if s["class"] == "none"]
        expected = 10 * math.log10(sum(10 ** (p / 10) for p in parts))
        assert meter(alone)[1].laeq == pytest.approx(expected, abs=0.3), tex


@pytest.mark.parametrize("kind,extra", [("n_exhaust_car", {"story": "cruise"}), ("n_exhaust_moto", {"story": "launch"}),
                                        ("n_bus", {}), ("n_horn", {"horn_speed_mps": 8.0}),
                                        ("n_siren", {"siren_mode": "passing"})])
def test_isolated_passby_label_is_the_level_meters_reading_at_7p5_m(kind: str, extra: dict) -> None:
    base = {**quiet(), kind: 1, **FLAT, "exhaust_db": 101.0, "near_limit": False, "bus_db": 84.0,
            "horn_db": 100.0, "siren_db": 105.0, "misfire_p": 0.0, "pop_per_s": 0.0, **extra}
    scene = generate(11, duration_s=30.0, full_scale_db=150.0, **base)
    src = [s for s in scene.sources if "t_peak" in s][0]
    frames, summary = meter(scene)
    drawn = {"n_exhaust_car": 101.0, "n_exhaust_moto": 101.0, "n_bus": 84.0, "n_horn": 100.0, "n_siren": 105.0}[kind]
    assert src["lafmax_7p5_db"] == drawn
    assert summary.lafmax == pytest.approx(drawn, abs=0.1)
    assert summary.sel == pytest.approx(src["sel_7p5_db"], abs=0.1)
    assert abs(frames["lafmax"].argmax() / 10 - src["t_peak"]) <= 0.15
    # the same source on a farther lane: the 7.5 m label is unchanged, the microphone hears less
    far = generate(11, duration_s=30.0, full_scale_db=150.0, **{**base, "lane_distance_m": 15.0})
    fsrc = [s for s in far.sources if "t_peak" in s][0]
    assert fsrc["lafmax_7p5_db"] == drawn
    assert meter(far)[1].lafmax == pytest.approx(fsrc["lafmax_mic_db"], abs=0.1)
    assert fsrc["lafmax_mic_db"] < drawn - 3.0


def test_crackle_label_agrees_with_the_meter_within_a_quarter_db() -> None:
    base = {**quiet(), "n_exhaust_car": 1, **FLAT, "story": "overrun", "pop_per_s": 25.0, "pop_db": 10.0,
            "misfire_p": 0.015, "exhaust_db": 100.0, "near_limit": False}
    scene = generate(11, duration_s=30.0, full_scale_db=150.0, **base)
    src = [s for s in scene.sources if s["class"] == "exhaust"][0]
    assert src["pops"] > 20
    assert meter(scene)[1].lafmax == pytest.approx(src["lafmax_7p5_db"], abs=0.25)


@pytest.mark.parametrize("extra", [{"n_siren": 1, "siren_mode": "far", "siren_far_db": 75.0, "siren_far_m": 200.0},
                                   {"n_event": 1, "event_kind": "jackhammer", "event_db": 80.0, "event_dist_m": 15.0}])
def test_far_sirens_and_distractors_are_scaled_at_the_microphone(extra: dict) -> None:
    scene = generate(12, duration_s=20.0, full_scale_db=130.0, **quiet(mems_response=False, t_frac=0.5, **extra))
    src = [s for s in scene.sources if "t_peak" in s][0]
    drawn = extra.get("siren_far_db", extra.get("event_db"))
    dist = extra.get("siren_far_m", extra.get("event_dist_m"))
    assert src["lafmax_mic_db"] == pytest.approx(drawn, abs=0.01) and src["source_distance_m"] == dist
    assert meter(scene)[1].lafmax == pytest.approx(drawn, abs=0.1)
    assert src["lafmax_7p5_db"] == pytest.approx(drawn + 20 * math.log10(dist / 7.5), abs=0.01)


def _street(**kw) -> Street:
    base = {"d": 6.0, "mic_h": 3.0, "setback": 2.0, "width": 20.0, "open_side": False, "facade_r": 0.8,
            "facade_hf": 20000.0, "ground_q": 0.9}
    return Street(**{**base, **kw})


def test_the_canyon_delivers_delayed_copies_from_the_road_and_both_facades() -> None:
    st = _street()
    e = np.zeros(FS // 2, np.float32)
    e[100] = 1.0
    x = np.full(FS // 2 // (FS // CTRL_HZ) + 2, 4.0)  # stationary, 4 m along the street
    y = propagate(e, FS, x, 0.5, st)
    peaks = []
    for dy, dz, g, _ in st.paths(0.5):
        r = math.sqrt(16 + dy * dy + dz * dz)
        k = 100 + r / C_AIR * FS
        seg = y[int(k) - 3:int(k) + 4]
        peaks.append((r, g, float(seg.sum())))
    assert len(peaks) == 4
    for r, g, got in peaks:  # each arrival carries g / r (facade: the flat low-pass keeps all of it here)
        assert got == pytest.approx(g / r, rel=0.05)
    assert peaks[3][0] > peaks[2][0] > peaks[1][0] > peaks[0][0]  # later and later
    assert len(_street(open_side=True).paths(0.5)) == 3


def test_a_facade_loses_high_frequencies() -> None:
    st = _street(facade_hf=1000.0, ground_q=0.0)
    e = np.zeros(FS // 2, np.float32)
    e[100] = 1.0
    x = np.full(FS // 2 // (FS // CTRL_HZ) + 2, 0.0)
    y = propagate(e, FS, x, 0.5, st)
    r_back = math.sqrt(st.paths(0.5)[2][0] ** 2 + st.paths(0.5)[2][1] ** 2)
    k = int(100 + r_back / C_AIR * FS)
    seg = y[k - 5:k + 400]
    spec = np.abs(np.fft.rfft(seg, 4096))
    f = np.fft.rfftfreq(4096, 1 / FS)
    assert spec[f > 8000].mean() < 0.7 * spec[(f > 50) & (f < 300)].mean()


def test_doppler_by_the_fractional_delay_line_has_the_right_size() -> None:
    st = _street(ground_q=0.0, facade_r=0.0, open_side=True, d=7.5, mic_h=0.5)
    v, n = 20.0, 20 * FS
    e = np.sin(2 * np.pi * 1000.0 * np.arange(n) / FS).astype(np.float32)
    tt = np.arange(20 * CTRL_HZ + 1) / CTRL_HZ
    y = propagate(e, FS, v * (tt - 10.0), 0.5, st)

    def expected(t: float) -> float:
        tau = t
        for _ in range(50):  # the emission time heard at t: t = tau + r(tau) / c
            tau = t - math.hypot(v * (tau - 10.0), 7.5) / C_AIR
        x = v * (tau - 10.0)
        return 1000.0 / (1 + v * x / math.hypot(x, 7.5) / C_AIR)

    early, late = peak_frequency(y, 4.0, FS, 0.0), peak_frequency(y, 16.0, FS, 0.0)
    assert early > 1050 and late < 950
    assert early == pytest.approx(expected(4.0), rel=1e-3) and late == pytest.approx(expected(16.0), rel=1e-3)
    assert float(np.max(np.abs(y[int(9.9 * FS):int(10.1 * FS)]))) == pytest.approx(1 / 7.5, rel=0.02)


def test_a_v_twin_fires_unevenly_and_an_inline_four_evenly() -> None:
    rpm = np.full(2 * CTRL_HZ + 1, 3000.0)
    t, cyl = firings(rpm, [0.0, (360 + 45) / 720], 4)
    gaps = np.diff(t) / (120.0 / 3000.0)  # in cycles
    assert np.allclose(gaps[0::2], gaps[0]) and np.allclose(gaps[1::2], gaps[1])
    assert sorted([gaps[0], gaps[1]]) == pytest.approx([315 / 720, 405 / 720], abs=1e-3)  # 360 -/+ 45 degrees
    t4, _ = firings(rpm, [0, 0.25, 0.5, 0.75], 4)
    assert np.allclose(np.diff(t4), 0.01, atol=2e-3)


def test_a_launch_waits_at_the_light_then_revs_up() -> None:
    scene = generate(4, duration_s=30.0, **quiet(n_exhaust_car=1, story="launch", idle_s=5.0, stop_x_m=-20.0,
                                                 t_frac=0.6, misfire_p=0.0))
    car = [s for s in scene.sources if s["class"] == "exhaust"][0]
    idle = scene.labels["draws"]["exhaust_car#0"]["idle_rpm"]
    assert car["rpm"][0] == pytest.approx(idle, rel=0.05) and car["rpm"][1] > 1.5 * idle
    assert car["story"] == "launch"


def test_legal_silencer_removes_the_high_frequencies_of_the_same_engine() -> None:
    def centroid(kind: str) -> float:
        s = generate(9, duration_s=14.0, **quiet(**{kind: 1}, **FLAT, story="cruise", tyre_db=-22.0,
                                                 legal_engine_db=0.0, misfire_p=0.0, pop_per_s=0.0))
        src = [x for x in s.sources if "t_peak" in x][0]
        i = int(src["t_peak"] * FS)
        spec = np.abs(np.fft.rfft(s.audio[i - FS // 2:i + FS // 2].astype(float))) ** 2
        f = np.fft.rfftfreq(FS, 1 / FS)
        return float((spec * f).sum() / spec.sum())

    assert centroid("n_legal_car") < 0.7 * centroid("n_exhaust_car")


def test_a_squealing_tram_is_a_narrow_tone_at_its_squeal_frequency() -> None:
    scene = generate(6, duration_s=20.0, **quiet(n_tram=1, squeal=True, squeal_hz=3000.0, **FLAT))
    tram = [s for s in scene.sources if s["kind"] == "tram"][0]
    assert tram["class"] == "other" and tram["squeal_hz"] == 3000.0
    i = int(tram["t_peak"] * FS)
    spec = np.abs(np.fft.rfft(scene.audio[i - FS // 2:i + FS // 2].astype(float) * np.hanning(FS))) ** 2
    f = np.fft.rfftfreq(FS, 1 / FS)
    near = (f > 2850) & (f < 3150)  # the tone, with its +-1 % wobble and Doppler of a slow tram
    assert 2900 < f[np.argmax(spec)] < 3100
    assert spec[near].sum() > 3 * spec[(f > 1500) & (f < 6000) & ~near].sum()


def test_distant_traffic_low_pass_moves_the_background_spectrum() -> None:
    def centroid(lp: float) -> float:
        s = generate(8, duration_s=10.0, **quiet(distant_db=60.0, distant_lp_hz=lp, distant_hum_db=0.0,
                                                 mems_response=False))
        spec = np.abs(np.fft.rfft(s.audio.astype(float))) ** 2
        f = np.fft.rfftfreq(s.audio.size, 1 / FS)
        return float((spec * f).sum() / spec.sum())

    assert centroid(2500.0) > 2 * centroid(250.0)


def test_the_mems_microphone_has_its_vent_high_pass_and_resonance() -> None:
    imp = np.zeros(FS, np.float32)
    imp[0] = 1.0
    h = mems(imp, FS, 60.0, 4.0, 12000.0)
    f, resp = signal.freqz(h, worN=[20.0, 1000.0, 12000.0], fs=FS)
    db = 20 * np.log10(np.abs(resp))
    assert db[1] == pytest.approx(0.0, abs=0.2) and db[2] == pytest.approx(4.0, abs=0.3) and db[0] < -10.0


def test_clipping_is_counted_and_labelled_and_a_higher_full_scale_avoids_it() -> None:
    loud = {**quiet(), "n_exhaust_car": 1, "exhaust_db": 112.0, "near_limit": False, "lane_distance_m": 3.0,
            "t_frac": 0.5, "story": "overrun", "pop_per_s": 25.0, "pop_db": 10.0}
    clipped = generate(4, duration_s=20.0, full_scale_db=120.0, **loud)
    assert np.all(np.isfinite(clipped.audio)) and clipped.audio.dtype == np.float32
    assert float(np.max(np.abs(clipped.audio))) <= 1.0
    exh = [s for s in clipped.sources if s["class"] == "exhaust"][0]
    assert clipped.labels["clipped_samples"] > 0 and exh["overload"] and exh["peak_fs_alone"] > 1.0
    assert meter(clipped)[1].clipped > 0
    roomy = generate(4, duration_s=20.0, full_scale_db=150.0, **loud)
    assert roomy.labels["clipped_samples"] == 0 and roomy.labels["peak_fs"] < 1.0
    assert not [s for s in roomy.sources if s["class"] == "exhaust"][0]["overload"]


def test_busy_scene_is_finite_and_json_labelled(busy: Scene) -> None:
    assert busy.audio.shape == (30 * FS,) and np.all(np.isfinite(busy.audio))
    assert float(np.max(np.abs(busy.audio))) <= 1.0
    json.dumps(busy.labels)
    assert busy.sources is busy.labels["sources"] and busy.labels["family"] == "kerbside"
    assert {"exhaust", "siren", "horn", "other", "none"} <= {s["class"] for s in busy.sources}
    for key in ("distance_m", "mic_height_m", "zone_siren_active", "full_scale_db", "clipped_samples", "peak_fs"):
        assert key in busy.labels


def test_the_documented_example_runs() -> None:
    family_contract.run_examples(section())


def test_the_docs_list_every_declared_range() -> None:
    family_contract.assert_ranges_listed(section(), RANGES)


def test_the_documented_command_writes_wav_and_labels(tmp_path: Path) -> None:
    from scipy.io import wavfile

    env = {"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"}  # for the bad-argument runs below
    argv, summary = family_contract.run_documented_command(section(), "simulators.kerbside_scenes", tmp_path)
    seed = int(argv[argv.index("--seed") + 1])
    dur = float(argv[argv.index("--duration") + 1])
    assert summary["family"] == "kerbside" and summary["family_seed"] == seed
    assert [s["seed"] for s in summary["scenes"]] == scene_seeds(2, seed)
    first = summary["scenes"][0]
    out = tmp_path / argv[argv.index("--out") + 1]
    fs, audio = wavfile.read(out / first["wav"])
    again = generate(first["seed"], duration_s=dur, full_scale_db=120.0)
    assert fs == FS and audio.dtype == np.float32 and audio.tobytes() == again.audio.tobytes()
    assert json.loads((out / first["labels"]).read_text()) == json.loads(json.dumps(again.labels))
    bad = subprocess.run([sys.executable, "-m", "simulators.kerbside_scenes", "--seed", "1", "--out", str(tmp_path),
                          "--count", "0"], cwd=tmp_path, capture_output=True, text=True, timeout=60, env=env)
    assert bad.returncode == 2 and "--count" in bad.stderr


def test_the_benchmark_scores_the_kerbside_family(capsys) -> None:
    bench_doc = (ROOT / "docs" / "benchmarks.md").read_text()
    assert "python -m bench.noise_accuracy --family kerbside --scenes 40 --seed 17 --json" in bench_doc
    assert "python -m bench.noise_accuracy --family kerbside --scenes 8 --seed 1 --json" in bench_doc
    assert noise_accuracy.FAMILIES["kerbside"] == "simulators.kerbside_scenes"
    assert noise_accuracy.main(["--family", "kerbside", "--scenes", "1", "--seed", "3", "--duration", "12",
                                "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    fam = out["families"]["kerbside"]
    assert list(out["families"]) == ["kerbside"] and fam["scenes"] == 1 and fam["full_scale_db"] == 130.0
    for key in ("exhaust", "enforcement", "confusion", "level_error_7p5_db", "tonal_false_alarms"):
        assert key in fam
