"""Deterministic mode: the same model, bit for bit, on any number of ranks.

Global batches are whole blocks of `comm.block_rows` rows, chosen by (seed, epoch) alone; each
block's partial sum is computed by the rank that owns it and the partials are summed as int64
fixed-point numbers (comm/fixed_point.py), so the reduced gradient does not depend on how blocks fell
to ranks nor on the reducer's order of summation. `BlockSums` is shared with full-batch L-BFGS.
"""
from __future__ import annotations

import numpy as np

from .. import log
from ..comm.fixed_point import agree_exponents, decode, encode_sum
from ..device import to_host
from .loop import fit_epochs, take_steps
from .minibatch import start_topology
from .topology import EXTRA_SLOTS, LOSS, ROWS


def fit(parts, run) -> None:
    start_topology(parts, np.int64)  # the step buffer holds fixed-point sums
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
        exponents = agree_exponents(self.parts.reducer, partials, groups, n_terms)
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
        n = self.parts.n_params
        order = np.random.default_rng([self.parts.cfg.seed, epoch]).permutation(self.sums.n_blocks)
        ints = np.zeros(n + EXTRA_SLOTS, dtype=np.int64)
        decoded = np.empty(n + EXTRA_SLOTS)
        take_steps(self.parts, self.run, epoch, self.steps_per_epoch, self.steps_per_epoch,
                   lambda i, lr: self._step(order, ints, decoded, i, lr))

    def _step(self, order, ints, decoded, i: int, lr: float):
        parts, run, sums = self.parts, self.run, self.sums
        model, n = parts.model, parts.n_params
        batch = order[i * self.blocks_per_step:(i + 1) * self.blocks_per_step]
        mine = sorted(int(b) for b in batch if sums.owned.start <= b < sums.owned.stop)
        with run.clock("compute"):
            partials = sums.partials(parts.params, mine)
        groups, exponents = sums.encode(partials, len(batch), ints)
        run.vote(ints[n:])

        def update(params, reduced):
            with run.clock("update"):
                decode(reduced, groups, exponents, decoded)
                tail = reduced[n:].astype(np.float64)
                tail[LOSS] = decoded[n + LOSS]
                grad = parts.xp.asarray((decoded[:n] / tail[ROWS]).astype(parts.dtype))
                model.add_l2_grad(params, grad)
                parts.optimizer.step(params, grad, lr)
            return tail

        with run.clock("step"), run.waiting("step"):
            return parts.topology.step(parts.params, ints, update)
