"""Mini-batch SGD/Adam over shuffled local batches: the hot loop.

One step, on every rank:

    gather the batch -> gradient sum, loss sum, row count and votes into the step buffer
    -> topology.overlap_step (reduce; the update runs on the reduced sums) -> end_step

Every rank takes the same number of steps per epoch; a rank out of rows sends zeros. That is
what keeps uneven shards from hanging a rank in a collective (DDP's "uneven inputs"). Under an
asynchronous server each worker takes its own steps and the server rank serves.
"""
from __future__ import annotations

import numpy as np

from .. import log
from ..data import epoch_plan
from ..device import to_host
from .loop import count_steps, finish_epochs, fit_epochs, serve_updates, take_steps
from .plan import data_partition
from .topology import EXTRA_SLOTS, LOSS, ROWS, make_step_topology


def fit(parts, run) -> None:
    opt = parts.cfg.optimizer
    steps_per_epoch, updates_per_epoch = count_steps(parts)
    log.info(f"optimizer: {opt.kind}, lr {opt.lr} ({opt.schedule}), batch {opt.batch_size} "
             f"per rank, {steps_per_epoch} steps/epoch")
    topology = start_topology(parts, parts.dtype)
    if topology.serves:
        model, optimizer = parts.model, parts.optimizer

        def serve(lr_at, on_update):
            def update_at(params, grad, t):
                model.add_l2_grad(params, grad)
                optimizer.step(params, grad, lr_at(t))

            return topology.serve(parts.params, update_at, on_update)

        serve_updates(parts, run, serve, updates_per_epoch)
        finish_epochs(parts, run)
    else:
        fit_epochs(parts, run, StochasticEpochs(parts, run, steps_per_epoch).train)


def start_topology(parts, buffer_dtype):
    """The plan's step topology, owned by this fit (Parts closes it), set up for its buffers."""
    plan, comm = parts.plan, parts.comm
    parts.topology = topology = make_step_topology(plan.strategy, comm, parts.settings, parts.reducer,
                                                   plan.staged)
    partition = data_partition(plan.strategy, parts.settings, comm.rank, comm.size)
    data_ranks = partition[1] if partition else comm.size - 1
    topology.setup(parts.params, rows_per_step=parts.cfg.optimizer.batch_size * max(data_ranks, 1),
                   buffer_dtype=buffer_dtype)
    return topology


class StochasticEpochs:
    def __init__(self, parts, run, steps_per_epoch: int):
        self.parts, self.run = parts, run
        self.steps_per_epoch = steps_per_epoch
        self._batch_X = self._batch_y = None  # the step's gathered rows, reused (see _batch)

    def train(self, epoch: int) -> None:
        parts, topology = self.parts, self.parts.topology
        opt = parts.cfg.optimizer
        buffer = topology.step_buffer(parts.n_params + EXTRA_SLOTS, parts.dtype, parts.xp)
        plan = epoch_plan(parts.train.block_sizes, opt.batch_size, parts.cfg.seed, epoch, parts.comm.rank)
        # Synchronous topologies: every rank takes the same number of steps. Asynchronous: each
        # worker takes its own.
        n_steps = self.steps_per_epoch if topology.synchronous else len(plan)
        take_steps(parts, self.run, epoch, self.steps_per_epoch, n_steps,
                   lambda i, lr: self._step(buffer, plan, i, lr))

    def _step(self, buffer, plan, i: int, lr: float):
        """One step: this rank's batch into the buffer, reduced, the update; the reduced tail."""
        parts, run = self.parts, self.run
        model, topology, n = parts.model, parts.topology, parts.n_params
        with run.clock("read"):
            batch = self._batch(plan, i)
        run.vote(buffer[n:])
        log_every = parts.cfg.run.log_every
        sample_wait = topology.synchronous and run.progress.step % log_every == 0

        def compute(on_ready):
            with run.clock("compute"):
                self._write_gradient(buffer, batch, on_ready)
            if sample_wait:
                with run.clock("wait", scale=log_every):
                    parts.comm.Barrier()  # sampled: how long this rank waits for the slowest

        def update(params, reduced):
            with run.clock("update"):
                tail = to_host(reduced[n:]).astype(np.float64)
                mean_grad = reduced[:n]
                if tail[ROWS]:
                    mean_grad /= tail[ROWS]
                model.add_l2_grad(params, mean_grad)
                parts.optimizer.step(params, mean_grad, lr)
            return tail

        with run.clock("step"), run.waiting("step"):
            return topology.overlap_step(parts.params, buffer, update, compute)

    def _batch(self, plan, i):
        """(X, y) of step i of this rank's epoch plan; None past its end (a rank short of rows
        still takes part in every reduction, with zeros)."""
        if i >= len(plan):
            return None
        block, rows = plan[i]
        X, y = self.parts.train.block(block, then=plan[i + 1][0] if i + 1 < len(plan) else None)
        xp = self.parts.xp
        if xp is not np or self.parts.schema.sparse:  # (a CSR batch: SciPy gathers its rows)
            rows = xp.asarray(rows)
            return X[rows], y[rows]
        # Gathered into buffers kept from step to step: a fresh megabyte-sized batch costs a
        # page fault per 4 KiB, as much again as the gather itself.
        if self._batch_X is None or self._batch_X.shape[0] < len(rows) \
                or self._batch_X.dtype != X.dtype or self._batch_y.dtype != y.dtype \
                or self._batch_y.shape[1:] != y.shape[1:]:
            self._batch_X = np.empty((max(len(rows), self.parts.cfg.optimizer.batch_size), X.shape[1]), X.dtype)
            self._batch_y = np.empty((self._batch_X.shape[0],) + y.shape[1:], y.dtype)  # a GLM's [y, w, offset]
        k = len(rows)
        # mode="clip": the plan's indices are in range by construction, and the default "raise"
        # gathers into a hidden temporary first (twice the time, measured).
        return (np.take(X, rows, axis=0, out=self._batch_X[:k], mode="clip"),
                np.take(y, rows, axis=0, out=self._batch_y[:k], mode="clip"))

    def _write_gradient(self, buffer, batch, on_ready) -> None:
        """Gradient sum, loss sum and row count of the batch into the step buffer."""
        n = self.parts.n_params
        if batch is None:
            buffer[:n + ROWS + 1] = 0
        else:
            X, y = batch
            buffer[n + LOSS] = self.parts.model.loss_grad_sum(self.parts.params, X, y, buffer[:n], on_ready)
            buffer[n + ROWS] = self.parts.model.weight_sum(y)
        if on_ready is not None:
            on_ready(buffer.size)  # every rank starts every reduction before any other collective
