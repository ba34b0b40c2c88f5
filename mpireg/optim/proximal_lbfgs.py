"""A proximal limited-memory quasi-Newton step for

    f(beta) + sum_j l1_j |beta_j|,   f smooth (a GLM's mean deviance / 2 and its L2 part):

the Newton path's step (optim/newton.py: coordinate descent on a quadratic model of f with the
L1 term exact) with the model's matrix the L-BFGS one of the last `history` steps instead of
the information, in its compact form H = gamma I - W M W^T (Byrd, Nocedal and Schnabel 1994),
never formed: coordinate descent on it costs k m a sweep (csrc/ccd.c), not k^2. (Orthant-wise
L-BFGS, OWL-QN, steps along one direction instead; on correlated columns it took 500 passes a
penalty where this takes tens, measured on tests/fit/test_path_first_order.py's data.)

The memory holds (s, y) with y the *loss's* gradient change only: the L2 part's is l2 s, added
when the model is formed, so that the pairs stay exact when a path lowers the penalty and
warm-start the next penalty's solve. Pure arithmetic on global sums: every rank takes the same
steps.
"""
from __future__ import annotations

import numpy as np

from .newton import CD_TOL

# Sweeps of the model's coordinate descent a step: the step need not be the model's exact
# minimiser (the line search keeps the objective falling), and an L-BFGS model over 65,536
# coordinates can take thousands of sweeps to settle to CD_TOL for no fewer passes.
SWEEPS = 30

try:
    from .. import _ccd
except ImportError:
    _ccd = None

CURVATURE_FLOOR = 1e-10  # a pair with s.y below this (relative to |s| |y|) carries no curvature
DIAGONAL_FLOOR = 1e-12   # a column no row touches has no curvature: this fraction of the largest


class LimitedMemory:
    """One model's (s, y) pairs over the coordinates `support` (its working set: the strong set,
    the non-zero and the unpenalized coefficients), indexed by position in it, and its model's
    diagonal there (the loss's curvature per weight; NaN where not yet known)."""

    def __init__(self, history: int):
        self.history = history
        self.support = np.empty(0, dtype=np.int64)
        self.pairs: list[tuple[np.ndarray, np.ndarray]] = []
        self.diagonal = np.empty(0)
        self.fresh = False  # the diagonal summed at a recent point (not estimated, not stale)

    def widen(self, support: np.ndarray) -> None:
        """Take a working set that contains the current one; the pairs are 0 in the new
        coordinates, the diagonal NaN."""
        support = np.asarray(support, dtype=np.int64)
        if len(support) == len(self.support):
            return
        place = np.searchsorted(support, self.support)
        widened = []
        for s, y in self.pairs:
            s2, y2 = np.zeros(len(support)), np.zeros(len(support))
            s2[place], y2[place] = s, y
            widened.append((s2, y2))
        diagonal = np.full(len(support), np.nan)
        diagonal[place] = self.diagonal
        self.support, self.pairs, self.diagonal = support, widened, diagonal

    def remember(self, s: np.ndarray, y: np.ndarray) -> None:
        if float(s @ y) <= 0:  # the loss is convex: only rounding gives s.y <= 0
            return
        self.pairs.append((s, y))
        del self.pairs[:-self.history]

    def model(self, l2: np.ndarray, diagonal: np.ndarray):
        """(D, W, P) of H = diag(D) - W P^T over the support: the L-BFGS update of the diagonal
        D = `diagonal` + l2 (the information's diagonal at the point: hashed columns' curvatures
        differ by the columns' frequencies, orders of magnitude, where gamma I treats them alike)."""
        D = np.ascontiguousarray(np.maximum(diagonal + l2, DIAGONAL_FLOOR * max(float(np.max(diagonal + l2, initial=0)), 1e-300)))
        pairs = [(s, y + l2 * s) for s, y in self.pairs]
        pairs = [(s, y) for s, y in pairs if s @ y > CURVATURE_FLOOR * np.linalg.norm(s) * np.linalg.norm(y)]
        if not pairs:
            return D, np.zeros((len(self.support), 0)), np.zeros((len(self.support), 0))
        S, Y = np.column_stack([s for s, _ in pairs]), np.column_stack([y for _, y in pairs])
        DS = D[:, None] * S
        SY = S.T @ Y
        L = np.tril(SY, -1)
        middle = np.block([[S.T @ DS, L], [L.T, -np.diag(np.diag(SY))]])
        W = np.hstack([DS, Y])
        return D, np.ascontiguousarray(W), np.ascontiguousarray(W @ _inverse(middle))


def _inverse(middle: np.ndarray) -> np.ndarray:
    """The compact form's 2m x 2m middle matrix inverted (LU; its pseudo-inverse, an SVD, where
    that fails: 7 % of a 2^20-column path's time at m = 40 went to the SVD)."""
    try:
        inverse = np.linalg.inv(middle)
        if np.all(np.isfinite(inverse)):
            return inverse
    except np.linalg.LinAlgError:
        pass
    return np.linalg.pinv(middle)


def proximal_step(g, beta, l1, l2, memory: LimitedMemory, diagonal):
    """The step d minimising g.d + d.H.d / 2 + sum l1_j |beta_j + d_j| (H: the memory's model),
    and the objective's first-order change along it, g.d + sum l1_j (|beta_j + d_j| - |beta_j|):
    negative where H is positive definite (Tseng and Yun's line search takes it)."""
    D, W, P = memory.model(l2, diagonal)
    Hbeta = D * beta - P @ (W.T @ beta)
    z = beta.copy()
    c = np.ascontiguousarray(g - Hbeta)
    if _ccd is not None:
        _ccd.lowrank_coordinate_descent(c, D, W, P, z, np.ascontiguousarray(l1, dtype=np.float64), CD_TOL, SWEEPS)
    else:
        _lowrank_descent(c, D, W, P, z, l1)
    d = z - beta
    return d, float(g @ d + l1 @ (np.abs(z) - np.abs(beta)))


def _lowrank_descent(c, D, W, P, z, l1) -> None:
    """csrc/ccd.c's lowrank_coordinate_descent, its reference: full sweeps until no coordinate moves."""
    u = W.T @ z
    hjj = D - np.einsum("ij,ij->i", P, W)
    for _ in range(SWEEPS):
        largest = 0.0
        for j in range(len(z)):
            if hjj[j] <= 0:
                continue
            old = z[j]
            v = old - (c[j] + D[j] * old - P[j] @ u) / hjj[j]
            new = np.sign(v) * max(abs(v) - l1[j] / hjj[j], 0.0)
            if new != old:
                u += W[j] * (new - old)
                z[j] = new
                largest = max(largest, abs(new - old))
        if largest <= CD_TOL * max(1.0, float(np.max(np.abs(z)))):
            return
