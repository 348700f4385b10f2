"""`dozor noise train`: rebuild the noise classifier's model from the training scene family, reproducibly.

    dozor noise train --scenes 1000 --seed 15 --holdout-scenes 400 --kerbside-scenes 400 [--junction-scenes N] [--boulevard-scenes N] --out gateway/noise/models/classifier.json [--jobs 2] [--texture 0.5] [--ensemble 5] [--json]

Corpus: scene i is ``simulators.noise_scene.generate(seed * 100_003 + i, duration_s=20, full_scale_db=None,
mix=TRAIN_MIX)`` (with ``texture`` on for the share ``--texture`` of the scenes, spread evenly:
``simulators.noise_texture``'s modulated background bands, vehicle colourings, platoons and downpours; none by
default): every source kind of the training family (``simulators.noise_sources.RANGES`` and
``simulators.noise_extras.EXTRA_RANGES``), denser than a street. Each scene runs through the gateway's own
pipeline (detector, features); every event is labelled with the class of the labelled source that made it
(the loudest source whose own level at the microphone came within 6 dB of the event's LAFmax; events where two
classes come within 3 dB of each other are left out as ambiguous; events no source explains are ``other``).
``--holdout-scenes N`` appends N scenes (30 s each) of a second, differently written generator,
``simulators.holdout_scenes`` (scene i: seed ``seed * 100_003 + i``, full scale 120/130/130/135 dB by seed), run
and labelled the same way: a model that has seen two generators' modelling choices depends less on either's
(docs/architecture.md, "Two generators to learn from"). That family is then no longer held out
(``bench.noise_accuracy`` marks it ``in_training``); the independent family (``simulators.street_scenes``) never
enters a corpus. The model is fitted with a fixed seed, so the same command gives the same file and version; the output
also reports a 4-fold cross-validation on the corpus (``cv``; folds are contiguous blocks, so with
``--holdout-scenes`` the last fold is mostly second-generator scenes). Cost: about 1.4 s of one core per training
scene and ~1.3 s per second-generator scene. ``--kerbside-scenes N`` appends N scenes (30 s) of the fourth
generator, ``simulators.kerbside_scenes``, after those, the same way, and ``--junction-scenes`` /
``--boulevard-scenes`` those of the fifth and sixth (``simulators.junction_scenes``, ``simulators.boulevard_scenes``,
twenty-second session), always in that order (``EXTRA_FAMILIES``). The model is the mean of ``--ensemble`` fits (default
``ENSEMBLE`` = 5, seeds ``seed`` to ``seed + 4``; ``model.merge``): one fit's result on scenes it was not tuned
on moves with its seed by as much as a change of the corpus does. The committed model, ``mlp-fadf1affc7bc``
(twenty-first session: five fits, and ``TRAIN_MIX`` gives half the vehicles a spectral balance,
``simulators.noise_balance``), is ``--scenes 1000 --seed 15 --holdout-scenes 400 --kerbside-scenes 400`` (3495
events; with the twenty-third session's pass-by joins the same command gives 3318 events and ``mlp-afe76d1f3caf``,
not committed: docs/benchmarks.md, twenty-fourth session). Before it was ``mlp-dc8d81ebbade`` (one fit; since the eighteenth session
the features' loud frames are chosen by A-weighted energy, ``gateway.noise.features``; by the twentieth
session's pipeline the same command gave ``mlp-cf8220cbe107``), before that
``mlp-63dfd129a367`` (the same command; since the seventeenth session ``TRAIN_MIX`` gives half the loud vehicles
a throttle that blips, ``simulators.noise_throttle``), before that ``mlp-b67ef011ce6b`` (the same command
without throttle blips), in the thirteenth session ``mlp-299d96f8ce8e`` (without ``--kerbside-scenes``), before
that ``mlp-397e380f0707`` (the training family alone).
After training, ``python -m bench.noise_calibrate --write`` chooses the score an enforcement case needs from this
model (``meta.min_exhaust_score``) on fresh scenes of the families it learned from (docs/architecture.md, "The
enforcement score belongs to the model"); without it the pipeline's default, 0.8, applies.
The fit's matrix products go through OpenBLAS, whose thread count changes the last bits of the weights: the
eleventh session's corpus gave ``mlp-09606b807972`` with this 2-core machine's default and ``mlp-e76f0b1361ba``
with ``OPENBLAS_NUM_THREADS=1`` (docs/benchmarks.md, issue 13, twelfth session). Since the fifteenth session
``model.fit`` runs on ``model.FIT_BLAS_THREADS`` (2, what the committed model was fitted with) whatever the
machine or the environment says (``threadpoolctl``), so the command gives the committed version on any core
count (the same CPU kernel family assumed: OpenBLAS's per-architecture kernels may differ in their last bits).
"""

