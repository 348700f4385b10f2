"""Scoring of noise-pipeline events against scene labels (used by bench.noise_accuracy and the tests).

Definitions (all times in stream seconds; a *label* is one labelled source of a scene):

- an event *matches* a label when the label's peak time lies in [event start - 1 s, event end + 1 s];
- a *detection* is an event classed ``exhaust``, not suppressed, at or above the candidate threshold;
  ``tp`` / ``fp``: detections that match / match no true loud exhaust (nor an ambiguous one); ``found`` / ``fn``:
  true loud exhausts that a detection matches / none does (precision is ``tp / (tp + fp)``, recall
  ``found / (found + fn)``: a detection spanning two exhausts finds both);
- a *true loud exhaust* is a labelled exhaust whose LAFmax at 7.5 m is at least ``candidate + margin`` and whose
  peak +- 2 s overlaps no siren; exhausts within ``margin`` of the threshold, or passing while a siren sounds,
  are *ambiguous* (neither misses nor false detections);
- enforcement *truth*: a true loud exhaust at least ``over_db`` (3 dB) above the enforcement threshold;
  an enforcement case is *correct* when it matches a labelled exhaust at or above the threshold;
- a *siren-caused* case: a labelled siren's own level at the microphone (its 10 Hz LAF trace, or, without
  one, its time span) came within 10 dB of the event's LAFmax during the event; *horn-caused*: a horn's peak
  matches the event and no exhaust at or above the threshold does; *legal-car-caused*: only legal cars match;
- the same two by level (``horn_level``, ``legal_level``): a wrong case counts only if the matching horn's (legal
  car's) own LAFmax at the microphone comes within 10 dB of the event's LAFmax (a horn 12 dB under the event's
  maximum did not make its level); ``exhaust_piece``: a wrong case lying inside the span (``t_start`` -
  ``t_end``) of an over-limit exhaust whose own LAFmax at the microphone reaches the event's: a piece of that
  exhaust's pass-by the detector split off (a second case for the same vehicle), not matched by the +-1 s rule;
- level error: event LAFmax at 7.5 m minus the label, for *isolated* pass-bys (no other labelled source
  within 15 dB of it closer than 5 s or inside the same event, no clipping in the event);
- ``enf_miss:<reason>``: for each enforcement truth without a case, why (``miss_reason``): aggregate
  diagnostics of the failure kinds, never used to fit anything.
"""

from __future__ import annotations

import math
from collections import Counter

from gateway.noise.rules import NOT_BLOCKING  # how the level was measured, not why no case

CAUSE_DB = 10.0


def wilson(k: int, n: int, z: float = 1.96) -> list[float] | None:
    """95 % Wilson score interval of a proportion k/n."""
    if n == 0:
        return None
    p = k / n
    den = 1 + z * z / n
    c = (p + z * z / (2 * n)) / den
    h = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / den
    return [round(max(0.0, c - h), 4), round(min(1.0, c + h), 4)]


def ratio(k: int, n: int) -> dict[str, object]:
    return {"value": round(k / n, 4) if n else None, "k": k, "n": n, "ci95": wilson(k, n)}


def siren_level_during(src: dict, a: float, b: float) -> float:
    """The labelled siren's own maximum LAF at the microphone during [a, b] (-inf if silent then). Without a
    trace the siren counts as loud (+inf) whenever its span overlaps [a, b]."""
    trace = src.get("laf_trace")
    if not trace:
        return math.inf if src.get("t_start", math.inf) < b and a < src.get("t_end", -math.inf) else -math.inf
    t0 = src.get("laf_trace_t0", src["t_start"])
    i0, i1 = max(0, int((a - t0) * 10)), max(0, int(math.ceil((b - t0) * 10)))
    part = trace[i0:i1]
    return max(part) if part else -math.inf


def _mic_db(s: dict, labels: dict) -> float:
    """A labelled source's own LAFmax at the microphone (from its 7.5 m level by the point-source rule if the
    family does not label it)."""
    if "lafmax_mic_db" in s:
        return float(s["lafmax_mic_db"])
    if "lafmax_7p5_db" not in s:
        return -math.inf
    d = float(s.get("source_distance_m") or labels["distance_m"])
    return float(s["lafmax_7p5_db"]) - 20 * math.log10(max(d, 0.5) / 7.5)


def _matches(e, s: dict) -> bool:
    return "t_peak" in s and e.start - 1.0 <= s["t_peak"] <= e.end + 1.0


OWN_S = 1.0  # a record's maximum this close to a labelled source's is that source's


