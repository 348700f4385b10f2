"""How much of an event's A-weighted level wind on the microphone could make (``wind_share``).

Wind buffeting is strongest at the lowest frequencies and falls with frequency. Below ``LOW_HZ`` it dominates the
unweighted spectrum of any event it blows through (``lf_frac``), but the A-weighting all but removes it there, so
a loud vehicle with wind underneath and a gust that makes an event by itself can read the same ``lf_frac``. What
tells them apart is whether the wind can reach the event's *level*.

The estimate is built to over-state the wind:
- everything below ``LOW_HZ`` counts as wind (a vehicle's low orders included);
- above it the wind is continued from the mean spectrum's own slope over ``FIT_HZ`` (wind spectra steepen with
  frequency, they do not flatten: turbulence falls at f^-5/3 to f^-7/3 and faster beyond, and a windscreen
  adds its own roll-off), credited with no steeper decay than ``STEEPEST`` and capped by what was measured;
- the result is the A-weighted energy of that wind spectrum over the A-weighted energy of the loud frames.

``rules.wind`` blocks a case only where this share reaches ``rules.WIND_SHARE``: wind that cannot add
``10 lg(1 / (1 - share))`` dB to the level does not make it. Sans-IO, numpy only; per event, on the loud frames
``features`` already has."""

from __future__ import annotations

import numpy as np

from gateway.noise.weighting import a_weights

LOW_HZ = 150.0
FIT_HZ = (60.0, LOW_HZ)  # above the lowest bins, whose Hann leakage steepens a steep spectrum's fit
SLOPE_MARGIN = 0.5  # the fit over 0.4 decade is uncertain by about this much: credit the flatter end
TOP_HZ = 8000.0
STEEPEST = -4.0  # power exponent: no steeper decay than f^-4 (a second-order roll-off) is credited
FLATTEST = 0.0  # a spectrum rising through FIT_HZ is not continued upwards: it stays flat


def wind_share(p: np.ndarray, fs: int) -> float:
    """Upper estimate of the share of the A-weighted energy of power spectra ``p`` (frames x rfft bins, Hann)
    that wind could hold (0..1; 0 for no frames)."""
    if p.size == 0 or p.shape[1] < 4:
        return 0.0
    nb = p.shape[1]
    df = fs / (2 * (nb - 1))
    f = np.arange(nb) * df
    mean = p.mean(axis=0).astype(np.float64) + 1e-30
    a2 = a_weights(nb, df)
    weighted = mean * a2
    band = (f > 0) & (f <= TOP_HZ)
    total = float(weighted[band].sum())
    if total <= 0:
        return 0.0
    fit = (f >= FIT_HZ[0]) & (f < FIT_HZ[1])
    low = (f > 0) & (f < LOW_HZ)
    if fit.sum() < 3:
        return float(min(1.0, weighted[low].sum() / total))
    lx, ly = np.log(f[fit]), np.log(mean[fit])  # least-squares line (np.polyfit's, without its lstsq call)
    dx = lx - lx.mean()
    slope = float(dx @ (ly - ly.mean()) / (dx @ dx))
    icpt = float(ly.mean() - slope * lx.mean())
    slope = float(np.clip(slope + SLOPE_MARGIN, STEEPEST, FLATTEST))
    anchor = float(np.exp(icpt + slope * np.log(LOW_HZ)))  # the fitted wind at LOW_HZ, continued above it
    high = band & (f >= LOW_HZ)
    wind_hi = anchor * (f[high] / LOW_HZ) ** slope
    wind = float(weighted[low].sum() + (np.minimum(wind_hi, mean[high]) * a2[high]).sum())
    return float(min(1.0, wind / total))
