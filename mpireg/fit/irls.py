"""IRLS / Newton for generalized linear models (optimizer.kind = "irls").

    the null model (the intercept alone, offsets included): its intercept and deviance, from
      passes over the targets
    from it, each iteration:
      one pass: loss, gradient, expected information X~^T W X~ and Pearson sums of every rank's
        rows (models/glm.py), one allreduce
      the Newton step on the penalised quadratic model (optim/newton.py: Cholesky, or coordinate
        descent with L1), the same on every rank
      a backtracking line search on the objective, whose accepted pass is the next iteration's
    stop when the largest minimum-norm subgradient is <= optimizer.tol
    inference at the optimum from the last pass's information (and one more pass for the
      log-likelihood, and the sandwich's middle with model.cov_type = "HC0")

Sums are in float64 whatever the rows' dtype, so every rank takes the same steps. A pass costs
n k^2 / 2 multiply-adds for the information (BLAS syrk); it converges in a handful of passes for
k up to a few thousand.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import linalg, special  # (not scipy.stats: 0.34 s of import for two tail functions)

from .. import log
from ..device import to_host
from ..errors import CollectiveError
from ..models.glm import OFFSET, W, Y, NewtonSums
from ..optim.newton import MIN_STEP, accept, newton_direction, optimality

NULL_TOL = 1e-12    # the null model's intercept: Newton steps until they are this small
ROUNDING = 1e-15    # a predicted decrease this small (relative to the objective) cannot be seen
NULL_ITERATIONS = 50


@dataclass
class Point:
    """The penalised objective, its smooth part's gradient and information at beta."""

    beta: np.ndarray
    objective: float
    gradient: np.ndarray
    information: np.ndarray
    sums: NewtonSums


def fit(parts, run) -> None:
    model, progress = parts.model, run.progress
    penalized = np.asarray(to_host(model.mask(np.float64)))
    null = null_model(parts, run)
    beta = np.asarray(to_host(parts.params), dtype=np.float64).copy()
    if progress.step == 0 and model.fit_intercept:  # a fresh fit starts at the null model
        beta[:] = 0.0
        beta[-1] = null["intercept"]
    point, converged, message = solve(parts, run, evaluate(parts, run, beta, penalized), penalized)
    parts.params[...] = parts.xp.asarray(point.beta.astype(parts.dtype))
    if run.stopped_by_signal:
        run.checkpoint()
        return
    log.info(f"irls: {progress.step} iterations, {progress.epoch} passes over the data, "
             f"{'converged' if converged else 'stopped'} ({message})")
    run.inference = infer(parts, run, point, null, converged)


def solve(parts, run, point: Point, penalized):
    """Newton steps from `point` to the optimum of the model's penalty: (the last point,
    converged, why it stopped). Collective."""
    model, opt, progress = parts.model, parts.cfg.optimizer, run.progress
    while progress.step < opt.max_iter:
        gap = optimality(point.gradient, point.beta, model.l1, penalized)
        if gap <= opt.tol:
            return point, True, f"largest subgradient {gap:.3g} <= optimizer.tol"
        step, decrease = newton_direction(point.gradient, point.information, point.beta, model.l1, penalized)
        if -decrease <= ROUNDING * max(1.0, abs(point.objective)):
            # Below the objective's last digits a line search sees nothing: the full step is
            # taken while it still shrinks the subgradient, and the fit ends when it does not.
            nxt = _rounding_step(parts, run, point, step, gap, penalized)
        else:
            nxt = _line_search(parts, run, point, step, decrease, penalized)
        if nxt is None:
            return point, True, f"no further decrease at rounding level (largest subgradient {gap:.3g})"
        point = nxt
        progress.step += 1
        run.metrics.write(dict(type="iteration", iteration=progress.step, loss=point.objective,
                               optimality=optimality(point.gradient, point.beta, model.l1, penalized),
                               time_s=run.elapsed()))
        if run.stop_requested_everywhere():
            run.stopped_by_signal = True
            return point, False, "stopped by a signal"
    return point, False, f"reached optimizer.max_iter = {opt.max_iter}"


def evaluate(parts, run, beta, penalized) -> Point:
    """One pass and one allreduce: the objective and the Newton sums at beta. Collective."""
    model = parts.model
    sums = NewtonSums(model.layout.size)
    with run.clock("compute"):
        for X, targets in parts.train.blocks():
            model.newton_sums(beta, X, targets, sums)
    with run.clock("comm"):
        run.allreduce(sums.buffer)
    run.progress.epoch += 1
    run.progress.samples += int(sums.values[sums.WEIGHT])
    weight = max(sums.values[sums.WEIGHT], 1e-300)
    l2 = model.l2 * penalized
    objective = (sums.values[sums.LOSS] / weight + 0.5 * float(l2 @ (beta * beta))
                 + model.l1 * float(penalized @ np.abs(beta)))
    gradient = sums.gradient / weight + l2 * beta
    information = sums.information() / weight + np.diag(l2)
    return Point(beta, float(objective), gradient, information, sums)