def _own(e, s: dict) -> bool:
    """Is the record's maximum (``peak``, stream seconds) the labelled source's own, within ``OWN_S``? A record
    that spans two vehicles, or a vehicle and a horn, states the level of whichever made its maximum: it
    ``_matches`` both, but a case for the other vehicle names the wrong level and, in a record the hub shows
    for one vehicle, the wrong one. The pieces a record lists in ``absorbed_cases`` (cases of their own before
    they joined it, ``gateway.noise.chains``) name their maxima and levels too, so each of them counts."""
    if "t_peak" not in s:
        return False
    peaks = [e.peak, *(c.peak for c in (getattr(e, "absorbed_cases", None) or ()))]
    return any(abs(float(p) - float(s["t_peak"])) <= OWN_S for p in peaks)


def score_scene(labels: dict, events: list, *, candidate_db: float, enforcement_db: float, uncertainty_db: float,
                margin_db: float, over_db: float = 3.0) -> dict:
    """Counters for one scene (``uncertainty_db`` is kept for older callers; enforcement truth uses over_db)."""
    sources = labels["sources"]
    sirens = [s for s in sources if s.get("class") == "siren"]
    exh = [s for s in sources if s.get("class") == "exhaust"]

    def during_siren(a: float, b: float) -> bool:
        return any(s.get("t_start", 0) < b and a < s.get("t_end", 0) for s in sirens)

    truth, ambiguous = [], []
    for s in exh:
        lv = s["lafmax_7p5_db"]
        if abs(lv - candidate_db) < margin_db or during_siren(s["t_peak"] - 2, s["t_peak"] + 2):
            ambiguous.append(s)
        elif lv >= candidate_db + margin_db:
            truth.append(s)
    enf_truth = [s for s in truth if s["lafmax_7p5_db"] >= enforcement_db + over_db]
    over_limit = [s for s in exh if s["lafmax_7p5_db"] >= enforcement_db]

    out: Counter[str] = Counter()
    dets = [e for e in events if e.klass == "exhaust" and not e.suppressed and e.candidate]
    for e in dets:
        if any(_matches(e, s) for s in truth):
            out["tp"] += 1
        elif any(_matches(e, s) for s in ambiguous):
            out["ignored"] += 1
        else:
            out["fp"] += 1
            # a piece of a real exhaust's passage (a queued car's revs, an approach split off), not an exhaust
            # call on another source: it lies within a labelled exhaust's sounding span, away from its centre
            out["fp_exhaust_span"] += any(s.get("t_start", math.inf) - 1.0 <= e.end
                                          and e.start <= s.get("t_end", -math.inf) + 1.0 for s in exh)
    for s in truth:  # recall counts exhausts: one detection spanning two of them finds both
        hit = [e for e in dets if _matches(e, s)]
        out["found" if hit else "fn"] += 1
        # ... and how many were found by a detection whose maximum is the exhaust's own (``_own``)
        out["found_own"] += any(_own(e, s) for e in hit)
    enf = [e for e in events if e.enforcement]
    for e in enf:
        if during_siren(e.start, e.end):
            out["siren_overlap_enforcement"] += 1
        if any(siren_level_during(s, e.start, e.end) >= e.levels.lafmax - CAUSE_DB for s in sirens):
            out["siren_enforcement"] += 1
        exhaust_ok = any(_matches(e, s) for s in over_limit)
        if exhaust_ok:
            out["enf_correct"] += 1
        else:
            out["enf_wrong"] += 1
            kinds = {s.get("class") for s in sources if _matches(e, s)}
            loud = [s for s in sources if _matches(e, s) and _mic_db(s, labels) >= e.levels.lafmax - CAUSE_DB]
            if "horn" in kinds:
                out["horn_enforcement"] += 1
                out["horn_level_enforcement"] += any(s.get("class") == "horn" for s in loud)
            if kinds & {"exhaust"}:
                out["enf_below_limit_exhaust"] += 1
            elif any(s.get("kind") == "legal_car" for s in sources if _matches(e, s)):
                out["legal_enforcement"] += 1
                out["legal_level_enforcement"] += any(s.get("kind") == "legal_car" for s in loud)
            if any(s.get("t_start", 1e9) <= e.end and e.start <= s.get("t_end", -1e9)
                   and _mic_db(s, labels) >= e.levels.lafmax for s in over_limit):
                out["exhaust_piece_enforcement"] += 1
    for s in enf_truth:
        out["enf_truth"] += 1
        cases = [e for e in enf if _matches(e, s)]
        if cases:
            out["enf_found"] += 1
            out["enf_found_own"] += any(_own(e, s) for e in cases)  # a case that states this vehicle's level
        else:
            if any(_matches(e, s) and "clipped" in e.flags for e in events):
                out["enf_missed_clipped"] += 1
            out[f"enf_miss:{miss_reason([e for e in events if _matches(e, s)], enforcement_db)}"] += 1
    for s in sources:  # confusion: labelled loud source class -> class of the event covering its peak
        if "t_peak" not in s or s.get("kind") == "legal_car" or s.get("class") in (None, "none"):
            continue
        cover = [e for e in events if _matches(e, s)]
        out[f"conf:{s['class']}->{cover[0].klass if cover else 'none'}"] += 1
    return dict(out)