from __future__ import annotations

import hashlib
import importlib
import json
import math
from collections import Counter
from pathlib import Path

import typer

from dozor.commands._common import JsonOpt, console, emit_json, fail

# denser than a street (more labelled events per second of audio), every source kind of the training family on
TRAIN_MIX = {"exhaust": 1.2, "legal": 1.0, "far": 0.5, "horn": 0.3, "cd_siren": 0.15, "ev_siren": 0.3, "wind": 0.25,
             "rain": 0.25, "heavy": 0.6, "moto_legal": 0.5, "pair": 0.5, "pulse": 0.6, "horn_passby": 0.5,
             "far_siren": 0.15, "voices": 0.4, "birds": 0.3, "wide": 1.0,
             "throttle": 0.5, "balance": 0.5}
SCENE_S = 20.0
HIDDEN, EPOCHS, L2 = 32, 3000, 3e-3  # the MLP's size and fitting (full-batch Adam)
ENSEMBLE = 5  # fits (seeds seed .. seed + ENSEMBLE - 1) averaged into the model (``model.merge``)
CV_FOLDS = 4
HOLDOUT_SCENE_S = 30.0  # scenes of the second generator (``--holdout-scenes``): drawn counts are per minute
HOLDOUT_FULL_SCALES = (120.0, 130.0, 130.0, 135.0)
OWN_DB = 6.0  # a source within this of the event's LAFmax made (part of) it
AMBIGUOUS_DB = 3.0


def source_level(src: dict, a: float, b: float, distance_m: float) -> float:
    """A labelled source's own LAF maximum at the microphone during [a, b] (-inf if it was silent then)."""
    if "laf_trace" in src:
        t0 = src.get("laf_trace_t0", src["t_start"])
        tr = src["laf_trace"][max(0, int((a - t0) * 10)): max(0, int(math.ceil((b - t0) * 10)))]
        return max(tr) if tr else -math.inf
    if "t_peak" not in src or not a - 0.5 <= src["t_peak"] <= b + 0.5:
        return -math.inf
    if "lafmax_mic_db" in src:
        return float(src["lafmax_mic_db"])
    return float(src["lafmax_7p5_db"]) - 20 * math.log10(distance_m / 7.5)


def label_event(labels: dict, start: float, end: float, lafmax: float) -> str | None:
    """The class of the source that made an event, ``other`` if none did, None if ambiguous."""
    dist = float(labels["distance_m"])
    lv: dict[str, float] = {}
    for s in labels["sources"]:
        if s.get("class") in (None, "none"):
            continue
        level = source_level(s, start, end, dist)
        if level >= lafmax - OWN_DB:
            lv[s["class"]] = max(lv.get(s["class"], -math.inf), level)
    if not lv:
        return "other"
    ranked = sorted(lv.items(), key=lambda kv: -kv[1])
    if len(ranked) > 1 and ranked[0][1] - ranked[1][1] < AMBIGUOUS_DB:
        return None
    return ranked[0][0]


def textured(i: int, share: float) -> bool:
    """Whether scene ``i`` of a corpus gets the sixth-pass texture (``simulators.noise_texture``): evenly spread,
    ``share`` of the scenes (0 = none, the committed corpus before the tenth session; 1 = all)."""
    return math.floor((i + 1) * share) > math.floor(i * share)


def _labelled(scene, meter, detector) -> list[tuple[dict[str, float], str]]:
    """Run one scene through the gateway's pipeline and label each event that has features (``label_event``;
    ambiguous events are left out)."""
    from gateway.noise.pipeline import AnalyzerConfig, analyze_array

    lab = scene.labels
    _, events = analyze_array(scene.audio, AnalyzerConfig(meter=meter, detector=detector),
                              zone_intervals=lab.get("zone_siren_active") or [])
    out = []
    for e in events:
        if not e.features:
            continue
        label = label_event(lab, e.start, e.end, e.levels.lafmax)
        if label is not None:
            out.append((e.features, label))
    return out


