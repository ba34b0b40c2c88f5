"""Sparse mini-batch SGD through the sharded parameter server (comm.strategy = "sharded").

One step, on every rank:

    the batch's distinct columns -> pull their values from their owners (comm/keyshards.py)
    -> loss and gradient sums of the batch over those columns only (the batch's CSR re-indexed
       to them: the same C kernels as the dense path) -> one small allreduce of
       [loss, rows, votes] -> push the column sums to their owners, who take the step

The same global batches as `minibatch.py`, the same SGD step (L1 and L2 applied lazily by
the owners), so the same model as the dense allreduce to rounding; what a step moves and
computes is its batch's columns, not the dimension. `parts.params` (the whole model) is
assembled from the owners at each epoch's end and before a checkpoint.
"""
from __future__ import annotations

import time

import numpy as np
from mpi4py import MPI

from .. import log
from ..comm import EXTRA_SLOTS
from ..comm.keyshards import AsyncKeyShards, KeyShards
from ..data import epoch_plan
from ..errors import ConfigError
from ..optim import learning_rate
from ..parallel import agree
from .epochs import end_step, finish_epochs, fit_epochs
from .steps import LOSS, ROWS


def fit(parts, run) -> None:
    cfg, model, comm = parts.cfg, parts.model, parts.comm
    opt = cfg.optimizer
    if not parts.schema.sparse:
        raise ConfigError("comm.strategy: 'sharded' exchanges the columns of sparse batches; the "
                          "training data is dense (use 'allreduce', or CSR shards)")
    local_steps = sum(-(-size // opt.batch_size) for size in parts.train.block_sizes)
    steps_per_epoch = comm.allreduce(local_steps, op=MPI.MAX)
    updates_per_epoch = comm.allreduce(local_steps, op=MPI.SUM)
    keys, strategy = KeyLayout(model), parts.strategy
    start = (comm, keys.values(parts.params), cfg.comm.servers, model.l2, model.l1, keys.penalized())
    if strategy.synchronous:
        shards = KeyShards(*start)
    else:
        shards = strategy.shards = AsyncKeyShards(*start, cfg.comm.max_staleness)
        strategy.write = keys.write
    parts.gather_params = lambda: keys.write(parts.params, shards.gather_all())
    log.info(f"optimizer: sgd, lr {opt.lr} ({opt.schedule}), batch {opt.batch_size} per rank, "
             f"{steps_per_epoch} steps/epoch; {keys.n_keys} keys of {keys.width} value(s) over "
             f"{shards.servers} server rank(s), pulled and pushed by column")
    if strategy.serves:
        _serve(parts, run, shards, updates_per_epoch)
        finish_epochs(parts, run)
    else:
        fit_epochs(parts, run, SparseEpochs(parts, run, shards, keys, steps_per_epoch).train)


def _serve(parts, run, shards, updates_per_epoch: int) -> None:
    """A server rank of 'sharded-async': apply pushes as they come, on the fit's schedule."""
    opt, progress = parts.cfg.optimizer, run.progress
    total = updates_per_epoch * opt.epochs

    def lr_at(t):
        return learning_rate(opt, t, t // max(updates_per_epoch, 1), total)

    def on_update(t, loss, rows):
        progress.samples += int(rows)
        if t % parts.cfg.run.log_every == 0:
            run.metrics.write(dict(type="update", update=t, loss=loss / max(rows, 1), time_s=run.elapsed()))

    with run.waiting("serve"):
        run.staleness = stats = shards.serve(lr_at, on_update)
    progress.step, progress.epoch = stats["updates"], opt.epochs
    log.info(f"sharded-async: {stats['updates']} updates per server; clock gap at most "
             f"{stats['max_clock_gap']} (max_staleness {parts.cfg.comm.max_staleness})")


# comm.strategy = "auto" takes the sparse exchange where it moves this many times fewer bytes than
# the dense allreduce: it makes more, smaller messages (benchmarks/bench_sparse_wire.py, 2 ranks:
# 13x fewer bytes still lost 0.9x at 2^18 columns; 48x won 3.3x at 2^20).
SPARSE_MIN_SAVING = 16
def sparse_bytes_per_key(width: int) -> int:
    """The key out (8 bytes), its `width` values back and its gradient sums out (8 each)."""
    return 8 + 16 * width


def sparse_exchange_pays(cfg, comm, schema, model, train, dtype) -> bool:
    """comm.strategy = "auto" on CSR shards with plain SGD: the bytes a step would move both
    ways, measured on each rank's first batch. Collective."""
    opt, c = cfg.optimizer, cfg.comm
    if not (schema.sparse and comm.size > 1 and model.kind in ("linear", "logistic", "softmax")
            and opt.kind == "sgd" and not opt.momentum and not c.deterministic and c.compression == "none"):
        return False

    def first_batch_keys() -> int:
        plan = epoch_plan(train.block_sizes, opt.batch_size, cfg.seed, 0, comm.rank)
        if not plan:
            return 0
        X, _ = train.block(plan[0][0])
        return len(np.unique(X[plan[0][1]].indices)) + model.fit_intercept

    keys = comm.allreduce(agree(comm, first_batch_keys), op=MPI.MAX)
    sparse = keys * sparse_bytes_per_key(KeyLayout(model).width)
    dense = (model.layout.size + EXTRA_SLOTS) * dtype.itemsize * 2 * (comm.size - 1) / comm.size
    chosen = dense > SPARSE_MIN_SAVING * sparse
    log.info(f"comm.strategy = auto: {'sharded' if chosen else 'dense'} exchange; a step's batch touches "
             f"{keys} keys: {sparse:,.0f} bytes by key against {dense:,.0f} for the dense allreduce "
             f"(sparse taken below 1/{SPARSE_MIN_SAVING})")
    return chosen


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
        parts, run, progress = self.parts, self.run, self.run.progress
        opt, window = parts.cfg.optimizer, run.meter.window
        plan = epoch_plan(parts.train.block_sizes, opt.batch_size, parts.cfg.seed, epoch, parts.comm.rank)
        total_steps = self.steps_per_epoch * opt.epochs
        bar = run.epoch_bar(self.steps_per_epoch, epoch, done=progress.epoch_step)
        sent = self.shards.bytes_sent
        synchronous = parts.strategy.synchronous  # asynchronous: each worker its own steps
        for i in range(progress.epoch_step, self.steps_per_epoch if synchronous else len(plan)):
            t0 = time.perf_counter()
            batch = self._batch(plan, i)
            t1 = time.perf_counter()
            lr = learning_rate(opt, progress.step, epoch, total_steps)
            tail, computed = self._step(batch, lr)
            t2 = time.perf_counter()
            window["read"] += t1 - t0
            window["compute"] += computed
            run.meter.compute(computed)
            run.meter.comm(t2 - t1 - computed)
            self._count_traffic(sent, t2 - t1 - computed)
            sent = self.shards.bytes_sent
            stop = end_step(parts, run, tail, epoch, lr)
            bar.update(1)
            if stop:
                break
        bar.close()
        if synchronous:
            parts.gather_params()  # the epoch's end: evaluation and checkpoints see the whole model

    def _step(self, batch, lr: float):
        """(the reduced [loss, rows, votes], this rank's compute seconds)."""
        import scipy.sparse as sp  # here, not at start-up: only sharded jobs need it (0.25 s)

        X, y = batch if batch is not None else (None, None)
        columns = np.unique(X.indices).astype(np.int64) if X is not None else np.zeros(0, np.int64)
        values = self.shards.pull(np.concatenate([columns, self.intercept]))
        start = time.perf_counter()
        tail = np.zeros(EXTRA_SLOTS)
        self.run.vote(tail)
        grads = np.zeros_like(values)
        if X is not None:
            local = sp.csr_matrix((X.data, np.searchsorted(columns, X.indices), X.indptr),
                                  shape=(X.shape[0], len(columns)))
            model = self.keys.local_model(len(columns))
            params = values.reshape(-1).astype(self.parts.dtype)
            grad = np.zeros_like(params)
            tail[LOSS] = model.loss_grad_sum(params, local, model.prepare_targets(y), grad)
            tail[ROWS] = X.shape[0]
            grads = grad.reshape(values.shape)
        computed = time.perf_counter() - start
        if self.parts.strategy.synchronous:
            self.run.allreduce(tail)
        self.shards.push(grads, tail[ROWS], lr, tail[LOSS])
        return tail, computed

    def _batch(self, plan, i):
        if i >= len(plan):
            return None
        block, rows = plan[i]
        X, y = self.parts.train.block(block, then=plan[i + 1][0] if i + 1 < len(plan) else None)
        return X[rows], y[rows]

    def _count_traffic(self, before: int, seconds: float) -> None:
        stats = self.parts.strategy.pipe.stats
        stats["wire_bytes"] += self.shards.bytes_sent - before
        stats["comm_s"] += seconds
        stats["steps"] += 1
