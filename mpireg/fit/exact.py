"""Deterministic mode: the same model, bit for bit, on any number of ranks.

Global batches are whole blocks of `comm.block_rows` rows, chosen by (seed, epoch) alone; each
block's partial sum is computed by the rank that owns it and the partials are summed as int64
fixed-point numbers (comm/exact.py), so the reduced gradient does not depend on how blocks fell
to ranks nor on the strategy's reduction order. `BlockSums` is shared with full-batch L-BFGS.
"""
from __future__ import annotations

import time

import numpy as np

from .. import log
from ..comm import EXTRA_SLOTS
from ..comm.exact import agree_exponents, decode, encode_sum
from ..device import to_host
from ..optim import learning_rate
from .epochs import end_step, fit_epochs
from .steps import LOSS, ROWS


def fit(parts, run) -> None:
    fit_epochs(parts, run, ExactEpochs(parts, run).train)


class BlockSums:
    """Partial sums of whole row blocks, and their exact global sum."""

    def __init__(self, parts):
        self.parts = parts
        self.rows = parts.cfg.comm.block_rows
        self.n_blocks = -(-parts.schema.n_rows // self.rows)
        first = parts.train.first_row // self.rows
        self.owned = range(first, first + -(-parts.train.n_rows // self.rows))

    def partials(self, params, blocks) -> np.ndarray:
        """[gradient sum | loss sum | rows] of each given block this rank owns, in float64."""
        model, xp, data = self.parts.model, self.parts.xp, self.parts.train
        n = model.layout.size
        out = np.empty((len(blocks), n + 2))
        scratch = xp.empty(n, dtype=params.dtype)  # float64 under the full-batch solvers
        for i, block in enumerate(blocks):
            lo = block * self.rows - data.first_row
            X, y = data.rows(lo, min(lo + self.rows, data.n_rows))
            # A fresh copy: the block's arithmetic sees the same alignment on any rank.
            out[i, n] = model.loss_grad_sum(params, X.copy(), y.copy(), scratch)
            out[i, :n] = to_host(scratch)
            out[i, n + 1] = X.shape[0]
        return out

    def encode(self, partials, n_terms: int, ints):
        """This rank's block partials into `ints`; returns the groups and agreed exponents."""
        n = self.parts.n_params
        groups = [slice(0, n), slice(n + LOSS, n + LOSS + 1)]
        exponents = agree_exponents(self.parts.strategy, partials, groups, n_terms)
        encode_sum(partials, groups, exponents, n + ROWS, ints)
        return groups, exponents


class ExactEpochs:
    def __init__(self, parts, run):
        self.parts, self.run = parts, run
        self.sums = BlockSums(parts)
        opt = parts.cfg.optimizer
        self.blocks_per_step = max(1, opt.batch_size // self.sums.rows)
        self.steps_per_epoch = -(-self.sums.n_blocks // self.blocks_per_step)
        log.info(f"deterministic: global batch of {self.blocks_per_step} block(s) of {self.sums.rows} rows "
                 f"(optimizer.batch_size is global in this mode), {self.steps_per_epoch} steps/epoch")

    def train(self, epoch: int) -> None:
        parts, run, sums = self.parts, self.run, self.sums
        cfg, model, progress, opt = parts.cfg, parts.model, run.progress, parts.cfg.optimizer
        n = model.layout.size
        order = np.random.default_rng([cfg.seed, epoch]).permutation(sums.n_blocks)
        ints = np.zeros(n + EXTRA_SLOTS, dtype=np.int64)
        decoded = np.empty(n + EXTRA_SLOTS)
        bar = run.epoch_bar(self.steps_per_epoch, epoch, done=progress.epoch_step)
        for i in range(progress.epoch_step, self.steps_per_epoch):
            t0 = time.perf_counter()
            batch = order[i * self.blocks_per_step:(i + 1) * self.blocks_per_step]
            mine = sorted(int(b) for b in batch if sums.owned.start <= b < sums.owned.stop)
            groups, exponents = sums.encode(sums.partials(parts.params, mine), len(batch), ints)
            run.vote(ints[n:])
            lr = learning_rate(opt, progress.step, epoch, self.steps_per_epoch * opt.epochs)

            def update(params, reduced):
                decode(reduced, groups, exponents, decoded)
                tail = reduced[n:].astype(np.float64)
                tail[LOSS] = decoded[n + LOSS]
                grad = parts.xp.asarray((decoded[:n] / tail[ROWS]).astype(parts.dtype))
                model.add_l2_grad(params, grad)
                parts.optimizer.step(params, grad, lr)
                return tail

            t1 = time.perf_counter()
            with run.waiting("step"):
                tail = parts.strategy.step(parts.params, ints, update)
            run.meter.compute(t1 - t0)
            run.meter.comm(time.perf_counter() - t1)
            stop = end_step(parts, run, tail, epoch, lr)
            bar.update(1)
            if stop:
                break
        bar.close()
