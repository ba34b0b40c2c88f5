"""The Newton (IRLS) step of a penalised GLM, from global sums: no MPI, the same bits on every rank.

With the smooth part's gradient g and information H at beta (fit/irls.py sums them over every
rank's rows, L2 included), the step minimises the quadratic model

    q(d) = g.d + d.H.d / 2 + l1 sum_j pen_j |beta_j + d_j|

Without L1 that is H d = -g (a Cholesky solve: iteratively reweighted least squares, as R's
glm and H2O's IRLSM take it). With L1, cyclic coordinate descent on q over the coefficients,
which touches only the k x k matrix (glmnet's and glum's inner loop). A backtracking line search
on the true objective (`accept`) makes each step decrease it.
"""
from __future__ import annotations

import numpy as np
from scipy import linalg

try:  # the same loop in C (csrc/ccd.c), with glmnet's active-set sweeps
    from .. import _ccd
except ImportError:
    _ccd = None

CD_TOL = 1e-12      # coordinate descent: the largest coordinate change that ends a sweep loop
CD_SWEEPS = 10000
ARMIJO = 1e-4       # sufficient decrease: a fraction of the model's predicted decrease
MIN_STEP = 2.0 ** -30


def newton_direction(g, H, beta, l1: float = 0.0, penalized=None):
    """The step d minimising the quadratic model, and the model's decrease at d (<= 0)."""
    if not l1:
        d = _solve(H, -g)
        return d, float(g @ d + 0.5 * d @ H @ d)
    z = _coordinate_descent(g - H @ beta, H, beta.copy(), l1 * penalized)
    d = z - beta
    decrease = float(g @ d + 0.5 * d @ H @ d + l1 * (np.abs(z) - np.abs(beta)) @ penalized)
    return d, decrease


def _solve(H, rhs):
    """H^-1 rhs by Cholesky; a singular H (collinear columns) by its pseudo-inverse."""
    try:
        return linalg.cho_solve(linalg.cho_factor(H, check_finite=True), rhs)
    except linalg.LinAlgError:
        return linalg.lstsq(H, rhs, cond=1e-12)[0]


def _coordinate_descent(c, H, z, l1):
    """argmin_z c.z + z.H.z / 2 + sum_j l1_j |z_j|, from z, in full sweeps; r = c + H z is kept
    up to date (a coordinate's change costs one column of H). csrc/ccd.c where built; this loop
    is its reference."""
    if _ccd is not None:
        z = np.ascontiguousarray(z, dtype=np.float64)
        _ccd.coordinate_descent(np.ascontiguousarray(c, dtype=np.float64), np.ascontiguousarray(H, dtype=np.float64),
                                z, np.ascontiguousarray(l1, dtype=np.float64), CD_TOL, CD_SWEEPS)
        return z
    r = c + H @ z
    diag = np.diag(H)
    for _ in range(CD_SWEEPS):
        largest = 0.0
        for j in range(len(z)):
            if diag[j] <= 0:
                continue
            old = z[j]
            u = old - r[j] / diag[j]
            new = np.sign(u) * max(abs(u) - l1[j] / diag[j], 0.0)
            if new != old:
                r += H[:, j] * (new - old)
                z[j] = new
                largest = max(largest, abs(new - old))
        if largest <= CD_TOL * max(1.0, float(np.max(np.abs(z)))):
            break
    return z


def accept(objective: float, candidate: float, step: float, decrease: float) -> bool:
    """Armijo's condition on the composite objective."""
    return np.isfinite(candidate) and candidate <= objective + ARMIJO * step * decrease


def optimality(g, beta, l1: float = 0.0, penalized=None) -> float:
    """The largest entry of the minimum-norm subgradient: 0 at the optimum."""
    if not l1:
        return float(np.max(np.abs(g))) if len(g) else 0.0
    pen = penalized.astype(bool)
    sub = g.copy()
    at_zero = pen & (beta == 0)
    sub[pen & (beta != 0)] += l1 * np.sign(beta[pen & (beta != 0)])
    sub[at_zero] = np.sign(g[at_zero]) * np.maximum(np.abs(g[at_zero]) - l1, 0.0)
    return float(np.max(np.abs(sub))) if len(sub) else 0.0
