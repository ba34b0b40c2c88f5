"""Node-aware allreduce: shared memory within a node, a ring among nodes.

Ranks of a node (COMM_TYPE_SHARED; or groups of `comm.ranks_per_node` ranks, to exercise the
multi-node path on one machine) share one MPI-3 window holding a slot per rank and a result:

    1. each rank copies its buffer into its slot                      (write n)
    2. barrier; rank i of the node sums slice i of every slot, in slot order, into the result
                                                                      (read n, write n/p)
    3. one leader per node reduces the result with the other leaders over the ring (multi-node)
    4. barrier; every other rank copies the result into its buffer    (read n)

Each element is summed once, in one order, so every rank ends with the same bits, and the data
moves through memory about three times, against the many copies of a message-based allreduce
between processes of one node.
"""
from __future__ import annotations

import numpy as np
from mpi4py import MPI

from .base import Strategy
from .ring import RingStrategy


class HierarchicalStrategy(Strategy):
    name = "hierarchical"

    def __init__(self, comm, settings, packer=None):
        super().__init__(comm, settings, packer)
        group = settings.ranks_per_node
        self.node = (comm.Split(self.rank // group, self.rank) if group
                     else comm.Split_type(MPI.COMM_TYPE_SHARED, key=self.rank))
        self.local, self.local_size = self.node.rank, self.node.size
        self.leaders = comm.Split(0 if self.local == 0 else MPI.UNDEFINED, self.rank)
        self.inter = (RingStrategy(self.leaders, settings, packer)
                      if self.leaders != MPI.COMM_NULL and self.leaders.size > 1 else None)
        self.window, self.capacity = None, 0

    def _shared(self, nbytes: int):
        """The node's window: local_size slots and a result, each of `nbytes` (grown as needed)."""
        if nbytes > self.capacity:
            if self.window is not None:
                self.window.Free()
            size = (self.local_size + 1) * nbytes if self.local == 0 else 0
            self.window = MPI.Win.Allocate_shared(size, 1, comm=self.node)
            self.memory, _ = self.window.Shared_query(0)
            self.capacity = nbytes
        return self.memory

    def _allreduce_piece(self, buf, codec) -> None:
        n, nbytes = buf.size, buf.nbytes
        memory = np.frombuffer(self._shared(nbytes), dtype=np.uint8)
        slots = [memory[s * self.capacity:s * self.capacity + nbytes].view(buf.dtype)
                 for s in range(self.local_size + 1)]
        result = slots[-1]
        slots[self.local][...] = buf
        self.node.Barrier()  # every slot written (MPI-3 unified model: visible after the barrier)
        lo, hi = self.local * n // self.local_size, (self.local + 1) * n // self.local_size
        if hi > lo:
            mine = result[lo:hi]
            mine[...] = slots[0][lo:hi]
            for s in range(1, self.local_size):
                codec.add(slots[s][lo:hi], mine)
        self.node.Barrier()
        if self.inter is not None:  # a leader: across nodes, in its own buffer (MPI describes it)
            buf[...] = result
            self.inter.allreduce(buf, codec)
            result[...] = buf
        self.node.Barrier()
        if self.inter is None:
            buf[...] = result
        self.node.Barrier()  # nobody overwrites a slot before everyone has read the result

    def finish(self) -> None:
        if self.window is not None:
            self.window.Free()
            self.window = None
        if self.inter is not None:
            self.inter.finish()
        super().finish()
