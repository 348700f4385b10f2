# Noise node level maths: microphone equaliser + A-weighting as float second-order sections at 48 kHz,
# the Fast (125 ms) exponential detector, and per-second LAeq / LAFmax / LA10 / LA90, plus threshold
# events with a short LAF trace. Pure computation: no hardware, runs under MicroPython and CPython.
import math

FS = 48000
TAU_FAST = 0.125
FULL_SCALE_DB = 120.0  # SPL of a digital full-scale sine for a -26 dBFS @ 94 dB MEMS microphone


def sections(gain, rows):
    """ikostoski-style rows (b1, b2, -a1, -a2) with b0 = a0 = 1 -> [(b0, b1, b2, a1, a2)], gain in section 1."""
    out = []
    g = gain
    for b1, b2, na1, na2 in rows:
        out.append((g, g * b1, g * b2, -na1, -na2))
        g = 1.0
    return out


# A-weighting, fs = 48 kHz (esp32-i2s-slm filters.h coefficients, used as data; see sensing.md 2.3)
A_WEIGHTING = sections(0.169994948147430, (
    (-2.00026996133106, 1.00027056142719, -1.060868438509278, -0.163987445885926),
    (4.35912384203144, 3.09120265783884, 1.208419926363593, -0.273166998428332),
    (-0.70930303489759, -0.29071868393580, 1.982242159753048, -0.982298594928989),
))

# Microphone equalisers at 48 kHz (flatten the capsule's low-frequency roll-off)
EQUALISERS = {
    "none": [],
    "inmp441": sections(1.00197834654696, (
        (-1.986920458344451, 0.986963226946616, 1.995178510504166, -0.995184322194091),
    )),
}


def biquad(buf, n, b0, b1, b2, a1, a2, z):
    """One section, transposed direct form II, in place over buf[0:n]; z = [z1, z2] carries state."""
    z1 = z[0]
    z2 = z[1]
    for i in range(n):
        x = buf[i]
        y = b0 * x + z1
        z1 = b1 * x - a1 * y + z2
        z2 = b2 * x - a2 * y
        buf[i] = y
    z[0] = z1
    z[1] = z2


def percentile(sorted_values, p):
    """Linear interpolation between closest ranks (numpy's default), p in 0..100."""
    n = len(sorted_values)
    if n == 0:
        return None
    pos = (n - 1) * p / 100.0
    lo = int(pos)
    hi = lo + 1 if lo + 1 < n else lo
    return sorted_values[lo] + (sorted_values[hi] - sorted_values[lo]) * (pos - lo)


def i32_to_float(raw, out, n, shift=8, bits=24):
    """I2S 32-bit slots (24-bit data left-justified, INMP441) -> floats in full-scale units; returns clips."""
    full = 1 << (bits - 1)
    scale = 1.0 / full
    top = full - 1
    clips = 0
    for i in range(n):
        v = raw[i] >> shift
        if v >= top or v <= -full:
            clips += 1
        out[i] = v * scale
    return clips


