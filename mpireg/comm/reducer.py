"""The one interface every reducer implements: global sums of buffers, in the spirit of DDP's
comm hook. A fit's procedures and its step topologies (fit/topology/) call it; none knows which
reducer it talks to, and fit/plan.py alone chooses.

    allreduce(buf, codec=FLOAT)   in-place global sum (in pieces of at most comm.max_message_bytes
                                  and INT_MAX elements; MPI counts are C ints)
    allreduce_max(buf)            in-place global maximum of a small buffer
    broadcast(buf, root=0)        every rank's buffer becomes rank root's
    start_allreduce(bucket)       a non-blocking sum of one host bucket (a request); only where
                                  `nonblocking` (the bucket pipe otherwise sums after the compute)
    step_buffer(size, dtype, xp)  where a step's buffer lives (hierarchical: its shared slot)
    bus_factor()                  nccl-tests' busbw / algbw for this reducer
    finish()                      free communicators and windows

The communicator is passed in; reducers never touch COMM_WORLD. Compression is a codec the
caller hands to `allreduce` (the bucket pipe's 16-bit words, comm/codecs.py), and staging device
buffers through host memory is a wrapper (staged.py): neither is a flag inside a reducer.
"""
from __future__ import annotations

from abc import ABC, abstractmethod

import numpy as np
from mpi4py import MPI

from ..device import synchronize
from .codecs import FLOAT

INT_MAX = 2**31 - 1   # MPI counts are C ints


class Reducer(ABC):
    name = "base"
    nonblocking = False  # start_allreduce works

    def __init__(self, comm, settings):
        self.comm = comm
        self.rank = comm.rank
        self.size = comm.size
        self.settings = settings

    def step_buffer(self, size: int, dtype, xp=np):
        """The zeroed buffer a step's gradient is written into, placed where this reducer reads
        it without a copy. Collective."""
        return xp.zeros(size, dtype=dtype)

    def allreduce(self, buf, codec=FLOAT) -> None:
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
        if self.size > 1:
            self.comm.Allreduce(MPI.IN_PLACE, buf, op=MPI.MAX)

    def broadcast(self, buf, root: int = 0) -> None:
        if self.size > 1:
            synchronize(buf)
            for piece in self.message_pieces(buf):
                self.comm.Bcast(piece, root=root)

    def start_allreduce(self, bucket):
        raise NotImplementedError(f"{self.name} sums after the computation (nonblocking = False)")

    def bus_factor(self) -> float:
        """busbw = algbw x 2(p-1)/p for an allreduce."""
        return 2.0 * (self.size - 1) / self.size if self.size > 1 else 0.0

    def finish(self) -> None:
        """Nothing to free."""
