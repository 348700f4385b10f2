"""The classifier's fit runs on a fixed BLAS thread count (``gateway.noise.model.FIT_BLAS_THREADS``), so
``dozor noise train`` gives the same weights, and the same model version, on any machine: OpenBLAS splits a
matrix product by its thread count, which changes the last bits of the sums (the committed corpus fitted with one
thread gave ``mlp-cc4327315fa6``, with two the committed ``mlp-b67ef011ce6b``; docs/benchmarks.md, fifteenth
session)."""

from __future__ import annotations

import numpy as np
import pytest
from threadpoolctl import threadpool_info, threadpool_limits

from gateway.noise import model


def _blas_threads() -> set[int]:
    return {i["num_threads"] for i in threadpool_info() if i["user_api"] == "blas"}


def test_the_fit_runs_on_the_pinned_blas_thread_count_whatever_the_callers(monkeypatch):
    seen = []
    inner = model._fit

    def spy(*a, **k):
        seen.append(_blas_threads())
        return inner(*a, **k)

    monkeypatch.setattr(model, "_fit", spy)
    rng = np.random.default_rng(3)
    x, y = rng.normal(size=(60, len(model.FEATURES))), rng.integers(0, len(model.CLASSES), 60)
    versions = []
    for ambient in (1, 3):
        with threadpool_limits(limits=ambient, user_api="blas"):
            versions.append(model.fit(x, y, seed=1, epochs=20).version)
            assert _blas_threads() == {ambient}  # the caller's setting is given back
    assert seen == [{model.FIT_BLAS_THREADS}, {model.FIT_BLAS_THREADS}]
    assert versions[0] == versions[1]


def test_merged_fits_give_the_mean_of_their_logits_in_one_ordinary_model_file():
    """``dozor noise train`` commits the mean of five fits (twenty-first session): ``merge`` must be exactly that
    mean, survive the file format, and refuse members that standardise differently."""
    rng = np.random.default_rng(3)
    x = rng.normal(size=(120, len(model.FEATURES)))
    y = (x[:, 0] > 0).astype(int) + 2 * (x[:, 1] > 0.5).astype(int)
    fits = [model.fit(x, y, seed=s, hidden=8, epochs=40) for s in (1, 2, 3)]
    merged = model.merge(fits, {"ensemble": 3})
    assert merged.w1.shape == (len(model.FEATURES), 24)
    mean = np.mean([m.logits(x) for m in fits], axis=0)
    assert np.allclose(merged.logits(x), mean, atol=1e-5)
    again = model.parse(merged.to_json())
    assert again.version == merged.version and np.allclose(again.proba(x), merged.proba(x), atol=1e-9)
    assert model.merge(fits[:1]).version == fits[0].version  # one member is that fit
    other = model.fit(x[:60], y[:60], seed=1, hidden=8, epochs=40)  # another corpus: another standardisation
    with pytest.raises(ValueError, match="standardisation"):
        model.merge([fits[0], other])


def test_train_merges_its_ensemble_and_records_it(tmp_path):
    from dozor.commands.noise_train import fit_ensemble

    rng = np.random.default_rng(4)
    x = rng.normal(size=(80, len(model.FEATURES)))
    y = (x[:, 2] > 0).astype(int) * 3
    two = fit_ensemble(x, y, 7, members=2, meta={"ensemble": 2})
    assert two.meta["ensemble"] == 2 and two.b1.size == 64
    one = fit_ensemble(x, y, 7, members=1)
    assert one.b1.size == 32 and one.version == model.fit(x, y, seed=7, hidden=32, epochs=3000, l2=3e-3).version
