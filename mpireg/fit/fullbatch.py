"""Full-batch L-BFGS: every evaluation of the objective is one pass over every rank's rows and
one allreduce, so every rank sees the same loss and gradient and SciPy's deterministic
iteration takes the same path everywhere (optim/lbfgs.py)."""
from __future__ import annotations

import numpy as np

from .. import log
from ..comm.fixed_point import decode
from ..device import to_host
from ..optim import minimize_lbfgs
from .deterministic import BlockSums
from .topology import EXTRA_SLOTS, LOSS, ROWS


def fit(parts, run, max_iter: int | None = None) -> None:
    """From parts.params (a warm start: the online passes' polish, or a resumed checkpoint)."""
    opt, progress = parts.cfg.optimizer, run.progress
    objective = GlobalObjective(parts, run)
    iterations = 0

    def record(intermediate_result):
        nonlocal iterations
        iterations += 1
        run.metrics.write(dict(type="iteration", iteration=iterations, loss=objective.last_loss,
                               time_s=run.elapsed()))
        if run.stop_requested_everywhere():  # every rank stops together
            run.stopped_by_signal = True
            raise StopIteration

    x, info = minimize_lbfgs(objective, to_host(parts.params), max_iter or opt.max_iter, opt.tol,
                             opt.memory(), callback=record)
    parts.params[...] = parts.xp.asarray(x.astype(parts.dtype))
    progress.step += info["iterations"]
    progress.epoch += info["evaluations"]  # a pass over the data each
    progress.samples += info["evaluations"] * parts.schema.n_rows
    if run.stopped_by_signal:
        run.checkpoint()
        return
    log.info(f"lbfgs: {info['iterations']} iterations, {info['evaluations']} passes over the "
             f"data, {'converged' if info['converged'] else 'stopped'} ({info['message']})")


class GlobalObjective:
    """objective(x) -> (value, gradient) over every rank's rows, in float64."""

    def __init__(self, parts, run):
        self.parts, self.run = parts, run
        self.blocks = BlockSums(parts) if parts.cfg.comm.deterministic else None
        self.last_loss = float("nan")

    def __call__(self, x: np.ndarray):
        parts, xp, model = self.parts, self.parts.xp, self.parts.model
        n = model.layout.size
        # The objective at x itself, in double: float32 parameters would round every point the
        # line search tries to float32 and the sums to float32's seven digits, and the search
        # then sees noise (6 evaluations an iteration instead of 1). Float32 rows are read as
        # they are and computed in double (the C kernels' mixed mode).
        params = xp.asarray(x, dtype=np.float64)
        if self.blocks is not None:
            sums = self._exact_sums(params)
        else:
            sums = xp.zeros(n + EXTRA_SLOTS, dtype=np.float64)
            scratch = xp.empty(n, dtype=np.float64)
            with self.run.clock("compute"):
                for X, y in parts.train.blocks():
                    sums[n + LOSS] += model.loss_grad_sum(params, X, y, scratch)
                    sums[:n] += scratch
                    sums[n + ROWS] += model.weight_sum(y)
            self._reduce(sums)
        rows = float(sums[n + ROWS])
        grad = sums[:n] / rows
        model.add_l2_grad(params, grad)
        self.last_loss = float(sums[n + LOSS]) / rows + model.penalty(params)
        return self.last_loss, to_host(grad)

    def _exact_sums(self, params):
        n, blocks = self.parts.n_params, self.blocks
        sums = np.empty(n + EXTRA_SLOTS)
        ints = np.zeros(n + EXTRA_SLOTS, dtype=np.int64)
        with self.run.clock("compute"):
            partials = blocks.partials(params, list(blocks.owned))
        groups, exponents = blocks.encode(partials, blocks.n_blocks, ints)
        self._reduce(ints)
        decode(ints, groups, exponents, sums)
        sums[n + ROWS] = ints[n + ROWS]
        return sums

    def _reduce(self, buf) -> None:
        with self.run.clock("comm"):
            self.run.allreduce(buf)
