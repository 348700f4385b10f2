"""The learned event classifier: a tiny numpy MLP (features -> one tanh layer -> 4 classes), stored as JSON.

Since the twenty-first session the committed model is five fits of 32 units merged (``merge``: the mean of their
logits), one layer of 160 units in the same format.

The model file (``gateway/noise/models/classifier.json``) is small, versioned and reproducible: ``dozor noise
train`` builds the corpus from the training scene family (``simulators.noise_scene``, random ranges declared in
``simulators.noise_sources.RANGES``), runs the gateway's own detector and feature extraction on it, and fits
this model with a fixed seed. The version is ``mlp-`` plus the first 12 hex digits of the SHA-256 of the
canonical JSON of the weights, so any change of weights changes the version; it is written into every
evidence record. Inference is two small matrix products (microseconds on a Raspberry Pi 4 CPU); no pickle,
no framework: the loader validates shapes and finiteness and raises ``ModelError`` on anything else.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from gateway.noise.errors import NoiseError

CLASSES = ("exhaust", "siren", "horn", "other")
FEATURES = ("tonal", "sweep_oct", "sweep_rate", "two_tone_56", "engine", "f0_move", "lf_frac", "duration_s",
            "tonal_fast", "pitch_steady", "pair", "engine_p90", "f0_med", "flatness", "centroid", "mid_frac",
            "low_mid_frac", "high_frac", "series", "onset", "level_7p5", "pulse", "crackle", "comb")
DEFAULT_PATH = Path(__file__).parent / "models" / "classifier.json"
MAX_BYTES = 200_000
FORMAT = "dozor-noise-mlp/1"


class ModelError(NoiseError):
    """A model file is missing, malformed or inconsistent."""


@dataclass(frozen=True)
class Model:
    features: tuple[str, ...]
    classes: tuple[str, ...]
    mean: np.ndarray
    std: np.ndarray
    w1: np.ndarray
    b1: np.ndarray
    w2: np.ndarray
    b2: np.ndarray
    meta: dict

    @property
    def version(self) -> str:
        return "mlp-" + hashlib.sha256(_canonical(self._weights())).hexdigest()[:12]

    def _weights(self) -> dict:
        r = lambda a: np.round(np.asarray(a, dtype=np.float64), 6).tolist()  # noqa: E731
        return {"features": list(self.features), "classes": list(self.classes), "mean": r(self.mean),
                "std": r(self.std), "w1": r(self.w1), "b1": r(self.b1), "w2": r(self.w2), "b2": r(self.b2)}

    def to_json(self) -> str:
        return json.dumps({"format": FORMAT, "version": self.version, **self._weights(), "meta": self.meta},
                          indent=0, sort_keys=True)

    def logits(self, x: np.ndarray) -> np.ndarray:
        z = (np.asarray(x, dtype=np.float64) - self.mean) / self.std
        return np.tanh(z @ self.w1 + self.b1) @ self.w2 + self.b2

    def proba(self, x: np.ndarray) -> np.ndarray:
        lg = self.logits(x)
        lg = lg - lg.max(axis=-1, keepdims=True)
        e = np.exp(lg)
        return e / e.sum(axis=-1, keepdims=True)

    def scores(self, feats: dict[str, float]) -> dict[str, float]:
        x = np.array([float(feats[k]) for k in self.features])
        p = self.proba(x[None, :])[0]
        return {k: round(float(v), 4) for k, v in zip(self.classes, p, strict=True)}


def _canonical(obj: object) -> bytes:
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), allow_nan=False).encode()


def _arr(d: dict, key: str, shape: tuple[int, ...]) -> np.ndarray:
    try:
        a = np.asarray(d[key], dtype=np.float64)
    except (KeyError, TypeError, ValueError) as exc:
        raise ModelError(f"model field {key!r}: {type(exc).__name__}") from None
    if a.shape != shape:
        raise ModelError(f"model field {key!r}: shape {a.shape}, expected {shape}")
    if not np.all(np.isfinite(a)):
        raise ModelError(f"model field {key!r}: not finite")
    return a


def parse(text: str | bytes) -> Model:
    """Validate and build a model from its JSON text; ModelError on anything malformed."""
    if len(text) > MAX_BYTES:
        raise ModelError(f"model file too large ({len(text)} bytes > {MAX_BYTES})")
    try:
        d = json.loads(text)
    except (ValueError, UnicodeDecodeError) as exc:
        raise ModelError(f"model is not JSON: {exc}"[:200]) from None
    if not isinstance(d, dict) or d.get("format") != FORMAT:
        raise ModelError(f"model format must be {FORMAT!r}")
    feats, classes = d.get("features"), d.get("classes")
    if (not isinstance(feats, list) or not feats or not all(f in FEATURES for f in feats)
            or len(set(feats)) != len(feats)):
        raise ModelError("model features must be a list of known feature names")
    if classes != list(CLASSES):
        raise ModelError(f"model classes must be {list(CLASSES)}")
    b1 = d.get("b1")
    hidden = len(b1) if isinstance(b1, list) else 0
    if not 1 <= hidden <= 256:
        raise ModelError("model hidden layer must have 1..256 units")
    nf, nc = len(feats), len(classes)
    std = _arr(d, "std", (nf,))
    if np.any(std <= 0):
        raise ModelError("model field 'std': must be > 0")
    meta = d.get("meta", {})
    model = Model(tuple(feats), tuple(classes), _arr(d, "mean", (nf,)), std, _arr(d, "w1", (nf, hidden)),
                  _arr(d, "b1", (hidden,)), _arr(d, "w2", (hidden, nc)), _arr(d, "b2", (nc,)),
                  meta if isinstance(meta, dict) else {})
    if "version" in d and d["version"] != model.version:
        raise ModelError(f"model version {d['version']!r} does not match its weights ({model.version})")
    return model


def load(path: Path = DEFAULT_PATH) -> Model:
    try:
        return parse(path.read_bytes())
    except OSError as exc:
        raise ModelError(f"{path}: {exc.strerror or exc}") from None


FIT_BLAS_THREADS = 2  # the BLAS thread count every fit runs with (the committed model was fitted with 2)


def fit(x: np.ndarray, y: np.ndarray, *, seed: int = 0, hidden: int = 16, epochs: int = 1500, lr: float = 0.02,
        l2: float = 1e-3, class_weight: bool = True, meta: dict | None = None) -> Model:
    """Full-batch Adam on softmax cross-entropy (deterministic for a given seed and data). The matrix products
    run on ``FIT_BLAS_THREADS`` BLAS threads whatever the machine's core count or ``OPENBLAS_NUM_THREADS``: the
    thread count changes how OpenBLAS splits a product, so the last bits of the sums, so the weights and the
    model's version (issue 13, twelfth and fifteenth sessions). ``threadpoolctl`` (the ``demo`` extra: training machines only; the
    gateway only loads models) sets it."""
    from threadpoolctl import threadpool_limits

    with threadpool_limits(limits=FIT_BLAS_THREADS, user_api="blas"):
        return _fit(x, y, seed=seed, hidden=hidden, epochs=epochs, lr=lr, l2=l2, class_weight=class_weight,
                    meta=meta)


def _fit(x: np.ndarray, y: np.ndarray, *, seed: int, hidden: int, epochs: int, lr: float, l2: float,
         class_weight: bool, meta: dict | None) -> Model:
    rng = np.random.default_rng(seed)
    x = np.asarray(x, dtype=np.float64)
    y = np.asarray(y, dtype=np.int64)
    mean, std = x.mean(axis=0), x.std(axis=0) + 1e-6
    z = (x - mean) / std
    nf, nc = x.shape[1], len(CLASSES)
    params = [rng.normal(0, 1 / np.sqrt(nf), (nf, hidden)), np.zeros(hidden),
              rng.normal(0, 1 / np.sqrt(hidden), (hidden, nc)), np.zeros(nc)]
    counts = np.bincount(y, minlength=nc).astype(float)
    wc = (counts.sum() / np.maximum(counts, 1) / nc) if class_weight else np.ones(nc)
    sw = wc[y] / wc[y].mean()
    onehot = np.eye(nc)[y]
    m = [np.zeros_like(p) for p in params]
    v = [np.zeros_like(p) for p in params]
    for step in range(1, epochs + 1):
        w1, b1, w2, b2 = params
        h = np.tanh(z @ w1 + b1)
        lg = h @ w2 + b2
        lg -= lg.max(axis=1, keepdims=True)
        p = np.exp(lg)
        p /= p.sum(axis=1, keepdims=True)
        g = (p - onehot) * sw[:, None] / len(y)
        gw2 = h.T @ g + l2 * w2
        gb2 = g.sum(axis=0)
        gh = (g @ w2.T) * (1 - h * h)
        gw1 = z.T @ gh + l2 * w1
        gb1 = gh.sum(axis=0)
        for i, gr in enumerate((gw1, gb1, gw2, gb2)):
            m[i] = 0.9 * m[i] + 0.1 * gr
            v[i] = 0.999 * v[i] + 0.001 * gr * gr
            params[i] = params[i] - lr * (m[i] / (1 - 0.9**step)) / (np.sqrt(v[i] / (1 - 0.999**step)) + 1e-8)
    r6 = lambda a: np.round(a, 6)  # noqa: E731  (what the file stores, so the version is the file's)
    return Model(FEATURES if x.shape[1] == len(FEATURES) else tuple(f"f{i}" for i in range(nf)), CLASSES,
                 r6(mean), r6(std), *(r6(p) for p in params), meta or {})


def merge(members: list[Model], meta: dict | None = None) -> Model:
    """One model whose logits are the mean of the members' logits (an ensemble of fits on the same corpus, so
    with the same standardisation): their hidden units side by side, each member's output weights divided by
    the member count. It is an ordinary model file (one hidden layer of the summed width), so the gateway loads
    and evaluates it as any other. ValueError if the members do not share features, classes and
    standardisation."""
    if not members:
        raise ValueError("no members to merge")
    first = members[0]
    for m in members[1:]:
        if (m.features != first.features or m.classes != first.classes or not np.array_equal(m.mean, first.mean)
                or not np.array_equal(m.std, first.std)):
            raise ValueError("ensemble members must share features, classes and standardisation")
    k = len(members)
    return Model(first.features, first.classes, first.mean, first.std,
                 np.concatenate([m.w1 for m in members], axis=1), np.concatenate([m.b1 for m in members]),
                 np.round(np.concatenate([m.w2 for m in members], axis=0) / k, 6),
                 np.round(np.sum([m.b2 for m in members], axis=0) / k, 6), meta or {})
