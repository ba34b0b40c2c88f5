"""MPI's own Allreduce: the default strategy.

Buffer-based (upper-case mpi4py calls, MPI.IN_PLACE), so the hot loop pickles nothing and copies
nothing: the model writes its gradient sum into the buffer that goes on the wire.
"""
from mpi4py import MPI

from .base import Strategy


class AllreduceStrategy(Strategy):
    name = "allreduce"

    def allreduce(self, buf) -> None:
        if self.size > 1:
            self.comm.Allreduce(MPI.IN_PLACE, buf, op=MPI.SUM)
