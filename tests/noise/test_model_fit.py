"""The classifier's fit runs on a fixed BLAS thread count (``gateway.noise.model.FIT_BLAS_THREADS``), so
``dozor noise train`` gives the same weights, and the same model version, on any machine: OpenBLAS splits a
matrix product by its thread count, which changes the last bits of the sums (the committed corpus fitted with one
thread gave ``mlp-cc4327315fa6``, with two the committed ``mlp-b67ef011ce6b``; docs/benchmarks.md, fifteenth
session)."""

from __future__ import annotations

import numpy as np
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
