"""The one interface every synchronisation strategy implements; the training loop knows no other.

A step hands the strategy one flat buffer laid out as

    [ gradient sum (n_params) | loss sum | row count | stop votes | checkpoint votes ]

holding this rank's *sums* over its local batch (a rank out of rows sends zeros; in deterministic
mode the buffer holds int64 fixed-point sums, see exact.py). The strategy sums the buffers of
all ranks and hands the sum to `update(params, reduced) -> tail`, which the loop supplies (mean,
penalty, optimizer step) and which returns the reduced tail as floats. The votes let ranks agree
to stop (a signal reached some rank) or to checkpoint (rank 0's clock says it is time) at the
same step, inside the reduction they do anyway: no extra collective.

    setup(params, rows_per_step, buffer_dtype)   once, before the first step
    step(params, buffer, update) -> tail [loss sum, rows, stop votes, checkpoint votes]
    overlap_step(params, buffer, update, compute) -> tail
                                           the same, the buffer written by compute(on_ready);
                                           a strategy that can overlaps its reduction with it
    allreduce(buf, codec=FLOAT)            in-place global sum (evaluation, full-batch solvers)
    broadcast(buf, root=0)
    finish_training(params)                every rank, once, after its last step
    finish()                               release communicators and MPI operations

Collective strategies (allreduce, ring) reduce the buffer in fused buckets (see fusion.py) and
call `update` on every rank; a parameter server calls it on the server only and ships the
parameters back. An asynchronous strategy is not `synchronous`: the loop then
skips epoch-boundary collectives, and the server rank runs `serve` instead of taking steps.
The communicator is passed in; strategies never touch COMM_WORLD.
"""
from __future__ import annotations

import zlib
from abc import ABC, abstractmethod

import numpy as np
from mpi4py import MPI

from ..device import namespace_of, synchronize
from ..errors import MpiregError
from . import packing
from .codecs import FLOAT, make_codec
from .fusion import GradientPipe

EXTRA_SLOTS = 4       # loss sum, row count, stop votes, checkpoint votes
INT_MAX = 2**31 - 1   # MPI counts are C ints


class Strategy(ABC):
    name = "base"
    synchronous = True
    serves = False  # True on a rank that serves instead of stepping

    def __init__(self, comm, settings, packer=None):
        self.comm = comm
        self.rank = comm.rank
        self.size = comm.size
        self.settings = settings
        self.packer = packer or packing.default
        self.codec = make_codec(settings.compression)
        self.pipe = None

    # ------------------------------------------------------------------ set-up
    def setup(self, params, rows_per_step: float = 1.0, buffer_dtype=None) -> None:
        self.buffer_dtype = np.dtype(buffer_dtype or params.dtype)
        self.pipe = GradientPipe(params.shape[0], self.buffer_dtype, self.settings.fusion_bytes, self.codec,
                                 packing.for_array(params, self.packer), rows_per_step, EXTRA_SLOTS,
                                 xp=namespace_of(params))

    def step_buffer(self, size: int, dtype, xp=np):
        """The zeroed buffer a step's gradient is written into; a strategy may place it where
        its reduction reads it without a copy (hierarchical: in shared memory). Collective."""
        return xp.zeros(size, dtype=dtype)

    def data_partition(self) -> tuple[int, int] | None:
        """(index, count) of this rank among the ranks that hold training rows; None for none."""
        return self.rank, self.size

    # ------------------------------------------------------------------ the step
    def step(self, params, buffer, update):
        self.pipe.reduce(buffer, self.allreduce)
        return update(params, buffer)

    def overlap_step(self, params, buffer, update, compute):
        """`compute(on_ready)` writes the buffer; strategies that can reduce buckets while it
        runs pass an on_ready(hi) to be told that buffer[:hi] is final. Here: no overlap."""
        compute(None)
        return self.step(params, buffer, update)

    # ------------------------------------------------------------------ reductions
    def allreduce(self, buf, codec=FLOAT) -> None:
        """In-place global sum, in messages of at most comm.max_message_bytes (and INT_MAX elements)."""
        if self.size == 1 or buf.size == 0:
            return
        synchronize(buf)  # device memory handed to MPI must be written already
        if buf.nbytes <= self.settings.max_message_bytes and buf.size <= INT_MAX:
            self._allreduce_piece(buf, codec)  # the common case, without building a list
            return
        for piece in self.message_pieces(buf):
            self._allreduce_piece(piece, codec)

    @abstractmethod
    def _allreduce_piece(self, buf, codec) -> None:
        """In-place global sum of one piece small enough for one MPI count."""

    def message_pieces(self, buf):
        limit = max(1, min(INT_MAX, int(self.settings.max_message_bytes) // buf.itemsize))
        return [buf[lo:lo + limit] for lo in range(0, buf.size, limit)]

    def allreduce_max(self, buf) -> None:
        """In-place global maximum of a small buffer (deterministic mode agrees on scales)."""
        if self.size > 1:
            self.comm.Allreduce(MPI.IN_PLACE, buf, op=MPI.MAX)

    def broadcast(self, buf, root: int = 0) -> None:
        """Make every rank's buffer equal rank `root`'s (parameters start identical)."""
        if self.size > 1:
            synchronize(buf)
            for piece in self.message_pieces(buf):
                self.comm.Bcast(piece, root=root)

    # ------------------------------------------------------------------ the end
    def finish_training(self, params) -> None:
        """Collective strategies hold identical parameters already."""

    def serve(self, params, update_at, on_update) -> dict:
        raise NotImplementedError(f"{self.name} has no server role")

    def finish(self) -> None:
        self.codec.free()

    def step_stats(self) -> dict:
        """Pack/communicate/unpack seconds and wire bytes since the last call; then reset."""
        if self.pipe is None:
            return {}
        stats = dict(self.pipe.stats)
        self.pipe.reset_stats()
        return stats

    def bus_factor(self) -> float:
        """nccl-tests' busbw = algbw x 2(p-1)/p for an allreduce."""
        return 2.0 * (self.size - 1) / self.size if self.size > 1 else 0.0


def verify_identical(comm, params, step: int) -> None:
    """Checksum allreduce: every rank must still hold the same parameters, bit for bit."""
    digest = zlib.crc32(np.ascontiguousarray(params).view(np.uint8))
    digests = np.array(comm.allgather(digest))
    if np.any(digests != digests[0]):
        differ = np.flatnonzero(digests != digests[0]).tolist()
        raise MpiregError(f"parameters diverged across ranks at step {step}: ranks {differ} "
                          f"differ from rank 0 (checksums {digests.tolist()})")