class LevelMeter:
    """Feed blocks of float samples (full-scale units); collect one result dict per completed second.

    LAF is sampled `laf_hz` times a second (10 Hz, like the gateway) for LA10 / LA90 and for events;
    LAFmax is the maximum of the Fast detector over every sample of the second.
    """

    def __init__(self, fs=FS, eq="inmp441", cal_offset_db=0.0, full_scale_db=FULL_SCALE_DB, laf_hz=10,
                 threshold_db=None, hysteresis_db=3.0, pre_s=0.5, max_event_s=10.0, trace_hz=10):
        if eq not in EQUALISERS:
            raise ValueError("unknown microphone equaliser %r (known: %s)" % (eq, ", ".join(EQUALISERS)))
        if fs % laf_hz or laf_hz % trace_hz:
            raise ValueError("fs must be a multiple of laf_hz, and laf_hz of trace_hz")
        self.fs = fs
        self.filters = EQUALISERS[eq] + A_WEIGHTING
        self.state = [[0.0, 0.0] for _ in self.filters]
        self.alpha = math.exp(-1.0 / (fs * TAU_FAST))
        # dB = 10*log10(ms) + k_db; a full-scale sine (ms 0.5) reads full_scale_db
        self.k_db = full_scale_db + 10 * math.log10(2.0) + cal_offset_db
        self.tick_len = fs // laf_hz
        self.laf_hz = laf_hz
        self.y = 0.0
        self.pos = 0  # samples into the current tick
        self.ticks = 0  # ticks into the current second
        self.energy = 0.0
        self.e_mark = 0.0
        self.ymax = 0.0
        self.laf = []
        self.clips = 0
        self.clip_total = 0
        self.samples = 0
        self.seconds = []  # completed per-second results, taken by the caller
        # events
        self.threshold = threshold_db
        self.release = None if threshold_db is None else threshold_db - hysteresis_db
        self.trace_every = laf_hz // trace_hz
        self.trace_hz = trace_hz
        self.pre_len = max(1, int(pre_s * trace_hz))
        self.max_ticks = int(max_event_s * laf_hz)
        self.pre = []
        self.event = None
        self.events = []
        self.tick_no = 0

    def db(self, ms):
        return 10 * math.log10(ms if ms > 1e-30 else 1e-30) + self.k_db

    def weight(self, buf, n):
        """A-weight (and equalise) buf[0:n] in place."""
        for (b0, b1, b2, a1, a2), z in zip(self.filters, self.state):
            biquad(buf, n, b0, b1, b2, a1, a2, z)

    def feed(self, buf, n=None, clips=0):
        if n is None:
            n = len(buf)
        self.weight(buf, n)
        self.clips += clips
        self.clip_total += clips
        self.samples += n
        a = self.alpha
        b = 1.0 - a
        y = self.y
        ymax = self.ymax
        energy = self.energy
        pos = self.pos
        tick_len = self.tick_len
        for i in range(n):
            x2 = buf[i] * buf[i]
            y = a * y + b * x2
            if y > ymax:
                ymax = y
            energy += x2
            pos += 1
            if pos == tick_len:
                pos = 0
                self.y = y
                self.ymax = ymax
                self.energy = energy
                self._tick(y)
                ymax = self.ymax
                energy = self.energy
        self.y = y
        self.ymax = ymax
        self.energy = energy
        self.pos = pos

    def _tick(self, y):
        e_tick = self.energy - self.e_mark
        self.e_mark = self.energy
        level = self.db(y)
        self.laf.append(level)
        self.tick_no += 1
        if self.threshold is not None:
            self._event_tick(level, e_tick)
        self.ticks += 1
        if self.ticks == self.laf_hz:
            s = sorted(self.laf)
            self.seconds.append({
                "laeq": self.db(self.energy / self.fs),
                "lafmax": self.db(self.ymax),
                "la10": percentile(s, 90),
                "la90": percentile(s, 10),
                "clips": self.clips,
            })
            self.ticks = 0
            self.energy = 0.0
            self.e_mark = 0.0
            self.ymax = 0.0
            self.laf = []
            self.clips = 0

    def _event_tick(self, level, e_tick):
        ev = self.event
        record = (self.tick_no % self.trace_every) == 0
        if ev is None:
            if level >= self.threshold:
                self.event = ev = {"start_tick": self.tick_no, "trace": list(self.pre), "peak": level,
                                   "energy": 0.0, "ticks": 0, "below": 0, "clips_at_start": self.clip_total}
            elif record:
                self.pre.append(int(round(level * 10)))
                if len(self.pre) > self.pre_len:
                    self.pre.pop(0)
            if ev is None:
                return
        ev["ticks"] += 1
        ev["energy"] += e_tick
        if level > ev["peak"]:
            ev["peak"] = level
        if record:
            ev["trace"].append(int(round(level * 10)))
        ev["below"] = ev["below"] + 1 if level < self.release else 0
        if ev["below"] >= self.laf_hz // 5 or ev["ticks"] >= self.max_ticks:
            self._close_event(ev)

    def _close_event(self, ev):
        tick_ms = 1000 // self.laf_hz
        duration_ms = ev["ticks"] * tick_ms
        laeq = self.db(ev["energy"] / (ev["ticks"] * self.tick_len))
        self.events.append({
            "start_ms": (ev["start_tick"] - 1) * tick_ms,
            "duration_ms": duration_ms,
            "lafmax": ev["peak"],
            "laeq": laeq,
            "sel": laeq + 10 * math.log10(duration_ms / 1000.0),
            "clipped": self.clip_total > ev["clips_at_start"],
            "trace_hz": self.trace_hz,
            "trace_ddb": ev["trace"],  # LAF in 0.1 dB steps, from pre-trigger to the end
        })
        self.event = None
        self.pre = []

    def take_seconds(self):
        out = self.seconds
        self.seconds = []
        return out

    def take_events(self):
        out = self.events
        self.events = []
        return out


def tone_level(freq, amplitude_fs, fs=FS, eq="none", settle_s=0.1, measure_s=0.2, block=2400):
    """Self-test helper: A-weighted level of a synthetic sine through the real filter chain."""
    m = LevelMeter(fs=fs, eq=eq)
    w = 2 * math.pi * freq / fs
    settle = int(settle_s * fs)
    total = settle + int(measure_s * fs)
    try:
        from array import array
        buf = array("f", [0.0] * block)
    except ImportError:
        buf = [0.0] * block
    done = 0
    energy = 0.0
    while done < total:
        n = min(block, total - done)
        for i in range(n):
            buf[i] = amplitude_fs * math.sin(w * (done + i))
        m.weight(buf, n)
        for i in range(n):
            if done + i >= settle:
                energy += buf[i] * buf[i]
        done += n
    return m.db(energy / (total - settle))
