"""A sharded parameter server for sparse models: parameters split by key range over the server
ranks, moved as (key, value) pairs (comm.strategy = "sharded").

A key is a feature (a column of the CSR data); its value is the coefficient row of that feature
(one number, or one per class for softmax); the intercept is one more key, never penalised.
Servers `0..S-1` (comm.servers; 0: every rank) each own one contiguous key range. Each step of a
sparse mini-batch, every rank

    pull   asks the owners for the keys its batch touches, and gets their current values
    push   sends the owners its gradient sums for those keys (Alltoallv, both)

and each owner adds the workers' sums of each key in rank order and updates only those keys.
Traffic and server work are the non-zero columns of the batches, not the dimension.

The penalty makes every coefficient move every step, touched or not: SGD's step with L2 and L1
(the dense optimizers' order: gradient step with l2 * w, then the soft threshold) is, for a
key the batch does not touch, w <- sign(w) max(0, c_t |w| - a_t) with c_t = 1 - lr_t l2 and
a_t = lr_t l1. Such maps compose in closed form, so `LazyPenalty` keeps two running numbers,
P_t = prod c and Q_t = sum a_tau / P_tau, and a (P, Q) snapshot per key; a key catches up on
the steps it missed when it is next read: |w| <- max(0, (P_t / P_s) |w| - P_t (Q_t - Q_s)).
The parameters are then exactly those of the dense update, while a step costs its batch's keys.
"""
from __future__ import annotations

import numpy as np
from mpi4py import MPI

from ..errors import MpiregError
from .allreduce import AllreduceStrategy
from .rows import displacements

FLUSH_BELOW = 1e-150  # P_t this small: bring every key up to date and restart the products


class LazyPenalty:
    """The penalty maps of the steps each key missed, applied when it is next read."""

    def __init__(self, n_keys: int, l2: float, l1: float, penalized):
        self.l2, self.l1 = l2, l1
        self.penalized = np.asarray(penalized, dtype=bool)
        self.P, self.Q = 1.0, 0.0
        self.seen_P = np.ones(n_keys)
        self.seen_Q = np.zeros(n_keys)

    @property
    def active(self) -> bool:
        return bool(self.l2 or self.l1)

    def catch_up(self, values, keys) -> None:
        """values[keys] as of now (rows: keys; columns: a key's values)."""
        if not self.active or not len(keys):
            return
        keys = keys[self.penalized[keys]]
        scale = (self.P / self.seen_P[keys])[:, None]
        shift = (self.P * (self.Q - self.seen_Q[keys]))[:, None]
        v = values[keys]
        values[keys] = np.sign(v) * np.maximum(scale * np.abs(v) - shift, 0.0)
        self.seen_P[keys], self.seen_Q[keys] = self.P, self.Q

    def step(self, values, keys, mean_grad, lr: float) -> None:
        """The step of the keys a batch touched (`mean_grad` rows) and, lazily, of all others."""
        self.catch_up(values, keys)
        c, a = 1.0 - lr * self.l2, lr * self.l1
        v = values[keys]
        pen = self.penalized[keys][:, None]
        v = np.where(pen, c * v, v) - lr * mean_grad
        if self.l1:
            v = np.where(pen, np.sign(v) * np.maximum(np.abs(v) - a, 0.0), v)
        values[keys] = v
        if self.active:
            self.P *= c
            self.Q += a / self.P
            self.seen_P[keys], self.seen_Q[keys] = self.P, self.Q
            if self.P < FLUSH_BELOW:
                self.flush(values)

    def flush(self, values) -> None:
        """Every key up to date; the running products start again."""
        self.catch_up(values, np.arange(len(self.seen_P)))
        self.P, self.Q = 1.0, 0.0
        self.seen_P[:], self.seen_Q[:] = 1.0, 0.0


class KeyShards:
    """This rank's part of the sharded parameters, and the pull/push exchange. Collective calls."""

    def __init__(self, comm, values, servers: int, l2: float, l1: float, penalized):
        """`values`: every key's starting values (keys x width); `penalized`: per key."""
        self.comm = comm
        n_keys, self.width = values.shape
        self.servers = min(servers or comm.size, comm.size)
        self.bounds = np.array([n_keys * s // self.servers for s in range(self.servers + 1)]
                               + [n_keys] * (comm.size - self.servers), dtype=np.int64)
        lo, hi = self.bounds[comm.rank], self.bounds[comm.rank + 1]
        self.lo = lo
        self.store = np.array(values[lo:hi], dtype=np.float64)
        self.penalty = LazyPenalty(hi - lo, l2, l1, np.asarray(penalized)[lo:hi])
        self.bytes_sent = 0

    def _route(self, keys):
        """Counts of sorted `keys` per owner, and what each owner receives from each rank."""
        sent = np.diff(np.searchsorted(keys, self.bounds)).astype(np.int64)
        got = np.empty(self.comm.size, dtype=np.int64)
        self.comm.Alltoall(sent, got)
        return sent, got

    def _exchange(self, send, sent, got, mpi_type, width: int = 1):
        out = np.empty((int(got.sum()),) + send.shape[1:], dtype=send.dtype)
        s, g = sent * width, got * width
        self.comm.Alltoallv([np.ascontiguousarray(send), (s, displacements(s)), mpi_type],
                            [out, (g, displacements(g)), mpi_type])
        self.bytes_sent += send.nbytes
        return out

    def pull(self, keys):
        """The current values of sorted, distinct `keys` (keys x width). Remembers the routing
        for the push of the same keys."""
        sent, got = self._route(keys)
        asked = self._exchange(keys, sent, got, MPI.INT64_T) - self.lo
        self.penalty.catch_up(self.store, asked)
        self._pending = (keys, sent, got, asked)
        return self._exchange(self.store[asked], got, sent, MPI.DOUBLE, self.width)

    def push(self, grad_sums, rows: float, lr: float) -> None:
        """Gradient sums of the keys last pulled; the owners step those keys by lr x the mean."""
        keys, sent, got, asked = self._pending
        sums = self._exchange(np.asarray(grad_sums, dtype=np.float64), sent, got, MPI.DOUBLE, self.width)
        touched, where = np.unique(asked, return_inverse=True)  # rank order: fixed sums
        total = np.zeros((len(touched), self.width))
        for j in range(self.width):
            total[:, j] = np.bincount(where, weights=sums[:, j], minlength=len(touched))
        self.penalty.step(self.store, touched, total / max(rows, 1.0), lr)

    def gather_all(self):
        """Every key's current values on every rank (keys x width)."""
        self.penalty.flush(self.store)
        counts = np.diff(self.bounds).astype(np.int64) * self.width
        full = np.empty((int(self.bounds[-1]), self.width))
        self.comm.Allgatherv(self.store, [full, (counts, displacements(counts)), MPI.DOUBLE])
        return full


class ShardedStrategy(AllreduceStrategy):
    """comm.strategy = "sharded": the sparse procedure (fit/sharded.py) moves the parameters by
    key through `KeyShards`; what is left to the strategy (the step's [loss, rows, votes],
    evaluation sums) is MPI's Allreduce."""

    name = "sharded"

    def step(self, params, buffer, update):
        raise MpiregError("comm.strategy = 'sharded' trains through fit/sharded.py, by key; a dense step "
                          "buffer has no place in it")
