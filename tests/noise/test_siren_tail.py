"""Where a siren's interval ends: with the siren's own tone, not with whatever tone comes after it.

1. The local detector: once switched on, an interval is held ``hold_s`` after the siren's run was last heard.
   Tonal frames that form no counted run (a passing engine's orders flickering from one frequency to another)
   do not keep it open, and inside a confident exhaust's own span they are not "a tone heard" against it
   (nineteenth session: on 96 independent scenes a motorcycle's own tones 7-9 s after a wail kept the wail's
   interval open through the motorcycle's maximum and suppressed it).
2. The hub's zone state: while the zone sounds it always suppresses an event's core; in the grace after it
   stopped (a rotor siren's run-down) only where a tone at the event's floor is heard.
"""

from __future__ import annotations

import numpy as np
import pytest

from gateway.noise.spectrum import SPEC_HZ, Spectrogram
from gateway.noise.suppression import SirenSuppressor, SuppressionConfig

FS = 48_000
JUMPS = (300.0, 700.0, 1600.0, 380.0, 900.0, 2100.0, 450.0, 1050.0, 2500.0, 520.0, 1250.0, 2900.0)


def _tones(n: int, spans: list[tuple[float, float, float]], amp: float = 0.05) -> np.ndarray:
    t = np.arange(n) / FS
    x = np.zeros(n)
    for a, b, f in spans:
        on = (t >= a) & (t < b)
        x[on] += amp * np.sin(2 * np.pi * f * t[on])
    return x


def _wail(n: int, t0: float, t1: float, amp: float = 0.05) -> np.ndarray:
    x = np.zeros(n)
    i0, i1 = int(t0 * FS), int(t1 * FS)
    f = 850 + 250 * np.sin(2 * np.pi * np.arange(i1 - i0) / FS / 8)
    x[i0:i1] = amp * np.sin(2 * np.pi * np.cumsum(f) / FS)
    return x


def _fed(x: np.ndarray) -> SirenSuppressor:
    spec = Spectrogram(FS, short_nfft=1024)
    s = SirenSuppressor(spec.freqs, SPEC_HZ)
    x = x + 1e-4 * np.random.default_rng(4).standard_normal(x.size)
    s.feed(*spec.feed(x.astype(np.float32)))
    return s


def test_tones_that_form_no_run_do_not_hold_a_sirens_interval_open():
    n = 30 * FS
    # a wail 2-12 s, then 12.5-17 s a new short tone every 0.375 s, each over an octave from the one before
    blips = [(12.5 + 0.375 * i, 12.5 + 0.375 * (i + 1), f) for i, f in enumerate(JUMPS)]
    s = _fed(_wail(n, 2.0, 12.0) + _tones(n, blips))
    assert s.local_intervals and s.local_intervals[0][0] < 2.0  # the wail switched the detector on
    end = s.local_intervals[0][1]
    assert end <= 12.0 + s.config.hold_s + 0.5  # held after the wail only, not through the blips (to ~19 s)
    assert s.tone_max(13.0, 17.0) > 0  # the blips were tonal frames ...
    own = (12.3, 20.0)  # ... inside a confident exhaust's span (say they are its engine's orders)
    assert s.tone_max(13.0, 17.0, own) == 0.0  # ... of no run: there, no siren tone was heard
    assert s.tone_max(8.0, 11.0, own) > 0  # (the wail, outside the span, was)
    assert s.reasons(15.0, 17.0, floor_ms=1e-12) == []  # the interval ended before
    assert s.reasons(13.0, 14.0, floor_ms=1e-12) == ["local_tonal"]  # a tone in its held end: the blips ...
    assert s.reasons(13.0, 14.0, own=own, floor_ms=1e-12) == []  # ... which the exhaust owns
    wail_only = _fed(_wail(n, 2.0, 12.0))
    assert abs(wail_only.local_intervals[0][1] - end) < 0.5  # the same end as without the blips


def test_a_tone_that_forms_a_run_still_holds_it():
    n = 30 * FS
    s = _fed(_wail(n, 2.0, 12.0) + _tones(n, [(12.5, 17.0, 700.0)]))  # a steady tone after it: a run
    assert s.local_intervals[0][1] >= 17.0
    assert s.reasons(15.0, 16.0, floor_ms=1e-12) == ["local_tonal"]


def test_the_zone_grace_counts_only_where_a_tone_is_heard():
    n = 30 * FS
    quiet = _fed(np.zeros(n))
    quiet.add_zone_interval(5.0, 15.0)  # sounding until 15 s, grace to 18 s
    assert quiet.reasons(16.0, 17.5) == ["zone_state"]  # no floor given: the whole interval counts
    assert quiet.reasons(14.0, 16.0, floor_ms=1e-12) == ["zone_state"]  # the zone still sounds in the window
    assert quiet.reasons(16.0, 17.5, floor_ms=1e-12) == []  # only the grace, and nothing heard there
    tail = _fed(_tones(n, [(14.0, 17.0, 640.0)]))  # a run-down tone heard into the grace
    tail.add_zone_interval(5.0, 15.0)
    assert tail.reasons(16.0, 17.5, floor_ms=1e-12) == ["zone_state"]
    assert tail.reasons(16.0, 17.5, floor_ms=1e3) == []  # ... but far under the event's floor


