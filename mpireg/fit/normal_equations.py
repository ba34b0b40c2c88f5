"""The normal equations for linear and ridge regression: one pass, one allreduce of the Gram
sums, the same Cholesky solve on every rank (optim/gram.py). A gaussian GLM with the identity
link (weighted least squares: [y, w, offset] rows) takes the same path, its sums weighted."""
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
            y = to_host(y).astype(np.float64)
            if y.ndim == 2:  # [y, w, offset]: the weighted sums of y - offset
                gram_sums(to_host(X), y[:, 0] - y[:, 2], fit_intercept, A, b, y[:, 1])
                sums[-1] += y[:, 1].sum()
            else:
                gram_sums(to_host(X), y, fit_intercept, A, b)
                sums[-1] += X.shape[0]
    with run.clock("comm"):
        run.allreduce(sums)
    with run.clock("compute"):
        mask = to_host(parts.model.mask(np.float64))
        w = solve_normal(A, b, sums[-1], parts.model.l2, mask)
        parts.params[...] = parts.xp.asarray(w.astype(parts.dtype))
    run.progress.step, run.progress.epoch, run.progress.samples = 1, 1, int(sums[-1])
    log.info(f"normal equations: solved {k} x {k} system over {int(sums[-1])} rows")
