"""The held-out scene family (simulators.holdout_scenes, issue 13): determinism, declared ranges, its own
A/Fast level truth against the project's level meter, Doppler, the ADC's full scale, the CLI and the docs."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from bench import noise_accuracy
from simulators.holdout_scenes import RANGES, generate, quiet, scene_seeds, scenes
from simulators.holdout_scenes import meter as hm
from simulators.holdout_scenes.engines import Tonal
from simulators.holdout_scenes.render import C_AIR, render
from simulators.holdout_scenes.render import Path as Lane
from simulators.holdout_scenes.spec import Coin, Pick, Uni
from simulators.noise_scene import Scene
from tests.noise import family_contract
from tests.noise.spectra import meter, peak_frequency

FS = 48_000
ROOT = Path(__file__).resolve().parents[2]
DOCS = ROOT / "docs" / "noise-scenes.md"


def section() -> str:
    return family_contract.section("Held-out family")


@pytest.fixture(scope="module")
def busy() -> Scene:
    return generate(20261205, duration_s=30.0, n_siren=2, n_horn=2, n_exhaust_car=2, n_exhaust_moto=1,
                    n_legal_car=2, platoon=True, rain=True, wind=True, idle_engine=True, civil_siren=True)


def test_deterministic_per_seed_and_different_across_seeds() -> None:
    family_contract.assert_deterministic(generate, scenes, scene_seeds, 10.0)


def test_an_override_does_not_shift_other_draws() -> None:
    a = generate(3, duration_s=8.0, **quiet(n_legal_car=1, n_exhaust_car=1))
    b = generate(3, duration_s=8.0, **quiet(n_legal_car=1, n_exhaust_car=1, rain=True, exhaust_db=99.0))
    la = [s for s in a.sources if s["kind"] == "legal_car"][0]
    lb = [s for s in b.sources if s["kind"] == "legal_car"][0]
    assert la["lafmax_7p5_db"] == lb["lafmax_7p5_db"] and la["t_peak"] == lb["t_peak"]
    assert [s for s in b.sources if s["class"] == "exhaust"][0]["lafmax_7p5_db"] == pytest.approx(99.0, abs=0.01)
    assert a.labels["draws"]["exhaust_car#0"]["rpm_base"] == b.labels["draws"]["exhaust_car#0"]["rpm_base"]


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
    for s in busy.sources:
        assert s["class"] in ("exhaust", "siren", "horn", "other", "none")
        if s["class"] == "exhaust":
            assert 80.0 - 0.01 <= s["lafmax_7p5_db"] <= 116.0 + 0.01
        if "t_peak" in s:
            assert s["t_start"] <= s["t_peak"] <= s["t_end"]
        if s["class"] == "siren":
            assert len(s["laf_trace"]) > 10 and "laf_trace_t0" in s
        if s["kind"] == "horn_two_tone":
            lo, hi = s["f_hz"]
            assert 1.1 - 1e-3 <= hi / lo <= 1.4 + 1e-3
    cars = sorted(s["t_cpa"] for s in busy.sources if s.get("name", "").startswith(("exhaust", "legal")))
    assert min(np.diff(cars)) <= 3.0  # a platoon: vehicles pass close together
    assert busy.labels["zone_siren_active"]  # the civil siren is known to the hub


def test_bad_overrides_are_refused() -> None:
    with pytest.raises(ValueError, match="unknown holdout-scene override"):
        generate(1, duration_s=5.0, exhaust_level=100)
    with pytest.raises(ValueError, match="siren_pattern"):
        generate(1, duration_s=5.0, siren_pattern="foghorn")
    with pytest.raises(ValueError, match="n_horn"):
        generate(1, duration_s=5.0, n_horn=1.5)
    with pytest.raises(ValueError, match="rain"):
        generate(1, duration_s=5.0, rain="yes")
    with pytest.raises(ValueError, match="duration_s"):
        generate(1, duration_s=0.0)


def test_a_weighting_matches_the_iec_61672_table() -> None:
    # IEC 61672-1 table 3 at the exact base-10 frequencies 1000 * 10^(n/10) (31.5 Hz ... 16 kHz), 0.1 dB steps
    table = {-15: -39.4, -12: -26.2, -9: -16.1, -6: -8.6, -3: -3.2, 0: 0.0, 3: 1.2, 6: 1.0, 9: -1.1, 12: -6.6}
    f = 1000.0 * 10 ** (np.array(list(table)) / 10)
    got = hm.a_db(f)
    assert np.allclose(got, list(table.values()), atol=0.051)
    assert np.allclose(10 * np.log10(hm.a_power(f)), got, atol=1e-9)


@pytest.mark.parametrize("full_scale_db", [120.0, 130.0])
def test_a_94_db_calibrator_reads_94_db_on_the_level_meter(full_scale_db: float) -> None:
    scene = generate(1, duration_s=5.0, calibration_tone_db=94.0, full_scale_db=full_scale_db)
    frames, summary = meter(scene)
    assert summary.laeq == pytest.approx(94.0, abs=0.05)
    assert hm.laeq(scene.audio.astype(float), FS, full_scale_db) == pytest.approx(94.0, abs=0.01)


def test_texture_levels_agree_with_the_level_meter() -> None:
    scene = generate(5, duration_s=12.0, **quiet(road_db=62.0, distant_db=55.0, rain=True, wind=True,
                                                 idle_engine=True))
    parts = [s["laeq_db"] for s in scene.sources if s["class"] == "none"]
    assert len(parts) == 5
    expected = 10 * math.log10(sum(10 ** (p / 10) for p in parts))
    _, summary = meter(scene)
    assert summary.laeq == pytest.approx(expected, abs=0.5)
    for tex in ("rain", "wind", "idle_engine"):
        alone = generate(5, duration_s=12.0, **quiet(road_db=0.0, **{tex: True}))
        level = [s["laeq_db"] for s in alone.sources if s["kind"] == tex][0]
        assert meter(alone)[1].laeq == pytest.approx(level, abs=0.15), tex


@pytest.mark.parametrize("kind,story", [("n_exhaust_car", "cruise"), ("n_exhaust_moto", "accelerate"),
                                        ("n_bus", "cruise"), ("n_horn", "cruise")])
def test_isolated_passby_label_is_the_level_meters_reading_at_7p5_m(kind: str, story: str) -> None:
    base = {**quiet(), kind: 1, "t_frac": 0.5, "ground_reflection": False, "rpm_story": story,
            "pop_per_s": 0.0, "exhaust_db": 101.0, "bus_db": 84.0, "horn_db": 100.0, "lane_distance_m": 7.5,
            "horn_moving": True}
    scene = generate(11, duration_s=30.0, full_scale_db=150.0, **base)
    src = [s for s in scene.sources if "t_peak" in s][0]
    frames, summary = meter(scene)
    # the label comes from the family's own A/Fast implementation; the project's meter must read the same
    assert summary.lafmax == pytest.approx(src["lafmax_7p5_db"], abs=0.1)
    assert summary.sel == pytest.approx(src["sel_7p5_db"], abs=0.1)
    assert abs(frames["lafmax"].argmax() / 10 - src["t_peak"]) <= 0.15
    drawn = {"n_exhaust_car": 101.0, "n_exhaust_moto": 101.0, "n_bus": 84.0, "n_horn": 100.0}[kind]
    assert src["lafmax_7p5_db"] == pytest.approx(drawn, abs=0.01)
    # the same source on a farther lane: the 7.5 m label is unchanged, the microphone hears less
    far = generate(11, duration_s=30.0, full_scale_db=150.0, **{**base, "lane_distance_m": 15.0})
    fsrc = [s for s in far.sources if "t_peak" in s][0]
    assert fsrc["lafmax_7p5_db"] == pytest.approx(src["lafmax_7p5_db"], abs=0.01)
    assert meter(far)[1].lafmax == pytest.approx(fsrc["lafmax_mic_db"], abs=0.1)
    assert fsrc["lafmax_mic_db"] < src["lafmax_mic_db"] - 3.0


def test_crackle_label_agrees_with_the_meter_within_its_high_frequency_difference() -> None:
    base = {**quiet(), "n_exhaust_car": 1, "t_frac": 0.5, "ground_reflection": False, "rpm_story": "overrun",
            "pop_per_s": 30.0, "pop_db": 14.0, "exhaust_db": 100.0, "lane_distance_m": 7.5}
    scene = generate(11, duration_s=30.0, full_scale_db=150.0, **base)
    src = [s for s in scene.sources if s["class"] == "exhaust"][0]
    assert src["pops"] > 50
    # the label uses the analogue A-weighting up to 24 kHz; a digital meter rolls off above ~10 kHz
    assert meter(scene)[1].lafmax == pytest.approx(src["lafmax_7p5_db"], abs=0.25)


class _Tone:
    """A stationary-spectrum 1 kHz tone source for the Doppler test."""
    has_tonal = True

    def __init__(self, fs_r: int) -> None:
        self.groups = [Tonal(-40.0, fs_r, np.full(60 * 200, 1000.0), np.array([1.0]),
                             lambda tau, f: np.ones((1, tau.size)), [0.0])]

    def tonal_groups(self):
        return self.groups

    def directivity(self, cos):
        return np.ones_like(cos)

    def broadband(self, *a):
        return None

    def events(self):
        return []


def test_doppler_shift_of_a_passing_tone_has_the_right_sign_and_size() -> None:
    v, lane = 20.0, 7.5
    path = Lane(lane, 0.5, 0.5, 0.0, v)
    y = render(_Tone(12_000), path, -10 * FS, 10 * FS, FS, None)

    def freq(t: float) -> float:
        return peak_frequency(y, t, FS)

    def expected(t: float) -> float:
        tau, r, cos = path.geometry(np.array([t]))
        return 1000.0 / (1 - v * cos[0] / C_AIR)

    early, late = freq(-6.0), freq(6.0)
    assert early > 1050 and late < 950
    assert early == pytest.approx(expected(-6.0), rel=1e-3) and late == pytest.approx(expected(6.0), rel=1e-3)
    mid = y[int(9.95 * FS):int(10.05 * FS)]
    assert np.max(np.abs(mid)) == pytest.approx(1 / lane, rel=0.01)  # 1/r at the closest approach


def test_clipping_is_counted_and_labelled_and_a_higher_full_scale_avoids_it() -> None:
    loud = {**quiet(), "n_exhaust_car": 1, "exhaust_db": 116.0, "lane_distance_m": 3.0, "t_frac": 0.5,
            "rpm_story": "overrun", "pop_per_s": 30.0, "pop_db": 14.0}
    clipped = generate(4, duration_s=20.0, full_scale_db=120.0, **loud)
    assert np.all(np.isfinite(clipped.audio)) and clipped.audio.dtype == np.float32
    assert float(np.max(np.abs(clipped.audio))) <= 1.0
    exh = [s for s in clipped.sources if s["class"] == "exhaust"][0]
    assert clipped.labels["clipped_samples"] > 0 and exh["overload"] and exh["peak_fs_alone"] > 1.0
    assert meter(clipped)[1].clipped > 0
    roomy = generate(4, duration_s=20.0, full_scale_db=150.0, **loud)
    assert roomy.labels["clipped_samples"] == 0
    assert not [s for s in roomy.sources if s["class"] == "exhaust"][0]["overload"]
    assert roomy.labels["peak_fs"] < 1.0


def test_busy_scene_is_finite_and_json_labelled(busy: Scene) -> None:
    assert busy.audio.shape == (30 * FS,) and np.all(np.isfinite(busy.audio))
    assert float(np.max(np.abs(busy.audio))) <= 1.0
    json.dumps(busy.labels)
    assert busy.sources is busy.labels["sources"] and busy.labels["family"] == "holdout"
    assert {"exhaust", "siren", "horn", "other", "none"} <= {s["class"] for s in busy.sources}
    for key in ("distance_m", "mic_height_m", "zone_siren_active", "full_scale_db", "clipped_samples"):
        assert key in busy.labels


def test_the_documented_example_runs() -> None:
    family_contract.run_examples(section())


def test_the_docs_list_every_declared_range() -> None:
    family_contract.assert_ranges_listed(section(), RANGES)


def test_the_documented_command_writes_wav_and_labels(tmp_path: Path) -> None:
    from scipy.io import wavfile

    env = {"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"}  # for the bad-argument runs below
    argv, summary = family_contract.run_documented_command(section(), "simulators.holdout_scenes", tmp_path)
    seed = int(argv[argv.index("--seed") + 1])
    dur = float(argv[argv.index("--duration") + 1])
    assert summary["family"] == "holdout" and summary["family_seed"] == seed
    assert [s["seed"] for s in summary["scenes"]] == scene_seeds(2, seed)
    first = summary["scenes"][0]
    out = tmp_path / argv[argv.index("--out") + 1]
    fs, audio = wavfile.read(out / first["wav"])
    again = generate(first["seed"], duration_s=dur, full_scale_db=120.0)
    assert fs == FS and audio.dtype == np.float32 and audio.tobytes() == again.audio.tobytes()
    assert json.loads((out / first["labels"]).read_text()) == json.loads(json.dumps(again.labels))
    bad = subprocess.run([sys.executable, "-m", "simulators.holdout_scenes", "--seed", "1", "--out", str(tmp_path),
                          "--count", "0"], cwd=tmp_path, capture_output=True, text=True, timeout=60, env=env)
    assert bad.returncode == 2 and "--count" in bad.stderr


def test_the_benchmark_scores_the_holdout_family_as_documented(capsys) -> None:
    bench_doc = (ROOT / "docs" / "benchmarks.md").read_text()
    assert "python -m bench.noise_accuracy --family holdout --scenes 40 --json" in bench_doc
    assert noise_accuracy.FAMILIES["holdout"] == "simulators.holdout_scenes"
    assert noise_accuracy.main(["--family", "holdout", "--scenes", "1", "--seed", "3", "--duration", "12",
                                "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    fam = out["families"]["holdout"]
    assert list(out["families"]) == ["holdout"] and fam["scenes"] == 1 and fam["full_scale_db"] == 130.0
    for key in ("exhaust", "enforcement", "confusion", "level_error_7p5_db", "tonal_false_alarms"):
        assert key in fam
