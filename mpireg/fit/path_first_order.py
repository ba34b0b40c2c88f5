"""The first-order path (optimizer.kind = "lbfgs" with optimizer.path): the models of a k-fold
path (fit/path.py) each take proximal quasi-Newton steps (optim/proximal_lbfgs.py: coordinate descent on
an L-BFGS model, L1 exact) instead of Newton's, so that nothing costs d^2: a 2^20-column hashed
CSR path holds per model its coefficients, its gradient and L-BFGS pairs over its working set,
never an information matrix.

A pass (`GradientEvaluator`) evaluates every model's trial point at once: one read of each of
the rank's rows gives every model's loss and gradient sums and its fold's held-out deviance
(csrc/cpath.c over CSR rows for the canonical families; SciPy's products otherwise, the
reference), and one allreduce carries all of them. The models advance together (`solve_all`),
a round of steps a pass, so a penalty costs the passes of its slowest model's L-BFGS
iterations, not k + 1 times them.

Along the grid: warm starts (point and L-BFGS pairs: the pairs hold the loss's curvature only,
so a new penalty reuses them exactly), and under L1 the sequential strong rule's working set,
with the KKT check on every feature, from the pass's full gradient, before a model stops.
"""
from __future__ import annotations

import numpy as np

from ..models.glm import OFFSET, W, Y
from ..optim.newton import accept, optimality
from ..optim.proximal_lbfgs import LimitedMemory, proximal_step
from .folds import block_folds
from .path_sums import State

try:
    from .. import _cpath
except ImportError:
    _cpath = None

KERNEL_FAMILIES = {("gaussian", "identity"): 0, ("binomial", "logit"): 1, ("poisson", "log"): 2}
KKT_SLACK = 1e-9
STRONG_FLOOR = 0.5
UNSEEN = 1e-14     # a predicted decrease below this (relative to the objective) is lost in its sums
                   # rounding: such a step is judged by the pseudo-gradient instead (Armijo cannot)
MIN_STEP = 2.0 ** -30
UNSEEN_MIN_STEP = 2.0 ** -4  # halvings judged by the pseudo-gradient before a model stops
LANES = 8          # csrc/cpath.c's models per cache line of coefficients


def huge_zeros(n: int) -> np.ndarray:
    """n float64 zeros in memory the kernel asks to back with 2 MiB pages: B and G are read at
    random (a hashed column a CSR entry), and with 4 KiB pages each access also missed the TLB:
    the pass over 100,000 rows of 2^20 hashed columns took 35 ns an entry, 13 with huge pages
    (this host's transparent huge pages are "always", defrag "madvise": NumPy's zeros got none)."""
    try:
        import mmap

        area = mmap.mmap(-1, max(n, 1) * 8, flags=mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS)
        area.madvise(mmap.MADV_HUGEPAGE)
        return np.frombuffer(area, dtype=np.float64, count=n)
    except (AttributeError, OSError, ValueError):  # no madvise here (not Linux): 4 KiB pages
        return np.zeros(n)


