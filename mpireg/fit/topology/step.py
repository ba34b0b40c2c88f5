"""What every step topology shares: the step buffer's layout and its bucket pipe.

A mini-batch step hands its topology one flat buffer laid out as

    [ gradient sum (n_params) | loss sum | row count | stop votes | checkpoint votes ]

(the row count is the rows' weights' sum for a GLM, whose targets carry them: models/glm.py)

holding this rank's *sums* over its local batch (a rank out of rows sends zeros; in deterministic
mode the buffer holds int64 fixed-point sums, comm/fixed_point.py). The topology brings the sums
of all ranks together and hands them to `update(params, reduced) -> tail`, which the procedure
supplies (mean, penalty, optimizer step) and which returns the reduced tail as floats. The votes
let ranks agree to stop (a signal reached some rank) or to checkpoint (rank 0's clock says it is
time) at the same step, inside the reduction they do anyway: no extra collective.

    step(params, buffer, update) -> tail
    overlap_step(params, buffer, update, compute) -> tail   the buffer written by compute(on_ready)
    finish_training(params)        every rank, once, after its last step
    serve(params, update_at, on_update) -> stats            an asynchronous server rank's loop

`synchronous` is False for the asynchronous servers: the loop then skips epoch-boundary
collectives, and a rank that `serves` runs `serve` instead of taking steps.
"""
from __future__ import annotations

import numpy as np

from ...comm import packing
from ...comm.codecs import make_codec
from ...comm.fusion import GradientPipe
from ...device import namespace_of

EXTRA_SLOTS = 4                                    # loss sum, row count, stop votes, checkpoint votes
LOSS, ROWS, STOP, CHECKPOINT = range(EXTRA_SLOTS)  # their places after the gradient


class StepTopology:
    synchronous = True
    serves = False  # True on a rank that serves instead of stepping

    def __init__(self, comm, settings, reducer, packer=None):
        self.comm, self.rank, self.size = comm, comm.rank, comm.size
        self.settings = settings
        self.reducer = reducer
        self.packer = packer or packing.default
        self.codec = make_codec(settings.compression)
        self.pipe = None

    def setup(self, params, rows_per_step: float = 1.0, buffer_dtype=None) -> None:
        self.buffer_dtype = np.dtype(buffer_dtype or params.dtype)
        self.pipe = GradientPipe(params.shape[0], self.buffer_dtype, self.settings.fusion_bytes, self.codec,
                                 packing.for_array(params, self.packer), rows_per_step, EXTRA_SLOTS,
                                 xp=namespace_of(params))

    def step_buffer(self, size: int, dtype, xp=np):
        return xp.zeros(size, dtype=dtype)

    def overlap_step(self, params, buffer, update, compute):
        """No overlap: compute, then step."""
        compute(None)
        return self.step(params, buffer, update)

    def finish_training(self, params) -> None:
        """Collective topologies hold identical parameters already."""

    def step_stats(self) -> dict:
        """Pack/communicate/unpack seconds and wire bytes since the last call; then reset."""
        return self.pipe.take_stats() if self.pipe is not None else {}

    def bus_factor(self) -> float:
        return self.reducer.bus_factor()

    def finish(self) -> None:
        self.codec.free()
