"""Regularisation paths and k-fold cross-validation of the GLM (optimizer.path, optimizer.cv).

    penalty(alpha) = alpha * (l1_ratio |coef|_1 + (1 - l1_ratio) / 2 |coef|^2)    (glum's, glmnet's)

alpha_max is the smallest penalty that keeps every coefficient at 0 (from the gradient at the
null model; l1_ratio 0 takes glmnet's 1e-3 in its place), and the grid falls geometrically to
min_ratio * alpha_max. Each point starts from the last (warm starts); under L1 the sequential
strong rule (Tibshirani et al. 2012) sets aside the features it predicts stay at 0, and the
KKT conditions, checked on every feature with the pass's full gradient, bring back any it got
wrong.

The models: with k folds, model f trains on the rows outside fold f, and model k on every row
(its path is the answer, and the chosen point's refit); a row's fold is a hash of its global row
index (folds.py). All models advance together: each pass over a rank's rows gathers the rows of
each fold once, every model that trains on them adds its Newton sums over them and the fold's
own model its held-out deviance, and one allreduce carries every model's sums. A penalty costs
the passes of its slowest model's Newton steps, not k + 1 times them. Most of those passes sum
no information (the Gram work, 60 % of a pass): only a penalty's first landing does, and it
covers the coming penalty's strong set too (`_wants_information`, `_coverage`).

The Gaussian family with the identity link needs no pass per penalty at all: one pass sums
each fold's [X 1]^T W [X 1], [X 1]^T W (y - offset) and its weighted squares, a model's are the
total less its fold's, and every point of every path, the held-out deviances included, is
coordinate descent on those (`GramEvaluator`): the whole cross-validated path costs one pass.

At the end: the penalty of least mean held-out deviance (or, select = "1se", the largest whose
mean is within one standard error of it), the full model's coefficients there, polished by the
IRLS solver at that penalty, and its standard errors (fit/irls.py). The path, the CV curve and
the passes it took go to summary.json under "path".
"""
from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np
from scipy import sparse

from .. import log
from ..device import to_host
from ..optim.newton import MIN_STEP, accept, newton_direction, optimality
from . import irls
from .path_first_order import FirstOrderSolver
from .path_gradients import GradientEvaluator
from .path_sums import DataEvaluator, GramEvaluator, State

RIDGE_RATIO = 1e-3  # alpha_max of a ridge path: glmnet's, as if l1_ratio were this
KKT_SLACK = 1e-9    # a set-aside feature re-enters when its |gradient| passes l1 by more than this
COVER_MARGIN = 0.9  # a pass covers the coming penalty's strong set to 0.9 of its threshold
CONTRACTION = 0.1   # a step on an earlier point's information must cut the gap 10x, else re-sum it
INFERENCE_LIMIT = 4096  # parameters up to which a first-order path's answer gets standard errors
PROGRESS_EVERY = 10  # penalties between the path's progress lines
DENSE_COEF_LIMIT = 4096  # parameters up to which the path's coefficients are kept (and written) dense


# ------------------------------------------------------------------------------ the path
@dataclass
class PathResult:
    l1_ratio: float
    alphas: np.ndarray
    coef: object          # (n_alphas, k): the full model's parameters (ndarray, or CSR when wide)
    deviance: np.ndarray  # (n_alphas,): the full model's training deviance
    held: np.ndarray      # (folds, n_alphas, 2): held-out [sum w d, sum w]
    kkt_readmitted: int   # features the strong rule set aside that the KKT check brought back


