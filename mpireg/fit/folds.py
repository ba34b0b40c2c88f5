"""Cross-validation folds without moving data: a row's fold is a seeded hash of its global row
index, so every rank knows the folds of its own rows, and the assignment is the same on any
number of ranks (the rows are the same rows whoever reads them).

The hash is SplitMix64's finaliser (Steele, Lea and Flood 2014), which spreads consecutive
indices evenly over the folds: fold sizes differ from n/k by O(sqrt(n/k)).
"""
from __future__ import annotations

import numpy as np

_GOLDEN = np.uint64(0x9E3779B97F4A7C15)
_M1, _M2 = np.uint64(0xBF58476D1CE4E5B9), np.uint64(0x94D049BB133111EB)


def fold_of(rows: np.ndarray, k: int, seed: int = 0) -> np.ndarray:
    """The fold (0..k-1) of each global row index in `rows`."""
    with np.errstate(over="ignore"):  # the mixing is arithmetic modulo 2^64
        z = np.asarray(rows, dtype=np.uint64) + np.uint64(seed & 0xFFFFFFFF) * _GOLDEN + _GOLDEN
        z = (z ^ (z >> np.uint64(30))) * _M1
        z = (z ^ (z >> np.uint64(27))) * _M2
        z ^= z >> np.uint64(31)
    return (z % np.uint64(k)).astype(np.int64)


def block_folds(data, k: int, seed: int):
    """(X, targets, folds of the rows) of each block of this rank's rows, in order."""
    start = data.first_row
    for X, targets in data.blocks():
        n = X.shape[0]
        yield X, targets, fold_of(np.arange(start, start + n), k, seed)
        start += n
