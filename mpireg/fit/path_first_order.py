"""The first-order path (optimizer.kind = "lbfgs" with optimizer.path): the models of a k-fold
path (fit/path.py) each take proximal quasi-Newton steps (optim/proximal_lbfgs.py: coordinate descent on
an L-BFGS model, L1 exact) instead of Newton's, so that nothing costs d^2: a 2^20-column hashed
CSR path holds per model its coefficients, its gradient and L-BFGS pairs over the working set,
never an information matrix.

A pass (fit/path_gradients.py) evaluates every model's trial point at once: one read of each of
the rank's rows gives every model's loss and gradient sums and its fold's held-out deviance, and
one allreduce carries all of them. The models advance together (`solve_all`), a round of steps a
pass, so a penalty costs the passes of its slowest model's L-BFGS iterations, not k + 1 times them.

Along the grid: warm starts (point and L-BFGS pairs: the pairs hold the loss's curvature only,
so a new penalty reuses them exactly), and under L1 the sequential strong rule's working set,
shared by the models (the union of theirs). The steps' passes run over the working set's columns
only; once every model is at its optimum there, one pass over every column gives the KKT check
on every feature (and the next penalty's strong rule its gradients), and any feature it brings
back widens the set.
"""
from __future__ import annotations

import numpy as np

from ..optim.newton import accept, optimality
from ..optim.proximal_lbfgs import LimitedMemory, proximal_step
from .path_sums import State

KKT_SLACK = 1e-9
STRONG_FLOOR = 0.5
UNSEEN = 1e-14     # a predicted decrease below this (relative to the objective) is lost in its sums
                   # rounding: such a step is judged by the pseudo-gradient instead (Armijo cannot);
UNSEEN_PER_ROOT = 32 * np.finfo(float).eps  # and below this times sqrt(rows): a sum of n losses
                   # carries ~eps sqrt(n) of rounding (at 10M rows one model took 50+ rounds of one
                   # penalty on decreases of 2.7e-12, Armijo judging the sums' rounding)
MIN_STEP = 2.0 ** -30
UNSEEN_MIN_STEP = 2.0 ** -4  # halvings judged by the pseudo-gradient before a model stops
KEEP_AHEAD = 4     # penalties ahead whose likely strong sets are kept with the working set's rows


class Penalty:
    """One point's penalty: l1 and l2, and per coefficient (0 where unpenalized, the intercept)."""

    def __init__(self, l1: float, l2: float, penalized: np.ndarray):
        self.l1, self.penalized = l1, penalized
        self.l1v, self.l2v = l1 * penalized, l2 * penalized


class FirstOrderSolver:
    """`solve_all` of one path (fit/path.py's `_one_path` calls it at each penalty), with each
    model's L-BFGS memory carried from penalty to penalty."""

    def __init__(self, opt, models: int):
        self.memory = {m: LimitedMemory(opt.memory(path=True)) for m in range(models)}

    def __call__(self, evaluator, states: dict, alpha: float, ratio: float, previous: float, penalized,
                 opt, strong: bool, coming=None):
        return solve_all(evaluator, states, self.memory, alpha, ratio, previous, penalized, opt, strong, coming)


