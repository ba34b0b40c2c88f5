"""Asynchronous parameter server on rank 0, with bounded staleness (stale-synchronous parallel).

Rank 0 only serves: it holds the parameters and the optimizer state and trains on no rows (the
rows are shared among ranks 1..p-1). Each worker loops on its own rows: compute a gradient with
the parameters it has, send it, receive the current parameters. The server applies each gradient
as it arrives, from any worker, and answers that worker at once, unless the worker is more than
`max_staleness` steps ahead of the slowest worker still running: then its answer waits until the
slowest catches up. Workers never wait for each other otherwise.

Measured and logged: the clock gap (how far the fastest worker is ahead of the slowest, never
above max_staleness) and the version lag of each gradient (updates applied between the
parameters it was computed from and its own application).
"""
from __future__ import annotations

import time

import numpy as np
from mpi4py import MPI

from ..errors import ConfigError
from .allreduce import AllreduceStrategy
from .base import EXTRA_SLOTS

HEAD_TAG, GRAD_TAG, PARAMS_TAG = 91, 92, 93
DONE = -1


class AsyncParameterServerStrategy(AllreduceStrategy):
    name = "ps-async"
    synchronous = False

    def __init__(self, comm, settings, packer=None):
        super().__init__(comm, settings, packer)
        if self.size < 2:
            raise ConfigError("comm.strategy: 'ps-async' needs at least 2 ranks "
                              "(rank 0 serves, the others work)")
        self.serves = self.rank == 0
        self.version = 0  # worker: the server version of the parameters it holds

    def data_partition(self):
        return None if self.rank == 0 else (self.rank - 1, self.size - 1)

    def setup(self, params, rows_per_step: float = 1.0, buffer_dtype=None) -> None:
        super().setup(params, rows_per_step, buffer_dtype)
        n = params.shape[0]
        self.head = np.zeros(2, dtype=np.int64)          # [worker clock or DONE, version used]
        self.reply = np.empty(n + EXTRA_SLOTS, dtype=params.dtype)  # params, server version, ...

    # ------------------------------------------------------------------ worker
    def step(self, params, buffer, update):
        wires = self.pipe.encode(buffer)
        t = time.perf_counter()
        self.head[:] = (1, self.version)
        self.comm.Send(self.head, dest=0, tag=HEAD_TAG)
        MPI.Request.Waitall([self.comm.Isend(a, dest=0, tag=GRAD_TAG) for a, _ in wires])
        self.comm.Recv(self.reply, source=0, tag=PARAMS_TAG)
        self.pipe.stats["comm_s"] += time.perf_counter() - t
        self.pipe.stats["wire_bytes"] += sum(a.nbytes for a, _ in wires) + self.reply.nbytes
        self.pipe.stats["steps"] += 1
        n = params.shape[0]
        params[...] = self.reply[:n]
        self.version = int(self.reply[n])
        return np.asarray(buffer[n:], dtype=np.float64)  # this worker's own batch and votes

    def finish_training(self, params) -> None:
        if not self.serves:
            self.head[:] = (DONE, self.version)
            self.comm.Send(self.head, dest=0, tag=HEAD_TAG)
        self.broadcast(params, root=0)  # the server's final parameters, everywhere

    # ------------------------------------------------------------------ server
    def serve(self, params, update_at, on_update) -> dict:
        """Apply gradients until every worker is done; returns staleness statistics."""
        n = params.shape[0]
        clocks = {w: 0 for w in range(1, self.size)}
        parked: list[int] = []
        inbox = self.pipe.empty_wires(params.dtype)
        total = np.empty(n + EXTRA_SLOTS, dtype=params.dtype)
        scratch = np.empty_like(total)
        stats = {"updates": 0, "max_clock_gap": 0, "max_version_lag": 0, "mean_version_lag": 0.0}
        status = MPI.Status()
        while clocks:
            self.comm.Recv(self.head, source=MPI.ANY_SOURCE, tag=HEAD_TAG, status=status)
            worker = status.Get_source()
            if self.head[0] == DONE:
                del clocks[worker]
            else:
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
                clocks[worker] += 1
                parked.append(worker)
                on_update(stats["updates"], loss, count, lag)
            parked = self._release(params, clocks, parked, stats)
        return stats

    def _release(self, params, clocks, parked, stats) -> list:
        """Answer every parked worker within max_staleness of the slowest running worker."""
        slowest = min(clocks.values()) if clocks else 0
        waiting = []
        for worker in parked:
            if worker in clocks and clocks[worker] - slowest > self.settings.max_staleness:
                waiting.append(worker)
                continue
            stats["max_clock_gap"] = max(stats["max_clock_gap"], clocks.get(worker, slowest) - slowest)
            n = params.shape[0]
            self.reply[:n] = params
            self.reply[n:] = 0
            self.reply[n] = stats["updates"]
            self.comm.Send(self.reply, dest=worker, tag=PARAMS_TAG)
        return waiting
