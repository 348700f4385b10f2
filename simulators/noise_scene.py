"""Street noise scenes with ground-truth labels, for the noise pipeline's tests and benchmarks.

A scene is the pressure at one roadside microphone, ``distance_m`` from the lane, as float samples in
digital full-scale units (a full-scale sine = ``full_scale_db`` dB SPL, 120 dB by default). It mixes:

- traffic background (pink rumble) and optional rain (hiss and drops) or wind (low-frequency gusts);
- legal cars and loud-exhaust cars and motorcycles passing by: engine-order harmonics of a firing
  frequency that follows an rpm sweep (with gear changes), exhaust roar, tyre noise, the 1/r level
  envelope of the pass-by and its Doppler shift (from the retarded propagation time);
- horns (two steady tones, not in a 5:6 ratio, with harmonics, short);
- civil-defence sirens (slow wail or 5:6 two-tone, rotor harmonics, rotation AM, long);
- emergency-vehicle sirens (yelp, wail or hi-lo) passing by with Doppler.

Every loud source is scaled so that, alone and in free field, its A-weighted Fast maximum at 7.5 m is the
labelled ``lafmax_7p5_db`` (the simulator measures that with its own frequency-domain A-weighting, which is
independent of gateway.noise). Labels also give times, kinds and the expected class, and for every siren
its own 10 Hz LAF trace at the microphone (``laf_trace`` from ``laf_trace_t0``), so a benchmark can tell
whether a siren contributed to an event's level.

This module must not import gateway (import layers): it is pure numpy/scipy plus a WAV writer.
"""

from __future__ import annotations

import json
import math
import struct
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from scipy import signal

C_SOUND = 343.0
P_REF_DB = 120.0  # default SPL of a digital full-scale sine
CLASS_OF = {
    "exhaust_car": "exhaust", "exhaust_moto": "exhaust", "legal_car": "other", "horn": "horn",
    "cd_siren_wail": "siren", "cd_siren_two_tone": "siren", "ev_siren_yelp": "siren",
    "ev_siren_wail": "siren", "ev_siren_hilo": "siren", "wind_gust": "other",
}


@dataclass
class Scene:
    audio: np.ndarray  # float32, full-scale units
    fs: int
    labels: dict[str, object]
    sources: list[dict[str, object]] = field(default_factory=list)


# ---------------------------------------------------------------- measuring (independent of gateway)

def _a_weight_gain(f: np.ndarray) -> np.ndarray:
    f1, f2, f3, f4 = 20.598997, 107.65265, 737.86223, 12194.217
    f2_ = f * f
    with np.errstate(divide="ignore", invalid="ignore"):
        num = f4**2 * f2_**2
        den = (f2_ + f1**2) * np.sqrt(f2_ + f2**2) * np.sqrt(f2_ + f3**2) * (f2_ + f4**2)
        g = num / den * 10 ** (1.9997 / 20)
    return np.nan_to_num(g)


def lafmax_db(x: np.ndarray, fs: int, full_scale_db: float = P_REF_DB) -> float:
    """A-weighted Fast maximum of ``x`` (frequency-domain A-weighting, exponential Fast detector)."""
    n = int(2 ** math.ceil(math.log2(max(len(x), 2))))
    spec = np.fft.rfft(x, n)
    spec *= _a_weight_gain(np.fft.rfftfreq(n, 1 / fs))
    y = np.fft.irfft(spec, n)[: len(x)]
    a = math.exp(-1 / (fs * 0.125))
    env = signal.lfilter([1 - a], [1, -a], y * y)
    return 10 * math.log10(max(float(env.max()), 1e-30)) + full_scale_db + 10 * math.log10(2)


