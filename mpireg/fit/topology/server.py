"""Synchronous parameter server on rank 0 (comm.strategy = "ps").

Rank 0 holds the parameters and the optimizer state. Every step each worker sends its gradient
buckets (compressed when asked) to rank 0; rank 0, itself a worker for its own rows, waits for
all of them, sums them in rank order (so the sum does not depend on arrival order), applies the
update, and sends every worker the new parameters with the global loss and row count.

    workers --gradients--> rank 0 --parameters--> workers        (a star: rank 0's link carries
                                                                  2(p-1) buffers per step)

It trains the same model as `allreduce` for the same global batches. Its cost grows with p on
rank 0's link, which is what the allreduce reducers avoid. Sums outside the step (evaluation,
full-batch solvers) go through the fit's reducer, as for every strategy.
"""
from __future__ import annotations

import time

import numpy as np
from mpi4py import MPI

from .step import EXTRA_SLOTS, StepTopology

GRAD_TAG, PARAMS_TAG = 81, 82


class ServerSteps(StepTopology):
    def setup(self, params, rows_per_step: float = 1.0, buffer_dtype=None) -> None:
        super().setup(params, rows_per_step, buffer_dtype)
        n = params.shape[0] + EXTRA_SLOTS
        self.reply = np.empty(n, dtype=params.dtype)  # parameters, then the reduced tail
        if self.rank == 0:
            self.inboxes = [self.pipe.empty_wires(self.buffer_dtype) for _ in range(self.size - 1)]
            self.total = np.empty(n, dtype=self.buffer_dtype)
            self.scratch = np.empty(n, dtype=self.buffer_dtype)

    def step(self, params, buffer, update):
        if self.size == 1:
            self.pipe.reduce(buffer, self.reducer.allreduce)
            return update(params, buffer)
        return self._serve_step(params, buffer, update) if self.rank == 0 else self._work_step(params, buffer)

    def _work_step(self, params, buffer):
        wires = self.pipe.encode(buffer)
        t = time.perf_counter()
        MPI.Request.Waitall([self.comm.Isend(array, dest=0, tag=GRAD_TAG) for array, _ in wires])
        self.comm.Recv(self.reply, source=0, tag=PARAMS_TAG)
        self.pipe.record(1, sum(a.nbytes for a, _ in wires) + self.reply.nbytes, comm_s=time.perf_counter() - t)
        n = params.shape[0]
        params[...] = self.reply[:n]
        return self.reply[n:].astype(np.float64)

    def _serve_step(self, params, buffer, update):
        t = time.perf_counter()
        MPI.Request.Waitall([self.comm.Irecv(array, source=worker, tag=GRAD_TAG)
                             for worker, inbox in enumerate(self.inboxes, 1) for array, _ in inbox])
        comm_s = time.perf_counter() - t
        self.total[...] = buffer
        for inbox in self.inboxes:  # rank order: the sum does not depend on arrival order
            self.pipe.add_decoded(inbox, self.total, self.scratch)
        tail = update(params, self.total)
        n = params.shape[0]
        self.reply[:n] = params
        self.reply[n:] = tail
        t = time.perf_counter()
        MPI.Request.Waitall([self.comm.Isend(self.reply, dest=w, tag=PARAMS_TAG) for w in range(1, self.size)])
        self.pipe.record(1, sum(a.nbytes for a, _ in self.inboxes[0]) + self.reply.nbytes,
                         comm_s=time.perf_counter() - t + comm_s)
        return tail

    def bus_factor(self) -> float:
        """A worker's gradient goes up and the parameters come down: 2 buffers per worker per step."""
        return 2.0 if self.size > 1 else 0.0
