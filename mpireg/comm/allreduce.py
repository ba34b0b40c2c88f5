"""MPI's own Allreduce: the default reducer.

Buffer-based (upper-case mpi4py calls, MPI.IN_PLACE), so the hot loop pickles nothing and copies
nothing: the model writes its gradient sum into the buffer that goes on the wire. Compressed
buckets are summed by a user-defined MPI operation on 16-bit words (codecs.py). Host buckets
can reduce with MPI_Iallreduce while the model computes the rest of the gradient.
"""
from mpi4py import MPI

from .reducer import Reducer


class AllreduceReducer(Reducer):
    name = "allreduce"
    nonblocking = True

    def _allreduce_piece(self, buf, codec) -> None:
        self.comm.Allreduce(MPI.IN_PLACE, buf, op=codec.mpi_op)

    def start_allreduce(self, bucket):
        return self.comm.Iallreduce(MPI.IN_PLACE, bucket, op=MPI.SUM)
