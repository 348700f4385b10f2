"""The noise pipeline: levels, pass-by events, classification, siren suppression and evidence.

``NoiseAnalyzer.feed(samples)`` takes blocks of any size and returns what they completed: per-second
level records and finished events. Per-block work is the level meter (A-weighting, Fast/Slow), an
8 Hz spectrogram for the local siren detector and the pass-by detector; feature extraction, LCpeak and
the 1/3-octave spectrum run only for events, on the raw samples kept in a ring buffer (and a second ring of the
meter's A-weighted squared samples, which choose the classifier's loud frames without a second A filter;
60 s of float32 each, 11.5 MB at 48 kHz). An event is
finished ``finalize_delay_s`` after it ends, so its trace covers 5 s after it and the siren detector has
seen what followed. The spectrogram and the local siren detector run on batches of up to ``TONAL_BATCH_S``
of the ring's samples, and always on everything received before an event is finished (nothing else reads
them): their per-call cost is paid once per batch instead of once per chunk, with the same results, since
both are frame-sequential (``tests/noise/test_dsp_equivalence.py``).
"""

from __future__ import annotations

import dataclasses
import math
from collections import Counter

import numpy as np
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from contract.evidence import (
    AbsorbedCase,
    AudioClip,
    Levels,
    Location,
    ModelInfo,
    NoiseEvidence,
    PassBy,
    Sensor,
    Trace,
    Uncertainty,
    sign,
)
from contract.models import ZoneState
from gateway.noise import classifier
from gateway.noise.analyzer_config import TRACE_MARGIN_S, AnalyzerConfig, FeedResult
from gateway.noise.buffers import CLIP_GUARD_S, Ring, event_overload, peak_c, spectrum_at, wav_b64
from gateway.noise.chains import EDGE_PEAK_S, VOTED, edge_peak, exhaust_votes, pass_bys
from gateway.noise.detector import PassByDetector, RawEvent
from gateway.noise.dsp import FRAME_DTYPE, FRAME_HZ, LevelMeter, to_db
from gateway.noise.features import opening_horn
from gateway.noise.horn_probe import OPEN_MAX_S
from gateway.noise.rules import enforcement_score, feature_flags, is_case, unflag
from gateway.noise.seconds import SecondLevels, Seconds
from gateway.noise.siren_cut import cut_piece, only_siren_blocks
from gateway.noise.spectrum import SPEC_HZ, Spectrogram
from gateway.noise.suppression import SirenSuppressor
from gateway.noise.weighting import a_weighting_sos, c_weighting_sos

RING_S = 60.0
CORE_S = 2.0
ENGINE_TONE_P = 0.7  # an exhaust this sure owns the tonal runs inside its own span (an engine order is a tone)
TONE_MATTERS_DB = 20.0  # a siren tone this far under an event's LAFmax adds < 0.05 dB: it does not suppress it
TONE_HEARD_DB = 30.0  # ... and one this far under it, heard inside the event, flags it (the siren overlaps it)
TONAL_BATCH_S = 30.0  # the local siren detector catches up at least this often (and before any event is finished)
_Ring = Ring  # older name (tests)
__all__ = ["CLIP_GUARD_S", "CORE_S", "EDGE_PEAK_S", "AnalyzerConfig", "FeedResult", "NoiseAnalyzer",
           "SecondLevels", "analyze_array"]


