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

from ..errors import ConfigError, MpiregError
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

    def push(self, grad_sums, rows: float, lr: float, loss: float = 0.0) -> None:
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


# ---------------------------------------------------------------------------- asynchronous
# comm.strategy = "sharded-async": ranks 0..S-1 only serve, the others only work. A worker's
# step: PULL its batch's keys from every server (each server answers at once, unless that
# worker is more than max_staleness pushes ahead of the slowest worker still running: then the
# answer waits), compute, PUSH the sums of the same keys. Every worker talks to every server
# every step (an empty key list where none of its keys is there), so every server counts the
# same updates: the learning-rate schedule and the lazy penalty advance alike everywhere.
HEAD_TAG, KEYS_TAG, VALUES_TAG, GRADS_TAG = 101, 102, 103, 104
PULL, PUSH, DONE = 1, 2, -1


class AsyncKeyShards(KeyShards):
    def __init__(self, comm, values, servers: int, l2: float, l1: float, penalized, max_staleness: int):
        super().__init__(comm, values, servers or 1, l2, l1, penalized)
        if self.servers >= comm.size:
            raise ConfigError(f"comm.servers: 'sharded-async' needs a worker rank besides its "
                              f"{self.servers} server rank(s); run more ranks or set fewer servers")
        self.max_staleness = max_staleness
        self.head = np.zeros(3, dtype=np.int64)
        self.clock = 0

    # ------------------------------------------------------------------ worker
    def pull(self, keys):
        cuts = np.searchsorted(keys, self.bounds[:self.servers + 1])
        self._pending = cuts
        requests = []
        for s in range(self.servers):
            part = np.ascontiguousarray(keys[cuts[s]:cuts[s + 1]])
            self.comm.Send(np.array([PULL, len(part), self.clock], dtype=np.int64), dest=s, tag=HEAD_TAG)
            requests.append(self.comm.Isend(part, dest=s, tag=KEYS_TAG))
            self.bytes_sent += part.nbytes
        values = np.empty((len(keys), self.width))
        for s in range(self.servers):
            self.comm.Recv(values[cuts[s]:cuts[s + 1]], source=s, tag=VALUES_TAG)
        MPI.Request.Waitall(requests)
        return values

    def push(self, grad_sums, rows: float, lr=None, loss: float = 0.0) -> None:
        """(The servers step by their own schedule: `lr` is not sent.)"""
        cuts = self._pending
        for s in range(self.servers):
            part = np.concatenate([np.asarray(grad_sums[cuts[s]:cuts[s + 1]], dtype=np.float64).reshape(-1),
                                   [loss, rows]])
            self.comm.Send(np.array([PUSH, cuts[s + 1] - cuts[s], self.clock], dtype=np.int64), dest=s, tag=HEAD_TAG)
            self.comm.Send(part, dest=s, tag=GRADS_TAG)
            self.bytes_sent += part.nbytes
        self.clock += 1

    def done(self) -> None:
        for s in range(self.servers):
            self.comm.Send(np.array([DONE, 0, self.clock], dtype=np.int64), dest=s, tag=HEAD_TAG)

    # ------------------------------------------------------------------ server
    def serve(self, lr_at, on_update) -> dict:
        """Answer pulls and apply pushes until every worker is done; staleness statistics."""
        comm, status = self.comm, MPI.Status()
        clocks = {w: 0 for w in range(self.servers, comm.size)}
        asked: dict[int, np.ndarray] = {}
        parked: list[int] = []
        stats = {"updates": 0, "max_clock_gap": 0}
        while clocks:
            comm.Recv(self.head, source=MPI.ANY_SOURCE, tag=HEAD_TAG, status=status)
            worker, (kind, n, clock) = status.Get_source(), self.head.tolist()
            if kind == DONE:
                del clocks[worker]
            elif kind == PULL:
                keys = np.empty(n, dtype=np.int64)
                comm.Recv(keys, source=worker, tag=KEYS_TAG)
                asked[worker] = keys - self.lo
                parked.append(worker)
            else:
                part = np.empty(n * self.width + 2)
                comm.Recv(part, source=worker, tag=GRADS_TAG)
                loss, rows = part[-2], part[-1]
                grads = part[:-2].reshape(n, self.width)
                self.penalty.step(self.store, asked[worker], grads / max(rows, 1.0), lr_at(stats["updates"]))
                stats["updates"] += 1
                clocks[worker] = clock + 1
                on_update(stats["updates"], loss, rows)
            parked = self._release(parked, clocks, asked, stats)
        return stats

    def _release(self, parked, clocks, asked, stats) -> list:
        slowest = min(clocks.values()) if clocks else 0
        waiting = []
        for worker in parked:
            gap = clocks.get(worker, slowest) - slowest
            if gap > self.max_staleness:
                waiting.append(worker)
                continue
            stats["max_clock_gap"] = max(stats["max_clock_gap"], gap)
            keys = asked[worker]
            self.penalty.catch_up(self.store, keys)
            self.comm.Send(np.ascontiguousarray(self.store[keys]), dest=worker, tag=VALUES_TAG)
        return waiting


class ShardedAsyncStrategy(ShardedStrategy):
    """comm.strategy = "sharded-async": servers serve, workers step on their own."""

    name = "sharded-async"
    synchronous = False

    def __init__(self, comm, settings, packer=None):
        super().__init__(comm, settings, packer)
        self.n_servers = max(settings.servers, 1)
        self.serves = self.rank < self.n_servers
        self.shards = self.write = None  # set by fit/sharded.py

    def data_partition(self):
        if self.size <= self.n_servers:
            return self.rank, self.size  # (the fit stops with a clear error: no worker)
        return None if self.serves else (self.rank - self.n_servers, self.size - self.n_servers)

    def finish_training(self, params) -> None:
        """Workers say they are done; then every rank gets the servers' final model."""
        if not self.serves:
            self.shards.done()
        self.write(params, self.shards.gather_all())
