"""MPI's own Allreduce: the default strategy.

Buffer-based (upper-case mpi4py calls, MPI.IN_PLACE), so the hot loop pickles nothing and copies
nothing: the model writes its gradient sum into the buffer that goes on the wire. Compressed
buckets are summed by a user-defined MPI operation on 16-bit words (codecs.py).
"""
from mpi4py import MPI

from .base import Strategy


class AllreduceStrategy(Strategy):
    name = "allreduce"

    def _allreduce_piece(self, buf, codec) -> None:
        self.comm.Allreduce(MPI.IN_PLACE, buf, op=codec.mpi_op)
