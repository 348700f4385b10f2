"""A straight pipe's blips are its own pass-by (``DetectorConfig.exhaust_blips``, ``gateway.noise.chains``):
a quieter exhaust piece touching a louder exhaust piece is absorbed into it whatever the pass-by envelope, so a
revving exhaust makes one record, not one per blip. A blip that is an enforcement case of its own joins a louder
case too, and the record names it in ``absorbed_cases`` (its maximum and level: the same vehicle's blip or a
second violator right behind it, which one microphone cannot tell apart; twenty-eighth session). It joins a
louder piece that is no case only as that piece's skirt (edge or envelope)."""

from __future__ import annotations

import dataclasses
import json
from types import SimpleNamespace

import numpy as np
import pytest
from typer.testing import CliRunner

from contract.evidence import AbsorbedCase, EvidenceError, verify
from dozor.cli import app
from gateway.noise.chains import absorb, pass_bys, under_envelope
from gateway.noise.detector import DetectorConfig
from gateway.noise.pipeline import AnalyzerConfig, analyze_array
from simulators.noise_io import wav_bytes
from tests.noise.over_exhaust import exhaust_scene
from tests.noise.test_detector import _passby, run
from tests.noise.test_edge_peak import piece
from tests.noise.test_evidence import KEY, KEYS

FS = 48_000


def _loud_blip() -> list[float]:
    """A 106 dB pass-by and, seconds after its maximum, a 104 dB blip with a deep dip between: the blip stands
    over the pass-by's crawling-pace (3 m/s) envelope there (the test asserts it)."""
    return [70.0] * 5 + _passby(106.0, 30)[:31] + [92.0, 90.0] + _passby(104.0, 14) + [70.0] * 5


def test_touching_is_enough_for_the_pairs_the_caller_frees():
    lv = _loud_blip()
    cfg = DetectorConfig()
    ev, d = run(lv, cfg)
    assert len(ev) == 2 and ev[0].chain == ev[1].chain and d.counters["splits"] == 1
    assert not under_envelope(ev[1], ev[0], cfg.skirt_speed_mps, cfg.slant_m)  # the envelope alone keeps it apart
    kept = absorb(ev, speed_mps=cfg.skirt_speed_mps, slant_m=cfg.slant_m)
    assert [n for _, _, n in kept] == [0, 0]
    freed = absorb(ev, speed_mps=cfg.skirt_speed_mps, slant_m=cfg.slant_m, free=lambda k, j: True)
    assert [(k, span, n) for k, span, n in freed] == [(0, (ev[0].start, ev[1].end), 1)]
    # ``may`` still decides first (the pipeline: both pieces of one class), and nothing joins a quieter piece
    assert len(absorb(ev, speed_mps=cfg.skirt_speed_mps, slant_m=cfg.slant_m, free=lambda k, j: True,
                      may=lambda k, j: False)) == 2


