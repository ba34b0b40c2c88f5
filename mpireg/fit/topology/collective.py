"""Every rank sums the step buffer through the reducer and takes the same update.

The buffer travels in the bucket pipe's buckets (comm/fusion.py). Where the reducer can start
non-blocking sums (MPI's Iallreduce on host buffers) a bucket starts reducing as soon as the model
reports it final, while the rest of the gradient is computed (DDP's overlap).
"""
from __future__ import annotations

import numpy as np

from .step import StepTopology


class CollectiveSteps(StepTopology):
    def step_buffer(self, size: int, dtype, xp=np):
        return self.reducer.step_buffer(size, dtype, xp)  # hierarchical: in shared memory

    def step(self, params, buffer, update):
        self.pipe.reduce(buffer, self.reducer.allreduce)
        return update(params, buffer)

    def overlap_step(self, params, buffer, update, compute):
        if not self.pipe.can_overlap(buffer, self.reducer):
            return super().overlap_step(params, buffer, update, compute)
        self.pipe.overlap(buffer, self.reducer.start_allreduce, compute)
        return update(params, buffer)
