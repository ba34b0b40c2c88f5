"""The one interface every synchronisation strategy implements; the training loop knows no other.

A step hands the strategy one flat buffer laid out as

    [ gradient sum (n_params) | loss sum | row count ]

holding this rank's *sums* over its local batch (a rank out of rows sends zeros). The strategy
makes the global sums available and applies the update:

    step(params, buffer, update) -> (global loss sum, global row count)

Collective strategies (allreduce, ring) reduce the buffer in place and call
`update(params, mean_gradient)` on every rank; a parameter server calls it on the server only and
ships parameters back. Full-batch optimizers and evaluation need plain global sums: `allreduce`.
The communicator is passed in; strategies never touch COMM_WORLD themselves.
"""
from __future__ import annotations

import zlib
from abc import ABC, abstractmethod

import numpy as np

from ..errors import MpiregError

EXTRA_SLOTS = 2  # loss sum, row count


class Strategy(ABC):
    name = "base"

    def __init__(self, comm):
        self.comm = comm
        self.rank = comm.rank
        self.size = comm.size

    @abstractmethod
    def allreduce(self, buf) -> None:
        """In-place global sum of a contiguous buffer."""

    def step(self, params, buffer, update) -> tuple[float, float]:
        self.allreduce(buffer)
        n_params = params.shape[0]
        loss_sum, count = float(buffer[n_params]), float(buffer[n_params + 1])
        grad = buffer[:n_params]
        grad /= count
        update(params, grad)
        return loss_sum, count

    def broadcast(self, buf, root: int = 0) -> None:
        """Make every rank's buffer equal rank `root`'s (parameters start identical)."""
        self.comm.Bcast(buf, root=root)

    def finish(self) -> None:
        """Release what setup took; every rank calls it once at the end of training."""


def verify_identical(comm, params, step: int) -> None:
    """Checksum allreduce: every rank must still hold the same parameters, bit for bit."""
    digest = zlib.crc32(np.ascontiguousarray(params).view(np.uint8))
    digests = np.array(comm.allgather(digest))
    if np.any(digests != digests[0]):
        differ = np.flatnonzero(digests != digests[0]).tolist()
        raise MpiregError(f"parameters diverged across ranks at step {step}: ranks {differ} "
                          f"differ from rank 0 (checksums {digests.tolist()})")
