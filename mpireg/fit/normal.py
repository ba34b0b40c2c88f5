"""The normal equations for linear and ridge regression: one pass, one allreduce of the Gram
sums, the same Cholesky solve on every rank (optim/normal.py)."""
from __future__ import annotations

import time

import numpy as np

from .. import log
from ..device import to_host
from ..optim import gram_sums, solve_normal


def fit(parts, run) -> None:
    d, fit_intercept = parts.schema.n_features, parts.model.fit_intercept
    k = d + 1 if fit_intercept else d
    start = time.perf_counter()
    sums = np.zeros(k * k + k + 1)  # [A | b | rows]
    A, b = sums[:k * k].reshape(k, k), sums[k * k:k * k + k]
    for X, y in parts.train.blocks():
        gram_sums(to_host(X), to_host(y).astype(np.float64), fit_intercept, A, b)
        sums[-1] += X.shape[0]
    reduce_start = time.perf_counter()
    run.allreduce(sums)
    solve_start = time.perf_counter()
    mask = to_host(parts.model.mask(np.float64))
    w = solve_normal(A, b, int(sums[-1]), parts.model.l2, mask)
    parts.params[...] = parts.xp.asarray(w.astype(parts.dtype))
    run.meter.compute(reduce_start - start + time.perf_counter() - solve_start)
    run.meter.comm(solve_start - reduce_start)
    run.progress.step, run.progress.epoch, run.progress.samples = 1, 1, int(sums[-1])
    log.info(f"normal equations: solved {k} x {k} system over {int(sums[-1])} rows")