def _line_search(parts, run, point, step, decrease, penalized):
    """The accepted point along `step` (halving from 1), or None when none decreases."""
    if not decrease < 0:
        return None
    t = 1.0
    while t >= MIN_STEP:
        candidate = evaluate(parts, run, point.beta + t * step, penalized)
        if accept(point.objective, candidate.objective, t, decrease):
            return candidate
        t *= 0.5
    return None


def _rounding_step(parts, run, point, step, gap: float, penalized):
    """The full step where the objective cannot tell it apart, if it halves the subgradient."""
    model = parts.model
    candidate = evaluate(parts, run, point.beta + step, penalized)
    slack = 4 * ROUNDING * max(1.0, abs(point.objective))
    if candidate.objective <= point.objective + slack and \
            optimality(candidate.gradient, candidate.beta, model.l1, penalized) < 0.5 * gap:
        return candidate
    return None


# ------------------------------------------------------------------------------ the null model
def _target_sums(parts, run, fn, size: int) -> np.ndarray:
    """sum over every rank's rows of fn(targets) (a vector of `size`): a pass over the targets."""
    out = np.zeros(size)
    for _, targets in parts.train.blocks():
        out += fn(targets)
    run.allreduce(out)
    return out


def null_model(parts, run) -> dict:
    """The intercept alone (with the offsets): its intercept and deviance. Collective."""
    model = parts.model
    family, link = model.family, model.link
    weight, weighted_y, offsets = _target_sums(
        parts, run, lambda t: np.array([t[:, W].sum(), t[:, W] @ t[:, Y], np.abs(t[:, OFFSET]).max(initial=0.0)]), 3)
    if not weight > 0:  # the same sum on every rank: they all stop here together
        raise CollectiveError("sample weights: the rows of every rank weigh 0 in all; a fit needs "
                              "some weight (dataset w, or sample_weight=)", None, parts.comm.size)
    mean = weighted_y / weight
    if model.fit_intercept:
        intercept = float(link.link(np.clip(mean, 1e-10, 1 - 1e-10) if family.name == "binomial"
                                    else max(mean, 1e-10) if link.name in ("log", "inverse") else mean))
    else:
        intercept = 0.0
    if model.fit_intercept and offsets > 0:  # Newton on the intercept alone
        for _ in range(NULL_ITERATIONS):
            def score(t, b=intercept):
                eta = b + t[:, OFFSET]
                mu = link.inverse(eta)
                dmu, var = link.derivative(eta, mu), family.variance(mu)
                return np.array([t[:, W] @ ((mu - t[:, Y]) * dmu / var), t[:, W] @ (dmu * dmu / var)])

            gradient, information = _target_sums(parts, run, score, 2)
            move = gradient / information
            intercept -= move
            if abs(move) <= NULL_TOL * max(1.0, abs(intercept)):
                break
    deviance = _target_sums(parts, run, lambda t: np.array([t[:, W] @ family.unit_deviance(
        t[:, Y], link.inverse(intercept + t[:, OFFSET]))]), 1)[0]
    return {"intercept": intercept, "deviance": float(deviance), "weight": float(weight)}


# ------------------------------------------------------------------------------ inference
def infer(parts, run, point: Point, null: dict, converged: bool) -> dict:
    """Standard errors, dispersion, deviance, log-likelihood, AIC and the coefficient table at
    the optimum, as R's summary.glm reports them. Collective (one more pass)."""
    model, cfg = parts.model, parts.cfg
    family = model.family
    sums, beta, k = point.sums, point.beta, model.layout.size
    weight = sums.values[sums.WEIGHT]
    df_resid = weight - k
    pearson = float(sums.values[sums.PEARSON])
    dispersion = 1.0 if family.fixed_dispersion else pearson / max(df_resid, 1e-300)
    deviance = 2.0 * sums.values[sums.LOSS]
    # R's logLik.glm and AIC: where the family has a free scale, the likelihood at deviance / Σw
    # (the Gamma's and inverse Gaussian's as R's aic(), the Gaussian's maximum) and the scale
    # counted as one more parameter
    free_scale = not family.fixed_dispersion
    loglike_scale = deviance / max(weight, 1e-300) if free_scale else 1.0
    cov_type = cfg.model.cov_type
    information, loglike, meat = _inference_pass(parts, run, point, loglike_scale, cov_type == "HC0")
    bread = _inverse(information)
    covariance = bread @ meat @ bread if cov_type == "HC0" else dispersion * bread
    order = ([k - 1] if model.fit_intercept else []) + list(range(model.n_features))  # intercept first
    covariance = covariance[np.ix_(order, order)]
    estimates = beta[order]
    errors = np.sqrt(np.maximum(np.diag(covariance), 0.0))
    with np.errstate(divide="ignore", invalid="ignore"):
        statistic = estimates / errors
    use_t = not family.fixed_dispersion and cov_type != "HC0"
    p_values = 2 * (special.stdtr(df_resid, -np.abs(statistic)) if use_t else special.ndtr(-np.abs(statistic)))
    names = (["intercept"] if model.fit_intercept else []) + [f"x{j}" for j in range(model.n_features)]
    return {
        "family": family.describe(), "link": model.link.name, "converged": converged,
        "deviance": float(deviance), "null_deviance": null["deviance"], "dispersion": dispersion,
        "log_likelihood": loglike, "aic": float(-2.0 * loglike + 2.0 * (k + free_scale)), "df_residual": float(df_resid),
        "n_params": k, "cov_type": cov_type, "statistic": "t" if use_t else "z",
        "terms": names, "coef": estimates.tolist(), "std_errors": errors.tolist(),
        "statistics": statistic.tolist(), "p_values": p_values.tolist(), "covariance": covariance.tolist(),
    }


