"""The order a rank visits its rows in one epoch: a pure function, so tests can replay it.

Shuffling seeds differ by rank and epoch (np.random.SeedSequence([seed, epoch, rank])); blocks
are visited in a shuffled order and rows are shuffled within a block, so a streamed rank reads
each block once per epoch. Indices inside a batch are sorted: the gather from X then walks
memory forward, and a sum over a batch does not depend on the order of its rows' visit.
"""
from __future__ import annotations

import numpy as np


def epoch_plan(block_sizes, batch_size: int, seed: int, epoch: int, rank: int):
    """[(block index, sorted row indices within the block), ...] for one epoch of one rank."""
    rng = np.random.default_rng([seed, epoch, rank])
    plan = []
    for block in rng.permutation(len(block_sizes)):
        perm = rng.permutation(block_sizes[block])
        for start in range(0, len(perm), batch_size):
            plan.append((int(block), np.sort(perm[start:start + batch_size])))
    return plan