class NoiseAnalyzer:
    def __init__(self, config: AnalyzerConfig | None = None, *, key: Ed25519PrivateKey | None = None) -> None:
        self.config = config or AnalyzerConfig()
        c = self.config
        self.fs = c.meter.fs
        self.meter = LevelMeter(c.meter)
        self.k_db = self.meter.k_db
        self.spec = Spectrogram(self.fs, short_nfft=1024)
        self.detector = PassByDetector(c.detector)
        self.suppressor = SirenSuppressor(self.spec.freqs, SPEC_HZ, c.suppression, t0=c.t0)
        self.key = key
        self.counters: Counter[str] = Counter()
        self._ring = Ring(int(RING_S * self.fs))
        self._wring = Ring(int(RING_S * self.fs))  # the meter's A-weighted squared samples, aligned with _ring
        n_frames = int((RING_S + 2 * TRACE_MARGIN_S) * FRAME_HZ)
        self._frames = np.zeros(n_frames, dtype=FRAME_DTYPE)
        self._frames_end = 0
        self._pending: list[RawEvent] = []
        self._seconds = Seconds(self.k_db)
        self._csos = c_weighting_sos(self.fs).astype(np.float32)
        self._asos = a_weighting_sos(self.fs)
        self._chunk = max(1, int(c.chunk_s * self.fs))
        self._queued: list[np.ndarray] = []
        self._queued_n = 0
        self._model_version: tuple[object, str] | None = None  # (model, its version): hashed once, not per event
        self._tonal_from = 0  # first sample (absolute) the spectrogram and the siren detector have not seen
        self._tonal_batch = int(TONAL_BATCH_S * self.fs)

    def zone_state(self, state: ZoneState) -> None:
        """Apply the hub's retained public zone state (decoded and validated by the MQTT layer)."""
        self.suppressor.zone_state(state)

    # ------------------------------------------------------------ streaming
    def feed(self, x: np.ndarray) -> FeedResult:
        """Queue a block; the pipeline runs on whole chunks of ``chunk_s`` (default 1 s) of samples."""
        x = np.asarray(x, dtype=np.float32).reshape(-1)
        self._queued.append(x)
        self._queued_n += x.size
        if self._queued_n < self._chunk:
            return FeedResult([], [])
        return self._process(self._take())

    def _take(self) -> np.ndarray:
        x = np.concatenate(self._queued) if len(self._queued) > 1 else self._queued[0]
        self._queued, self._queued_n = [], 0
        return x

    def _process(self, x: np.ndarray) -> FeedResult:
        frames = self.meter.feed(x)
        if self._ring.end + x.size - self._tonal_from > self._ring.cap:  # the ring would drop unseen samples
            self._tonal_catch_up()
            self.suppressor.feed(*self.spec.feed(x))
            self._tonal_from = self._ring.end + x.size
        self._ring.push(x)
        self._wring.push(self.meter.weighted_sq)
        self._store(frames)
        seconds = self._seconds.feed(frames)
        self._pending.extend(self.detector.feed(frames))
        events = self._finalize(flush=False)
        if self._ring.end - self._tonal_from >= self._tonal_batch:
            self._tonal_catch_up()
        return FeedResult(seconds, events)

    def _tonal_catch_up(self) -> None:
        """Run the spectrogram and the local siren detector over the samples they have not seen yet."""
        if self._ring.end > self._tonal_from:
            x = self._ring.get(self._tonal_from, self._ring.end)
            self._tonal_from = self._ring.end
            self.suppressor.feed(*self.spec.feed(x))

    def close(self) -> FeedResult:
        """End of stream: process what is queued, close any open event and finish everything pending."""
        head = self._process(self._take()) if self._queued_n else FeedResult([], [])
        self._pending.extend(self.detector.flush())
        self._tonal_catch_up()
        return FeedResult(head.seconds, head.events + self._finalize(flush=True))

    def _store(self, frames: np.ndarray) -> None:
        cap = self._frames.size
        parts = [frames] if frames.size <= cap else np.array_split(frames, math.ceil(frames.size / cap))
        for fr in parts if frames.size else []:
            idx = fr["index"] % cap
            self._frames[idx] = fr
        self._frames_end = self.meter.frames_done

    def _frames_range(self, a: int, b: int) -> np.ndarray:
        cap = self._frames.size
        a = max(a, self._frames_end - cap, 0)
        b = min(b, self._frames_end)
        if b <= a:
            return np.zeros(0, dtype=FRAME_DTYPE)
        return self._frames[np.arange(a, b) % cap]

    def _finalize(self, *, flush: bool) -> list[NoiseEvidence]:
        """Records of the chains (``RawEvent.chain``: touching pieces) whose last piece ended finalize_delay_s
        ago. Every piece is analysed; a piece that is a louder touching neighbour's approach or departure and
        of the same class is absorbed into it (``gateway.noise.chains``): one pass-by, one record."""
        done_frames = self.meter.frames_done
        delay = round(self.config.finalize_delay_s * FRAME_HZ)
        last: dict[int, int] = {}
        for e in self._pending:
            last[e.chain] = max(last.get(e.chain, 0), e.end)
        ready = [e for e in self._pending if flush or last[e.chain] + delay <= done_frames]
        self._pending = [e for e in self._pending if e not in ready]
        if ready:
            self._tonal_catch_up()  # the siren detector must have heard everything up to now
        out = []
        det = self.config.detector
        for chain in sorted({e.chain for e in ready}):
            pieces = [e for e in ready if e.chain == chain]
            recs = [self._evidence(ev) for ev in pieces]
            pieces, recs, part_of = self._siren_cuts(pieces, recs)
            for j in exhaust_votes(pieces, recs, det.bridge_frames):
                self.counters["class_from_chain"] += 1
                recs[j] = recs[j].model_copy(update={"klass": "exhaust", "enforcement": False,
                                                     "flags": (*recs[j].flags, VOTED)})
            kept = pass_bys(pieces, recs, part_of, speed_mps=det.skirt_speed_mps, slant_m=det.slant_m,
                            gap=det.bridge_frames, blips=det.exhaust_blips)
            for k, span, n, members in kept:
                out.append(self._report(pieces[k], recs[k], span, n, [recs[m] for m in members if recs[m].enforcement]))
        return out

    def _siren_cuts(self, pieces: list[RawEvent], recs: list[NoiseEvidence]) -> tuple[list, list, list]:
        """Pieces that ``siren_nearby`` alone kept from being cases, by sirens heard outside their core, cut away
        from them (``gateway.noise.siren_cut``) where the part holding the maximum is then a case; ``part_of``:
        the index of the piece a part was cut from (None: not cut)."""
        out_p, out_r, part_of = [], [], []
        det = self.config.detector
        for i, (ev, rec) in enumerate(zip(pieces, recs, strict=True)):
            cut = ev.parent is None and only_siren_blocks(rec, det.margin_db, det.enforcement_db)  # else no case
            parts = self._cut(ev, rec) if cut else None
            mid = next((p for p in parts if p.start <= ev.peak < p.end), None) if parts else None
            mid_rec = self._evidence(mid, probe=True) if mid is not None else None
            if mid_rec is None or not mid_rec.enforcement:
                out_p.append(ev), out_r.append(rec), part_of.append(None)
                continue
            self.counters["siren_cuts"] += 1
            for p in parts:
                out_p.append(p), out_r.append(mid_rec if p is mid else self._evidence(p)), part_of.append(i)
        return out_p, out_r, part_of

    def _cut(self, ev: RawEvent, rec: NoiseEvidence) -> list[RawEvent] | None:
        det = self.config.detector
        own = self._own(ev.start / FRAME_HZ, ev.end / FRAME_HZ, rec.klass, rec.scores)
        return cut_piece(ev, self._heard_spans(ev, own), self._frames_range, core_s=CORE_S,
                         min_s=max(det.min_duration_s, 1.0), max_duration_s=det.max_duration_s)

    def _heard_spans(self, ev: RawEvent, own: tuple[float, float] | None) -> list[tuple[float, float]]:
        """Where in ``ev`` a siren was heard within ``TONE_HEARD_DB`` of its LAFmax (``siren_nearby``)."""
        return self.suppressor.heard_spans(ev.start / FRAME_HZ, ev.end / FRAME_HZ, own,
                                           self._ms_under(ev, TONE_HEARD_DB), self._ms_under(ev, TONE_MATTERS_DB))

    def _opened(self, ev: RawEvent) -> bool:
        """Did ``ev`` open from under the detector's threshold (not at a split, a cut or the hard limit)?"""
        before = self._frames_range(ev.start - 1, ev.start)
        return ev.parent is None and before.size == 1 and before["lafmax"][0] < self.config.detector.open_mic_db

    def _ms_under(self, ev: RawEvent, db: float) -> float:
        """The tone mean square ``db`` under ``ev``'s LAFmax (the suppressor's units)."""
        return 10 ** ((ev.lafmax - self.k_db - db) / 10)

    def _own(self, start_s: float, end_s: float, klass: str, scores: dict) -> tuple[float, float] | None:
        """A confident exhaust's own span: the tonal runs inside it may be its engine's orders."""
        if klass != "exhaust" or scores.get("exhaust", 0.0) < ENGINE_TONE_P:
            return None
        c = self.suppressor.config
        return (start_s - c.lead_s - 1.0, end_s + c.hold_s + 1.0)

    def _report(self, ev: RawEvent, rec: NoiseEvidence, span: tuple[int, int], absorbed: int,
                cases: list[NoiseEvidence] = ()) -> NoiseEvidence:
        """The record of a pass-by that kept ``absorbed`` pieces of its approach or departure: its start, end,
        duration, id and trace cover ``span`` (frames); ``pass_by`` is what was measured; ``cases``: the
        absorbed pieces that were cases of their own (``absorbed_cases``). Counted and signed."""
        c = self.config
        if absorbed:
            self.counters["absorbed"] += absorbed
            a, b = span
            if "edge_peak" in rec.flags and not edge_peak(ev, span, self._opened(ev)):
                det = self.config.detector  # its maximum is inside the pass-by it became
                rec = unflag(rec, "edge_peak", ev.lafmax + det.distance_correction_db, det.margin_db, det.enforcement_db)
            rec = rec.model_copy(update={
                "id": f"{c.gateway}.{c.sensor}.{round((c.t0 + a / FRAME_HZ) * 1000)}",
                "start": round(c.t0 + a / FRAME_HZ, 3), "end": round(c.t0 + b / FRAME_HZ, 3),
                "duration_s": round((b - a) / FRAME_HZ, 3), "trace": self._trace(a, b),
                "pass_by": PassBy(start=rec.start, end=rec.end, absorbed=absorbed),
                "absorbed_cases": tuple(AbsorbedCase(peak=r.peak, lafmax_7p5=r.levels.lafmax_7p5,
                                                     enforcement_score=r.enforcement_score)
                                        for r in sorted(cases, key=lambda r: r.peak)) or None})
            if cases:
                self.counters["absorbed_cases"] += len(cases)
        self.counters["events"] += 1
        self.counters[f"class_{rec.klass}"] += 1
        if rec.suppressed:
            self.counters["suppressed"] += 1
        if rec.enforcement:
            self.counters["enforcement"] += 1
        return sign(rec, self.key) if self.key is not None else rec

    def _trace(self, a: int, b: int) -> Trace:
        """The 10 Hz LAF of frames [a, b) with TRACE_MARGIN_S either side."""
        fr = self._frames_range(a - int(TRACE_MARGIN_S * FRAME_HZ), b + int(TRACE_MARGIN_S * FRAME_HZ))
        return Trace(t0=round(self.config.t0 + (float(fr["index"][0]) if fr.size else a) / FRAME_HZ, 3),
                     laf=tuple(round(float(v), 2) for v in fr["lafmax"]))

    # ------------------------------------------------------------ one event
    def _evidence(self, ev: RawEvent, probe: bool = False) -> NoiseEvidence:
        """The unsigned record of one piece: measured, classified and checked on its own span (``probe``: a
        part tried for a cut, which may be thrown away: it registers no classifier-called siren)."""
        c = self.config
        fs = self.fs
        fsamp = c.meter.frame_samples
        frames = self._frames_range(ev.start, ev.end)
        start_s, end_s, peak_s = ev.start / FRAME_HZ, ev.end / FRAME_HZ, (ev.peak + 0.5) / FRAME_HZ
        duration = (ev.end - ev.start) / FRAME_HZ
        laeq = float(to_db(frames["ms"].mean(), self.k_db)) if frames.size else float("nan")
        sel = laeq + 10 * math.log10(duration)
        audio = self._ring.get(ev.start * fsamp, ev.end * fsamp)
        peak_at = max(0, min(audio.size - 1, int((peak_s - start_s) * fs)))
        model = classifier.current_model()
        det = c.detector
        corr = det.distance_correction_db
        lafmax_ref = ev.lafmax + corr
        wsq = self._wring.get(ev.start * fsamp, ev.end * fsamp)
        ft = (classifier.features(audio, fs, peak_at, level_7p5=lafmax_ref, weighted_sq=wsq)
              if audio.size >= fs // 10 else None)
        sc = classifier.scores(ft, model) if ft is not None else {k: 0.0 for k in classifier.CLASSES}
        klass = max(sc, key=lambda k: sc[k]) if ft is not None else "other"
        if (klass == "exhaust" and peak_s - start_s <= OPEN_MAX_S  # could be a case: did a horn open it?
                and lafmax_ref - det.margin_db >= det.enforcement_db):
            on = opening_horn(self._ring, ev.start * fsamp, ev.end * fsamp, int(peak_s * fs), fs)
            ft = dataclasses.replace(ft, horn_inside=on) if on > ft.horn_inside else ft  # not a model input
        if audio.size < (ev.end - ev.start) * fsamp:
            self.counters["audio_partial"] += 1
        lcpeak = peak_c(self._ring, ev.start * fsamp, ev.end * fsamp, fs=fs, csos=self._csos, k_db=self.k_db)
        pc = int(peak_s * fs)
        spectrum = spectrum_at(self._ring, pc, fs=fs, k_db=self.k_db, t_center=round(c.t0 + peak_s, 3))
        trace = self._trace(ev.start, ev.end)
        margin = det.margin_db
        clipped = int(frames["clipped"].sum()) if frames.size else 0
        # an engine order is a narrow tone too: a confident exhaust owns the local tonal runs that lie within
        # its own span (a siren lasts far longer than one pass-by); the hub's zone state is never ignored
        own = self._own(start_s, end_s, klass, sc)
        # suppression looks at the event's core (its peak +- 2 s): a siren dying away as a loud exhaust
        # approaches must not hide the exhaust, but a siren sounding around the peak within TONE_MATTERS_DB
        # of its level always suppresses (docs/noise-suppression.md); a siren heard anywhere inside the event
        # (within TONE_HEARD_DB) flags it; one that stopped before it, or is far away, does neither
        sup = self.suppressor
        reasons = sup.reasons(max(start_s, peak_s - CORE_S), min(end_s, peak_s + CORE_S), own=own,
                              floor_ms=self._ms_under(ev, TONE_MATTERS_DB))
        if klass == "siren":
            reasons.append("classified_siren")
            if not probe:  # a part tried for a cut (``_siren_cuts``) and called siren leaves no siren behind
                sup.siren_event(start_s, end_s)
        flags = []
        if not reasons and self._heard_spans(ev, own):
            flags.append("siren_nearby")  # a siren sounded (or is starting) during the event, not at its peak
        elif not reasons and ev.parent is not None and sup.piece_reached(  # cut out of a long event around its
                start_s, end_s, ev.parent[1] / FRAME_HZ, own, self._ms_under(ev, TONE_HEARD_DB)):  # maximum
            flags.append("siren_nearby")
        flags += feature_flags(ft)  # siren-like tones, a horn's abrupt tones: never enforceable
        if ev.too_long:
            flags.append("too_long")
        if edge_peak(ev, (ev.start, ev.end), self._opened(ev)):
            flags.append("edge_peak")  # no interior maximum: the level was made at a boundary, not by a pass-by
        flags += ["cut"] if ev.cut else ["input_end"] if ev.ended else []  # input_end: a lower bound, no block
        overload = None
        if clipped:
            flags.append("clipped")
            m, fsamp = c.meter, c.meter.frame_samples
            overload = event_overload(self._ring, ev.start * fsamp, ev.end * fsamp, fs=fs, asos=self._asos,
                                      clip_level=m.clip_level, k_db=self.k_db, corr=corr, margin=margin,
                                      enforcement_db=det.enforcement_db, clipped_samples=clipped,
                                      clipped_frames=int((frames["clipped"] > 0).sum()), full_scale_db=m.full_scale_db)
            if overload.proves_exceedance:
                flags.append("exceedance_proven_unclipped")  # the unclipped part alone exceeds limit + margin
        suppressed = bool(reasons)
        min_score = c.min_exhaust_score if c.min_exhaust_score is not None else classifier.min_exhaust_score(model)
        shape = classifier.shape_siren(ft, sc, model) if ft is not None else 0.0  # siren mass of a slow swell
        score = round(enforcement_score(sc, shape), 4)
        enforcement = is_case(klass, score, min_score, suppressed, flags, lafmax_ref, margin, det.enforcement_db)
        clip = None
        if c.audio_clip and c.clip_seconds > 0:
            half = int(c.clip_seconds * fs / 2)
            raw = self._ring.get(pc - half, pc + half)
            clip = AudioClip(t0=round(c.t0 + max(pc - half, 0) / fs, 3), data=wav_b64(raw, fs))
        return NoiseEvidence(
            id=f"{c.gateway}.{c.sensor}.{round((c.t0 + start_s) * 1000)}",
            gateway=c.gateway,
            sensor=Sensor(id=c.sensor, kind=c.sensor_kind, full_scale_db=c.meter.full_scale_db,
                          calibration_offset_db=c.meter.calibration_offset_db,
                          calibration_date=c.calibration_date, fs=fs),
            location=Location(lat=c.lat, lon=c.lon, distance_to_lane_m=det.distance_m),
            clock=c.clock,
            start=round(c.t0 + start_s, 3), end=round(c.t0 + end_s, 3), peak=round(c.t0 + peak_s, 3),
            duration_s=round(duration, 3),
            levels=Levels(lafmax=round(ev.lafmax, 2), lafmax_7p5=round(lafmax_ref, 2), laeq=round(laeq, 2),
                          sel=round(sel, 2), lcpeak=lcpeak, clipped_samples=clipped),
            klass=klass, scores=sc, enforcement_score=score, features=ft.as_dict() if ft is not None else {},
            suppressed=suppressed, suppression=tuple(reasons),
            candidate=lafmax_ref >= det.candidate_db, enforcement=enforcement, flags=tuple(flags),
            thresholds={"candidate_db": det.candidate_db, "enforcement_db": det.enforcement_db,
                        "uncertainty_db": det.uncertainty_db, "reference_m": det.reference_m,
                        "min_exhaust_score": min_score, "tone_matters_db": TONE_MATTERS_DB,
                        "tone_heard_db": TONE_HEARD_DB, "edge_peak_s": EDGE_PEAK_S,
                        **({"mic_height_m": det.mic_height_m, "source_height_m": det.source_height_m}
                           if det.mic_height_m is not None else {})},
            trace=trace, spectrum=spectrum, audio=clip,
            model=ModelInfo(name="mlp" if model is not None else "rules", version=self._version_of(model)),
            overload=overload, uncertainty=Uncertainty(**det.budget.as_dict(margin)),
        )

    def _version_of(self, model) -> str:
        """``classifier.model_version(model)``, kept while the model object stays the same (the version hashes
        the model's weights: a SHA-256 of their JSON per event cost more than the event's LCpeak)."""
        if self._model_version is None or self._model_version[0] is not model:
            self._model_version = (model, classifier.model_version(model))
        return self._model_version[1]


def analyze_array(x: np.ndarray, config: AnalyzerConfig | None = None, *, block: int = 48_000,
                  zone_intervals: list[list[float]] | None = None,
                  key: Ed25519PrivateKey | None = None) -> tuple[list[SecondLevels], list[NoiseEvidence]]:
    """One-shot helper: run the streaming analyzer over an array in blocks."""
    an = NoiseAnalyzer(config, key=key)
    for a, b in zone_intervals or []:
        an.suppressor.add_zone_interval(a, b)
    seconds: list[SecondLevels] = []
    events: list[NoiseEvidence] = []
    for i in range(0, max(x.size, 1), block):
        r = an.feed(x[i: i + block])
        seconds += r.seconds
        events += r.events
    events += an.close().events
    return seconds, events
