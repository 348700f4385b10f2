"""Street noise scenes with ground-truth labels: the TRAINING family of the noise pipeline.

The random ranges every source draws from are declared in ``simulators.noise_sources.RANGES`` (the corpus
``dozor noise train`` learns from); an independent evaluation family lives in ``simulators.street_scenes``.

A scene is the pressure at one roadside microphone, ``distance_m`` from the lane, as float samples in
digital full-scale units (a full-scale sine = ``full_scale_db`` dB SPL, 120 dB by default). It mixes:

- traffic background (tilted pink noise, strong 30-500 Hz rumble, broad low resonances, sometimes an idling
  diesel's low harmonic series), far cars, and optional rain (hiss and drops) or wind (low-frequency gusts);
- legal cars and loud-exhaust cars and motorcycles passing by: engine-order harmonics of a firing
  frequency that follows an rpm sweep (with gear changes), exhaust roar, tyre noise, the 1/r level
  envelope of the pass-by and its Doppler shift (from the retarded propagation time);
- horns (one or two steady tones, ratio 1.1-1.4, with harmonics, one to three honks);
- civil-defence sirens (slow wail or 5:6 two-tone, rotor harmonics, rotation AM, long);
- emergency-vehicle sirens (yelp, wail, hi-lo, two-tone) passing by with Doppler.

The samples are clipped at digital full scale like a real microphone's (120, 130 or 135 dB SPL).

Every loud source is scaled so that, alone and in free field, its A-weighted Fast maximum at 7.5 m is the
labelled ``lafmax_7p5_db`` (the simulator measures that with its own frequency-domain A-weighting, which is
independent of gateway.noise). Labels also give times, kinds and the expected class, and for every siren
its own 10 Hz LAF trace at the microphone (``laf_trace`` from ``laf_trace_t0``), so a benchmark can tell
whether a siren contributed to an event's level.

This module must not import gateway (import layers): it is pure numpy/scipy plus a WAV writer.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from simulators import noise_balance as bal
from simulators import noise_extras as ext
from simulators import noise_sources as src
from simulators import noise_texture as tx
from simulators import noise_throttle as thr
from simulators import noise_wide as wide
from simulators.noise_io import SceneInputStream, SceneMicrophone, wav_bytes, write_scene
from simulators.noise_measure import P_REF_DB, laeq_db, laf_trace_db, lafmax_db

__all__ = ["CLASS_OF", "P_REF_DB", "STREET_MIX", "Scene", "SceneInputStream", "SceneMicrophone", "generate", "laeq_db",
           "laf_trace_db", "lafmax_db", "scenes", "wav_bytes", "write_scene"]

C_SOUND = 343.0
CLASS_OF = {
    "exhaust_car": "exhaust", "exhaust_moto": "exhaust", "legal_car": "other", "horn": "horn",
    "cd_siren_wail": "siren", "cd_siren_two_tone": "siren", "ev_siren_yelp": "siren",
    "ev_siren_wail": "siren", "ev_siren_hilo": "siren", "ev_siren_two_tone": "siren", "wind_gust": "other",
    "heavy": "other", "moto_legal": "other", "far_siren": "siren", "voice": "other", "birds": "other",
}
# The mix that spans the declared ranges (issue 13): what ``dozor noise train`` and ``bench.noise_accuracy``'s
# training family use. ``generate``'s defaults leave the ``simulators.noise_extras`` sources off.
STREET_MIX = {"exhaust": 1.8, "legal": 2.0, "horn": 0.4, "cd_siren": 0.2, "ev_siren": 0.3, "wind": 0.3,
              "rain": 0.25, "heavy": 0.9, "moto_legal": 0.6, "pair": 0.45, "pulse": 0.5, "horn_passby": 0.6,
              "far_siren": 0.15, "voices": 0.5, "birds": 0.4, "wide": 1.0, "throttle": 0.5}


@dataclass
class Scene:
    audio: np.ndarray  # float32, full-scale units
    fs: int
    labels: dict[str, object]
    sources: list[dict[str, object]] = field(default_factory=list)


# ---------------------------------------------------------------- scene

def _place(rng: np.random.Generator, taken: list[float], lo: float, hi: float, gap: float) -> float | None:
    for _ in range(50):
        tp = float(rng.uniform(lo, hi))
        if all(abs(tp - o) >= gap for o in taken):
            taken.append(tp)
            return tp
    return None


def generate(seed: int, *, duration_s: float = 40.0, fs: int = 48_000, full_scale_db: float | None = P_REF_DB,
             distance_m: float | None = None, mix: dict[str, float] | None = None,
             ev_kind: str | None = None, cd_two_tone: bool | None = None, clip: bool = True) -> Scene:
    """One random scene of the training family (ranges in ``simulators.noise_sources.RANGES``).

    ``mix`` overrides the mean counts (exhaust, legal: an int is an exact count) and the probabilities (horn,
    cd_siren, ev_siren, wind, rain) of each source kind. ``full_scale_db=None`` draws the microphone's full
    scale (120, 130 or 135 dB); ``clip`` clips the samples at digital full scale like a real microphone (the
    count is labelled ``clipped_samples``)."""
    rng = np.random.default_rng(seed)
    n = int(round(duration_s * fs))
    t = np.arange(n) / fs
    dist = float(distance_m if distance_m is not None else src.u(rng, "distance_m"))
    fsdb = float(full_scale_db if full_scale_db is not None else src.pick(rng, "full_scale_db"))
    p = {"exhaust": 1.5, "legal": 1.5, "horn": 0.35, "cd_siren": 0.25, "ev_siren": 0.25, "wind": 0.2,
         "rain": 0.2, "far": float(src.RANGES["far_cars_mean"]), "heavy": 0, "moto_legal": 0, "pair": 0.0,
         "pulse": 0.0, "horn_passby": 0.0, "far_siren": 0.0, "voices": 0, "birds": 0, "wide": 0.0, "texture": 0.0,
         "throttle": 0.0, "balance": 0.0, **(mix or {})}  # type: ignore[arg-type]
    rx = np.random.default_rng([seed & 0xFFFFFFFF, 13])  # the extra sources' own draws (noise_extras)
    rw = np.random.default_rng([seed & 0xFFFFFFFF, 17]) if p["wide"] else None  # domain randomisation
    refl = wide.reflection(rw, dist) if rw is not None else None
    rt = np.random.default_rng([seed & 0xFFFFFFFF, 19]) if p["texture"] else None  # sixth pass (noise_texture)
    rb = np.random.default_rng([seed & 0xFFFFFFFF, 23]) if p["throttle"] else None  # throttle blips
    rl = np.random.default_rng([seed & 0xFFFFFFFF, 29]) if p["balance"] else None  # spectral balance
    audio = np.zeros(n)
    sources: list[dict[str, object]] = []
    taken: list[float] = []
    corr = 20 * math.log10(dist / 7.5)  # level at the mic = level at 7.5 m - corr (point source)

    def add(x: np.ndarray, i0: int, target_mic_db: float, point: bool = True) -> float:
        """Scale x to its target LAFmax at the microphone and mix it in; returns the gain used."""
        if refl is not None and point:  # a ground reflection is part of what the microphone hears
            x = wide.reflect(x, fs, refl)
        measured = lafmax_db(x, fs, fsdb)
        g = 10 ** ((target_mic_db - measured) / 20)
        audio[i0: i0 + x.size] += g * x
        return g

    bg, bg_meta = src.background(rng, n, fs)
    if rw is not None:
        bg = wide.texture(rw, bg, fs)
    if rt is not None:  # randomly modulated noise bands: a recorded-style texture
        tex, tex_meta = tx.band_texture(rt, n, fs, float(np.sqrt(np.mean(bg**2))))
        bg = bg + tex
        bg_meta = {**bg_meta, **tex_meta}
    bg_db = src.u(rng, "background_laeq_db")
    audio += bg * 10 ** ((bg_db - laeq_db(bg, fs, fsdb)) / 20)
    sources.append({"kind": "background", "class": "none", "laeq_db": round(bg_db, 2), **bg_meta})
    if rng.random() < p["rain"]:
        r = src.rain(rng, n, fs)
        r_db = src.u(rng, "rain_laeq_db")
        audio += r * 10 ** ((r_db - laeq_db(r, fs, fsdb)) / 20)
        sources.append({"kind": "rain", "class": "none", "laeq_db": round(r_db, 2)})
    if rt is not None and tx.chance(rt, "heavy_rain_prob"):  # a downpour
        r = src.rain(rt, n, fs)
        r_db = tx.u(rt, "heavy_rain_laeq_db")
        audio += r * 10 ** ((r_db - laeq_db(r, fs, fsdb)) / 20)
        sources.append({"kind": "rain", "class": "none", "laeq_db": round(r_db, 2), "heavy": True})

    def window(tp: float, half: float) -> tuple[int, np.ndarray]:
        i0, i1 = max(0, int((tp - half) * fs)), min(n, int((tp + half) * fs))
        return i0, t[i0:i1]

    def vehicle(kind: str, tp: float, l75: float, loud: bool, moto: bool, lane_m: float = dist) -> None:
        speed = src.u(rng, "speed_mps")
        i0, tt = window(tp, float(np.clip(90 / speed, 4.0, 8.0)))
        blips, boost, t_meta = None, None, {}
        if loud and kind in ("exhaust_car", "exhaust_moto") and rb is not None and rb.random() < p["throttle"]:
            blips, boost, t_meta = thr.throttle(rb, tt, tp)
        if kind in ("heavy", "moto_legal"):
            make = ext.heavy if kind == "heavy" else ext.moto_legal
            x, meta = make(rx, tt, fs, t_peak=tp, speed=speed, dist=lane_m)
        elif loud and p["pulse"] and rx.random() < p["pulse"]:
            fast = rw is not None and wide.chance(rw, "fast_engine_prob")
            pops = (lambda m, pk: wide.pops(rw, m, fs, pk)) if rw is not None and wide.chance(
                rw, "pulse_crackle_prob") else None
            x, meta = ext.pulse_exhaust(rx, tt, fs, moto=moto, t_peak=tp, speed=speed, dist=lane_m, pops=pops,
                                        rpm_range=wide.WIDE_RANGES["moto_rpm_fast" if moto else "car_rpm_fast"]
                                        if fast else None)  # type: ignore[arg-type]
        else:
            fast = loud and rw is not None and wide.chance(rw, "fast_engine_prob")
            rpm0 = wide.u(rw, "moto_rpm_fast" if moto else "car_rpm_fast") if fast else None  # type: ignore[arg-type]
            x, meta = src.engine(rng, tt, fs, loud=loud, moto=moto, t_peak=tp, speed=speed, dist=lane_m, rpm0=rpm0,
                                 rpm_boost=boost)
        if blips is not None:  # the throttle opens and closes (amplitude; the base engine's rpm follows it too)
            x = x * blips
            meta = {**meta, **t_meta}
        if rl is not None:  # a bass-heavy balance (noise_balance), for any vehicle alike
            x, b_meta = bal.balance(rl, x, fs, float(p["balance"]))
            meta = {**meta, **b_meta}
        if rt is not None:  # a silencer's chambers, the body, the outlet: a random colouring
            x = tx.colour(rt, x, fs)
        mic = l75 - 20 * math.log10(lane_m / 7.5)
        add(x, i0, mic)
        sources.append({"kind": kind, "class": CLASS_OF[kind], "t_peak": round(tp, 3),
                        "t_start": round(tt[0], 3), "t_end": round(tt[-1], 3), "lafmax_7p5_db": round(l75, 2),
                        "lafmax_mic_db": round(mic, 2), "speed_mps": round(speed, 2), **meta})

    def count(v: float) -> int:  # an int is an exact count, a float the mean of a Poisson draw
        return v if isinstance(v, int) else int(rng.poisson(v))

    def _pair(tp: float) -> None:
        if not 1.0 < tp < duration_s - 1.0:
            return
        kind = str(ext.pick(rx, "pair_kinds"))
        if kind == "exhaust":
            moto = bool(rx.random() < 0.5)
            vehicle("exhaust_moto" if moto else "exhaust_car", tp, src.u(rx, "exhaust_db"), True, moto)
        elif kind == "legal_car":
            vehicle("legal_car", tp, src.u(rx, "legal_db"), False, False)
        else:
            vehicle(kind, tp, ext.u(rx, f"{kind}_db"), False, False)

    for _ in range(count(p["exhaust"])):
        tp = _place(rng, taken, 5.0, duration_s - 5.0, float(rng.uniform(3.0, 8.0)))
        if tp is not None:
            moto = bool(rng.random() < 0.5)
            vehicle("exhaust_moto" if moto else "exhaust_car", tp, src.u(rng, "exhaust_db"), True, moto)
            if p["pair"] and rx.random() < p["pair"]:  # a second vehicle close behind (overlapping sources)
                _pair(tp + ext.u(rx, "pair_gap_s"))
    for kind in ("heavy", "moto_legal"):
        for _ in range(int(rx.poisson(p[kind])) if p[kind] else 0):
            tp = _place(rx, taken, 4.0, duration_s - 4.0, float(rx.uniform(2.5, 5.0)))
            if tp is not None:
                vehicle(kind, tp, ext.u(rx, f"{kind}_db"), False, False)
    for _ in range(count(p["legal"])):
        tp = _place(rng, taken, 4.0, duration_s - 4.0, float(rng.uniform(2.5, 5.0)))
        if tp is not None:
            vehicle("legal_car", tp, src.u(rng, "legal_db"), False, False)
    for tp, loud in tx.platoon(rt, duration_s) if rt is not None else []:  # a queue released together
        taken.append(tp)
        if loud:
            moto = bool(rt.random() < 0.5)
            vehicle("exhaust_moto" if moto else "exhaust_car", tp, src.u(rt, "exhaust_db"), True, moto)
        else:
            kind = str(ext.pick(rt, "pair_kinds"))
            kind = "legal_car" if kind == "exhaust" else kind
            vehicle(kind, tp, src.u(rt, "legal_db") if kind == "legal_car" else ext.u(rt, f"{kind}_db"), False, False)
        sources[-1]["platoon"] = True
    for _ in range(count(p["far"])):  # far lanes and side streets: below the candidate threshold
        tp = float(rng.uniform(min(3.0, duration_s / 2), max(duration_s - 3.0, duration_s / 2)))
        lane = dist + float(rng.uniform(8, 30))
        vehicle("legal_car", tp, src.u(rng, "far_car_db") + 20 * math.log10(lane / 7.5), False, False, lane)
        sources[-1]["far"] = True
    if rng.random() < p["horn"]:
        tp = _place(rng, taken, 3.0, duration_s - 3.0, float(rng.uniform(2.0, 7.0)))
        if tp is not None:
            i0, tt = window(tp, 2.0)
            x, meta = src.horn(rng, tt, fs, None if rw is None else wide.tone_amps(rw, 910.0, fs)[1])
            l75 = src.u(rng, "horn_db")
            add(x, i0, l75 - corr)
            on = np.flatnonzero(np.abs(x) > 0)
            a, b = (tt[on[0]], tt[on[-1]]) if on.size else (tp, tp)
            sources.append({"kind": "horn", "class": "horn", "t_peak": round((a + b) / 2, 3),
                            "t_start": round(a, 3), "t_end": round(b, 3), "lafmax_7p5_db": round(l75, 2), **meta})
    if rng.random() < p["ev_siren"]:
        tp = _place(rng, taken, 6.0, duration_s - 6.0, float(rng.uniform(0.0, 9.0)))
        if tp is not None:
            kind = ev_kind or str(src.pick(rng, "ev_siren_kinds"))
            i0, tt = window(tp, 8.0)
            speed = float(rng.uniform(8, 22))
            amps = None if rw is None else wide.tone_amps(rw, 2000.0, fs)[1]
            x, meta = src.ev_siren(rng, tt, fs, kind, t_peak=tp, speed=speed, dist=dist, amps=amps)
            l75 = src.u(rng, "ev_siren_db")
            g = add(x, i0, l75 - corr)
            sources.append({"kind": kind, "class": "siren", "t_peak": round(tp, 3), "t_start": round(tt[0], 3),
                            "t_end": round(tt[-1], 3), "lafmax_7p5_db": round(l75, 2),
                            "laf_trace_t0": round(tt[0], 3), "laf_trace": laf_trace_db(g * x, fs, fsdb),
                            **meta})
    if rng.random() < p["wind"]:
        for _ in range(int(rng.integers(1, 3))):
            tp = _place(rng, taken, 3.0, duration_s - 3.0, 6.0)
            if tp is None:
                continue
            i0, tt = window(tp, float(rng.uniform(1.0, 3.0)))
            l_mic = src.u(rng, "wind_mic_db")
            w = src.wind(rng, tt.size, fs)
            if rt is not None and rt.random() < 0.5:  # buffeting reaching higher
                w = tx.wind(rt, tt.size, fs)
            add(w, i0, l_mic, point=False)
            sources.append({"kind": "wind_gust", "class": "other", "t_peak": round(tp, 3),
                            "t_start": round(tt[0], 3), "t_end": round(tt[-1], 3), "lafmax_mic_db": round(l_mic, 2),
                            "lafmax_7p5_db": round(l_mic + corr, 2)})
    _extras(rx, p, audio, sources, taken, t, fs, fsdb, dist, add, window, duration_s, rw)
    zone_active: list[list[float]] = []
    if rng.random() < p["cd_siren"]:
        two = bool(rng.random() < 0.5) if cd_two_tone is None else cd_two_tone
        kind = "cd_siren_two_tone" if two else "cd_siren_wail"
        length = float(rng.uniform(min(18.0, duration_s), min(40.0, duration_s)))  # the whole scene if shorter
        start = float(rng.uniform(0, max(0.0, duration_s - length)))
        i0 = int(start * fs)
        tt = t[i0: min(n, i0 + int(length * fs))]
        x, meta = src.cd_siren(rng, tt, fs, two)
        l_mic = src.u(rng, "cd_siren_mic_db")
        g = add(x, i0, l_mic)
        hub_knows = bool(rng.random() < 0.5)
        if hub_knows:
            zone_active.append([round(start, 3), round(start + length, 3)])
        sources.append({"kind": kind, "class": "siren", "t_start": round(start, 3), "t_end": round(start + length, 3),
                        "t_peak": round(start + length / 2, 3), "lafmax_mic_db": round(l_mic, 2),
                        "hub_zone_active": hub_knows, "laf_trace_t0": round(float(tt[0]), 3),
                        "laf_trace": laf_trace_db(g * x, fs, fsdb), **meta})
    peak = float(np.max(np.abs(audio))) if n else 0.0
    clipped = int(np.count_nonzero(np.abs(audio) >= 1.0)) if clip else 0
    if clip:
        np.clip(audio, -1.0, 1.0, out=audio)
    labels: dict[str, object] = {
        "v": 1, "family": "train", "seed": seed, "fs": fs, "duration_s": duration_s, "distance_m": round(dist, 3),
        "full_scale_db": fsdb, "zone_siren_active": zone_active, "sources": sources,
        "peak_fs": round(peak, 4), "clipped_samples": clipped,
        **({"wide": True, "ground_reflection": None if refl is None else [round(refl[0], 6), round(refl[1], 3)]}
           if rw is not None else {}),
    }
    return Scene(audio=audio.astype(np.float32), fs=fs, labels=labels, sources=sources)


def _extras(rx, p, audio, sources, taken, t, fs, fsdb, dist, add, window, duration_s, rw=None) -> None:
    """Horns from passing vehicles (car and air horns, Doppler), far sirens, voices and birds."""
    corr = 20 * math.log10(dist / 7.5)
    if p["horn_passby"] and rx.random() < p["horn_passby"]:
        tp = _place(rx, taken, 3.0, duration_s - 3.0, 0.0)
        if tp is not None:
            i0, tt = window(tp, 2.5)
            air = bool(rx.random() < 0.3)
            amps = None if rw is None else wide.tone_amps(rw, 910.0, fs)[1]
            x, meta = ext.horn_tones(rx, tt, fs, air=air, t_peak=tp, dist=dist, amps=amps)
            l75 = src.u(rx, "horn_db")
            add(x, i0, l75 - corr)
            on = np.flatnonzero(np.abs(x) > 0)
            a, b = (tt[on[0]], tt[on[-1]]) if on.size else (tp, tp)
            sources.append({"kind": "horn", "class": "horn", "t_peak": round((a + b) / 2, 3),
                            "t_start": round(a, 3), "t_end": round(b, 3), "lafmax_7p5_db": round(l75, 2), **meta})
    if p["far_siren"] and rx.random() < p["far_siren"]:
        length = min(ext.u(rx, "far_siren_s"), duration_s)
        start = float(rx.uniform(0, max(0.0, duration_s - length)))
        i0 = int(start * fs)
        tt = t[i0: i0 + int(length * fs)]
        x, meta = ext.far_siren(rx, tt, fs, None if rw is None else wide.tone_amps(rw, 2000.0, fs)[1])
        l_mic = ext.u(rx, "far_siren_mic_db")
        g = add(x, i0, l_mic)
        sources.append({"kind": "far_siren", "class": "siren", "t_start": round(start, 3),
                        "t_end": round(start + length, 3), "t_peak": round(start + length / 2, 3),
                        "lafmax_mic_db": round(l_mic, 2), "laf_trace_t0": round(float(tt[0]), 3),
                        "laf_trace": laf_trace_db(g * x, fs, fsdb), **meta})
    for kind, make, key in (("voice", ext.voice, "voice_mic_db"), ("birds", ext.birds, "bird_mic_db")):
        for _ in range(int(rx.poisson(p["voices" if kind == "voice" else "birds"]))):
            tp = float(rx.uniform(2.0, duration_s - 2.0))
            i0, tt = window(tp, float(rx.uniform(0.7, 2.5)))
            x, meta = make(rx, tt.size, fs)
            l_mic = ext.u(rx, key)
            add(x, i0, l_mic)
            sources.append({"kind": kind, "class": "other", "t_peak": round(tp, 3), "t_start": round(tt[0], 3),
                            "t_end": round(tt[-1], 3), "lafmax_mic_db": round(l_mic, 2),
                            "lafmax_7p5_db": round(l_mic + corr, 2), **meta})


def scenes(count: int, seed: int, **kw: object):
    """``count`` scenes of the training family: scene i has seed ``seed * 100_003 + i``."""
    for i in range(count):
        yield generate(seed * 100_003 + i, **kw)  # type: ignore[arg-type]

