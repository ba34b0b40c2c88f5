"""Ring-allreduce on MPI point-to-point: reduce-scatter, then all-gather (baidu-allreduce).

The buffer is cut into p segments (sizes differ by at most one element; some are empty when the
buffer is shorter than p). Rank r sends to r+1 and receives from r-1:

    reduce-scatter, step s = 0..p-2:  send segment (r-s) mod p, receive (r-s-1) mod p and add it
                                      -> rank r holds the full sum of segment (r+1) mod p
    all-gather,     step s = 0..p-2:  send segment (r-s+1) mod p, receive (r-s) mod p, overwrite

    r0 --> r1 --> r2 --> ... --> r(p-1) --+
     ^------------------------------------+

Each rank sends and receives 2(p-1)/p of the buffer, independent of p: bandwidth-optimal. Each
segment's sum is computed once, on one rank, and copied to the others, so every rank ends with
the same bits. Buffers longer than `ring_chunk_bytes` per segment are processed in chunks, so the
receive scratch stays small and the segments being added stay in cache.
"""
from __future__ import annotations

import numpy as np

from ..device import namespace_of
from .reducer import Reducer

TAG = 71


class RingReducer(Reducer):
    name = "ring"

    def __init__(self, comm, settings):
        super().__init__(comm, settings)
        self.right = (self.rank + 1) % self.size
        self.left = (self.rank - 1) % self.size
        self._scratch = {}

    def _allreduce_piece(self, buf, codec) -> None:
        chunk = max(1, int(self.settings.ring_chunk_bytes) // buf.itemsize) * self.size
        for lo in range(0, buf.size, chunk):
            self._ring(buf[lo:lo + chunk], codec)

    def _ring(self, buf, codec) -> None:
        p, r, n = self.size, self.rank, buf.size
        bounds = [i * n // p for i in range(p + 1)]
        seg = lambda i: buf[bounds[i % p]:bounds[i % p + 1]]  # noqa: E731
        scratch = self._scratch_for(buf, n // p + 1)
        for s in range(p - 1):
            incoming = seg(r - s - 1)
            recv = scratch[:incoming.size]
            self.comm.Sendrecv(seg(r - s), dest=self.right, sendtag=TAG,
                               recvbuf=recv, source=self.left, recvtag=TAG)
            codec.add(recv, incoming)
        for s in range(p - 1):
            self.comm.Sendrecv(seg(r - s + 1), dest=self.right, sendtag=TAG,
                               recvbuf=seg(r - s), source=self.left, recvtag=TAG)

    def _scratch_for(self, like, count: int):
        key = (np.dtype(like.dtype).str, namespace_of(like).__name__)
        if key not in self._scratch or self._scratch[key].size < count:
            self._scratch[key] = namespace_of(like).empty(count, dtype=like.dtype)
        return self._scratch[key]