def _scene_rows(seed: int, texture: bool = False) -> list[tuple[dict[str, float], str]]:
    from gateway.noise.detector import DetectorConfig
    from gateway.noise.dsp import MeterConfig
    from simulators.noise_scene import generate

    scene = generate(seed, duration_s=SCENE_S, full_scale_db=None, mix={**TRAIN_MIX, "texture": 1.0} if texture else TRAIN_MIX)
    return _labelled(scene, MeterConfig(full_scale_db=float(scene.labels["full_scale_db"])),
                     DetectorConfig(distance_m=float(scene.labels["distance_m"])))


# further generators a corpus may add (``--<family>-scenes N``), in corpus order
EXTRA_FAMILIES = {"holdout": "simulators.holdout_scenes", "kerbside": "simulators.kerbside_scenes",
                  "junction": "simulators.junction_scenes", "boulevard": "simulators.boulevard_scenes"}


def _extras(holdout: int, kerbside: int, extra: dict[str, int] | None) -> dict[str, int]:
    """Scene counts of the further generators a corpus adds, in ``EXTRA_FAMILIES`` order (zeros left out)."""
    given = {"holdout": holdout, "kerbside": kerbside, **(extra or {})}
    unknown = set(given) - set(EXTRA_FAMILIES)
    if unknown:
        raise ValueError(f"unknown scene families {sorted(unknown)}: expected {sorted(EXTRA_FAMILIES)}")
    return {fam: int(given[fam]) for fam in EXTRA_FAMILIES if given.get(fam)}


def _family_rows(family: str, seed: int) -> list[tuple[dict[str, float], str]]:
    """Labelled events of one scene of a further generator (``EXTRA_FAMILIES``, its own declared ranges), analysed
    and labelled exactly as the training family's; its full scale cycles through the training family's choices
    (120, 130, 130, 135 dB) by seed."""
    from gateway.noise.detector import DetectorConfig
    from gateway.noise.dsp import MeterConfig

    generate = importlib.import_module(EXTRA_FAMILIES[family]).generate
    scene = generate(seed, duration_s=HOLDOUT_SCENE_S, full_scale_db=HOLDOUT_FULL_SCALES[seed % 4])
    lab = scene.labels
    return _labelled(scene, MeterConfig(fs=scene.fs, full_scale_db=float(lab["full_scale_db"])),
                     DetectorConfig(distance_m=float(lab["distance_m"]), mic_height_m=lab.get("mic_height_m")))


def build_corpus(scenes: int, seed: int, jobs: int = 1, texture: float = 0.0, holdout: int = 0, kerbside: int = 0,
                 *, extra_scenes: dict[str, int] | None = None) -> list[tuple[dict[str, float], str]]:
    """The training family's ``scenes`` scenes, then ``holdout`` scenes of the second generator, ``kerbside``
    scenes of the fourth and the ``extra_scenes`` (family: count) of the others, in ``EXTRA_FAMILIES`` order (scene
    i of each: seed ``seed * 100_003 + i``)."""
    seeds = [seed * 100_003 + i for i in range(scenes)]
    tex = [textured(i, texture) for i in range(scenes)]
    extra = [(fam, seed * 100_003 + i) for fam, n in _extras(holdout, kerbside, extra_scenes).items() for i in range(n)]
    if jobs > 1:
        from concurrent.futures import ProcessPoolExecutor

        with ProcessPoolExecutor(jobs) as ex:
            parts = list(ex.map(_scene_rows, seeds, tex, chunksize=4))
            parts += list(ex.map(_family_rows, [f for f, _ in extra], [s for _, s in extra], chunksize=2))
    else:
        parts = [_scene_rows(s, t) for s, t in zip(seeds, tex, strict=True)]
        parts += [_family_rows(f, s) for f, s in extra]
    return [row for p in parts for row in p]