def fit(parts, run) -> None:
    model, cfg = parts.model, parts.cfg
    opt, path = cfg.optimizer, cfg.optimizer.path
    folds = opt.cv
    first_order = opt.kind == "lbfgs"  # proximal quasi-Newton steps, nothing d x d (fit/path_first_order.py)
    penalized = np.asarray(to_host(model.mask(np.float64)))
    null = irls.null_model(parts, run)
    start = np.zeros(model.layout.size)
    if model.fit_intercept:
        start[-1] = null["intercept"]
    gaussian = model.family.name == "gaussian" and model.link.name == "identity"
    kind = GradientEvaluator if first_order else GramEvaluator if gaussian else DataEvaluator
    evaluator = kind(parts, run, folds, cfg.seed)
    first = evaluator.evaluate({m: start for m in range(folds + 1)})
    results = [_one_path(evaluator, first, ratio, path, opt, penalized, folds,
                         FirstOrderSolver(opt, folds + 1) if first_order else _solve_all)
               for ratio in path.l1_ratio]
    choice = _choose(results, folds, path.select)
    chosen = results[choice["l1_ratio_index"]]
    a = choice["alpha_index"]
    alpha, ratio = float(chosen.alphas[a]), chosen.l1_ratio
    parts.model.l1, parts.model.l2 = alpha * ratio, alpha * (1 - ratio)
    parts.cfg = replace(cfg, model=replace(cfg.model, l1=parts.model.l1, l2=parts.model.l2))
    path_passes = run.progress.epoch
    informed, gradient_only = evaluator.evaluations
    over = getattr(evaluator, "passes", None)  # the first-order path's: over every column, over working sets
    split = f"{over['full']} over every column, {over['working']} over working sets" if over else \
        f"{informed} model sums with the information, {gradient_only} gradient-only"
    log.info(f"path: {len(results)} x {len(chosen.alphas)} penalties, {folds} folds, {path_passes} passes ({split}); "
             f"chosen alpha {alpha:.4g}, l1_ratio {ratio:g}")
    beta = _row(chosen.coef, a)
    if first_order:
        _finish_first_order(parts, run, beta, penalized, null)
    else:
        point, converged, message = irls.solve(parts, run, irls.evaluate(parts, run, beta, penalized), penalized)
        parts.params[...] = parts.xp.asarray(point.beta.astype(parts.dtype))
        run.inference = irls.infer(parts, run, point, null, converged)
    run.path = _describe(results, choice, folds, path_passes, run.progress.epoch - path_passes)
    run.path["model_sums"] = {"with_information": informed, "gradient_only": gradient_only}
    if over:
        run.path["passes_over"] = dict(over)


def _finish_first_order(parts, run, beta, penalized, null) -> None:
    """The first-order path's answer is its full model at the chosen penalty (solved to tol
    there already); standard errors where the information matrix is affordable (one pass)."""
    parts.params[...] = parts.xp.asarray(beta.astype(parts.dtype))
    if parts.model.layout.size > INFERENCE_LIMIT:
        log.info(f"path: no standard errors ({parts.model.layout.size:,} parameters: the information matrix "
                 f"is formed up to {INFERENCE_LIMIT:,})")
        run.inference = None
        return
    run.inference = irls.infer(parts, run, irls.evaluate(parts, run, beta, penalized), null, True)


def _one_path(evaluator, first: dict, ratio: float, path, opt, penalized, folds: int, solve) -> PathResult:
    """One l1_ratio's path; `solve` takes every model to its optimum at a penalty (`_solve_all`'s
    Newton steps, or a FirstOrderSolver's)."""
    full = folds
    gradient = first[full].loss_gradient()
    alpha_max = float(np.max(np.abs(gradient * penalized), initial=0.0)) / max(ratio, RIDGE_RATIO)
    alphas = (np.array(sorted(path.alphas, reverse=True)) if path.alphas else
              alpha_max * np.geomspace(1.0, path.min_ratio, path.n_alphas) if alpha_max > 0 else
              np.full(path.n_alphas, 1e-12))
    states = dict(first)
    coef, deviance = [], np.zeros(len(alphas))
    held = np.zeros((folds, len(alphas), 2))
    previous, readmitted = alphas[0], 0
    for i, alpha in enumerate(alphas):
        states, extra = solve(evaluator, states, alpha, ratio, previous, penalized, opt,
                                   path.strong_rules and ratio > 0, alphas[i + 1] if i + 1 < len(alphas) else None)
        readmitted += extra
        coef.append(states[full].beta.copy())
        deviance[i] = 2 * states[full].loss
        for f in range(folds):
            held[f, i] = states[f].held
        previous = alpha
        if (i + 1) % PROGRESS_EVERY == 0 and i + 1 < len(alphas):
            log.info(f"path: {i + 1}/{len(alphas)} penalties (l1_ratio {ratio:g}), alpha {alpha:.4g}, "
                     f"{evaluator.run.progress.epoch} passes so far")
    return PathResult(ratio, alphas, _stack(coef), deviance, held, readmitted)