ENFORCE_SCORE = 0.8  # gateway.noise.classifier.MIN_EXHAUST_SCORE, for records that do not name the score they used


def miss_reason(cover: list, enforcement_db: float) -> str:
    """Why a labelled exhaust over the limit made no case (aggregate diagnostics, first reason that applies to
    the loudest event covering it): no_event, suppressed, class_<k>, flag_<f>, low_score, level, clipped."""
    if not cover:
        return "no_event"
    e = max(cover, key=lambda ev: ev.levels.lafmax)
    if e.suppressed:
        return "suppressed"
    if e.klass != "exhaust":
        return f"class_{e.klass}"
    blocking = [f for f in e.flags if f not in NOT_BLOCKING]
    if blocking:
        return f"flag_{blocking[0]}"
    score = getattr(e, "enforcement_score", None)  # what the gate was applied to (older records: the exhaust score)
    if (e.scores.get("exhaust", 0.0) if score is None else score) < (getattr(e, "thresholds", None) or {}).get("min_exhaust_score", ENFORCE_SCORE):
        return "low_score"
    if "clipped" in e.flags and "exceedance_proven_unclipped" not in e.flags:
        return "clipped"
    return "level"


def level_errors(labels: dict, events: list) -> list[float]:
    """LAFmax(7.5 m) errors of isolated, unclipped exhaust pass-bys matched by exactly one event (isolated: no other
    labelled source within 15 dB of it at the microphone peaks within 5 s of it, or sounds during its event)."""
    return [d["total"] for d in level_error_parts(labels, events)]


def level_error_parts(labels: dict, events: list) -> list[dict]:
    """The level errors of ``level_errors``, each split in two (dB): ``at_mic``, the event's LAFmax at the
    microphone minus the source's own (``lafmax_mic_db``: the meter, the event's level window, background and
    tails of other sources), and ``normalisation``, the rest (``total - at_mic``: the event's correction to
    7.5 m minus the one the label implies; the point-source rule assumes the maximum is heard at closest
    approach). ``at_mic`` is None where the label has no ``lafmax_mic_db``; ``margin``: the record's stated
    enforcement margin (its expanded uncertainty, ``uncertainty.margin_db``; None for a record without one)."""
    dist = float(labels["distance_m"])
    out = []

    def mic(s: dict) -> float:
        if "lafmax_mic_db" in s:
            return float(s["lafmax_mic_db"])
        return float(s.get("lafmax_7p5_db", -math.inf)) - 20 * math.log10(dist / 7.5)

    for s in labels["sources"]:
        if s.get("class") != "exhaust":
            continue
        others = [o for o in labels["sources"] if o is not s and o.get("class") not in (None, "none")
                  and (abs(o.get("t_peak", 1e9) - s["t_peak"]) < 5 or o.get("class") == "siren"
                       and o.get("t_start", 1e9) - 5 < s["t_peak"] < o.get("t_end", -1e9) + 5)
                  and mic(o) > mic(s) - 15]
        hit = [e for e in events if _matches(e, s)]
        if others or len(hit) != 1 or hit[0].levels.clipped_samples:
            continue
        e = hit[0]
        if any(o is not s and o.get("class") not in (None, "none") and mic(o) > mic(s) - 15
               and (_matches(e, o) or o.get("t_start", 1e9) < e.end and e.start < o.get("t_end", -1e9))
               for o in labels["sources"]):
            continue  # the event also covers another loud source, or part of one's own span: not isolated
        lv = hit[0].levels
        total = lv.lafmax_7p5 - float(s["lafmax_7p5_db"])
        at_mic = lv.lafmax - float(s["lafmax_mic_db"]) if "lafmax_mic_db" in s else None
        unc = getattr(e, "uncertainty", None)
        out.append({"total": total, "at_mic": at_mic, "normalisation": None if at_mic is None else total - at_mic,
                    "margin": None if unc is None else float(unc.margin_db)})
    return out
