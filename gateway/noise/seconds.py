"""The per-second levels of the noise pipeline (LAeq, LAFmax, LAS, LA10, LA90, clipping), from its 10 Hz frames
(split out of ``gateway.noise.pipeline``)."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from gateway.noise.dsp import FRAME_DTYPE, FRAME_HZ, percentile_rows, to_db


@dataclass(frozen=True)
class SecondLevels:
    t: float  # stream seconds at the start of the second
    laeq: float
    lafmax: float
    las: float
    clipped: int
    la10: float = float("nan")  # from the second's ten 10 Hz LAF samples (nan where unknown, e.g. a node)
    la90: float = float("nan")

    def as_dict(self) -> dict[str, float]:
        out = {"t": self.t, "laeq": round(self.laeq, 2), "lafmax": round(self.lafmax, 2),
               "las": round(self.las, 2), "clipped": self.clipped}
        if math.isfinite(self.la10) and math.isfinite(self.la90):
            out.update(la10=round(self.la10, 2), la90=round(self.la90, 2))
        return out


class Seconds:
    """Groups frames into whole seconds; keeps the frames of an unfinished second for the next call."""

    def __init__(self, k_db: float) -> None:
        self.k_db = k_db
        self._buf = np.zeros(0, dtype=FRAME_DTYPE)

    def feed(self, frames: np.ndarray) -> list[SecondLevels]:
        buf = np.concatenate([self._buf, frames]) if self._buf.size else frames
        n = buf.size // FRAME_HZ
        self._buf = buf[n * FRAME_HZ:].copy()
        if n == 0:
            return []
        s = buf[: n * FRAME_HZ].reshape(n, FRAME_HZ)
        laeq = to_db(s["ms"].mean(axis=1), self.k_db)
        la10, la90 = percentile_rows(s["laf"], (90, 10))  # np.percentile's values, without its overhead
        return [SecondLevels(t=float(t), laeq=float(q), lafmax=float(m), las=float(las), clipped=int(c),
                             la10=float(a), la90=float(b))
                for t, q, m, las, c, a, b in zip((s["index"][:, 0] / FRAME_HZ).tolist(), laeq.tolist(),
                                                 s["lafmax"].max(axis=1).tolist(), s["las"][:, -1].tolist(),
                                                 s["clipped"].sum(axis=1).tolist(), la10.tolist(), la90.tolist(),
                                                 strict=True)]