def _blipped(seed: int, down_db: float = 2.0, after_s: float = 2.5) -> tuple[np.ndarray, float]:
    """A lone exhaust pass-by of the training family with a copy of its loudest 1.2 s, ``down_db`` down, played
    again ``after_s`` after its maximum (a blip of the throttle, above the crawling-pace envelope there)."""
    scene, src = exhaust_scene(seed)
    x = scene.audio.astype(np.float64)
    i = int(src["t_peak"] * FS)
    burst = x[i - int(0.6 * FS): i + int(0.6 * FS)] * np.hanning(int(1.2 * FS)) * 10 ** (-down_db / 20)
    j = i + int(after_s * FS)
    x[j - burst.size // 2: j - burst.size // 2 + burst.size] += burst
    return x.astype(np.float32), scene.labels["distance_m"]


@pytest.mark.parametrize("seed", [3])
def test_a_blipping_exhaust_is_one_record_and_the_switch_brings_the_blip_back(seed):
    audio, dist = _blipped(seed)
    on = AnalyzerConfig(detector=DetectorConfig(distance_m=dist))
    off = dataclasses.replace(on, detector=dataclasses.replace(on.detector, exhaust_blips=False))
    _, apart = analyze_array(audio, off)
    loud = [e for e in apart if e.levels.lafmax >= 85.0]
    assert [e.klass for e in loud] == ["exhaust", "exhaust"], [(e.klass, e.start, e.end) for e in apart]
    assert loud[0].end == pytest.approx(loud[1].start, abs=0.01)  # one chain, split at the dip
    assert all(e.pass_by is None for e in apart)  # same class, but the blip stands over the pass-by's envelope
    _, one = analyze_array(audio, on)
    (rec,) = [e for e in one if e.levels.lafmax >= 85.0]
    assert rec.klass == "exhaust" and rec.pass_by is not None and rec.pass_by.absorbed == 1
    assert (rec.start, rec.end) == pytest.approx((loud[0].start, loud[1].end), abs=0.01)
    assert rec.levels.lafmax == pytest.approx(max(e.levels.lafmax for e in loud), abs=0.01)


def _rec(case: bool, suppressed: bool = False) -> SimpleNamespace:
    return SimpleNamespace(klass="exhaust", enforcement=case, suppressed=suppressed, flags=())


@pytest.mark.parametrize(("quieter_case", "louder_case", "survivors"),
                         [(True, True, 1), (False, True, 1), (False, False, 1), (True, False, 2)])
def test_a_case_joins_a_louder_case_but_not_a_louder_piece_that_is_none(quieter_case, louder_case, survivors):
    """Two over-limit exhausts 6 s apart, the level never under the threshold between them: the second (104 dB)
    stands above the first's crawling-pace envelope there. It joins the first whatever it is (``free``: a blip
    or a second violator, a case named in the record), except where it is a case and the louder piece is none
    (that piece may be blocked by its own flags or score: the case would be lost)."""
    cfg = DetectorConfig()
    pieces = [piece(0, 30, 60, 108.0), piece(60, 90, 120, 104.0)]
    assert not under_envelope(pieces[1], pieces[0], cfg.skirt_speed_mps, cfg.slant_m)
    kept = pass_bys(pieces, [_rec(louder_case), _rec(quieter_case)], [None, None], speed_mps=cfg.skirt_speed_mps,
                    slant_m=cfg.slant_m, gap=cfg.bridge_frames, blips=True)
    assert len(kept) == survivors
    if survivors == 1:
        assert kept == [(0, (0, 120), 1, [1])]
    else:
        assert [(k, span, n, m) for k, span, n, m in kept] == [(0, (0, 60), 0, []), (1, (60, 120), 0, [])]


def test_a_case_joins_a_louder_suppressed_piece_of_its_stretch():
    """The louder piece is no case because a siren was heard on it (suppressed): the quieter case touching it
    joins it, and the suppression with it (the siren may still sound, masked, on the quieter part). Across a
    gap it does not (``across``: a detection never disappears into a suppressed record there)."""
    cfg = DetectorConfig()
    kw = dict(speed_mps=cfg.skirt_speed_mps, slant_m=cfg.slant_m, gap=cfg.bridge_frames, blips=True)
    pieces = [piece(0, 30, 60, 108.0), piece(60, 90, 120, 104.0)]
    assert pass_bys(pieces, [_rec(False, suppressed=True), _rec(True)], [None, None], **kw) == [(0, (0, 120), 1, [1])]
    apart = [piece(0, 30, 60, 108.0), piece(60 + cfg.bridge_frames + 5, 90 + cfg.bridge_frames, 150, 104.0)]
    assert len(pass_bys(apart, [_rec(False, suppressed=True), _rec(True)], [None, None], **kw)) == 2


def test_a_blip_that_is_a_case_of_its_own_is_named_in_the_louder_case():
    """A 107 dB pass-by whose loudest 1.2 s comes again 1 dB down 3 s later: apart, the two pieces are two cases
    (the second at a moment when another vehicle may be in front of the camera); joined, one case at the
    louder maximum whose ``absorbed_cases`` names the blip's maximum, level and score exactly as its own record
    stated them, signed with the record."""
    audio, dist = _blipped(19, down_db=1.0, after_s=3.0)
    on = AnalyzerConfig(detector=DetectorConfig(distance_m=dist))
    off = dataclasses.replace(on, detector=dataclasses.replace(on.detector, exhaust_blips=False))
    _, apart = analyze_array(audio, off)
    loud = [e for e in apart if e.levels.lafmax >= 85.0]
    assert [(e.klass, e.enforcement) for e in loud] == [("exhaust", True), ("exhaust", True)]
    assert loud[0].end == pytest.approx(loud[1].start, abs=0.01) and loud[0].levels.lafmax > loud[1].levels.lafmax
    assert all(e.absorbed_cases is None and "absorbed_cases" not in e.to_data() for e in apart)
    _, one = analyze_array(audio, on, key=KEY)
    (rec,) = [e for e in one if e.levels.lafmax >= 85.0]
    assert rec.enforcement and rec.pass_by is not None and rec.pass_by.absorbed == 1
    assert (rec.start, rec.end) == pytest.approx((loud[0].start, loud[1].end), abs=0.01)
    assert rec.peak == loud[0].peak and rec.levels.lafmax_7p5 == loud[0].levels.lafmax_7p5
    assert rec.absorbed_cases == (AbsorbedCase(peak=loud[1].peak, lafmax_7p5=loud[1].levels.lafmax_7p5,
                                               enforcement_score=loud[1].enforcement_score),)
    data = json.loads(json.dumps(rec.to_data()))
    assert verify(data, KEYS).absorbed_cases == rec.absorbed_cases
    data["absorbed_cases"] = []  # a record that hides the second maximum no longer verifies
    with pytest.raises(EvidenceError):
        verify(data, KEYS)


def test_the_cli_names_the_absorbed_case(tmp_path):
    """``dozor noise analyze --json`` on the same recording (a 32-bit float WAV): one enforceable row whose
    ``absorbed_cases`` names the blip, and ``--evidence`` carries it in the signed-record form."""
    audio, dist = _blipped(19, down_db=1.0, after_s=3.0)
    wav = tmp_path / "blipped.wav"
    wav.write_bytes(wav_bytes(audio, FS, bits=32))
    r = CliRunner().invoke(app, ["noise", "analyze", str(wav), "--distance-m", str(dist), "--json", "--evidence"])
    assert r.exit_code == 0, r.output
    rows = [e for e in json.loads(r.stdout)["events"] if e["lafmax"] >= 85.0]
    assert len(rows) == 1 and rows[0]["enforceable"] and rows[0]["pass_by"]["absorbed"] == 1
    (named,) = rows[0]["absorbed_cases"]
    assert rows[0]["peak"] + 2.0 < named["peak"] < rows[0]["end"] and 95.0 < named["lafmax_7p5"] < rows[0]["lafmax_7p5"]
    assert rows[0]["evidence"]["absorbed_cases"] == [named]