def test_in_a_confident_exhausts_span_its_flickering_tones_are_no_zone_siren_heard():
    """The zone's grace and its ``siren_nearby`` test ask for a tone heard; inside a confident exhaust's own span
    only a counted run's tone is one, as for the local detector (thirty-second session: on the independent family
    an exhaust's own tones in the 3 s grace after a far two-tone stopped suppressed it)."""
    n = 30 * FS
    blips = [(15.5 + 0.375 * i, 15.5 + 0.375 * (i + 1), f) for i, f in enumerate(JUMPS[:6])]  # 15.5-17.75 s
    s = _fed(_tones(n, blips))
    s.add_zone_interval(5.0, 15.0)  # sounding until 15 s, grace to 18 s
    own = (12.0, 25.0)
    assert s.reasons(16.0, 17.5, floor_ms=1e-12) == ["zone_state"]  # tonal frames in the grace: heard ...
    assert s.reasons(16.0, 17.5, own=own, floor_ms=1e-12) == []  # ... but the exhaust's own, of no run
    assert s.reasons(14.0, 16.0, own=own, floor_ms=1e-12) == ["zone_state"]  # the zone sounding: always
    assert s.heard_spans(13.0, 18.0, None, 1e-12) == [(13.0, 18.0)]
    assert s.heard_spans(13.0, 18.0, own, 1e-12) == []  # the flag's test: no siren tone heard in the event
    run = _fed(_tones(n, [(14.0, 17.0, 640.0)]))  # a run-down tone into the grace: a run, counted
    run.add_zone_interval(5.0, 15.0)
    assert run.reasons(16.0, 17.5, own=own, floor_ms=1e-12) == ["zone_state"]
    assert run.heard_spans(13.0, 18.0, own, 1e-12) == [(13.0, 18.0)]


@pytest.mark.parametrize(("gap_s", "tail"), [(1.2, True), (3.0, False)])
def test_a_counted_runs_tail_broken_off_by_masking_is_its_tone(gap_s, tail):
    """A siren's tone masked for a moment by a pass-by comes back as a run too short to count on its own; within
    ``hold_s`` of the counted run's last frame, on its pitch, it is that run's tail (thirty-second session: the
    tail of a two-tone masked by an approaching exhaust, in the zone's grace, was all that told its suppression)."""
    n = 30 * FS
    s = _fed(_tones(n, [(5.0, 9.0, 640.0), (9.0 + gap_s, 9.5 + gap_s, 640.0)]))  # the tail: 4 frames, no run alone
    own = (8.0, 20.0)
    assert s.tone_max(9.0 + gap_s, 9.6 + gap_s) > 0  # heard ...
    assert (s.tone_max(9.0 + gap_s, 9.6 + gap_s, own) > 0) is tail  # ... and the siren's tone only near its run
    alone = _fed(_tones(n, [(9.0 + gap_s, 9.5 + gap_s, 640.0)]))
    assert alone.tone_max(9.0 + gap_s, 9.6 + gap_s, own) == 0.0  # without the run before it: nobody's tone


def test_a_sirens_onset_before_its_run_is_its_tone():
    """A siren's first frames, broken off its run by masking, are its tone though they counted in no run of
    their own (nineteenth session, fresh set D: a wail's onset 1.5-2 s before its run, inside a confident
    exhaust's span, was all that kept the exhaust's event from becoming a case)."""
    n = 30 * FS
    onset = [(10.0, 10.25, 900.0), (10.5, 10.75, 650.0)]  # four frames, then 1.25 s of nothing
    own = (5.0, 11.5)
    s = _fed(_tones(n, onset) + _wail(n, 12.0, 20.0))
    assert s.tone_max(9.9, 11.0, own) > 0  # the frames belong to the wail that follows
    alone = _fed(_tones(n, onset))  # the same frames with no siren after them: no run, no siren tone
    assert alone.tone_max(9.9, 11.0) > 0 and alone.tone_max(9.9, 11.0, own) == 0.0


def test_the_counted_runs_kept_are_bounded_by_the_tone_log():
    """A gateway runs for months: the ids of runs that counted are pruned to those the tone log still holds."""
    spec = Spectrogram(FS, short_nfft=1024)
    s = SirenSuppressor(spec.freqs, SPEC_HZ, SuppressionConfig(tone_log_s=10.0))  # a log of 80 frames
    rng = np.random.default_rng(9)
    n = 4 * FS  # a new steady tone every second, over an octave from the last (each makes a run that counts)
    for _ in range(150):  # 10 minutes
        spans = [(k, k + 0.95, float(rng.uniform(300, 450) if k % 2 else rng.uniform(1300, 2500))) for k in range(4)]
        s.feed(*spec.feed((_tones(n, spans) + 1e-4 * rng.standard_normal(n)).astype(np.float32)))
    assert s._run_id > 4 * s.tone_run.maxlen  # many more runs counted than the log holds ...
    assert len(s._counted_ids) <= 2 * s.tone_run.maxlen + 1  # ... and only about the log's worth kept
    assert s.tone_max(s.frames_seen / SPEC_HZ - 3.0, s.frames_seen / SPEC_HZ, own=(0.0, 1e9)) > 0  # recent ones count
