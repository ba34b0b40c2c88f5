"""Node-aware allreduce: shared memory within a node, a ring among nodes.

Ranks of a node (COMM_TYPE_SHARED; or groups of `comm.ranks_per_node` ranks, to exercise the
multi-node path on one machine) share MPI-3 windows of one slot per rank. A reduction:

    1. barrier: every slot holds its rank's buffer
    2. rank i of the node sums slice i of every slot (its own first, then in slot order) and
       writes the sum into slice i of every slot, a cache-sized piece at a time
                                                                (read n, write n per rank)
    3. barrier; multi-node: the node leader reduces its slot with the other leaders over the
       ring, and the other ranks of the node copy the leader's slot (then a last barrier)

Every element is summed by one rank in one order, so every rank ends with the same bits. The
step buffer lives in the rank's slot (`step_buffer`): the model writes its gradient straight into
shared memory and `update` reads the sum from it, so a step on one node moves each byte through
memory about twice, where a message-based allreduce copies it through MPI's buffers several
times. Other buffers (evaluation sums, L-BFGS) are copied into a scratch window and back.
"""
from __future__ import annotations

import numpy as np
from mpi4py import MPI

from .reducer import Reducer
from .ring import RingReducer

CHUNK_BYTES = 256 << 10  # a piece of a slice that stays in L2 while it is summed and copied out


class SharedSlots:
    """An MPI-3 shared window on one node: `node.size` slots of `nbytes` each."""

    def __init__(self, node, nbytes: int):
        self.nbytes, self.count = nbytes, node.size
        self.window = MPI.Win.Allocate_shared(self.count * nbytes if node.rank == 0 else 0, 1, comm=node)
        memory, _ = self.window.Shared_query(0)
        self.memory = np.frombuffer(memory, dtype=np.uint8)

    def slot(self, index: int, dtype, offset: int = 0, nbytes: int | None = None):
        """Bytes [offset, offset + nbytes) of slot `index`, as an array of `dtype`."""
        start = index * self.nbytes + offset
        return self.memory[start:start + (self.nbytes - offset if nbytes is None else nbytes)].view(dtype)

    def offset_of(self, buf, index: int):
        """Byte offset of `buf` inside slot `index`, or None when it lies elsewhere."""
        if not isinstance(buf, np.ndarray) or not buf.flags.c_contiguous:
            return None
        start = buf.__array_interface__["data"][0] - (self.memory.__array_interface__["data"][0]
                                                      + index * self.nbytes)
        return start if 0 <= start and start + buf.nbytes <= self.nbytes else None

    def free(self) -> None:
        self.window.Free()


class HierarchicalReducer(Reducer):
    name = "hierarchical"

    def __init__(self, comm, settings):
        super().__init__(comm, settings)
        group = settings.ranks_per_node
        self.node = (comm.Split(self.rank // group, self.rank) if group
                     else comm.Split_type(MPI.COMM_TYPE_SHARED, key=self.rank))
        self.local, self.local_size = self.node.rank, self.node.size
        self.leaders = comm.Split(0 if self.local == 0 else MPI.UNDEFINED, self.rank)
        self.inter = (RingReducer(self.leaders, settings)
                      if self.leaders != MPI.COMM_NULL and self.leaders.size > 1 else None)
        self.nodes = comm.allreduce(1 if self.local == 0 else 0)
        self.resident = None  # the window holding the step buffers
        self.scratch = None   # a window for any other buffer, grown as needed

    def step_buffer(self, size: int, dtype, xp=np):
        """This rank's slot of a shared window (collective over the node; reused while the size
        stays the same)."""
        nbytes = size * np.dtype(dtype).itemsize
        if xp is not np:
            return super().step_buffer(size, dtype, xp)
        if self.resident is None or self.resident.nbytes != nbytes:
            if self.resident is not None:
                self.resident.free()
            self.resident = SharedSlots(self.node, nbytes)
        buffer = self.resident.slot(self.local, dtype)
        buffer[...] = 0
        return buffer

    def _allreduce_piece(self, buf, codec) -> None:
        offset = self.resident.offset_of(buf, self.local) if self.resident is not None else None
        if offset is None:  # not in the step window: through the scratch window
            if self.scratch is None or self.scratch.nbytes < buf.nbytes:
                if self.scratch is not None:
                    self.scratch.free()
                self.scratch = SharedSlots(self.node, buf.nbytes)
            slots, offset = self.scratch, 0
            slots.slot(self.local, buf.dtype, 0, buf.nbytes)[...] = buf
        else:
            slots = self.resident
        views = [slots.slot(s, buf.dtype, offset, buf.nbytes) for s in range(self.local_size)]
        self._reduce_in_node(views, codec)
        if self.nodes > 1:
            self._across_nodes(views, codec)
        if slots is self.scratch:
            buf[...] = views[self.local]

    def _reduce_in_node(self, views, codec) -> None:
        self.node.Barrier()  # every slot written (MPI-3 unified model: visible after the barrier)
        n, p, i = views[0].size, self.local_size, self.local
        lo, hi = i * n // p, (i + 1) * n // p
        # In cache-sized pieces: each piece is summed and copied out while it is still in cache,
        # so the slice crosses the memory bus once to be read and once to be written.
        step = max(1, CHUNK_BYTES // views[0].itemsize)
        for start in range(lo, hi, step):
            piece = slice(start, min(start + step, hi))
            mine = views[i][piece]
            for s in range(p):
                if s != i:
                    codec.add(views[s][piece], mine)
            for s in range(p):
                if s != i:
                    views[s][piece] = mine
        self.node.Barrier()  # every slice summed into every slot

    def _across_nodes(self, views, codec) -> None:
        if self.inter is not None:  # the node's leader, whose slot now holds the node's sum
            self.inter.allreduce(views[0], codec)
        self.node.Barrier()
        if self.local != 0:
            views[self.local][...] = views[0]
        self.node.Barrier()  # nobody writes its slot again before the others have read slot 0

    def finish(self) -> None:
        for slots in (self.resident, self.scratch):
            if slots is not None:
                slots.free()
        self.resident = self.scratch = None
        if self.inter is not None:
            self.inter.finish()
        for comm in (self.leaders, self.node):
            if comm != MPI.COMM_NULL:
                comm.Free()
        self.leaders = self.node = MPI.COMM_NULL
        super().finish()
