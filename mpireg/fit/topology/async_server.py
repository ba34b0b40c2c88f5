"""Asynchronous parameter server on rank 0, with bounded staleness (comm.strategy = "ps-async").

Rank 0 only serves: it holds the parameters and the optimizer state and trains on no rows (the
rows are shared among ranks 1..p-1). Each worker loops on its own rows: compute a gradient with
the parameters it has, send it, receive the current parameters. The server applies each gradient
as it arrives, from any worker, and answers that worker at once unless it is too far ahead
(staleness.py).

Measured and logged: the clock gap and the version lag of each gradient (updates applied between
the parameters it was computed from and its own application).
"""
from __future__ import annotations

import time

import numpy as np
from mpi4py import MPI

from .staleness import DONE, StalenessGate, serve_loop
from .step import EXTRA_SLOTS, StepTopology

HEAD_TAG, GRAD_TAG, PARAMS_TAG = 91, 92, 93


class AsyncServerSteps(StepTopology):
    synchronous = False

    def __init__(self, comm, settings, reducer, packer=None):
        super().__init__(comm, settings, reducer, packer)
        self.serves = self.rank == 0
        self.version = 0  # worker: the server version of the parameters it holds

    def setup(self, params, rows_per_step: float = 1.0, buffer_dtype=None) -> None:
        super().setup(params, rows_per_step, buffer_dtype)
        self.head = np.zeros(2, dtype=np.int64)          # [worker clock or DONE, version used]
        self.reply = np.empty(params.shape[0] + EXTRA_SLOTS, dtype=params.dtype)  # params, version, ...

    # ------------------------------------------------------------------ worker
    def step(self, params, buffer, update):
        wires = self.pipe.encode(buffer)
        t = time.perf_counter()
        self.head[:] = (1, self.version)
        self.comm.Send(self.head, dest=0, tag=HEAD_TAG)
        MPI.Request.Waitall([self.comm.Isend(a, dest=0, tag=GRAD_TAG) for a, _ in wires])
        self.comm.Recv(self.reply, source=0, tag=PARAMS_TAG)
        self.pipe.record(1, sum(a.nbytes for a, _ in wires) + self.reply.nbytes, comm_s=time.perf_counter() - t)
        n = params.shape[0]
        params[...] = self.reply[:n]
        self.version = int(self.reply[n])
        return np.asarray(buffer[n:], dtype=np.float64)  # this worker's own batch and votes

    def finish_training(self, params) -> None:
        if not self.serves:
            self.head[:] = (DONE, self.version)
            self.comm.Send(self.head, dest=0, tag=HEAD_TAG)
        self.reducer.broadcast(params, root=0)  # the server's final parameters, everywhere

    # ------------------------------------------------------------------ server
    def serve(self, params, update_at, on_update) -> dict:
        """Apply gradients until every worker is done; returns staleness statistics."""
        n = params.shape[0]
        gate = StalenessGate(range(1, self.size), self.settings.max_staleness)
        inbox = self.pipe.empty_wires(params.dtype)
        total = np.empty(n + EXTRA_SLOTS, dtype=params.dtype)
        scratch = np.empty_like(total)
        stats = {"updates": 0, "max_clock_gap": 0, "max_version_lag": 0, "mean_version_lag": 0.0}

        def handle(worker):
            MPI.Request.Waitall([self.comm.Irecv(a, source=worker, tag=GRAD_TAG) for a, _ in inbox])
            total[...] = 0
            self.pipe.add_decoded(inbox, total, scratch)
            loss, count = float(total[n]), float(total[n + 1])
            lag = stats["updates"] - int(self.head[1])
            if count:
                total[:n] /= count
            update_at(params, total[:n], stats["updates"])
            stats["updates"] += 1
            stats["max_version_lag"] = max(stats["max_version_lag"], lag)
            stats["mean_version_lag"] += (lag - stats["mean_version_lag"]) / stats["updates"]
            gate.set_clock(worker, gate.clocks[worker] + 1)
            gate.park(worker)
            on_update(stats["updates"], loss, count, version_lag=lag)

        def answer(worker):
            self.reply[:n] = params
            self.reply[n:] = 0
            self.reply[n] = stats["updates"]
            self.comm.Send(self.reply, dest=worker, tag=PARAMS_TAG)

        serve_loop(self.comm, self.head, HEAD_TAG, gate, handle, answer)
        stats["max_clock_gap"] = gate.max_clock_gap
        return stats
