"""MPI's own Allreduce: the default strategy.

Buffer-based (upper-case mpi4py calls, MPI.IN_PLACE), so the hot loop pickles nothing and copies
nothing: the model writes its gradient sum into the buffer that goes on the wire. Compressed
buckets are summed by a user-defined MPI operation on 16-bit words (codecs.py). Uncompressed
host buckets reduce with MPI_Iallreduce while the model computes the rest of the gradient.
"""
import numpy as np
from mpi4py import MPI

from .base import Strategy


class AllreduceStrategy(Strategy):
    name = "allreduce"

    def overlap_step(self, params, buffer, update, compute):
        # Only the collective step overlaps: a subclass that sends its step elsewhere (the
        # parameter servers) keeps its own, and so do compressed or oversized buffers.
        collective = type(self).step is Strategy.step
        small = buffer.size <= int(self.settings.max_message_bytes) // buffer.itemsize
        if (not collective or self.size == 1 or self.codec.compressed or not isinstance(buffer, np.ndarray)
                or not small):
            return super().overlap_step(params, buffer, update, compute)
        self.pipe.overlap(buffer, lambda bucket: self.comm.Iallreduce(MPI.IN_PLACE, bucket, op=MPI.SUM), compute)
        return update(params, buffer)

    def _allreduce_piece(self, buf, codec) -> None:
        self.comm.Allreduce(MPI.IN_PLACE, buf, op=codec.mpi_op)
