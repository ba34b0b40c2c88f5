"""A sharded parameter server for sparse models: parameters split by key range over the server
ranks, moved as (key, value) pairs (comm.strategy = "sharded" and "sharded-async"; the sparse
procedure, fit/sharded.py, owns them).

A key is a feature (a column of the CSR data); its value is the coefficient row of that feature
(one number, or one per class for softmax); the intercept is one more key, never penalised.
Servers `0..S-1` (comm.servers; 0: every rank) each own one contiguous key range. Each step of a
sparse mini-batch, every rank

    pull   asks the owners for the keys its batch touches, and gets their current values
    push   sends the owners its gradient sums for those keys (Alltoallv, both)

and each owner adds the workers' sums of each key in rank order and updates only those keys,
the penalty applied lazily (optim/lazy_penalty.py). Traffic and server work are the non-zero
columns of the batches, not the dimension.
"""
from __future__ import annotations

import numpy as np
from mpi4py import MPI

from ...optim.lazy_penalty import LazyPenalty
from .factor_rows import displacements
from .staleness import DONE, StalenessGate, serve_loop


class KeyShards:
    """This rank's part of the sharded parameters, and the pull/push exchange. Collective calls."""

    synchronous = True
    serves = False

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
        self.stats = {"comm_s": 0.0, "wire_bytes": 0, "steps": 0}

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

    def record(self, seconds: float, wire_bytes: int) -> None:
        """A step's communication: its seconds and the bytes it sent."""
        self.stats["comm_s"] += seconds
        self.stats["wire_bytes"] += wire_bytes
        self.stats["steps"] += 1

    def step_stats(self) -> dict:
        stats, self.stats = self.stats, {"comm_s": 0.0, "wire_bytes": 0, "steps": 0}
        return stats

    def bus_factor(self) -> float:
        """As an allreduce's: each key's sums go out and its values come back."""
        p = self.comm.size
        return 2.0 * (p - 1) / p if p > 1 else 0.0

    def finish_training(self, params) -> None:
        """Every rank gets the whole model (the procedure writes it into params)."""

    def finish(self) -> None:
        """Nothing to free: the exchanges run on the fit's communicator."""


# ---------------------------------------------------------------------------- asynchronous
# comm.strategy = "sharded-async": ranks 0..S-1 only serve, the others only work. A worker's
# step: PULL its batch's keys from every server (each server answers at once, unless that
# worker is more than max_staleness pushes ahead of the slowest worker still running: then the
# answer waits), compute, PUSH the sums of the same keys. Every worker talks to every server
# every step (an empty key list where none of its keys is there), so every server counts the
# same updates: the learning-rate schedule and the lazy penalty advance alike everywhere.
HEAD_TAG, KEYS_TAG, VALUES_TAG, GRADS_TAG = 101, 102, 103, 104
PULL, PUSH = 1, 2


class AsyncKeyShards(KeyShards):
    synchronous = False

    def __init__(self, comm, values, servers: int, l2: float, l1: float, penalized, max_staleness: int):
        super().__init__(comm, values, servers or 1, l2, l1, penalized)
        self.serves = comm.rank < self.servers
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
        comm = self.comm
        gate = StalenessGate(range(self.servers, comm.size), self.max_staleness)
        asked: dict[int, np.ndarray] = {}
        stats = {"updates": 0, "max_clock_gap": 0}

        def handle(worker):
            kind, n, clock = self.head.tolist()
            if kind == PULL:
                keys = np.empty(n, dtype=np.int64)
                comm.Recv(keys, source=worker, tag=KEYS_TAG)
                asked[worker] = keys - self.lo
                gate.park(worker)
                return
            part = np.empty(n * self.width + 2)
            comm.Recv(part, source=worker, tag=GRADS_TAG)
            loss, rows = part[-2], part[-1]
            grads = part[:-2].reshape(n, self.width)
            self.penalty.step(self.store, asked[worker], grads / max(rows, 1.0), lr_at(stats["updates"]))
            stats["updates"] += 1
            gate.set_clock(worker, clock + 1)
            on_update(stats["updates"], loss, rows)

        def answer(worker):
            keys = asked[worker]
            self.penalty.catch_up(self.store, keys)
            comm.Send(np.ascontiguousarray(self.store[keys]), dest=worker, tag=VALUES_TAG)

        serve_loop(comm, self.head, HEAD_TAG, gate, handle, answer)
        stats["max_clock_gap"] = gate.max_clock_gap
        return stats

    def finish_training(self, params) -> None:
        """Workers say they are done (the servers then leave their loop)."""
        if not self.serves:
            self.done()