def solve_all(evaluator, states: dict, memory: dict, alpha: float, ratio: float, previous: float, penalized,
              opt, strong: bool, coming: float | None = None):
    """Every model to its optimum at alpha by proximal quasi-Newton steps, all advancing
    together (one pass a round); (the full states, the features the KKT check brought back)."""
    at, ahead = _working_set(states, memory, penalized, alpha, ratio, previous, strong, coming)
    _focus(evaluator, memory, at, ahead)
    l1 = alpha * ratio
    local = Penalty(l1, alpha * (1 - ratio), penalized[at])
    entries = {m: {"state": evaluator.restrict(state, whole=True), "step": None} for m, state in states.items()}
    for m, entry in entries.items():
        memory[m].fresh = False  # a new penalty: its first pass sums the diagonal again
        _learn_diagonal(memory[m], entry["state"])
    _estimate_diagonals(evaluator, memory, at)
    final, stopped, readmitted = {}, set(), 0
    for _ in range(opt.max_iter):
        candidates, waiting = {}, []
        for m in sorted(set(entries) - final.keys() - stopped):
            entry = entries[m]
            if entry["step"] is None and not _step(entry, memory[m], local, opt.tol):
                waiting.append(m)  # at its optimum over the working set: the KKT check next
                continue
            candidates[m] = entry["state"].beta + entry["t"] * entry["step"]
        if candidates:
            trials = evaluator.evaluate_working(candidates, not all(memory[m].fresh for m in candidates))
            for m, trial in trials.items():
                _learn_diagonal(memory[m], trial)
            stopped |= _search(trials, entries, memory, local, max(UNSEEN, UNSEEN_PER_ROOT * np.sqrt(evaluator.rows)))
            continue
        if not waiting:
            break
        wholes = _wholes(evaluator, entries, waiting + sorted(stopped - final.keys()))
        outside = {m: _violations(wholes[m], at, l1) for m in waiting}
        final.update({m: wholes[m] for m in wholes if m in stopped or not outside[m].size})
        brought = np.unique(np.concatenate([outside[m] for m in waiting]))
        if brought.size:
            readmitted += int(sum(outside[m].size for m in waiting))
            at = np.union1d(at, brought)
            _focus(evaluator, memory, at)
            _estimate_diagonals(evaluator, memory, at)
            local = Penalty(l1, alpha * (1 - ratio), penalized[at])
            for m in waiting:
                if m not in final:
                    entries[m].update(state=evaluator.restrict(wholes[m], whole=True), step=None)
    rest = sorted(set(entries) - final.keys())
    final.update(_wholes(evaluator, entries, rest))
    return final, readmitted


def _working_set(states: dict, memory: dict, penalized, alpha: float, ratio: float, previous: float,
                 strong: bool, coming: float | None):
    """The coefficients the steps move (every model's): the unpenalized, and under the
    sequential strong rule the features with |g_j| >= l1_ratio (2 alpha - alpha_prev) in some
    model (on a coarse grid, alpha < alpha_prev / 2, that would keep every feature: then those
    within STRONG_FLOOR of the new l1, and the KKT check brings back any that belong); never
    narrower than the last penalty's (the pairs' coordinates, and every non-zero coefficient).
    And the features the rule will likely ask for within KEEP_AHEAD penalties (their entries
    are kept with the working set's, fit/path_gradients.py's narrow)."""
    keep = ~penalized.astype(bool)
    threshold = ratio * max(2 * alpha - previous, STRONG_FLOOR * alpha)
    soon = np.inf if coming is None else threshold * (coming / alpha) ** KEEP_AHEAD
    ahead = np.zeros_like(keep)
    for state in states.values():
        if not strong:
            keep[:] = True
            break
        per_weight = np.abs(state.gradient)  # (in sums: no per-weight copy)
        keep |= per_weight >= threshold * state.weight
        ahead |= per_weight >= soon * state.weight
    at = np.union1d(next(iter(memory.values())).support, np.flatnonzero(keep))
    return at, np.flatnonzero(ahead & ~keep)


def _focus(evaluator, memory: dict, at: np.ndarray, ahead=None) -> None:
    evaluator.narrow(at, ahead)
    for mem in memory.values():
        mem.widen(at)


def _learn_diagonal(mem: LimitedMemory, state: State) -> None:
    """The L-BFGS model's diagonal from a pass that summed the information's (per weight)."""
    if state.curvature is not None:
        mem.diagonal = state.curvature / max(state.weight, 1e-300)
        mem.fresh = True


def _estimate_diagonals(evaluator, memory: dict, at: np.ndarray) -> None:
    """Coordinates new to the working set have no summed curvature until the next pass that sums
    it (only the first pass of a penalty and the first after a widening do: without the diagonal
    a pass scatters half as much, 0.79x of the kernel's time over 100,000 kept columns, and its
    allreduce moves half the bytes): meanwhile a column's is its sum of squares times the ratio
    of the model's known curvatures to their columns' (a hashed column's frequency sets it)."""
    if not any(np.isnan(mem.diagonal).any() for mem in memory.values()):
        return
    squares = evaluator.column_squares()[at]  # (a collective, once: every rank gets here alike)
    for mem in memory.values():
        unknown = np.isnan(mem.diagonal)
        if not unknown.any():
            continue
        known = ~unknown & (squares > 0)
        ratio = mem.diagonal[known].sum() / squares[known].sum() if known.any() else 1.0
        mem.diagonal[unknown] = ratio * squares[unknown]
        mem.fresh = False


