"""Sparse mini-batch SGD through the sharded parameter server (comm.strategy = "sharded").

One step, on every rank:

    the batch's distinct columns -> pull their values from their owners (topology/key_shards.py)
    -> loss and gradient sums of the batch over those columns only (the batch's CSR re-indexed
       to them: the same C kernels as the dense path) -> one small allreduce of
       [loss, rows, votes] -> push the column sums to their owners, who take the step

The same global batches as `minibatch.py`, the same SGD step (L1 and L2 applied lazily by
the owners), so the same model as the dense allreduce to rounding; what a step moves and
computes is its batch's columns, not the dimension. `parts.params` (the whole model) is
assembled from the owners at each epoch's end and before a checkpoint. This procedure owns
its key shards (`parts.topology`); under "sharded-async" the server ranks serve.
"""
from __future__ import annotations


import numpy as np

from .. import log
from ..data import epoch_plan
from .loop import count_steps, finish_epochs, fit_epochs, serve_updates, take_steps
from .topology import EXTRA_SLOTS, LOSS, ROWS
from .topology.key_shards import AsyncKeyShards, KeyShards


def fit(parts, run) -> None:
    cfg, model, comm = parts.cfg, parts.model, parts.comm
    opt = cfg.optimizer
    steps_per_epoch, updates_per_epoch = count_steps(parts)
    keys = KeyLayout(model)
    start = (comm, keys.values(parts.params), cfg.comm.servers, model.l2, model.l1, keys.penalized())
    shards = parts.topology = (KeyShards(*start) if parts.plan.synchronous
                               else AsyncKeyShards(*start, cfg.comm.max_staleness))
    parts.gather_params = lambda: keys.write(parts.params, shards.gather_all())
    log.info(f"optimizer: sgd, lr {opt.lr} ({opt.schedule}), batch {opt.batch_size} per rank, "
             f"{steps_per_epoch} steps/epoch; {keys.n_keys} keys of {keys.width} value(s) over "
             f"{shards.servers} server rank(s), pulled and pushed by column")
    if shards.serves:
        serve_updates(parts, run, shards.serve, updates_per_epoch)
        finish_epochs(parts, run)
    else:
        fit_epochs(parts, run, SparseEpochs(parts, run, shards, keys, steps_per_epoch).train)


class KeyLayout:
    """A model's flat parameters as keys: one per feature (its coefficient row), then the
    intercept (never penalised)."""

    def __init__(self, model):
        self.model = model
        self.d = model.n_features
        self.width = max(model.n_classes, 1) if model.kind == "softmax" else 1
        self.n_keys = self.d + model.fit_intercept

    def values(self, params):
        return np.asarray(params, dtype=np.float64).reshape(self.n_keys, self.width)

    def penalized(self):
        return np.arange(self.n_keys) < self.d

    def write(self, params, full) -> None:
        params[...] = full.reshape(-1).astype(params.dtype)

    def local_model(self, n_columns: int):
        m = self.model
        return type(m)(n_columns, m.n_classes, m.fit_intercept, xp=np)


class SparseEpochs:
    def __init__(self, parts, run, shards, keys, steps_per_epoch: int):
        self.parts, self.run, self.shards, self.keys = parts, run, shards, keys
        self.steps_per_epoch = steps_per_epoch
        self.intercept = np.array([keys.d], dtype=np.int64) if parts.model.fit_intercept else np.zeros(0, np.int64)

    def train(self, epoch: int) -> None:
        parts = self.parts
        plan = epoch_plan(parts.train.block_sizes, parts.cfg.optimizer.batch_size, parts.cfg.seed, epoch,
                          parts.comm.rank)
        synchronous = self.shards.synchronous  # asynchronous: each worker its own steps
        take_steps(parts, self.run, epoch, self.steps_per_epoch,
                   self.steps_per_epoch if synchronous else len(plan),
                   lambda i, lr: self._step(plan, i, lr))
        if synchronous:
            parts.gather_params()  # the epoch's end: evaluation and checkpoints see the whole model

    def _step(self, plan, i: int, lr: float):
        """The reduced [loss, rows, votes] of one step."""
        import scipy.sparse as sp  # here, not at start-up: only sharded jobs need it (0.25 s)

        run = self.run
        with run.clock("read"):
            batch = self._batch(plan, i)
        sent = self.shards.bytes_sent
        with run.clock("step"):
            X, y = batch if batch is not None else (None, None)
            columns = np.unique(X.indices).astype(np.int64) if X is not None else np.zeros(0, np.int64)
            values = self.shards.pull(np.concatenate([columns, self.intercept]))
            tail = np.zeros(EXTRA_SLOTS)
            run.vote(tail)
            grads = np.zeros_like(values)
            if X is not None:
                with run.clock("compute"):
                    local = sp.csr_matrix((X.data, np.searchsorted(columns, X.indices), X.indptr),
                                          shape=(X.shape[0], len(columns)))
                    model = self.keys.local_model(len(columns))
                    params = values.reshape(-1).astype(self.parts.dtype)
                    grad = np.zeros_like(params)
                    tail[LOSS] = model.loss_grad_sum(params, local, model.prepare_targets(y), grad)
                    tail[ROWS] = X.shape[0]
                    grads = grad.reshape(values.shape)
            if self.shards.synchronous:
                self.run.allreduce(tail)
            self.shards.push(grads, tail[ROWS], lr, tail[LOSS])
        self.shards.record(run.clock.last, self.shards.bytes_sent - sent)  # the step without its compute
        return tail

    def _batch(self, plan, i):
        if i >= len(plan):
            return None
        block, rows = plan[i]
        X, y = self.parts.train.block(block, then=plan[i + 1][0] if i + 1 < len(plan) else None)
        return X[rows], y[rows]