def coef_table_text(inference: dict) -> str:
    """The coefficient table as R's summary.glm prints it."""
    stat = inference["statistic"]
    head = f"{'':>12} {'estimate':>12} {'std error':>12} {stat + ' value':>10} {'p-value':>11}"
    rows = [f"{name:>12} {coef:12.6g} {se:12.6g} {value:10.4g} {p:11.4g}" for name, coef, se, value, p in
            zip(inference["terms"], inference["coef"], inference["std_errors"], inference["statistics"],
                inference["p_values"])]
    tail = (f"{inference['family']} family, {inference['link']} link; dispersion {inference['dispersion']:.6g}; "
            f"deviance {inference['deviance']:.6g} (null {inference['null_deviance']:.6g}) on "
            f"{inference['df_residual']:.0f} residual df; AIC {inference['aic']:.6g}")
    return "\n".join([head, *rows, tail])


def _inverse(matrix):
    try:
        return linalg.cho_solve(linalg.cho_factor(matrix), np.eye(len(matrix)))
    except linalg.LinAlgError:
        return linalg.pinvh(matrix)


def _inference_pass(parts, run, point: Point, loglike_scale: float, sandwich: bool):
    """One pass at the optimum: the expected information (the last Newton pass's, where the link
    is canonical; computed here otherwise), the log-likelihood, and with `sandwich` the scores'
    outer products sum_i u_i^2 x~_i x~_i^T (u: a row's score in eta). Collective."""
    model, beta = parts.model, point.beta
    k = model.layout.size
    if not model.canonical:
        sums = NewtonSums(k)
        with run.clock("compute"):
            for X, targets in parts.train.blocks():
                model.newton_sums(beta, X, targets, sums, expected=True, loglike_scale=loglike_scale)
        with run.clock("comm"):
            run.allreduce(sums.buffer)
        run.progress.epoch += 1
        meat = _sandwich_pass(parts, run, beta) if sandwich else None
        return sums.information(), float(sums.values[sums.LOGLIKE]), meat
    out = np.zeros(1 + (k * k if sandwich else 0))
    meat = out[1:].reshape(k, k) if sandwich else None
    with run.clock("compute"):
        for X, targets in parts.train.blocks():
            for Xc, yc, wc, eta, mu in model.chunks(beta, X, targets):
                out[0] += model.family.loglike(yc, mu, wc, loglike_scale)
                if sandwich:
                    meat += _score_products(model, Xc, yc, wc, eta, mu)
    with run.clock("comm"):
        run.allreduce(out)
    run.progress.epoch += 1
    return point.sums.information(), float(out[0]), meat


def _sandwich_pass(parts, run, beta):
    """sum_i u_i^2 x~_i x~_i^T over every rank's rows. Collective."""
    model = parts.model
    k = model.layout.size
    meat = np.zeros((k, k))
    with run.clock("compute"):
        for X, targets in parts.train.blocks():
            for Xc, yc, wc, eta, mu in model.chunks(beta, X, targets):
                meat += _score_products(model, Xc, yc, wc, eta, mu)
    with run.clock("comm"):
        run.allreduce(meat)
    run.progress.epoch += 1
    return meat


def _score_products(model, Xc, yc, wc, eta, mu):
    """sum over a chunk's rows of u^2 x~ x~^T, u a row's score in eta (the sandwich's middle)."""
    u = wc * (yc - mu) * model.link.derivative(eta, mu) / model.family.variance(mu)
    dense = np.asarray(Xc.todense() if hasattr(Xc, "tocsr") else Xc)
    scored = np.column_stack([dense, np.ones(len(u))])[:, :model.layout.size] * u[:, None]
    return scored.T @ scored
