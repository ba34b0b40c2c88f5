"""Online per-coordinate adaptive passes (AdaGrad, as Vowpal Wabbit's learners) over CSR rows.

Row by row: z = w . x + b, r = dloss/dz, and for each of the row's entries
    g = r x_j + l2 w_j,   g2_j += g^2,   w_j -= lr g / sqrt(g2_j)
(the intercept likewise, unpenalised). A row costs its non-zeros: the penalty reaches only the
features a row has (VW's convention). The C loop (csrc/csparse.c) does the pass; the loop here
is its reference. The procedure around it (ranks' passes, their averaging) is fit/online.py.
"""
from __future__ import annotations

import math

import numpy as np

try:
    from .. import _csparse
except ImportError:
    _csparse = None


class AdaGrad:
    """The accumulated squared gradients g2 (d + 1: the intercept's last), checkpointed with
    the parameters."""

    name = "adagrad"

    def __init__(self, cfg, n_weights: int):
        self.cfg = cfg
        self.g2 = np.zeros(n_weights + 1)

    def state_dict(self) -> dict:
        return {"g2": self.g2}

    def load_state_dict(self, state: dict) -> None:
        self.g2[...] = state["g2"]


def adagrad_pass(X, y, order, w, g2, lr: float, l2: float, logistic: bool, fit_intercept: bool) -> float:
    """One pass over the CSR rows of X in `order`, updating w and g2 (float64, d + 1) in place;
    returns the sum of each row's loss before its update (progressive validation)."""
    y = np.ascontiguousarray(y, dtype=np.float64)
    order = np.ascontiguousarray(order, dtype=np.int64)
    indptr = X.indptr.astype(np.int64, copy=False)
    if _csparse is not None:
        return _csparse.adagrad_pass(indptr, X.indices, X.data, y, order, w, g2, lr, l2, logistic, fit_intercept)
    return _pass_python(indptr, X.indices, X.data, y, order, w, g2, lr, l2, logistic, fit_intercept)


def _pass_python(indptr, indices, data, y, order, w, g2, lr, l2, logistic, fit) -> float:
    d, loss = len(w) - 1, 0.0
    for i in order:
        cols, vals = indices[indptr[i]:indptr[i + 1]], data[indptr[i]:indptr[i + 1]].astype(np.float64)
        z = float(w[cols] @ vals) + (w[d] if fit else 0.0)
        if logistic:
            e = math.exp(-abs(z))
            loss += max(z, 0.0) + math.log1p(e) - y[i] * z
            r = (1.0 if z >= 0 else e) / (1.0 + e) - y[i]
        else:
            r = z - y[i]
            loss += 0.5 * r * r
        for j, x in zip(cols.tolist(), vals.tolist()):  # in order: a column may repeat in a row
            g = r * x + l2 * w[j]
            g2[j] += g * g
            if g2[j] > 0:
                w[j] -= lr * g / math.sqrt(g2[j])
        if fit:
            g2[d] += r * r
            if g2[d] > 0:
                w[d] -= lr * r / math.sqrt(g2[d])
    return loss