def _search(trials: dict, entries: dict, memory: dict, pen: Penalty, unseen_below: float) -> set:
    """The line search on each model's trial state: accept (and remember the pair) or halve the
    step; the models that stop, at their optimum as far as their sums can tell (a predicted
    decrease below `unseen_below` of the objective is judged by the gap)."""
    stopped = set()
    for m, trial in trials.items():
        entry, mem = entries[m], memory[m]
        value = _objective(trial, pen)
        unseen = -entry["decrease"] <= unseen_below * max(1.0, abs(entry["objective"]))
        if unseen:  # below what the objective's sums resolve: judged by the gap instead
            ok = bool(np.isfinite(value) and _gap(trial, pen) < entry["gap"])
        else:
            ok = accept(entry["objective"], value, entry["t"], entry["decrease"])
        if not ok:
            entry["t"] *= 0.5
            if entry["t"] < (UNSEEN_MIN_STEP if unseen else MIN_STEP):
                if unseen or not mem.pairs:
                    stopped.add(m)  # unseen: at the optimum as far as float64 sums can tell
                else:  # the pairs' model misled the step (near-singular): again without them
                    mem.pairs.clear()
                    entry["step"] = None
            continue
        state = entry["state"]
        mem.remember(trial.beta - state.beta, trial.loss_gradient() - state.loss_gradient())
        entry.update(state=trial, step=None)
    return stopped


def _wholes(evaluator, entries: dict, models: list) -> dict:
    """The models' states over every coefficient: the one a working state was restricted from,
    else from one pass over every column at their points."""
    out = {m: entries[m]["state"].whole for m in models if entries[m]["state"].whole is not None}
    needed = [m for m in models if m not in out]
    if needed:
        at = evaluator.working.at
        out.update(evaluator.evaluate({m: evaluator.expand(entries[m]["state"].beta) for m in needed},
                                      {m: at for m in needed}, informed=False))
    return out


def _violations(whole: State, at: np.ndarray, l1: float) -> np.ndarray:
    """The KKT check on the features outside the working set (all at 0, so the L2 term adds
    nothing; all penalized, the unpenalized being in the set): those whose |gradient| passes
    l1, which the strong rule should not have set aside."""
    per_weight = np.abs(whole.gradient)
    per_weight *= 1.0 / max(whole.weight, 1e-300)
    outside = per_weight > l1 + KKT_SLACK
    outside[at] = False
    return np.flatnonzero(outside)


def _step(entry: dict, mem: LimitedMemory, pen: Penalty, tol: float) -> bool:
    """Set the entry's step (over the working set) from its state; False when the model is at
    its optimum there (`pen` is the working set's)."""
    state = entry["state"]
    gap = _gap(state, pen)
    if gap <= tol:
        return False
    g = state.loss_gradient() + pen.l2v * state.beta
    step, decrease = proximal_step(g, state.beta, pen.l1v, pen.l2v, mem, mem.diagonal)
    if not decrease < 0:  # the pairs' model lost its positive curvature to rounding: start it again
        mem.pairs.clear()
        step, decrease = proximal_step(g, state.beta, pen.l1v, pen.l2v, mem, mem.diagonal)
    entry.update(step=step, decrease=decrease, t=1.0, objective=_objective(state, pen), gap=gap)
    return True


def _gap(state: State, pen: Penalty) -> float:
    """optim/newton.py's optimality over the working set: 0 at the optimum."""
    beta = state.beta
    return optimality(state.loss_gradient() + pen.l2v * beta, beta, pen.l1, pen.penalized)


def _objective(state: State, pen: Penalty) -> float:
    """The penalised objective (over the working set: beta is 0 outside it)."""
    beta = state.beta
    return state.loss / max(state.weight, 1e-300) + 0.5 * float(pen.l2v @ (beta * beta)) + float(pen.l1v @ np.abs(beta))
