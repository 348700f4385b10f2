"""Siren evidence asked about late, or about a long event's piece: a chain of touching events is finalized up
to ``hard_limit_s`` after its first event ended, and a loud vehicle cut out of a long event answers for the
siren evidence of the whole of it (``pipeline._parent_siren``)."""

from __future__ import annotations

import numpy as np
import pytest

from gateway.noise.spectrum import SPEC_HZ, Spectrogram
from gateway.noise.suppression import SirenSuppressor

FS = 48_000


def _fed(x: np.ndarray) -> SirenSuppressor:
    spec = Spectrogram(FS)
    s = SirenSuppressor(spec.freqs, SPEC_HZ)
    for i in range(0, x.size, FS):
        s.feed(*spec.feed(x[i: i + FS]))
    return s


def _tone(x: np.ndarray, a: float, b: float, hz: float, amp: float = 0.1) -> np.ndarray:
    t = np.arange(x.size) / FS
    sl = slice(int(a * FS), int(b * FS))
    x[sl] += amp * np.sin(2 * np.pi * hz * t[sl])
    return x


def _noise(seconds: float) -> np.ndarray:
    return 0.001 * np.random.default_rng(3).standard_normal(int(seconds * FS))


@pytest.mark.parametrize("other_s", [4.0, 12.0])  # a later tone short of switching on / long enough to
def test_a_siren_event_finalized_late_does_not_take_a_later_tone_for_its_own(other_s):
    """The classifier called 2-10 s a siren, but its chain was finalized at 40 s, while another tone (from 28 s)
    was sounding: the siren's interval ends hold_s after its event, it does not bridge 12-28 s."""
    s = _fed(_tone(_noise(40.0), 40.0 - other_s, 40.0, 700.0))
    before = [list(iv) for iv in s.local_intervals]
    s.siren_event(2.0, 10.0)
    c = s.config
    assert [2.0 - c.lead_s, 10.0 + c.hold_s] in s.local_intervals
    assert s.reasons(14.0, 26.0) == [] and not s.heard_after(14.0, 26.0, None, 0.0)  # nothing in the gap
    if before:  # the later tone's own interval is kept, and stays the one the detector may close
        assert s.local_intervals[-1][0] == before[-1][0] and s.local_intervals[-1][0] > 12.0


def test_a_siren_event_whose_tone_goes_on_keeps_its_interval_open():
    """The same call while the siren's own tone goes on (its run began during the event): open, as before."""
    s = _fed(_tone(_noise(20.0), 6.0, 20.0, 700.0))
    s.siren_event(6.0, 12.0)
    assert s.local_intervals and s.local_intervals[-1][1] == float("inf")
    assert s.local_intervals[-1][0] <= 6.0 - s.config.lead_s + 1e-9


def test_a_tone_heard_after_a_window_is_asked_with_its_level():
    """``heard_after``: a local interval first heard after a window counts only with a tone at the floor."""
    s = _fed(_tone(_noise(30.0), 16.0, 30.0, 600.0, amp=0.05))
    assert s.local_intervals and s.local_intervals[-1][0] > 10.0
    assert s.heard_after(10.0, 30.0, None, 1e-9)
    assert not s.heard_after(10.0, 30.0, None, 1e3)  # no tone that loud
    assert not s.heard_after(2.0, 10.0, None, 1e-9)  # nothing in that window


def test_a_long_events_piece_is_reached_by_a_siren_over_it_or_first_heard_after_it_not_one_that_stopped():
    """``piece_reached`` (a piece cut out of a long event around its maximum; the parent ends at 40 s)."""
    stopped = _fed(_tone(_noise(40.0), 2.0, 10.0, 700.0))  # followed until it stopped at 10 s
    assert stopped.local_intervals and stopped.local_intervals[-1][1] < 20.0
    assert not stopped.piece_reached(20.0, 26.0, 40.0, None, 1e-9)  # a piece at 20-26 s: not reached
    assert stopped.piece_reached(8.0, 14.0, 40.0, None, 1e-9)  # a piece it overlaps: reached, at any level
    later = _fed(_tone(_noise(40.0), 30.0, 40.0, 700.0, amp=0.05))  # first heard at 30 s (masked before?)
    assert later.piece_reached(20.0, 26.0, 40.0, None, 1e-9)  # a tone at the floor: it may have been there
    assert not later.piece_reached(20.0, 26.0, 40.0, None, 1e3)  # far under the piece's level: not
    assert not later.piece_reached(20.0, 26.0, 28.0, None, 1e-9)  # after the parent ended: not its evidence
    zoned = _fed(_noise(40.0))
    zoned.add_zone_interval(30.0, 40.0)  # the hub: its sirens sounded from 30 s
    assert not zoned.piece_reached(20.0, 26.0, 40.0, None, 1e-9)
    assert zoned.piece_reached(28.0, 32.0, 40.0, None, 1e-9)