def _stack(coef: list):
    """The path's coefficients, (n_alphas, k): dense, or past DENSE_COEF_LIMIT parameters a
    CSR matrix of the non-zero ones (a 2^20-column path of 100 penalties would be 800 MB)."""
    if len(coef[0]) <= DENSE_COEF_LIMIT:
        return np.array(coef)
    return sparse.vstack([sparse.csr_matrix(c) for c in coef], format="csr")


def _solve_all(evaluator, states: dict, alpha: float, ratio: float, previous: float, penalized, opt,
               strong: bool, coming: float | None = None):
    """Every model to its optimum at alpha, all advancing together (one pass per round of
    Newton steps); (the states, the features the KKT check brought back). A model's information
    is summed over its strong set only; a state whose sums do not cover the set it now needs is
    evaluated again at the same point first (`refresh`). Most passes sum no information at all
    (`_wants_information`): a step takes the model's last information, which along a path of
    close penalties is still a good quadratic model; the gradient is always the point's own, so
    the optimum reached is the same."""
    l1, l2 = alpha * ratio, alpha * (1 - ratio)
    models = {}
    for m, state in states.items():
        g = state.loss_gradient()
        keep = ~penalized.astype(bool) | (state.beta != 0)
        if strong:  # the sequential strong rule: |g_j| < l1_ratio (2 alpha - alpha_prev) stays at 0
            keep |= np.abs(g) >= ratio * (2 * alpha - previous)
        else:
            keep[:] = True
        models[m] = {"state": state, "keep": keep, "step": None, "t": 1.0, "refresh": not _covers(state, keep),
                     "gap": None, "inform": False}
    readmitted = 0
    active = set(models)
    for _ in range(opt.max_iter):
        candidates, informed = {}, set()
        for m in sorted(active):
            entry = models[m]
            state, keep = entry["state"], entry["keep"]
            if entry["refresh"]:
                candidates[m] = state.beta
                informed.add(m)
                continue
            if entry["step"] is None:
                objective, g, H = state.objective(l1, l2, penalized)
                gap = optimality(g[keep], state.beta[keep], l1, penalized[keep])
                if gap <= opt.tol:
                    outside = ~keep & (np.abs(g) > l1 + KKT_SLACK)  # the KKT check on the set-aside
                    if not outside.any():
                        active.discard(m)
                        continue
                    readmitted += int(outside.sum())
                    keep |= outside
                    entry["refresh"] = True
                    candidates[m] = state.beta
                    informed.add(m)
                    continue
                step = np.zeros_like(state.beta)
                step[keep], decrease = newton_direction(g[keep], H[np.ix_(keep, keep)], state.beta[keep], l1,
                                                        penalized[keep])
                if -decrease <= irls.ROUNDING * max(1.0, abs(objective)):
                    active.discard(m)  # below the objective's rounding: at the optimum
                    continue
                entry.update(step=step, decrease=decrease, objective=objective, t=1.0,
                             inform=_wants_information(state, gap, entry["gap"]), gap=gap)
            candidates[m] = state.beta + entry["t"] * entry["step"]
            if entry["inform"] or entry["t"] < 1.0:
                informed.add(m)
        if not candidates:
            break
        covered = {m: _coverage(models[m], ratio, alpha, coming) for m in candidates} if strong else None
        for m, trial in evaluator.evaluate(candidates, covered, informed).items():
            entry = models[m]
            if not trial.informed:  # the last information stands in
                trial = replace(trial, information=entry["state"].information, covered=entry["state"].covered)
            if entry["refresh"]:
                entry.update(state=trial, refresh=False, step=None)
                continue
            value, _, _ = trial.objective(l1, l2, penalized)
            if accept(entry["objective"], value, entry["t"], entry["decrease"]):
                entry.update(state=trial, step=None)
            else:
                entry["t"] *= 0.5
                if entry["t"] < MIN_STEP:
                    active.discard(m)
    return {m: entry["state"] for m, entry in models.items()}, readmitted


