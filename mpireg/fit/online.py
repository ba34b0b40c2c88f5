"""Online adaptive passes with model averaging, then an L-BFGS polish (optimizer.kind = "adagrad").

How the terascale linear learners train on sparse data (Vowpal Wabbit's AllReduce, Agarwal et
al. 2014): each rank makes one online pass of per-coordinate adaptive updates over its own
rows (optim/adagrad.py, in C), touching only each row's non-zeros and talking to no one; then
one allreduce averages the ranks' models, each coordinate weighted by its accumulated squared
gradients (a rank that saw a feature often knows it better), and every rank goes on from the
average. `optimizer.epochs` passes; then, with `optimizer.polish = N`, N full-batch L-BFGS
iterations from the averaged model (fullbatch.py) close the remaining gap to the optimum of
the exact objective.

The parameters are float64 during the passes whatever the data (an online pass adds millions
of small steps). Rows are shuffled within each block, by [seed, pass, rank, block].
"""
from __future__ import annotations

import numpy as np

from .. import log
from ..device import to_host
from ..optim import adagrad_pass
from . import fullbatch
from .loop import record_epoch
from .result import evaluate


def fit(parts, run) -> None:
    import scipy.sparse as sp  # here, not at start-up: only adagrad jobs need it (0.25 s)

    cfg, progress, model = parts.cfg, run.progress, parts.model
    opt = cfg.optimizer
    d, fit_intercept = model.n_features, model.fit_intercept
    w = np.zeros(d + 1)  # the intercept last, used or not
    w[:d + fit_intercept] = to_host(parts.params)
    g2 = parts.optimizer.g2
    logistic = model.kind == "logistic"
    log.info(f"adagrad: {opt.epochs} online pass(es), lr {opt.lr}, averaged over {parts.comm.size} "
             f"rank(s) after each" + (f", then {opt.polish} L-BFGS iterations" if opt.polish else ""))
    while progress.epoch < opt.epochs:
        loss, rows = 0.0, 0
        with run.clock("compute"):
            for index, (X, y) in enumerate(parts.train.blocks()):
                X = X if sp.issparse(X) else sp.csr_matrix(X)
                order = np.random.default_rng([cfg.seed, progress.epoch, parts.comm.rank, index]).permutation(X.shape[0])
                loss += adagrad_pass(X, y, order, w, g2, opt.lr, model.l2, logistic, fit_intercept)
                rows += X.shape[0]
        with run.clock("comm"):
            loss, rows = _average(parts, run, w, g2, loss, rows)
        parts.params[...] = parts.xp.asarray(w[:d + fit_intercept].astype(parts.dtype))
        progress.epoch += 1
        progress.step += 1
        progress.samples += int(rows)
        held_out = (lambda: evaluate(parts, run, parts.test)) if parts.test is not None else None
        record_epoch(parts, run, loss / max(rows, 1), held_out)  # progressive: each row before its update
        run.checkpoint()
        if run.stop_requested_everywhere():
            run.stopped_by_signal = True
            return
    if opt.polish:
        fullbatch.fit(parts, run, max_iter=opt.polish)


def _average(parts, run, w, g2, loss: float, rows: int) -> tuple[float, float]:
    """Every rank's model averaged in place, coordinate j weighted by the ranks' g2_j (plainly
    where no rank has any); g2 becomes the ranks' mean. One allreduce. Returns the global
    progressive loss sum and rows."""
    p, n = parts.comm.size, len(w)
    buf = np.concatenate([w * g2, g2, w, [loss, rows]])
    run.allreduce(buf)
    weighted, total, plain = buf[:n], buf[n:2 * n], buf[2 * n:3 * n]
    seen = total > 0
    w[...] = np.where(seen, weighted / np.where(seen, total, 1.0), plain / p)
    g2[...] = total / p
    return float(buf[-2]), float(buf[-1])
