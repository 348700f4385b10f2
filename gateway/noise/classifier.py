"""Event classifier: exhaust, siren, horn or other, from the spectral features of the event's audio.

The features are computed by ``gateway.noise.features`` (documented there); this module decides.
The scores come from the learned model (``gateway.noise.model``: a tiny MLP trained by ``dozor noise train``
on the training scene family; its version goes into every evidence record), so exhaust-versus-other is a
decision over all features together, not one harmonic-strength threshold. Without a model file the
hand-set logits of ``rule_scores`` (version ``rules-v1``) are used.
"""

from __future__ import annotations

import numpy as np

from gateway.noise.event_shape import onset as _onset  # noqa: F401  (older import path)
from gateway.noise.event_shape import texture as _texture  # noqa: F401  (older import path)
from gateway.noise.features import CLASSES, Features, features

__all__ = ["CLASSES", "MIN_EXHAUST_SCORE", "SHAPE_FEATURES", "Features", "classify", "current_model", "features",
           "min_exhaust_score", "model_version", "reset_model", "use_model", "rule_scores", "scores", "shape_siren"]

RULES_VERSION = "rules-v1"
MIN_EXHAUST_SCORE = 0.8  # enforcement needs the classifier this sure (argmax alone is not enough), by default
_model_cache: list[object] = []


def current_model():
    """The learned model from ``gateway/noise/models/classifier.json`` (loaded once), or None if absent."""
    if not _model_cache:
        from gateway.noise.model import DEFAULT_PATH, load

        _model_cache.append(load(DEFAULT_PATH) if DEFAULT_PATH.exists() else None)
    return _model_cache[0]


def use_model(model) -> None:
    """Make ``model`` (a loaded ``gateway.noise.model.Model``, or None for the hand-set rules) the current model of
    this process: benches and tests that compare models analyse the same scenes with each in turn."""
    _model_cache[:] = [model]


def reset_model() -> None:
    """Forget ``use_model``'s choice: the next ``current_model()`` loads the committed file again."""
    _model_cache.clear()


def model_version(model=None) -> str:
    m = model if model is not None else current_model()
    return m.version if m is not None else RULES_VERSION


def min_exhaust_score(model=None) -> float:
    """The exhaust score an enforcement case needs: the model file's own ``meta.min_exhaust_score`` (written by
    ``python -m bench.noise_calibrate --write`` for that model, whose scores it calibrates), else
    ``MIN_EXHAUST_SCORE``. A value outside [0.5, 1) would let argmax alone or nothing enforce: it is ignored."""
    m = model if model is not None else current_model()
    v = m.meta.get("min_exhaust_score") if m is not None else None
    return float(v) if isinstance(v, (int, float)) and 0.5 <= v < 1.0 else MIN_EXHAUST_SCORE


def scores(ft: Features, model=None) -> dict[str, float]:
    """Class probabilities: the learned model's (``model`` or the committed one), else the hand-set rules."""
    m = model if model is not None else current_model()
    if m is not None:
        return m.scores(ft.values())
    return rule_scores(ft)


SHAPE_FEATURES = ("duration_s", "onset")  # how long an event lasts and how it swells: no sound's spectrum


def shape_siren(ft: Features, sc: dict[str, float], model=None) -> float:
    """The part of ``sc['siren']`` the event's *shape* adds: the model's siren probability minus what it is with
    ``SHAPE_FEATURES`` at the model's training means (0 without a model, or where the shape lowers it). The
    training families' sirens are the long, slowly swelling sounds, so the model gives siren mass to any long,
    slow pass-by; a siren's spectrum (its tones, its high-frequency energy) keeps its mass with the shape at the
    mean (``rules.enforcement_score``, docs/architecture.md)."""
    m = model if model is not None else current_model()
    if m is None or "siren" not in sc or not all(k in m.features for k in SHAPE_FEATURES):
        return 0.0
    d = ft.values()
    for k in SHAPE_FEATURES:
        d[k] = float(m.mean[m.features.index(k)])
    return max(0.0, float(sc["siren"]) - m.scores(d)["siren"])


def rule_scores(ft: Features) -> dict[str, float]:
    """Class probabilities from features (softmax over hand-set logits): the pre-model classifier."""
    sweep = float(np.clip((ft.sweep_oct - 0.15) / 0.35, -1.0, 1.0))
    long = 1.0 if ft.duration_s > 12 else 0.0
    windy = 20 * max(ft.lf_frac - 0.8, 0.0)
    logits = {
        "exhaust": 0.4 * (ft.engine - 12) - 6 * ft.tonal - windy - 3 * long,
        "siren": 6 * ft.tonal - 4 + 6 * ft.two_tone_56 + 8 * sweep + 2 * long,
        "horn": 6 * ft.tonal - 3 - 8 * max(sweep, 0.0) - 6 * ft.two_tone_56 - 2 * max(ft.duration_s - 3, 0),
        "other": windy,
    }
    m = max(logits.values())
    ex = {k: float(np.exp(v - m)) for k, v in logits.items()}
    s = sum(ex.values())
    return {k: round(ex[k] / s, 4) for k in CLASSES}


def classify(x: np.ndarray, fs: int, peak: int | None = None, model=None, *,
             level_7p5: float = 0.0, weighted_sq: np.ndarray | None = None) -> tuple[str, dict[str, float], Features]:
    ft = features(x, fs, peak, level_7p5=level_7p5, weighted_sq=weighted_sq)
    sc = scores(ft, model)
    return max(sc, key=lambda k: sc[k]), sc, ft
