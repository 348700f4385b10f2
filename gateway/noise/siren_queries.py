"""The questions the pipeline asks of the siren evidence ``gateway.noise.suppression.SirenSuppressor`` keeps:
was a tone heard in a window, how loud, and does an interval (the hub's zone state, the local detector's
intervals and remembered runs, a classifier-called siren's span) count against an event. The rules are
``docs/noise-suppression.md``; the state they read is the suppressor's (this is its mixin).
"""

from __future__ import annotations

import numpy as np


class SirenQueries:
    """Queries over a ``SirenSuppressor``'s state (``tone_log``/``tone_run``, intervals, runs, spans)."""

    def _unseen(self, a: float, b: float, own: tuple[float, float]) -> bool:
        """Does [a, b] reach out of ``own`` where no frame was seen (before the log, or not yet heard)?"""
        t_last = self.frames_seen / self.frame_hz
        first = max(0.0, t_last - self.config.tone_log_s)
        return (a < own[0] and own[0] <= first) or (b > own[1] and own[1] >= t_last)

    def tone_max(self, start: float, end: float, own: tuple[float, float] | None = None) -> float:
        """The largest tone mean square (A-weighted) heard in (start, end] (0 if none). Inside ``own`` (a
        confident exhaust's span) only the tones of runs that counted: its engine's orders are narrow tones
        too, flickering from one frequency to the next, while a siren's tone goes on with continuity of
        frequency."""
        key = (len(self.tone_log), self.frames_seen, self._counted_version)
        if self._tone_arr is None or self._tone_arr[0] != key:
            ts_ms = np.array(self.tone_log, dtype=np.float64).reshape(-1, 2)
            runs = np.fromiter(self.tone_run, dtype=np.int64, count=len(self.tone_run))
            keep = np.isin(runs, np.fromiter(self._counted_ids, dtype=np.int64, count=len(self._counted_ids)))
            self._tone_arr = (key, ts_ms[:, 0], ts_ms[:, 1], keep)
        _, ts, ms, keep = self._tone_arr
        sel = (ts > start) & (ts <= end)
        if own is not None:
            sel &= keep | (ts < own[0]) | (ts > own[1])
        return float(ms[sel].max()) if sel.any() else 0.0

    def _matters(self, a: float, b: float, start: float, end: float, floor_ms: float | None,
                 own: tuple[float, float] | None = None, out_ms: float | None = None, calls: bool = False) -> bool:
        """Does interval [a, b] count against the window [start, end]? Without ``floor_ms``: when they overlap
        and [a, b] does not lie within ``own``. With it: when a tone at >= ``floor_ms`` was heard where they
        overlap, or a classifier-called siren's own span comes within ``lead_s`` of that overlap (its interval
        needs no tone: the classifier heard it); and, given ``own`` (a confident exhaust's span: its engine
        tone is a tone too), only if the interval also reaches out of ``own`` with a tone at >= ``out_ms``
        (default ``floor_ms``) there (a siren goes on before or after a pass-by; an engine order fades with it)."""
        if calls and a in self.calling:
            own = None  # a siren's call (``calls``): no engine order steps back and forth between two held tones
        if not (a < end and start < b) or _within(a, b, own):
            return False
        if floor_ms is None:
            return True
        pad = self.config.lead_s
        lo, hi = max(a, start), min(b, end)
        if any(sa < hi + pad and lo - pad < sb for sa, sb in self.event_spans):
            return True
        if own is not None and not self._unseen(a, b, own) and (
                max(self.tone_max(a, own[0]), self.tone_max(own[1], b)) < (out_ms or floor_ms)):
            return False
        return self.tone_max(lo, hi, own) >= floor_ms

    def _heard(self, a: float, b: float, start: float, end: float, floor_ms: float,
               own: tuple[float, float] | None = None) -> bool:
        """Was a tone at >= ``floor_ms`` heard where [a, b] overlaps [start, end]? (Where the overlap reaches past
        the frames seen so far or behind the tone log, it cannot be ruled out: yes.) Inside ``own`` (a confident
        exhaust's span) only the tones of runs that counted (``tone_max``), as for the local detector: the
        engine's flickering orders are no zone siren heard either."""
        lo, hi = max(a, start), min(b, end)
        t_last = self.frames_seen / self.frame_hz
        if hi > t_last or lo < t_last - self.config.tone_log_s:
            return True
        return self.tone_max(lo, hi, own) >= floor_ms

    def tonal_nearby(self, start: float, end: float, own: tuple[float, float] | None = None) -> bool:
        """Did a tonal run (>= ``min_run_s``, or one still going on) that did not switch the detector on
        touch [start, end]? A siren may be starting, masked or far away: not enough to suppress, enough to keep
        the event from becoming an enforcement case. (With a tone level to meet: ``heard_spans``.)"""
        if any(self._matters(a, b, start, end, None, own, calls=True) for a, b in self.tonal_runs):
            return True
        if self._run_start is None:
            return False
        a = self._run_start - self.config.lead_s  # the current run, as ``_close_run`` will remember it
        if own is not None and own[0] <= a and a not in self.calling:
            return False  # the current run started within the event's own span
        return (self._active_since is None and self._counted
                and self._matters(a, float("inf"), start, end, None, own, calls=True))

    def reasons(self, start: float, end: float, own: tuple[float, float] | None = None,
                floor_ms: float | None = None, out_ms: float | None = None,
                zone_floor_ms: float | None = None) -> list[str]:
        """Why an event over [start, end] (stream seconds) is suppressed; empty if it is not. Local tonal
        intervals lying within ``own`` (the span of a confident exhaust: its engine tone) are not counted,
        nor, with ``floor_ms``, those whose tone inside the window stayed below it; the hub's zone state
        always is, unless ``zone_floor_ms`` is given: then only where a tone at least that loud was heard in
        the overlap (as ``heard_spans`` does outside an event's core: the zone's sirens sounding while a
        pass-by fades, that this microphone does not hear, do not touch the level at its maximum)."""
        out = []
        if any(self._zone_counts(a, b, z, start, end, floor_ms, zone_floor_ms, own)
               for (a, b), z in zip(self.zone_intervals, self._zone_ends, strict=True)):
            out.append("zone_state")
        if any(self._matters(a, b, start, end, floor_ms, own, out_ms) for a, b in self.local_intervals):
            out.append("local_tonal")
        return out

    def heard_spans(self, start: float, end: float, own: tuple[float, float] | None, floor_ms: float,
                    out_ms: float | None = None) -> list[tuple[float, float]]:
        """The ``siren_nearby`` test: the parts of [start, end] covered by the intervals that count against it
        (zone state, local intervals and remembered or running tonal runs, each with a tone heard at
        ``floor_ms``; ``_matters`` for ``own`` and ``out_ms``), one span per interval, clipped to the window.
        Empty: no siren heard in the event. The pipeline flags with it and cuts at it (``siren_cut``)."""
        hits = [(a, b) for (a, b), z in zip(self.zone_intervals, self._zone_ends, strict=True)
                if self._zone_counts(a, b, z, start, end, None, floor_ms, own)]
        hits += self._local_hits(start, end, own, floor_ms, out_ms)
        return [(max(a, start), min(b, end)) for a, b in hits]

    def _local_hits(self, start: float, end: float, own: tuple[float, float] | None, floor_ms: float,
                    out_ms: float | None = None) -> list[tuple[float, float]]:
        """The local intervals and remembered or running tonal runs that count against [start, end] with a tone
        heard at ``floor_ms`` (``_matters``)."""
        runs = [*self.tonal_runs]
        if self._active_since is None and self._run_start is not None and self._counted:
            runs.append([self._run_start - self.config.lead_s, float("inf")])
        return [(a, b) for a, b in [*self.local_intervals, *runs]
                if self._matters(a, b, start, end, floor_ms, own, out_ms, calls=True)]

    def piece_reached(self, start: float, end: float, parent_end: float, own: tuple[float, float] | None,
                      heard_ms: float) -> bool:
        """Does the siren evidence of the long event a piece [start, end] was cut out of (around its maximum)
        reach the piece? Any interval or run overlapping the piece, whatever its tone's level there (a siren
        masked by the queue it sounds over); and a local one first heard after the piece, before
        ``parent_end``, with a tone at >= ``heard_ms`` (it may have sounded, masked, during the piece). Not: one
        the detector followed until it stopped before the piece, nor the hub's zone sounding only after it
        (the hub states when its sirens sounded)."""
        if self.reasons(start, end, own=own) or self.tonal_nearby(start, end, own=own):
            return True
        return self.heard_after(end, parent_end, own, heard_ms)

    def heard_after(self, start: float, end: float, own: tuple[float, float] | None, floor_ms: float) -> bool:
        """Did a local interval or tonal run overlapping (start, end] have a tone at >= ``floor_ms`` heard there?
        (``heard_spans`` without the hub's zone state, which says when its sirens sounded.)"""
        return bool(self._local_hits(start, end, own, floor_ms))

    def _zone_counts(self, a: float, b: float, z: float, start: float, end: float, floor_ms: float | None,
                     zone_floor_ms: float | None, own: tuple[float, float] | None = None) -> bool:
        """Does the zone interval [a, b] (sounding until ``z``, then the grace for a rotor siren's run-down)
        count against [start, end]? With ``zone_floor_ms``: only where a tone that loud was heard in the overlap
        (inside ``own``, a counted run's: ``_heard``).
        Without it, while the zone sounds always; in the grace only (given ``floor_ms``) where a tone at
        ``floor_ms`` was heard: a siren running down is a tone, and the hub has said it stopped."""
        if not (a < end and start < b):
            return False
        if zone_floor_ms is not None:
            return self._heard(a, b, start, end, zone_floor_ms, own)
        if floor_ms is None or start < z:
            return True
        return self._heard(z, b, start, end, floor_ms, own)


def _within(a: float, b: float, own: tuple[float, float] | None) -> bool:
    return own is not None and own[0] <= a and b <= own[1]
