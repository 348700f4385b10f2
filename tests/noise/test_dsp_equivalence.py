"""Issue 13 (bench.dsp_rtf >= 500x): the cheaper per-block and per-event paths of the noise pipeline give the same
bits as the straightforward code they replace.

- The spectrogram and the local siren detector are frame-sequential, so running them on a batch of chunks
  (``pipeline.TONAL_BATCH_S``, and always before an event is finished) gives what running them once per chunk
  gave: the same detector state, the same events.
- ``dsp.percentile_rows`` is ``np.percentile(..., axis=1)``; ``spectrum.third_octave_levels`` is the loop over
  bands on ``numpy.fft.rfft`` it replaced.
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from gateway.noise import pipeline
from gateway.noise.detector import DetectorConfig
from gateway.noise.dsp import percentile_rows
from gateway.noise.spectrum import SPEC_HZ, Spectrogram, third_octave_levels
from gateway.noise.suppression import SirenSuppressor
from gateway.noise.weighting import EXACT_THIRD_OCTAVES, NOMINAL_THIRD_OCTAVES
from simulators.noise_scene import generate

FS = 48_000
MIX = {"exhaust": 3, "legal": 2, "horn": 1.0, "ev_siren": 1.0, "cd_siren": 1.0}


@pytest.fixture(scope="module")
def scene():
    return generate(11, duration_s=40.0, mix=MIX)  # a wail and a hi-lo siren: 162 tonal frames


def _state(s: SirenSuppressor) -> tuple:
    return (s.frames_seen, s.tonal_frames, s.run_frames, s.local_intervals, s.tonal_runs, list(s.tone_log),
            list(s._hist), list(s._hist_tonal))


def test_siren_detector_on_one_batch_equals_per_chunk(scene):
    """The same spectra fed in 1 s chunks and in one batch leave the siren detector in the same state."""
    x = scene.audio
    per_chunk, one = Spectrogram(FS, short_nfft=1024), Spectrogram(FS, short_nfft=1024)
    sa, sb = (SirenSuppressor(per_chunk.freqs, SPEC_HZ) for _ in range(2))
    for i in range(0, x.size, FS):
        sa.feed(*per_chunk.feed(x[i: i + FS]))
    idx, power, short = one.feed(x)
    sb.feed(idx, power, short)
    assert sa.tonal_frames > 50 and sa.run_frames > 0  # the scene has sirens: the detector had work to do
    assert _state(sa) == _state(sb)


def test_spectrogram_chunks_equal_one_shot(scene):
    x = scene.audio[: 7 * FS + 1234]
    a, b = Spectrogram(FS, short_nfft=1024), Spectrogram(FS, short_nfft=1024)
    parts = [a.feed(x[i: i + 5000]) for i in range(0, x.size, 5000)]
    whole = b.feed(x)
    for k in range(3):
        assert np.array_equal(np.concatenate([p[k] for p in parts]), whole[k])
    # the frame definition: Hann power spectrum of the last NFFT samples before each hop, summing to the mean square
    seg = x[FS // SPEC_HZ - b.nfft: FS // SPEC_HZ].astype(np.float32)
    ref = np.abs(np.fft.rfft(seg * np.hanning(b.nfft).astype(np.float32))) ** 2 * b._scale
    assert np.allclose(whole[1][0], ref, rtol=1e-3, atol=1e-6 * ref.max())  # float32 FFT against float64


def _events(scene, monkeypatch, batch_s: float, ring_s: float) -> tuple[list, list, dict]:
    monkeypatch.setattr(pipeline, "TONAL_BATCH_S", batch_s)
    monkeypatch.setattr(pipeline, "RING_S", ring_s)
    cfg = pipeline.AnalyzerConfig(detector=DetectorConfig(distance_m=scene.labels["distance_m"]))
    an = pipeline.NoiseAnalyzer(cfg)
    seconds, events = [], []
    for i in range(0, scene.audio.size, 4800):
        r = an.feed(scene.audio[i: i + 4800])
        seconds += [s.as_dict() for s in r.seconds]
        events += [e.model_dump(mode="json") for e in r.events]
    events += [e.model_dump(mode="json") for e in an.close().events]
    s = an.suppressor
    return seconds, events, {"state": _state(s), "local": s.local_intervals, "events": s.event_spans}


@pytest.mark.parametrize("batch_s,ring_s", [(10.0, 60.0), (30.0, 60.0), (55.0, 60.0), (30.0, 12.0)])
def test_batched_siren_detector_gives_the_same_events(scene, monkeypatch, batch_s, ring_s):
    """``TONAL_BATCH_S = 0`` runs the detector after every 1 s chunk (as before batching): same records. With a
    ring shorter than the batch, the detector catches up before the ring would drop samples it has not seen."""
    every_chunk = _events(scene, monkeypatch, 0.0, ring_s)
    batched = _events(scene, monkeypatch, batch_s, ring_s)
    assert len(every_chunk[1]) >= 3 and any(e["suppressed"] or e["flags"] for e in every_chunk[1])
    assert batched == every_chunk


@settings(max_examples=200, deadline=None)
@given(hnp.arrays(np.float64, st.tuples(st.integers(1, 6), st.integers(1, 24)),
                  elements=st.floats(20, 140, allow_nan=False)),
       st.sampled_from([(90, 10), (10, 90), (50,), (0, 100, 25, 75, 33.3)]))
def test_percentile_rows_is_numpys_percentile(a, q):
    assert np.array_equal(percentile_rows(a, q), np.percentile(a, q, axis=1))


def _third_octaves_reference(x, fs, k_db, fmin=19.0, fmax=20_000.0):
    """The implementation ``third_octave_levels`` replaced (numpy.fft, one searchsorted per band)."""
    x = np.asarray(x, dtype=np.float64)
    n = x.size
    w = np.hanning(n)
    p = (np.abs(np.fft.rfft(x * w)) ** 2) * 2.0 / (n * np.sum(w**2))
    p[0] /= 2
    f = np.fft.rfftfreq(n, 1 / fs)
    cum = np.concatenate([[0.0], np.cumsum(p)])
    centres, levels = [], []
    for nom, fc in zip(NOMINAL_THIRD_OCTAVES, EXACT_THIRD_OCTAVES, strict=True):
        if fc < fmin or fc > min(fmax, 0.45 * fs):
            continue
        i0, i1 = np.searchsorted(f, [fc * 10 ** (-0.05), fc * 10**0.05])
        centres.append(float(nom))
        levels.append(round(float(10 * np.log10(max(cum[i1] - cum[i0], 1e-30)) + k_db), 2))
    return centres, levels


@pytest.mark.parametrize("n,fs", [(48_000, 48_000), (24_000, 48_000), (44_100, 44_100), (47_001, 96_000)])
def test_third_octave_levels_equal_the_reference(scene, n, fs):
    rng = np.random.default_rng(n)
    for x in (scene.audio[FS * 3: FS * 3 + n], rng.standard_normal(n).astype(np.float32) * 0.01, np.zeros(n)):
        assert third_octave_levels(x, fs, 123.4) == _third_octaves_reference(x, fs, 123.4)
        assert (third_octave_levels(x, fs, 120.0, fmin=100, fmax=5000)
                == _third_octaves_reference(x, fs, 120.0, fmin=100, fmax=5000))
