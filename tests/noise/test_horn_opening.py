"""A horn whose own onset opens the event (``horn_probe.opening_tone``, issue 13).

``horn_inside`` hears a held tone that switches on *inside* an event: in the event's own frames there must be
some before the onset. A horn blown as a quieter pass-by approaches can itself be what crosses the detector's
threshold; the event then starts with the horn, its maximum is the horn's, the rest is the pass-by, and the
case states the horn's level. The pipeline gives such events (maximum within ``OPEN_MAX_S`` of the start) to
``opening_tone`` with ``OPEN_PRE_S`` of the audio before them. A throttle blip from idle switches its engine
orders on just as abruptly, but it lifts the broadband floor with them, and the onset is taken over the floor.
"""

from __future__ import annotations

import numpy as np
import pytest

import gateway.noise.pipeline as pipeline
from bench.noise_accuracy import analyze
from gateway.noise.features import HOP, NFFT
from gateway.noise.horn_probe import OPEN_PRE_S, opening_tone, switched_on_tone
from gateway.noise.rules import HORN_INSIDE_DB
from simulators.street_scenes import generate
from tests.noise.test_horn_inside import horn

FS = 48_000


def _spectra(x: np.ndarray) -> np.ndarray:
    """Hann power spectra of every frame (this test's own transform, float64)."""
    starts = np.arange(0, x.size - NFFT + 1, HOP)
    frames = np.lib.stride_tricks.sliding_window_view(x.astype(np.float32), NFFT)[starts] * np.hanning(NFFT)
    return np.abs(np.fft.rfft(frames, axis=1)) ** 2


def _opened(kind: str) -> np.ndarray:
    """2.5 s: steady broadband noise, and from 1 s on (where the event opens) a horn 25 dB over it in its band,
    or a throttle blip from idle: the same noise and an engine's comb of orders, both 26 dB up at once."""
    rng = np.random.default_rng(7)
    t = np.arange(int(2.5 * FS)) / FS
    noise = rng.standard_normal(t.size) * 1e-3
    on = t >= 1.0
    if kind == "horn":
        h = horn("two_tone", FS, 1.5)
        x = noise.copy()
        x[on] += h[: int(on.sum())] * 2e-2
        return x
    comb = sum(np.sin(2 * np.pi * 90.0 * k * t + k) / k for k in range(1, 30)) * 2e-3
    return (noise + comb) * np.where(on, 20.0, 1.0)


def test_a_horn_that_opens_the_event_is_heard_and_a_throttle_blip_is_not():
    opened, peak = int(1.0 * FS), int(1.6 * FS)
    x = _opened("horn")
    assert opening_tone(_spectra(x), FS, peak, opened, NFFT, HOP) >= HORN_INSIDE_DB
    # the event's own frames start at its opening: ``switched_on_tone`` has nothing before the onset to compare
    p = _spectra(x[opened:])
    assert switched_on_tone(p, np.arange(p.shape[0]), FS / NFFT, HOP, NFFT, peak - opened) == 0.0
    blip = _opened("blip")
    q = _spectra(blip)
    assert opening_tone(q, FS, peak, opened, NFFT, HOP) < HORN_INSIDE_DB
    # ... though its orders switch on by as much as the horn's tones do in their own bands
    k = int(round(450.0 / (FS / NFFT)))
    assert 10 * np.log10(q[30, k - 1: k + 2].sum() / q[18, k - 1: k + 2].sum()) >= HORN_INSIDE_DB


def test_only_a_tone_switched_on_at_the_opening_counts():
    """The same horn switched on 1 s after the event opened is ``switched_on_tone``'s, not this probe's."""
    x = _opened("horn")
    assert opening_tone(_spectra(x), FS, int(1.6 * FS), int(0.0 * FS), NFFT, HOP) == 0.0


@pytest.fixture(scope="module")
def honk_scene():
    """An independent-family street (seed 882095 * 100003 + 1, 130 dB full scale) where a two-tone horn, 8 dB
    over a 92.9 dB motorcycle 12 m away, opened the event at 32.4 s; the motorcycle kept it going for 16 s."""
    return generate(882095 * 100_003 + 1, full_scale_db=130.0)


def test_the_street_honk_that_opened_its_event_makes_no_case(honk_scene, monkeypatch):
    horn_src = next(s for s in honk_scene.labels["sources"] if s["kind"] == "horn_two_tone")

    def at_horn():
        return [e for e in analyze(honk_scene)[0] if e.start - 0.5 <= horn_src["t_peak"] <= e.end]

    (rec,) = at_horn()
    assert abs(rec.peak - horn_src["t_peak"]) < 0.5 and rec.start > horn_src["t_start"] - OPEN_PRE_S
    assert "horn_inside" in rec.flags and not rec.enforcement
    monkeypatch.setattr(pipeline, "OPEN_MAX_S", -1.0)  # without the probe it was a case at the horn's level
    (before,) = at_horn()
    assert before.enforcement and before.klass == "exhaust" and "horn_inside" not in before.flags