def fit_ensemble(x, y, seed: int, members: int = ENSEMBLE, meta: dict | None = None):
    """``members`` fits with seeds ``seed``, ``seed + 1``, ... merged into one model that averages their logits.
    One fit's scores on scenes it was not tuned on move with its seed by as much as a change of the corpus does
    (issue 13, twenty-first session: 325-339 enforcement cases of 461 over five seeds of one corpus, 341-348 of
    the next), so the committed model is their mean, not one draw."""
    from gateway.noise.model import fit, merge

    return merge([fit(x, y, seed=seed + i, hidden=HIDDEN, epochs=EPOCHS, l2=L2) for i in range(members)], meta)


def train(scenes: int, seed: int, out: Path, *, jobs: int = 1, corpus: Path | None = None,
          texture: float = 0.0, holdout: int = 0, kerbside: int = 0, ensemble: int = ENSEMBLE,
          extra_scenes: dict[str, int] | None = None) -> dict:
    import numpy as np

    from gateway.noise.model import CLASSES, FEATURES
    from simulators.noise_balance import BALANCE_RANGES
    from simulators.noise_extras import EXTRA_RANGES
    from simulators.noise_sources import RANGES
    from simulators.noise_throttle import THROTTLE_RANGES
    from simulators.noise_wide import WIDE_RANGES

    extras = _extras(holdout, kerbside, extra_scenes)
    if corpus is not None and corpus.exists():
        try:
            rows = [(dict(r["features"]), str(r["label"])) for r in json.loads(corpus.read_text())]
            x = np.array([[float(f[k]) for k in FEATURES] for f, _ in rows])
            y = np.array([CLASSES.index(lab) for _, lab in rows])
        except (KeyError, TypeError, IndexError) as exc:
            raise ValueError(f"corpus {corpus} is malformed ({type(exc).__name__}: {exc})") from None
    else:
        rows = build_corpus(scenes, seed, jobs, texture, extra_scenes=extras)
        if corpus is not None:
            corpus.write_text(json.dumps([{"features": f, "label": lab} for f, lab in rows]))
    if len(rows) < 20:
        raise ValueError(f"only {len(rows)} labelled events: use more scenes")
    x = np.array([[float(f[k]) for k in FEATURES] for f, _ in rows])
    y = np.array([CLASSES.index(lab) for _, lab in rows])
    counts = Counter(lab for _, lab in rows)
    from simulators.noise_texture import TEXTURE_RANGES

    ranges = [RANGES, EXTRA_RANGES, WIDE_RANGES, THROTTLE_RANGES, BALANCE_RANGES] + ([TEXTURE_RANGES] if texture else [])
    for fam in extras:
        ranges.append(importlib.import_module(EXTRA_FAMILIES[fam]).RANGES)
    ranges_sha = hashlib.sha256(json.dumps(ranges, sort_keys=True, default=str).encode()).hexdigest()[:12]
    cmd = (f"dozor noise train --scenes {scenes} --seed {seed}" + (f" --texture {texture:g}" if texture else "")
           + "".join(f" --{fam}-scenes {n}" for fam, n in extras.items())
           + (f" --ensemble {ensemble}" if ensemble != ENSEMBLE else ""))
    meta = {"trained_by": cmd, "events": dict(counts), "ensemble": ensemble,
            "ranges_sha256_12": ranges_sha, "family": "simulators.noise_scene", "scene_s": SCENE_S,
            "mix": TRAIN_MIX, **({"texture_share": texture} if texture else {}),
            **({"families": ["train", *extras], **{f"{fam}_scenes": n for fam, n in extras.items()},
                "holdout_scene_s": HOLDOUT_SCENE_S} if extras else {})}
    model = fit_ensemble(x, y, seed, ensemble, meta)
    acc = float(np.mean(model.proba(x).argmax(axis=1) == y))
    cv = cross_validate(x, y, seed, ensemble=ensemble)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(model.to_json() + "\n")
    return {"out": str(out), "version": model.version, "events": dict(counts), "train_accuracy": round(acc, 4),
            "bytes": out.stat().st_size, "ranges_sha256_12": ranges_sha, "cv": cv}


