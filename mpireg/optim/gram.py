"""The exact solver for linear and ridge regression: one pass, one allreduce, one Cholesky solve.

Each rank forms A = [X 1]^T [X 1] and b = [X 1]^T y over its rows; the sums are reduced; every
rank then solves (A/n + l2 D) w = b/n, D the penalty mask (as Spark MLlib's normal-equation
solver does, for up to a few thousand features: the d x d system is reduced whole).
"""
from __future__ import annotations

import numpy as np

from .. import log


def gram_sums(X, y, fit_intercept: bool, out_A, out_b, w=None) -> None:
    """Add this block's [X 1]^T W [X 1] and [X 1]^T W y into out_A, out_b (float64); W the
    rows' weights (a gaussian GLM's), or 1."""
    d = X.shape[1]
    Xd = X.astype(np.float64, copy=False)
    Xw = Xd if w is None else (Xd.multiply(w[:, None]).tocsr() if hasattr(Xd, "tocsr") else Xd * w[:, None])
    product = Xw.T @ Xd
    out_A[:d, :d] += product.toarray() if hasattr(product, "toarray") else product
    out_b[:d] += Xw.T @ y
    if fit_intercept:
        col = np.asarray(Xw.sum(axis=0)).ravel()
        out_A[:d, d] += col
        out_A[d, :d] += col
        out_A[d, d] += X.shape[0] if w is None else w.sum()
        out_b[d] += y.sum() if w is None else w @ y


def solve_normal(A, b, n_rows: int, l2: float, mask) -> np.ndarray:
    import scipy.linalg  # here, not at start-up: only normal-equation jobs need it (0.4 s)

    system = A / n_rows + l2 * np.diag(mask)
    rhs = b / n_rows
    try:
        return scipy.linalg.cho_solve(scipy.linalg.cho_factor(system), rhs)
    except np.linalg.LinAlgError:
        log.warn("normal equations are singular (collinear features and l2 = 0); "
                 "using the minimum-norm least-squares solution")
        return np.linalg.lstsq(system, rhs, rcond=None)[0]
