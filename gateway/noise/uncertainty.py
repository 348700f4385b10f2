"""Measurement-uncertainty budget of LAFmax at 7.5 m (GUM, IEC 61672-1 tolerances); see docs/noise-uncertainty.md.

Each component is a tolerance half-width ``a`` (dB) with a rectangular distribution (GUM 4.3.7: u = a / sqrt 3),
except where noted. The combined standard uncertainty is the root sum of squares (uncorrelated inputs), and
the expanded uncertainty ``U = k u_c`` with ``k = 2`` (about 95 % coverage). ``U`` is the enforcement
margin: an event is an enforcement case only if ``LAFmax(7.5 m) - margin >= enforcement_db``, where the margin
is the larger of ``U`` and the configured ``uncertainty_db`` (a site may state more, never less).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from gateway.noise.errors import ConfigError

BUDGET = "dozor-noise-u/2"  # /2: the off-closest-approach term (twenty-ninth session)
K = 2.0
# IEC 61672-1:2013 acceptance limits for broadband road-traffic spectra, dB: class 1 is +-1.1 at 1 kHz and
# +-1.4 over 200 Hz-1 kHz; class 2 is +-1.4 at 1 kHz and up to +-1.9 below 1 kHz. A MEMS microphone plus
# the digital meter is *designed to* class-2-like tolerances (not pattern-evaluated), so class 2 is the default.
METER_TOLERANCE_DB = {1: 1.1, 2: 1.4}
CALIBRATOR_DB = 0.4  # IEC 60942 class 1 sound calibrator tolerance, plus drift within the recheck interval
REFLECTIONS_DB = 1.0  # ground and facade reflections at a kerbside pole (microphone >= 1 m from facades)
LEVEL_WINDOW_DB = 0.5  # LAFmax of the event window: other sources >= 10 dB below add <= 0.4 dB; tick sampling
OFF_CPA_M = 15.0  # a pass-by's maximum is heard at most this far along the lane from closest approach (+-1 s at 54 km/h)


@dataclass(frozen=True)
class Budget:
    components: dict[str, float]  # standard uncertainties, dB
    u_c: float
    k: float
    expanded: float

    def as_dict(self, margin_db: float) -> dict[str, object]:
        return {"budget": BUDGET, "components": {k: round(v, 3) for k, v in self.components.items()},
                "u_c": round(self.u_c, 3), "k": self.k, "expanded_db": round(self.expanded, 2),
                "margin_db": round(margin_db, 2)}


def point_source_db(distance_m: float, reference_m: float, dh_m: float = 0.0, along_m: float = 0.0) -> float:
    """The point-source correction from a lane ``distance_m`` away to one ``reference_m`` away, for a source
    ``along_m`` along the lane from closest approach and ``dh_m`` below the microphone:
    ``10 lg((d² + Δh² + x²) / (r² + Δh² + x²))`` (``DetectorConfig.distance_correction_db`` is the one at x = 0)."""
    x2 = along_m**2 + dh_m**2
    return 10 * math.log10((distance_m**2 + x2) / (reference_m**2 + x2))


def off_cpa_db(distance_m: float, *, reference_m: float = 7.5, dh_m: float = 0.0, along_m: float = OFF_CPA_M) -> float:
    """How much the point-source correction at closest approach over-reads a maximum heard ``along_m`` along the
    lane from it, where the correction that holds is ``point_source_db`` at that ``x``: 0 at or nearer than the
    reference distance ``r`` (there the rule under-reads such a maximum, the safe side), up to the whole
    correction as ``x`` grows beyond it."""
    return max(0.0, point_source_db(distance_m, reference_m, dh_m) - point_source_db(distance_m, reference_m, dh_m,
                                                                                      along_m))


def budget(distance_m: float, *, lane_half_width_m: float = 0.8, distance_tolerance_m: float = 0.1,
           meter_class: int = 2, reference_m: float = 7.5, dh_m: float = 0.0) -> Budget:
    """The budget for a microphone ``distance_m`` from the lane centre (vehicle anywhere within
    +- ``lane_half_width_m`` of it; the distance itself measured to +- ``distance_tolerance_m``), ``dh_m`` above
    the source's height when the correction uses slant distances (0: horizontal)."""
    if meter_class not in METER_TOLERANCE_DB:
        raise ConfigError(f"meter_class {meter_class!r}: expected 1 or 2")
    if not 0.5 <= distance_m <= 100 or not 0 <= lane_half_width_m < distance_m or distance_tolerance_m < 0:
        raise ConfigError("distance_m 0.5..100, 0 <= lane_half_width_m < distance_m, distance_tolerance_m >= 0")
    rect = 1 / math.sqrt(3)
    # the point-source correction 20 lg(d / 7.5): sensitivity 20 / (d ln 10) dB per metre
    sens = 20 / (distance_m * math.log(10))
    comp = {
        "meter": METER_TOLERANCE_DB[meter_class] * rect,
        "calibration": CALIBRATOR_DB * rect,
        "distance": sens * math.hypot(lane_half_width_m, distance_tolerance_m) * rect,
        "reflections": REFLECTIONS_DB * rect,
        "level_window": LEVEL_WINDOW_DB * rect,
        # the maximum heard away from closest approach (a rev blip, a gear pull): one-sided, up to ``off_cpa_db``
        # over; taken as a rectangle of that half-width about the stated level (conservative)
        "off_cpa": off_cpa_db(distance_m, reference_m=reference_m, dh_m=dh_m) * rect,
    }
    u_c = math.sqrt(sum(v * v for v in comp.values()))
    return Budget(comp, u_c, K, K * u_c)
