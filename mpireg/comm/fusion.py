"""Tensor fusion: a step's gradient travels in buckets of at most `fusion_bytes`.

Without compression a bucket is a view of the step buffer (zero copies: the gradient is already
contiguous), and the buffer's tail of `extra` slots (the step's [loss sum, rows, stop votes,
checkpoint votes], fit/topology/step.py) rides in the last bucket. With compression each
bucket is packed into a 16-bit wire buffer, pre-scaled by 1 / (nominal global batch rows) so that
sums of per-row gradients stay far inside fp16's range (65504), and unpacked after the reduction
with the inverse scale; the tail goes uncompressed, since the row count and the votes must be
exact. Per step the pipe records pack, communicate and unpack seconds and the bytes on the wire;
whoever moves a step's buckets (a reducer here, a parameter server's messages in fit/topology/)
adds to those figures through `record`, the one place they change.

`overlap` reduces the way DDP's buckets do: the model reports how much of the gradient is final
while it computes the rest, and each bucket's non-blocking reduction starts as soon as the bucket
is complete. What the step still waits for after the computation is the exposed communication.
"""
from __future__ import annotations

import time

import numpy as np
from mpi4py import MPI

from .codecs import FLOAT, Codec


class GradientPipe:
    def __init__(self, n_params: int, dtype, fusion_bytes: int, codec: Codec, packer,
                 rows_per_step: float = 1.0, extra: int = 2, xp=np):
        self.n_params = n_params
        self.extra = extra
        self.codec = codec
        self.packer = packer
        self.prescale = 1.0 / max(rows_per_step, 1.0)
        wire = codec.wire_dtype(dtype)
        span = n_params if codec.compressed else n_params + extra
        cap = max(1, int(fusion_bytes) // wire.itemsize)
        self.buckets = [slice(lo, min(lo + cap, span)) for lo in range(0, span, cap)]
        self.wires = ([xp.empty(s.stop - s.start, dtype=wire) for s in self.buckets]
                      if codec.compressed else None)
        self.reset_stats()

    def reset_stats(self) -> None:
        self.stats = {"pack_s": 0.0, "comm_s": 0.0, "exposed_s": 0.0, "unpack_s": 0.0, "wire_bytes": 0,
                      "steps": 0}

    def record(self, steps: int = 0, wire_bytes: int = 0, pack_s: float = 0.0, comm_s: float = 0.0,
               exposed_s: float = 0.0, unpack_s: float = 0.0) -> None:
        """Add a step's figures (named arguments, not a dict: this runs every step)."""
        stats = self.stats
        stats["steps"] += steps
        stats["wire_bytes"] += wire_bytes
        stats["pack_s"] += pack_s
        stats["comm_s"] += comm_s
        stats["exposed_s"] += exposed_s
        stats["unpack_s"] += unpack_s

    def take_stats(self) -> dict:
        """The figures since the last call; then reset."""
        stats = dict(self.stats)
        self.reset_stats()
        return stats

    # ---------------------------------------------------------------- sender side
    def encode(self, buffer) -> list:
        """[(array, codec), ...] to put on the wire, in order (views when uncompressed)."""
        if not self.codec.compressed:
            return [(buffer[s], FLOAT) for s in self.buckets]
        t = time.perf_counter()
        for s, wire in zip(self.buckets, self.wires):
            self.packer.pack([buffer[s]], wire, self.prescale, self.codec.name)
        self.record(pack_s=time.perf_counter() - t)
        tail = buffer[self.n_params:self.n_params + self.extra]
        return [(w, self.codec) for w in self.wires] + [(tail, FLOAT)]

    def decode(self, wires, buffer) -> None:
        """Write reduced wire buffers back into `buffer` (a no-op for views)."""
        if not self.codec.compressed:
            return
        t = time.perf_counter()
        for s, (wire, _) in zip(self.buckets, wires):
            self.packer.unpack(wire, [buffer[s]], 1.0 / self.prescale, self.codec.name)
        self.record(unpack_s=time.perf_counter() - t)

    # ---------------------------------------------------------------- receiver side
    def empty_wires(self, dtype) -> list:
        """Receive buffers shaped like one sender's `encode` output."""
        if not self.codec.compressed:
            return [(np.empty(s.stop - s.start, dtype=dtype), FLOAT) for s in self.buckets]
        return ([(np.empty_like(w), self.codec) for w in self.wires]
                + [(np.empty(self.extra, dtype=dtype), FLOAT)])

    def add_decoded(self, wires, total, scratch) -> None:
        """total += decode(wires) in the total's float arithmetic (a server sums exactly)."""
        if not self.codec.compressed:
            for s, (wire, _) in zip(self.buckets, wires):
                total[s] += wire
            return
        for s, (wire, _) in zip(self.buckets, wires):
            self.packer.unpack(wire, [scratch[s]], 1.0 / self.prescale, self.codec.name)
            total[s] += scratch[s]
        total[self.n_params:self.n_params + self.extra] += wires[-1][0]

    # ---------------------------------------------------------------- collective use
    def reduce(self, buffer, reduce_fn) -> None:
        """Reduce `buffer` in place through `reduce_fn(array, codec)`, bucket by bucket."""
        wires = self.encode(buffer)
        t = time.perf_counter()
        for array, codec in wires:
            reduce_fn(array, codec)
        elapsed = time.perf_counter() - t  # nothing overlaps a blocking reduction: all exposed
        self.record(1, buffer.nbytes if not self.codec.compressed else sum(a.nbytes for a, _ in wires),
                    comm_s=elapsed, exposed_s=elapsed)
        self.decode(wires, buffer)

    def can_overlap(self, buffer, reducer) -> bool:
        """Uncompressed host buckets, a reducer that starts non-blocking sums, more than one rank."""
        return (reducer.nonblocking and not self.codec.compressed and isinstance(buffer, np.ndarray)
                and reducer.size > 1 and buffer.nbytes <= int(reducer.settings.max_message_bytes))

    def overlap(self, buffer, start, compute) -> None:
        """Reduce `buffer` while `compute(on_ready)` writes it. on_ready(hi) says buffer[:hi] is
        final; every bucket inside it then starts reducing through `start(array) -> request`.
        Uncompressed buckets only (they are views of the buffer). Every rank must report the
        same points, so that all start the same reductions in the same order."""
        requests, first = [], []

        def on_ready(hi):
            while len(requests) < len(self.buckets) and self.buckets[len(requests)].stop <= hi:
                if not first:
                    first.append(time.perf_counter())
                requests.append(start(buffer[self.buckets[len(requests)]]))
            if requests:
                MPI.Request.Testall(requests)  # MPICH moves a message only inside an MPI call

        # One bucket cannot start before the whole gradient is written: the model then computes
        # in one piece (reporting slabs costs it ~20%, measured on the MLP) instead of for nothing.
        compute(on_ready if len(self.buckets) > 1 else None)
        t = time.perf_counter()
        on_ready(buffer.size)
        MPI.Request.Waitall(requests)
        end = time.perf_counter()
        self.record(1, buffer.nbytes, exposed_s=end - t, comm_s=end - (first[0] if first else t))