def _wants_information(state: State, gap: float, last_gap: float | None) -> bool:
    """Whether the pass at the step's landing point sums the information. Yes for a penalty's
    first step (the next one, its correction, takes that information), then no: the landing is
    usually within tolerance, and the next penalty's first step takes the information summed
    one step before with the same result (the gaps along a 30-penalty logistic path fell
    2e-2 -> 4e-4 -> 1e-6 either way). Yes again where a step on older information cut the
    gap by less than CONTRACTION (the information no longer fits)."""
    if last_gap is None:
        return True
    if state.informed:
        return False
    return gap > CONTRACTION * last_gap


def _coverage(entry: dict, ratio: float, alpha: float, coming: float | None) -> np.ndarray:
    """The features whose block of the information a pass sums: the model's strong set, and the
    one the coming penalty's strong rule will likely ask for (from this point's gradient), so
    that its first step finds them covered instead of re-summing at the same point."""
    cover = entry["keep"].copy()
    if coming is not None:
        cover |= np.abs(entry["state"].loss_gradient()) >= ratio * (2 * coming - alpha) * COVER_MARGIN
    return cover


def _covers(state: State, keep) -> bool:
    return state.covered is None or bool(np.all(state.covered[keep]))


def _choose(results: list, folds: int, select: str) -> dict:
    """The (l1_ratio, alpha) of least mean held-out deviance, or the 1se one; the last (smallest)
    penalty of the first path without cross-validation."""
    if not folds:
        return {"l1_ratio_index": 0, "alpha_index": len(results[0].alphas) - 1}
    curves = [_cv_curve(r) for r in results]
    best = min(((i, int(np.argmin(mean))) for i, (mean, _) in enumerate(curves)),
               key=lambda ia: curves[ia[0]][0][ia[1]])
    i, a = best
    if select == "1se":
        mean, se = curves[i]
        within = np.flatnonzero(mean <= mean[a] + se[a])
        a = int(within.min())  # alphas fall along the path: the first within is the largest
    return {"l1_ratio_index": i, "alpha_index": a}


def _cv_curve(result: PathResult):
    """(mean held-out deviance per weight, its standard error over the folds) per alpha."""
    per_fold = result.held[:, :, 0] / np.maximum(result.held[:, :, 1], 1e-300)
    mean = result.held[:, :, 0].sum(axis=0) / np.maximum(result.held[:, :, 1].sum(axis=0), 1e-300)
    se = per_fold.std(axis=0, ddof=1) / np.sqrt(per_fold.shape[0]) if per_fold.shape[0] > 1 else 0 * mean
    return mean, se


def _describe(results: list, choice: dict, folds: int, path_passes: int, refit_passes: int) -> dict:
    chosen = results[choice["l1_ratio_index"]]
    out = {"folds": folds, "alpha": float(chosen.alphas[choice["alpha_index"]]),
           "l1_ratio": chosen.l1_ratio, "passes": path_passes, "refit_passes": refit_passes, "paths": []}
    for r in results:
        entry = {"l1_ratio": r.l1_ratio, "alphas": r.alphas.tolist(), "coef": _coef_record(r.coef),
                 "deviance": r.deviance.tolist(), "kkt_readmitted": r.kkt_readmitted}
        if folds:
            mean, se = _cv_curve(r)
            entry.update(cv_deviance=mean.tolist(), cv_se=se.tolist(),
                         fold_deviance=(r.held[:, :, 0] / np.maximum(r.held[:, :, 1], 1e-300)).tolist())
        out["paths"].append(entry)
    return out


def _row(coef, a: int) -> np.ndarray:
    return np.asarray(coef[a].toarray()).ravel() if sparse.issparse(coef) else coef[a].copy()


def _coef_record(coef):
    """summary.json's form of the path's coefficients: rows of lists, or the CSR arrays."""
    if not sparse.issparse(coef):
        return coef.tolist()
    return {"format": "csr", "shape": list(coef.shape), "indptr": coef.indptr.tolist(),
            "indices": coef.indices.tolist(), "data": coef.data.tolist()}


def coef_path(record) -> object:
    """A path's coefficients from summary.json's record: (n_alphas, k) ndarray or CSR matrix."""
    if isinstance(record, dict):
        return sparse.csr_matrix((record["data"], record["indices"], record["indptr"]), shape=tuple(record["shape"]))
    return np.array(record, dtype=np.float64)