def laf_trace_db(x: np.ndarray, fs: int, full_scale_db: float = P_REF_DB) -> list[float]:
    """10 Hz trace of the A-weighted Fast level of ``x`` alone (maximum per 100 ms), dB."""
    n = int(2 ** math.ceil(math.log2(max(len(x), 2))))
    spec = np.fft.rfft(x, n) * _a_weight_gain(np.fft.rfftfreq(n, 1 / fs))
    y = np.fft.irfft(spec, n)[: len(x)]
    a = math.exp(-1 / (fs * 0.125))
    env = signal.lfilter([1 - a], [1, -a], y * y)
    step = fs // 10
    m = env[: len(env) // step * step].reshape(-1, step).max(axis=1)
    k = full_scale_db + 10 * math.log10(2)
    return [round(10 * math.log10(max(float(v), 1e-30)) + k, 1) for v in m]


def laeq_db(x: np.ndarray, fs: int, full_scale_db: float = P_REF_DB) -> float:
    n = int(2 ** math.ceil(math.log2(max(len(x), 2))))
    spec = np.fft.rfft(x, n) * _a_weight_gain(np.fft.rfftfreq(n, 1 / fs))
    y = np.fft.irfft(spec, n)[: len(x)]
    return 10 * math.log10(max(float(np.mean(y * y)), 1e-30)) + full_scale_db + 10 * math.log10(2)


# ---------------------------------------------------------------- building blocks

def _pink(rng: np.random.Generator, n: int) -> np.ndarray:
    spec = np.fft.rfft(rng.standard_normal(n))
    f = np.arange(spec.size, dtype=float)
    f[0] = 1.0
    return np.fft.irfft(spec / np.sqrt(f), n)


def _band_noise(rng: np.random.Generator, n: int, lo: float, hi: float, fs: int) -> np.ndarray:
    sos = signal.butter(2, [lo, hi], btype="bandpass", fs=fs, output="sos")
    return signal.sosfilt(sos, rng.standard_normal(n))


def _phase(freq: np.ndarray, fs: int) -> np.ndarray:
    return 2 * np.pi * np.cumsum(freq) / fs


def _passby(t: np.ndarray, t_peak: float, speed: float, dist: float) -> tuple[np.ndarray, np.ndarray]:
    """Return (gain 1/r normalised to 1 at closest approach, Doppler factor d(tau)/dt)."""
    x = speed * (t - t_peak)
    r = np.sqrt(dist**2 + x**2)
    r_dot = speed * x / r
    return dist / r, 1.0 / (1.0 + r_dot / C_SOUND)


def _smooth_env(n: int, fs: int, attack: float, release: float) -> np.ndarray:
    env = np.ones(n)
    na, nr = max(1, int(attack * fs)), max(1, int(release * fs))
    env[:na] = np.linspace(0, 1, na) if na < n else env[:na]
    env[-nr:] = np.minimum(env[-nr:], np.linspace(1, 0, nr))
    return env


# ---------------------------------------------------------------- sources (each returns a signal piece)

def _engine(rng: np.random.Generator, t: np.ndarray, fs: int, *, loud: bool, moto: bool,
            t_peak: float, speed: float, dist: float) -> tuple[np.ndarray, dict[str, object]]:
    cyl = int(rng.choice([1, 2])) if moto else int(rng.choice([4, 4, 6, 8]))
    rpm0 = rng.uniform(3500, 6000) if moto else rng.uniform(1800, 3200)
    rpm1 = rpm0 * rng.uniform(1.2, 1.8) if loud else rpm0 * rng.uniform(0.9, 1.2)
    ts = t - t[0]
    dur = ts[-1] if ts[-1] > 0 else 1.0
    rpm = rpm0 + (rpm1 - rpm0) * ts / dur
    if loud and rng.random() < 0.5:  # a gear change: rpm drops by a third mid-way, then climbs again
        shift = dur * rng.uniform(0.35, 0.65)
        after = ts > shift
        rpm = np.where(after, (rpm0 + (rpm1 - rpm0) * shift / dur) * 0.7 + (rpm1 - rpm0) * (ts - shift) / dur,
                       rpm)
    f0_src = rpm / 60.0 * cyl / 2.0
    gain, dopp = _passby(t, t_peak, speed, dist)
    f0 = f0_src * dopp
    ph = _phase(f0, fs)
    out = np.zeros_like(t)
    n_h = int(min(24, 5000 / max(float(f0.max()), 1.0)))
    tilt = 0.55 if loud else 1.1
    for k in range(1, n_h + 1):
        amp = k**-tilt * rng.uniform(0.5, 1.0)
        out += amp * np.sin(k * ph + rng.uniform(0, 2 * np.pi))
    # roar: broadband noise amplitude-modulated at the firing frequency
    roar = _band_noise(rng, t.size, 150, 4000, fs) * (1 + 0.6 * np.sin(ph))
    out = out / np.sqrt(np.mean(out**2) + 1e-12)
    roar = roar / np.sqrt(np.mean(roar**2) + 1e-12)
    mix = out + (0.6 if loud else 0.8) * roar
    if not loud:  # tyres dominate a legal car
        tyre = _band_noise(rng, t.size, 500, 2500, fs)
        mix = 0.4 * mix + tyre / np.sqrt(np.mean(tyre**2) + 1e-12)
    if loud and rng.random() < 0.5:  # exhaust pops (backfire crackle)
        pops = np.zeros_like(t)
        for p in rng.integers(0, t.size, size=int(rng.integers(3, 12))):
            pops[p: p + 200] += rng.uniform(1, 2.5) * np.exp(-np.arange(min(200, t.size - p)) / 30.0)
        mix = mix + signal.sosfilt(signal.butter(2, [200, 3000], "bandpass", fs=fs, output="sos"), pops) * 4
    meta = {"cylinders": cyl, "rpm": [round(float(rpm.min())), round(float(rpm.max()))],
            "f0_hz": [round(float(f0_src.min()), 1), round(float(f0_src.max()), 1)]}
    return mix * gain, meta


def _square_tone(ph: np.ndarray, n_odd: int = 4) -> np.ndarray:
    return sum(np.sin((2 * k + 1) * ph) / (2 * k + 1) for k in range(n_odd))


def _horn(rng: np.random.Generator, t: np.ndarray, fs: int) -> tuple[np.ndarray, dict[str, object]]:
    f1 = rng.uniform(350, 470)
    ratio = rng.uniform(1.24, 1.34)  # a major third or fourth: never the 5:6 of civil-defence sirens
    ph1, ph2 = 2 * np.pi * f1 * t, 2 * np.pi * f1 * ratio * t
    x = _square_tone(ph1, 6) + 0.8 * _square_tone(ph2 + 1.0, 6)
    return x * _smooth_env(t.size, fs, 0.02, 0.05), {"f_hz": [round(f1, 1), round(f1 * ratio, 1)]}


def _cd_siren(rng: np.random.Generator, t: np.ndarray, fs: int, two_tone: bool) -> tuple[np.ndarray, dict]:
    ts = t - t[0]
    f_lo, f_hi = rng.uniform(260, 360), rng.uniform(430, 560)
    if two_tone and rng.random() < 0.5:  # steady two-tone
        f = np.full_like(ts, rng.uniform(380, 480))
        pattern = "steady"
    else:
        period = rng.uniform(8, 14)
        f = f_lo + (f_hi - f_lo) * 0.5 * (1 - np.cos(2 * np.pi * ts / period))
        pattern = "wail"
    # run-up from zero like a rotor siren
    f = f * np.minimum(1.0, 0.3 + ts / 3.0)
    ph = _phase(f, fs)
    x = _square_tone(ph, 4)
    if two_tone:
        x = x + _square_tone(ph * 6 / 5 + 0.5, 4)
    rot = 1 + 0.5 * np.sin(2 * np.pi * ts / rng.uniform(8, 15) + rng.uniform(0, 6))  # rotating head AM
    x = x * rot * _smooth_env(t.size, fs, 1.0, 2.0)
    return x, {"pattern": pattern, "f_hz": [round(float(f.min()), 1), round(float(f.max()), 1)]}


def _ev_siren(rng: np.random.Generator, t: np.ndarray, fs: int, kind: str, *, t_peak: float, speed: float,
              dist: float) -> tuple[np.ndarray, dict]:
    ts = t - t[0]
    lo, hi = rng.uniform(550, 750), rng.uniform(1300, 1600)
    if kind == "ev_siren_yelp":
        period = rng.uniform(0.22, 0.4)
        frac = (ts / period) % 1.0
        f = lo + (hi - lo) * np.where(frac < 0.5, 2 * frac, 2 - 2 * frac)
    elif kind == "ev_siren_wail":
        period = rng.uniform(3.0, 5.0)
        f = lo + (hi - lo) * 0.5 * (1 - np.cos(2 * np.pi * ts / period))
    else:  # hi-lo
        period = rng.uniform(0.9, 1.3)
        f = np.where((ts / period) % 1.0 < 0.5, lo, lo * 4 / 3)
    gain, dopp = _passby(t, t_peak, speed, dist)
    x = _square_tone(_phase(f * dopp, fs), 3)
    engine = _band_noise(rng, t.size, 80, 1500, fs) * 0.3
    return (x + engine) * gain, {"f_hz": [round(lo, 1), round(hi, 1)]}


# ---------------------------------------------------------------- scene

def _place(rng: np.random.Generator, taken: list[float], lo: float, hi: float, gap: float) -> float | None:
    for _ in range(50):
        tp = float(rng.uniform(lo, hi))
        if all(abs(tp - o) >= gap for o in taken):
            taken.append(tp)
            return tp
    return None


def generate(seed: int, *, duration_s: float = 40.0, fs: int = 48_000, full_scale_db: float = P_REF_DB,
             distance_m: float | None = None, mix: dict[str, float] | None = None,
             ev_kind: str | None = None, cd_two_tone: bool | None = None) -> Scene:
    """One random scene. ``mix`` overrides the mean counts (exhaust, legal: an int is an exact count) and the
    probabilities (horn, cd_siren, ev_siren, wind, rain) of each source kind."""
    rng = np.random.default_rng(seed)
    n = int(round(duration_s * fs))
    t = np.arange(n) / fs
    dist = float(distance_m if distance_m is not None else rng.uniform(5.0, 12.0))
    p = {"exhaust": 1.5, "legal": 1.5, "horn": 0.3, "cd_siren": 0.25, "ev_siren": 0.2, "wind": 0.2,
         "rain": 0.2, **(mix or {})}
    audio = np.zeros(n)
    sources: list[dict[str, object]] = []
    taken: list[float] = []
    corr = 20 * math.log10(dist / 7.5)  # level at the mic = level at 7.5 m - corr (point source)

    def add(x: np.ndarray, i0: int, target_mic_db: float) -> float:
        """Scale x to its target LAFmax at the microphone and mix it in; returns the gain used."""
        measured = lafmax_db(x, fs, full_scale_db)
        g = 10 ** ((target_mic_db - measured) / 20)
        audio[i0: i0 + x.size] += g * x
        return g

    # background traffic rumble and far cars
    bg = _pink(rng, n)
    bg = signal.sosfilt(signal.butter(2, 3000, "lowpass", fs=fs, output="sos"), bg)
    bg_db = rng.uniform(50, 64)
    bg *= 10 ** ((bg_db - laeq_db(bg, fs, full_scale_db)) / 20)
    audio += bg
    sources.append({"kind": "background", "class": "none", "laeq_db": round(bg_db, 2)})
    if rng.random() < p["rain"]:
        rain = _band_noise(rng, n, 2000, 12000, fs)
        drops = (rng.random(n) < 200 / fs) * rng.standard_normal(n) * 8
        rain = rain + signal.sosfilt(signal.butter(2, 3000, "highpass", fs=fs, output="sos"), drops)
        r_db = rng.uniform(50, 66)
        audio += rain * 10 ** ((r_db - laeq_db(rain, fs, full_scale_db)) / 20)
        sources.append({"kind": "rain", "class": "none", "laeq_db": round(r_db, 2)})

    def window(tp: float, half: float) -> tuple[int, np.ndarray]:
        i0, i1 = max(0, int((tp - half) * fs)), min(n, int((tp + half) * fs))
        return i0, t[i0:i1]

    def vehicle(kind: str, tp: float, l75: float, loud: bool, moto: bool) -> None:
        speed = float(rng.uniform(8, 20))
        i0, tt = window(tp, 6.0)
        x, meta = _engine(rng, tt, fs, loud=loud, moto=moto, t_peak=tp, speed=speed, dist=dist)
        add(x, i0, l75 - corr)
        sources.append({"kind": kind, "class": CLASS_OF[kind], "t_peak": round(tp, 3),
                        "t_start": round(tt[0], 3), "t_end": round(tt[-1], 3), "lafmax_7p5_db": round(l75, 2),
                        "lafmax_mic_db": round(l75 - corr, 2), "speed_mps": round(speed, 2), **meta})

    def count(v: float) -> int:  # an int is an exact count, a float the mean of a Poisson draw
        return v if isinstance(v, int) else int(rng.poisson(v))

    for _ in range(count(p["exhaust"])):
        tp = _place(rng, taken, 5.0, duration_s - 5.0, 7.0)
        if tp is not None:
            moto = bool(rng.random() < 0.5)
            vehicle("exhaust_moto" if moto else "exhaust_car", tp, float(rng.uniform(88, 108)), True, moto)
    for _ in range(count(p["legal"])):
        tp = _place(rng, taken, 4.0, duration_s - 4.0, 4.0)
        if tp is not None:
            vehicle("legal_car", tp, float(rng.uniform(66, 78)), False, False)
    if rng.random() < p["horn"]:
        tp = _place(rng, taken, 3.0, duration_s - 3.0, 7.0)
        if tp is not None:
            d = float(rng.uniform(0.3, 1.5))
            i0, tt = window(tp, d / 2)
            x, meta = _horn(rng, tt, fs)
            l75 = float(rng.uniform(90, 104))
            add(x, i0, l75 - corr)
            sources.append({"kind": "horn", "class": "horn", "t_peak": round(tp, 3), "t_start": round(tt[0], 3),
                            "t_end": round(tt[-1], 3), "lafmax_7p5_db": round(l75, 2), **meta})
    if rng.random() < p["ev_siren"]:
        tp = _place(rng, taken, 6.0, duration_s - 6.0, 9.0)
        if tp is not None:
            kind = str(rng.choice(["ev_siren_yelp", "ev_siren_wail", "ev_siren_hilo"]))
            kind = ev_kind or kind
            i0, tt = window(tp, 8.0)
            speed = float(rng.uniform(10, 20))
            x, meta = _ev_siren(rng, tt, fs, kind, t_peak=tp, speed=speed, dist=dist)
            l75 = float(rng.uniform(95, 108))
            g = add(x, i0, l75 - corr)
            sources.append({"kind": kind, "class": "siren", "t_peak": round(tp, 3), "t_start": round(tt[0], 3),
                            "t_end": round(tt[-1], 3), "lafmax_7p5_db": round(l75, 2),
                            "laf_trace_t0": round(tt[0], 3), "laf_trace": laf_trace_db(g * x, fs, full_scale_db),
                            **meta})
    if rng.random() < p["wind"]:
        for _ in range(int(rng.integers(1, 3))):
            tp = _place(rng, taken, 3.0, duration_s - 3.0, 6.0)
            if tp is None:
                continue
            d = float(rng.uniform(1.0, 3.0))
            i0, tt = window(tp, d)
            w = _band_noise(rng, tt.size, 5, 120, fs) * np.hanning(tt.size) ** 2
            l_mic = float(rng.uniform(80, 95)) - max(corr, 0.0)
            add(w, i0, l_mic)
            sources.append({"kind": "wind_gust", "class": "other", "t_peak": round(tp, 3),
                            "t_start": round(tt[0], 3), "t_end": round(tt[-1], 3), "lafmax_mic_db": round(l_mic, 2),
                            "lafmax_7p5_db": round(l_mic + corr, 2)})
    zone_active: list[list[float]] = []
    if rng.random() < p["cd_siren"]:
        two = bool(rng.random() < 0.5)
        two = two if cd_two_tone is None else cd_two_tone
        kind = "cd_siren_two_tone" if two else "cd_siren_wail"
        length = float(rng.uniform(18, min(40.0, duration_s)))
        start = float(rng.uniform(0, max(0.0, duration_s - length)))
        i0 = int(start * fs)
        tt = t[i0: min(n, i0 + int(length * fs))]
        x, meta = _cd_siren(rng, tt, fs, two)
        l_mic = float(rng.uniform(84, 100))
        g = add(x, i0, l_mic)
        hub_knows = bool(rng.random() < 0.5)
        if hub_knows:
            zone_active.append([round(start, 3), round(start + length, 3)])
        sources.append({"kind": kind, "class": "siren", "t_start": round(start, 3), "t_end": round(start + length, 3),
                        "t_peak": round(start + length / 2, 3), "lafmax_mic_db": round(l_mic, 2),
                        "hub_zone_active": hub_knows, "laf_trace_t0": round(float(tt[0]), 3),
                        "laf_trace": laf_trace_db(g * x, fs, full_scale_db), **meta})
    labels: dict[str, object] = {
        "v": 1, "seed": seed, "fs": fs, "duration_s": duration_s, "distance_m": round(dist, 3),
        "full_scale_db": full_scale_db, "zone_siren_active": zone_active, "sources": sources,
    }
    peak = float(np.max(np.abs(audio))) if n else 0.0
    labels["peak_fs"] = round(peak, 4)
    return Scene(audio=audio.astype(np.float32), fs=fs, labels=labels, sources=sources)


# ---------------------------------------------------------------- output

def wav_bytes(audio: np.ndarray, fs: int, *, bits: int = 16) -> bytes:
    """A canonical RIFF/WAVE file: PCM 16-bit (clipped to full scale) or 32-bit IEEE float, mono."""
    x = np.asarray(audio, dtype=np.float64)
    if bits == 16:
        data = np.clip(np.round(x * 32767), -32768, 32767).astype("<i2").tobytes()
        fmt, width = 1, 2
    elif bits == 32:
        data = x.astype("<f4").tobytes()
        fmt, width = 3, 4
    else:
        raise ValueError("bits must be 16 or 32")
    fmt_chunk = struct.pack("<HHIIHH", fmt, 1, fs, fs * width, width, width * 8)
    body = b"WAVE" + b"fmt " + struct.pack("<I", 16) + fmt_chunk + b"data" + struct.pack("<I", len(data)) + data
    if len(data) % 2:
        body += b"\0"
    return b"RIFF" + struct.pack("<I", len(body)) + body


def write_scene(scene: Scene, wav_path: Path, labels_path: Path | None, *, bits: int = 16) -> None:
    wav_path.write_bytes(wav_bytes(scene.audio, scene.fs, bits=bits))
    if labels_path is not None:
        labels_path.write_text(json.dumps(scene.labels, indent=1))


class SceneMicrophone:
    """A simulated microphone: yields a scene's samples in fixed blocks, like an audio input stream.

    ``stream_factory`` has the signature of ``sounddevice.InputStream`` (what the gateway's microphone
    source calls): the stream it returns plays the scene once through the callback, from its own thread,
    ``speed`` times faster than real time, and then falls silent like an unplugged microphone. Streams
    opened after that (``plays`` reached) never call back.
    """

    def __init__(self, scene: Scene, block: int = 4800, *, speed: float = 1.0, plays: int = 1) -> None:
        self.scene = scene
        self.block = block
        self.samplerate = scene.fs
        self.speed = speed
        self.plays = plays
        self.opened = 0  # streams opened
        self.delivered = 0  # blocks handed to callbacks
        self.finished = threading.Event()  # the last block of the last play was delivered

    def blocks(self):
        a = self.scene.audio
        for i in range(0, a.size, self.block):
            yield a[i: i + self.block]

    def stream_factory(self, **kw: object) -> SceneInputStream:
        self.opened += 1
        return SceneInputStream(self, play=self.opened <= self.plays, **kw)


class SceneInputStream:
    """The part of ``sounddevice.InputStream`` a consumer uses: ``start``, ``stop``, ``close``."""

    def __init__(self, mic: SceneMicrophone, *, play: bool, samplerate: float, blocksize: int, callback,
                 device: object = None, channels: int = 1, dtype: str = "float32") -> None:
        if int(samplerate) != mic.scene.fs:
            raise ValueError(f"invalid sample rate {samplerate}: the scene is {mic.scene.fs} Hz")
        self.mic, self.play, self.callback = mic, play, callback
        self.block = int(blocksize) or mic.block
        self.channels = channels
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        if self.play:
            self._thread = threading.Thread(target=self._run, name="scene-microphone", daemon=True)
            self._thread.start()

    def _run(self) -> None:
        a, fs, mic = self.mic.scene.audio, self.mic.scene.fs, self.mic
        t_start = time.monotonic()
        for i in range(0, a.size, self.block):
            if self._stop.is_set():
                return
            x = a[i: i + self.block]
            self.callback(np.repeat(x[:, None], self.channels, axis=1), x.size, None, None)
            mic.delivered += 1
            if mic.speed > 0:
                ahead = t_start + (i + x.size) / fs / mic.speed - time.monotonic()
                if ahead > 0 and self._stop.wait(ahead):
                    return
        mic.finished.set()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(5)

    def close(self) -> None:
        self.stop()