def cross_validate(x, y, seed: int, folds: int = CV_FOLDS, ensemble: int = ENSEMBLE) -> dict:
    """K-fold cross-validation on the corpus, folds by contiguous blocks of rows (rows come in scene order, so
    a fold is a block of scenes): exhaust precision and recall of the held-out predictions, and the exhaust
    score on held-out loud (>= 98 dB at 7.5 m) events, the level where enforcement is expected."""
    import numpy as np

    from gateway.noise.model import CLASSES, FEATURES

    n = len(y)
    if n < 4 * folds:
        return {}
    fold = (np.arange(n) * folds) // n
    p = np.zeros((n, len(CLASSES)))
    for k in range(folds):
        m = fit_ensemble(x[fold != k], y[fold != k], seed, ensemble)
        p[fold == k] = m.proba(x[fold == k])
    pred = p.argmax(axis=1)
    ex = CLASSES.index("exhaust")
    tp, fp = int(np.sum((pred == ex) & (y == ex))), int(np.sum((pred == ex) & (y != ex)))
    fn = int(np.sum((pred != ex) & (y == ex)))
    loud = x[:, list(FEATURES).index("level_7p5")] >= 98.0
    out = {"folds": folds, "exhaust_precision": round(tp / max(tp + fp, 1), 4),
           "exhaust_recall": round(tp / max(tp + fn, 1), 4)}
    for thr in (0.5, 0.8):
        case = loud & (pred == ex) & (p[:, ex] >= thr)
        out[f"loud_exhaust_score_ge_{thr}"] = f"{int(np.sum(case & (y == ex)))}/{int(np.sum(loud & (y == ex)))}"
        out[f"loud_non_exhaust_score_ge_{thr}"] = f"{int(np.sum(case & (y != ex)))}/{int(np.sum(loud & (y != ex)))}"
    return out


def register(noise_app: typer.Typer) -> None:
    @noise_app.command("train")
    def train_cmd(
        scenes: int = typer.Option(1000, "--scenes", min=5, max=100_000, help="training scenes (20 s each)"),
        seed: int = typer.Option(15, "--seed", help="corpus and fitting seed (same seed, same model)"),
        out: Path = typer.Option(Path("gateway/noise/models/classifier.json"), "--out", help="model file to write"),
        jobs: int = typer.Option(1, "--jobs", min=1, max=64, help="worker processes for the corpus"),
        corpus: Path = typer.Option(None, "--corpus", help="cache of the labelled features (JSON): read if it "
                                    "exists, else written"),
        texture: float = typer.Option(0.0, "--texture", min=0.0, max=1.0, help="share of the scenes with the "
                                      "sixth-pass texture (simulators.noise_texture), spread evenly"),
        holdout: int = typer.Option(0, "--holdout-scenes", min=0, max=100_000, help="also this many scenes "
                                    f"({HOLDOUT_SCENE_S:g} s) of the second generator, simulators.holdout_scenes; "
                                    "a model trained on them makes that family no longer held out"),
        kerbside: int = typer.Option(0, "--kerbside-scenes", min=0, max=100_000, help="also this many scenes "
                                     f"({HOLDOUT_SCENE_S:g} s) of the fourth generator, simulators.kerbside_scenes"),
        junction: int = typer.Option(0, "--junction-scenes", min=0, max=100_000, help="also this many scenes "
                                     f"({HOLDOUT_SCENE_S:g} s) of the fifth generator, simulators.junction_scenes"),
        boulevard: int = typer.Option(0, "--boulevard-scenes", min=0, max=100_000, help="also this many scenes "
                                      f"({HOLDOUT_SCENE_S:g} s) of the sixth generator, simulators.boulevard_scenes"),
        ensemble: int = typer.Option(ENSEMBLE, "--ensemble", min=1, max=8, help="fits (seeds seed, seed+1, ...) "
                                     "whose mean logits make the model"),
        as_json: bool = JsonOpt,
    ) -> None:
        """Generate the training corpus, run the pipeline on it and fit the classifier model."""
        from gateway.noise.errors import NoiseError

        try:
            result = train(scenes, seed, out, jobs=jobs, corpus=corpus, texture=texture, holdout=holdout,
                           kerbside=kerbside, ensemble=ensemble,
                           extra_scenes={"junction": junction, "boulevard": boulevard})
        except (NoiseError, ValueError, OSError) as exc:
            fail(f"training failed: {exc}", as_json=as_json, code=2)
        if as_json:
            emit_json(result)
        else:
            console.print(f"wrote {result['out']} ({result['bytes']} bytes), version {result['version']}, "
                          f"events {result['events']}, training accuracy {result['train_accuracy']}")