class GradientEvaluator:
    """Every requested model's loss, gradient and held-out deviance from one pass and one
    allreduce. Coefficients and gradients are (d + 1, S) float64, feature-major (a CSR entry's
    coefficients in every model are one cache line); S = the models rounded up to 8."""

    def __init__(self, parts, run, folds: int, seed: int):
        self.parts, self.run, self.folds, self.seed = parts, run, folds, seed
        model = parts.model
        self.d, self.k = model.n_features, model.layout.size
        self.models = folds + 1
        self.S = -(-self.models // LANES) * LANES
        lane = (self.d + 1) * self.S
        self.B = huge_zeros(lane).reshape(self.d + 1, self.S)
        self.buffer = huge_zeros(2 * lane + 4 * self.S)  # G, D (the information's diagonal), the (S, 4) sums
        self.G = self.buffer[:lane].reshape(self.d + 1, self.S)
        self.D = self.buffer[lane:2 * lane].reshape(self.d + 1, self.S)
        self.sums = self.buffer[2 * lane:].reshape(self.S, 4)
        pair = (model.family.name, model.link.name)
        self.family = KERNEL_FAMILIES.get(pair) if _cpath is not None else None
        self._blocks = None  # resident rows with their folds, gathered once
        self._written = {}  # per model: the coefficients its lane of B was last given (None: all)
        self.evaluations = [0, 0]  # (with the information, gradient-only), as path_sums' evaluators

    def _row_blocks(self):
        """(X, targets, folds as int8; -1: held out of no model) of this rank's rows."""
        if self._blocks is not None:
            return self._blocks
        blocks = self._read()
        if self.parts.train.resident:
            self._blocks = list(blocks)
            return self._blocks
        return blocks

    def _read(self):
        blocks = (block_folds(self.parts.train, self.folds, self.seed) if self.folds else
                  ((X, t, np.full(X.shape[0], -1)) for X, t in self.parts.train.blocks()))
        for X, targets, folds in blocks:
            indptr = None
            if hasattr(X, "tocsr") and self.family is not None:  # columns checked when the rows were read
                X = X.tocsr()
                indptr = X.indptr.astype(np.int64)  # once: SciPy's is int32 (a copy a pass otherwise)
            yield X, indptr, np.ascontiguousarray(targets, dtype=np.float64), folds.astype(np.int8)

    def evaluate(self, betas: dict, covered=None, informed=None) -> dict:
        """{model: State} at each model's beta (no information: `State.information` is None).
        `covered`: per model, the coefficients that may be non-zero (its working set; the others
        are 0), so that only they are written into the interleaved coefficients."""
        self._write(betas, covered or {})
        self.sums[:] = 0.0  # (G is zero: take_lanes left it so, or it is new)
        self.evaluations[1] += len(betas)
        invalid = 0
        fit = self.k > self.d
        with self.run.clock("compute"):
            for X, indptr, targets, folds in self._row_blocks():
                if indptr is not None:
                    invalid += _cpath.fold_gradients(indptr, X.indices, X.data, targets, folds, self.B, self.G,
                                                     self.D, self.sums, self.family, self.models, fit)
                else:
                    invalid += self._numpy_pass(X, targets, folds)
        if invalid:
            self.sums[:, 0] = np.inf  # a mean outside the family's range: the line search steps back
        with self.run.clock("comm"):
            self.run.allreduce(self.buffer)
        self.run.progress.epoch += 1
        gradients, diagonals = self._lanes(self.G), self._lanes(self.D)  # model-major: [coef..., intercept]
        out = {}
        for m, beta in betas.items():
            loss, weight, held, held_weight = self.sums[m]
            out[m] = State(beta, float(loss), float(weight), gradients[m, :self.k], None, np.array([held, held_weight]),
                           curvature=diagonals[m, :self.k])
        return out

    def _lanes(self, interleaved) -> np.ndarray:
        """(models, d + 1) from the (d + 1, S) lanes, which are left zero for the next pass."""
        out = np.empty((self.models, self.d + 1))
        if _cpath is not None:
            _cpath.take_lanes(interleaved, out, self.models)
        else:
            out[:] = interleaved[:, :self.models].T
            interleaved[:] = 0.0
        return out

    def _write(self, betas: dict, covered: dict) -> None:
        """Each model's coefficients into its lane of B: where `covered` names its working set,
        only there (and 0 where the last write put values outside it)."""
        d = self.d
        for m, beta in betas.items():
            at = covered.get(m)
            written = self._written.get(m)
            if at is None or written is None:
                self.B[:d, m] = beta[:d]
            else:
                self.B[written, m] = 0.0
                self.B[at[at < d], m] = beta[at[at < d]]
            self._written[m] = None if at is None else at[at < d]
            self.B[d, m] = beta[d] if self.k > d else 0.0

    def _numpy_pass(self, X, targets, folds) -> int:
        """The same sums with SciPy's products and the family's own functions (any family and
        link, dense rows; csrc/cpath.c's reference)."""
        model, M = self.parts.model, self.models
        eta = np.asarray(X @ self.B[:self.d, :M]) + targets[:, OFFSET, None]
        if self.k > self.d:
            eta += self.B[self.d, :M]
        mu = model.link.inverse(eta)
        y, w = targets[:, Y, None], targets[:, W, None]
        with np.errstate(all="ignore"):
            deviance = model.family.unit_deviance(y, mu)
            r = w * (mu - y) * model.link.derivative(eta, mu) / model.family.variance(mu)
        invalid = int((~np.isfinite(deviance)).any() or (~model.family.valid_mu(mu)).any())
        held = folds[:, None] == np.arange(M)[None, :]
        wd = w * np.where(np.isfinite(deviance), deviance, np.inf)
        self.sums[:M, 0] += 0.5 * np.where(held, 0.0, wd).sum(axis=0)
        self.sums[:M, 1] += np.where(held, 0.0, w).sum(axis=0)
        self.sums[:M, 2] += np.where(held, wd, 0.0).sum(axis=0)
        self.sums[:M, 3] += np.where(held, w, 0.0).sum(axis=0)
        r = np.where(held | ~np.isfinite(r), 0.0, r)
        self.G[:self.d, :M] += np.asarray(X.T @ r)
        self.G[self.d, :M] += r.sum(axis=0)
        with np.errstate(all="ignore"):
            v = w * model.link.derivative(eta, mu) ** 2 / model.family.variance(mu)
        v = np.where(held | ~np.isfinite(v), 0.0, v)
        X64 = X.astype(np.float64)  # squared in float32 the diagonal would carry its rounding
        squares = X64.multiply(X64) if hasattr(X64, "multiply") else X64 * X64
        self.D[:self.d, :M] += np.asarray(squares.T @ v)
        self.D[self.d, :M] += v.sum(axis=0)
        return invalid


class Penalty:
    """One point's penalty: l1 and l2, and per coefficient (0 where unpenalized, the intercept)."""

    def __init__(self, l1: float, l2: float, penalized: np.ndarray):
        self.l1, self.penalized = l1, penalized
        self.l1v, self.l2v = l1 * penalized, l2 * penalized


class FirstOrderSolver:
    """`solve_all` of one path (fit/path.py's `_one_path` calls it at each penalty), with each
    model's L-BFGS memory carried from penalty to penalty."""

    def __init__(self, opt, models: int):
        self.memory = {m: LimitedMemory(opt.history) for m in range(models)}

    def __call__(self, evaluator, states: dict, alpha: float, ratio: float, previous: float, penalized,
                 opt, strong: bool, coming=None):
        return solve_all(evaluator, states, self.memory, alpha, ratio, previous, penalized, opt, strong)


def solve_all(evaluator, states: dict, memory: dict, alpha: float, ratio: float, previous: float, penalized,
              opt, strong: bool):
    """Every model to its optimum at alpha by proximal quasi-Newton steps, all advancing
    together (one pass a round); (the states, the features the KKT check brought back)."""
    pen = Penalty(alpha * ratio, alpha * (1 - ratio), penalized)
    entries, readmitted = {}, 0
    for m, state in states.items():
        keep = ~penalized.astype(bool) | (state.beta != 0)
        if strong:  # the sequential strong rule: |g_j| < l1_ratio (2 alpha - alpha_prev) stays at 0;
            # on a coarse grid (alpha < alpha_prev / 2) it would keep every feature: then those
            # within STRONG_FLOOR of the new l1, and the KKT check brings back any that belong
            keep |= np.abs(state.loss_gradient()) >= ratio * max(2 * alpha - previous, STRONG_FLOOR * alpha)
        else:
            keep[:] = True
        memory[m].widen(np.union1d(memory[m].support, np.flatnonzero(keep)))  # never narrower: the pairs'
        entries[m] = {"state": state, "step": None}
    active = set(entries)
    for _ in range(opt.max_iter):
        candidates = {}
        for m in sorted(active):
            entry = entries[m]
            if entry["step"] is None:
                found = _step(entry, memory[m], pen, opt.tol)
                if found is None:
                    active.discard(m)
                    continue
                readmitted += found
            candidates[m] = _trial(entry, memory[m])
        if not candidates:
            break
        for m, trial in evaluator.evaluate(candidates, {m: memory[m].support for m in candidates}).items():
            entry, mem = entries[m], memory[m]
            value = _objective(trial, pen, mem.support)
            unseen = -entry["decrease"] <= UNSEEN * max(1.0, abs(entry["objective"]))
            if unseen:  # below what the objective's sums resolve: judged by the gap instead
                ok = bool(np.isfinite(value) and _gap(trial, mem.support, pen) < entry["gap"])
            else:
                ok = accept(entry["objective"], value, entry["t"], entry["decrease"])
            if not ok:
                entry["t"] *= 0.5
                if entry["t"] < (UNSEEN_MIN_STEP if unseen else MIN_STEP):
                    if unseen or not mem.pairs:
                        active.discard(m)  # unseen: at the optimum as far as float64 sums can tell
                    else:  # the pairs' model misled the step (near-singular): again without them
                        mem.pairs.clear()
                        entry["step"] = None
                continue
            at, state = mem.support, entry["state"]
            mem.remember(trial.beta[at] - state.beta[at], trial.loss_gradient()[at] - state.loss_gradient()[at])
            entry.update(state=trial, step=None)
    return {m: entry["state"] for m, entry in entries.items()}, readmitted


def _step(entry: dict, mem: LimitedMemory, pen: Penalty, tol: float):
    """Set the entry's step (over its working set) from its state; None when the model is at
    its optimum (KKT checked outside the working set), else the features the check readmitted."""
    state = entry["state"]
    readmitted = 0
    while True:
        at = mem.support
        gap = _gap(state, at, pen)
        if gap > tol:
            break
        outside = np.abs(state.loss_gradient() + pen.l2v * state.beta) > pen.l1v + KKT_SLACK  # every feature
        outside[at] = False
        if not outside.any():
            return None
        readmitted += int(outside.sum())
        mem.widen(np.union1d(at, np.flatnonzero(outside)))
    g = state.loss_gradient()[at] + pen.l2v[at] * state.beta[at]
    diagonal = state.curvature[at] / max(state.weight, 1e-300)  # the information's, per weight
    step, decrease = proximal_step(g, state.beta[at], pen.l1v[at], pen.l2v[at], mem, diagonal)
    if not decrease < 0:  # the pairs' model lost its positive curvature to rounding: start it again
        mem.pairs.clear()
        step, decrease = proximal_step(g, state.beta[at], pen.l1v[at], pen.l2v[at], mem, diagonal)
    entry.update(step=step, decrease=decrease, t=1.0, objective=_objective(state, pen, at), gap=gap)
    return readmitted


def _trial(entry: dict, mem: LimitedMemory) -> np.ndarray:
    beta = entry["state"].beta.copy()
    beta[mem.support] += entry["t"] * entry["step"]
    return beta


def _gap(state: State, at, pen: Penalty) -> float:
    """optim/newton.py's optimality over the working set: 0 at the optimum."""
    beta = state.beta[at]
    return optimality(state.loss_gradient()[at] + pen.l2v[at] * beta, beta, pen.l1, pen.penalized[at])


def _objective(state: State, pen: Penalty, at) -> float:
    """The penalised objective; beta is 0 outside the working set `at`."""
    beta, l1, l2 = state.beta[at], pen.l1v[at], pen.l2v[at]
    return state.loss / max(state.weight, 1e-300) + 0.5 * float(l2 @ (beta * beta)) + float(l1 @ np.abs(beta))
