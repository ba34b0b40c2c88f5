"""Mini-batch SGD/Adam over shuffled local batches: the hot loop.

One step, on every rank:

    gather the batch -> gradient sum, loss sum, row count and votes into the step buffer
    -> strategy.overlap_step (reduce; the update runs on the reduced sums) -> end_step

Every rank takes the same number of steps per epoch; a rank out of rows sends zeros. That is
what keeps uneven shards from hanging a rank in a collective (DDP's "uneven inputs"). Under an
asynchronous strategy each worker takes its own steps and the server rank serves (serve.py).
"""
from __future__ import annotations

import time

import numpy as np
from mpi4py import MPI

from .. import log
from ..comm import EXTRA_SLOTS
from ..data import epoch_plan
from ..device import to_host
from ..optim import learning_rate
from .epochs import end_step, finish_epochs, fit_epochs
from .serve import serve
from .steps import LOSS, ROWS


def fit(parts, run) -> None:
    opt, comm = parts.cfg.optimizer, parts.comm
    local_steps = sum(-(-size // opt.batch_size) for size in parts.train.block_sizes)
    steps_per_epoch = comm.allreduce(local_steps, op=MPI.MAX)
    updates_per_epoch = comm.allreduce(local_steps, op=MPI.SUM)
    log.info(f"optimizer: {opt.kind}, lr {opt.lr} ({opt.schedule}), batch {opt.batch_size} "
             f"per rank, {steps_per_epoch} steps/epoch")
    if parts.strategy.serves:
        serve(parts, run, updates_per_epoch)
        finish_epochs(parts, run)
    else:
        fit_epochs(parts, run, StochasticEpochs(parts, run, steps_per_epoch).train)


class StochasticEpochs:
    def __init__(self, parts, run, steps_per_epoch: int):
        self.parts, self.run = parts, run
        self.steps_per_epoch = steps_per_epoch
        self._batch_X = self._batch_y = None  # the step's gathered rows, reused (see _batch)

    def train(self, epoch: int) -> None:
        parts, run = self.parts, self.run
        cfg, model, strategy, progress = parts.cfg, parts.model, parts.strategy, run.progress
        opt, window, timeline = cfg.optimizer, run.meter.window, run.timeline
        n = model.layout.size
        buffer = strategy.step_buffer(n + EXTRA_SLOTS, parts.dtype, parts.xp)
        plan = epoch_plan(parts.train.block_sizes, opt.batch_size, cfg.seed, epoch, parts.comm.rank)
        total_steps = self.steps_per_epoch * opt.epochs
        # Synchronous strategies: every rank takes the same number of steps. Asynchronous: each
        # worker takes its own.
        n_steps = self.steps_per_epoch if strategy.synchronous else len(plan)
        bar = run.epoch_bar(self.steps_per_epoch, epoch, done=progress.epoch_step)

        def update(params, reduced):
            start = time.perf_counter()
            tail = to_host(reduced[n:]).astype(np.float64)
            mean_grad = reduced[:n]
            if tail[ROWS]:
                mean_grad /= tail[ROWS]
            model.add_l2_grad(params, mean_grad)
            parts.optimizer.step(params, mean_grad, lr)
            window["update"] += time.perf_counter() - start
            return tail

        for i in range(progress.epoch_step, n_steps):
            t0 = time.perf_counter()
            batch = self._batch(plan, i)
            t1 = time.perf_counter()
            run.vote(buffer[n:])
            sample_wait = strategy.synchronous and progress.step % cfg.run.log_every == 0
            lr = learning_rate(opt, progress.step, epoch, total_steps)
            marks = {}

            def compute(on_ready, batch=batch, sample_wait=sample_wait, marks=marks):
                self._write_gradient(buffer, batch, on_ready)
                marks["computed"] = time.perf_counter()
                if sample_wait:
                    parts.comm.Barrier()  # sampled: how long this rank waits for the slowest
                marks["waited"] = time.perf_counter()

            with run.waiting("step"):
                tail = strategy.overlap_step(parts.params, buffer, update, compute)
            t4 = time.perf_counter()
            t2, t3 = marks["computed"], marks["waited"]
            if sample_wait:
                window["wait"] += (t3 - t2) * cfg.run.log_every
            window["read"] += t1 - t0
            window["compute"] += t2 - t1
            run.meter.compute(t2 - t0)
            run.meter.comm(t4 - t3)
            timeline.add("read", t0, t1, step=progress.step)
            timeline.add("compute", t1, t2)
            timeline.add("step", t3, t4)
            stop = end_step(parts, run, tail, epoch, lr)
            bar.update(1)
            if stop:
                break
        bar.close()

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
                or self._batch_X.dtype != X.dtype or self._batch_y.dtype != y.dtype:
            self._batch_X = np.empty((max(len(rows), self.parts.cfg.optimizer.batch_size), X.shape[1]), X.dtype)
            self._batch_y = np.empty(self._batch_X.shape[0], y.dtype)
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
            buffer[n + ROWS] = X.shape[0]
        if on_ready is not None:
            on_ready(buffer.size)  # every rank starts every reduction before any other collective
