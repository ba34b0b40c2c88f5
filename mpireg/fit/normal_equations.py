"""The normal equations for linear and ridge regression: one pass, one allreduce of the Gram
sums, the same Cholesky solve on every rank (optim/gram.py)."""
from __future__ import annotations

import numpy as np

from .. import log
from ..device import to_host
from ..optim import gram_sums, solve_normal


def fit(parts, run) -> None:
    d, fit_intercept = parts.schema.n_features, parts.model.fit_intercept
    k = d + 1 if fit_intercept else d
    sums = np.zeros(k * k + k + 1)  # [A | b | rows]
    A, b = sums[:k * k].reshape(k, k), sums[k * k:k * k + k]
    with run.clock("compute"):
        for X, y in parts.train.blocks():
            gram_sums(to_host(X), to_host(y).astype(np.float64), fit_intercept, A, b)
            sums[-1] += X.shape[0]
    with run.clock("comm"):
        run.allreduce(sums)
    with run.clock("compute"):
        mask = to_host(parts.model.mask(np.float64))
        w = solve_normal(A, b, int(sums[-1]), parts.model.l2, mask)
        parts.params[...] = parts.xp.asarray(w.astype(parts.dtype))
    run.progress.step, run.progress.epoch, run.progress.samples = 1, 1, int(sums[-1])
    log.info(f"normal equations: solved {k} x {k} system over {int(sums[-1])} rows")
