"""A hi-lo or two-tone siren that starts while a loud exhaust's event is still open must not ride in that event's
enforcement case (``SuppressionConfig.calls``, thirty-first session).

The local detector hears such a siren: its tone holds and steps back and forth between two pitches, a counted run.
But a confident exhaust *owns* the tonal runs inside its own span (an engine's orders are narrow tones too), and a
long event's own span covered the siren, so the run was excused and the case stood with the siren sounding 8 dB
under its maximum, seconds after it (independent set X ``78956-5``: a hi-lo heard from 2 s after a 109 dB motorcycle's maximum
for 12 s, 7 dB under the event's maximum at its loudest). No engine order steps back to the pitch it held before, again and again: a run that does so
``calls`` times calls like a siren, and an exhaust's span no longer excuses it for ``siren_nearby``. (It still
does for suppression: the event stays a detection, and ``siren_cut`` may still cut a clean case out of it.)
"""

from __future__ import annotations

import numpy as np
import pytest

from gateway.noise.detector import DetectorConfig
from gateway.noise.pipeline import AnalyzerConfig, NoiseAnalyzer
from tests.noise.over_exhaust import covering, exhaust_scene
from tests.noise.test_siren_inside import siren, with_sound


def _run(audio: np.ndarray, scene):
    an = NoiseAnalyzer(AnalyzerConfig(detector=DetectorConfig(distance_m=scene.labels["distance_m"])))
    events = []
    for i in range(0, audio.size, scene.fs):
        events += an.feed(audio[i: i + scene.fs]).events
    return events + an.close().events, an.suppressor


@pytest.mark.parametrize(("kind", "under_db"), [("hilo", 8.0), ("two_tone", 12.0)])
def test_a_siren_calling_after_the_maximum_rides_in_no_case(kind, under_db):
    """Training-family exhaust 27 (a case alone, maximum at 8.2 s); the siren starts 2 s after its maximum and
    calls for 8 s. Main made one case over 0.2-18.7 s, siren and all."""
    scene, src = exhaust_scene(27)
    audio = with_sound(scene, src, siren(kind, 8.0), under_db, lead_s=-2.0)
    events, sup = _run(audio, scene)
    a, b = src["t_peak"] + 2.0, src["t_peak"] + 10.0
    assert [e for e in events if e.enforcement and e.start < b and a < e.end] == []
    assert any(e.klass == "exhaust" and not e.suppressed for e in covering(events, src["t_peak"]))  # still found
    assert sup.calling, "the siren's run was not heard calling"


@pytest.mark.parametrize("seed", [27, 17])
def test_a_lone_exhaust_calls_nothing_and_stays_a_case(seed):
    scene, src = exhaust_scene(seed)
    events, sup = _run(scene.audio, scene)
    assert sup.calling == set()
    assert [e.enforcement for e in covering(events, src["t_peak"])] == [True]


def test_steps_count_only_back_to_a_held_tone():
    """The run tracker on tonal frames alone (``SirenSuppressor.feed`` with a synthetic spectrogram): a tone
    stepping 1.5x up and back every 4 frames calls; one gliding up (a gear pull) and one hopping every frame
    between two pitches (a peak flickering between two lines) do not."""
    from gateway.noise.suppression import SirenSuppressor

    fs, n = 8.0, 1025
    freqs = np.linspace(0, 4000, n)

    def spectra(fhz: list[float]) -> np.ndarray:
        p = np.full((len(fhz), n), 1e-6)
        for j, f in enumerate(fhz):
            p[j, int(round(f / freqs[1]))] = 1.0
        return p

    def calling(fhz: list[float]) -> bool:
        sup = SirenSuppressor(freqs, fs)
        sup.feed(np.arange(len(fhz)), spectra(fhz))
        return bool(sup.calling)

    hilo = ([700.0] * 4 + [1050.0] * 4) * 6
    glide = list(np.geomspace(500.0, 1400.0, 48))
    flicker = [700.0, 1050.0] * 24
    assert calling(hilo)
    assert not calling(glide)
    assert not calling(flicker)
