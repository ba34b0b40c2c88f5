"""Sums that are bit-for-bit the same however the terms are spread over ranks.

Floating-point addition is not associative, so a gradient summed over 2 ranks differs in its
last bits from the same gradient summed over 4. Deterministic mode removes that:

1. Rows are grouped in fixed blocks of `block_rows` (the same blocks for any rank count), and a
   block's partial sum is computed by one rank, by the same code, on a fresh aligned copy of its
   rows: the same bits wherever it is computed.
2. All ranks agree (one small allreduce of maxima) on a power-of-two scale 2^e per group of
   entries, chosen so that the sum of all the step's blocks stays below 2^62 in magnitude.
3. Each block's partial, times 2^e, is rounded to an int64. Integer addition is associative, so
   the global sum is the same whatever reduction order a strategy uses (MPI's tree, the ring, the
   server) and however the blocks fell to ranks. Decoding multiplies by 2^-e.

Precision: an entry keeps at least 62 - log2(blocks) bits relative to its group's largest entry,
far more than float32 carries. Cost: one extra allreduce of a few maxima per reduction, and
per-block instead of per-batch gradient arithmetic; measured in benchmarks/bench_strategies.py
(its deterministic-mode table, beside the same jobs without it).
"""
from __future__ import annotations

import math

import numpy as np

HEADROOM_BITS = 62


NONFINITE = None  # the exponent of a group some rank holds a NaN or Inf in: it decodes as NaN


def agree_exponents(reducer, partials: np.ndarray, groups: list, n_terms: int) -> list:
    """One exponent per group (a slice of columns), the same on every rank; NONFINITE where any
    rank's partials hold a NaN or Inf (+inf travels through the max where NaN might not), so
    that the decoded sums are NaN on every rank and the step loop reports the divergence."""
    local = np.array([np.abs(partials[:, g]).max() if partials.size else 0.0 for g in groups])
    local[~np.isfinite(local)] = np.inf
    reducer.allreduce_max(local)
    exponents = []
    for largest in local:
        if not math.isfinite(largest):
            exponents.append(NONFINITE)
        elif largest == 0:
            exponents.append(0)  # all zeros
        else:
            exponents.append(HEADROOM_BITS - math.frexp(largest * max(n_terms, 1))[1])
    return exponents


def encode_sum(partials: np.ndarray, groups: list, exponents: list, count_column: int, out: np.ndarray) -> None:
    """out (int64) = sum over blocks of round(partial * 2^e); the count column is summed as is."""
    out[...] = 0
    if not partials.shape[0]:
        return
    for g, e in zip(groups, exponents):
        out[g] = 0 if e is NONFINITE else np.rint(np.ldexp(partials[:, g], e)).astype(np.int64).sum(axis=0)
    out[count_column] = int(partials[:, count_column].sum())


def decode(ints: np.ndarray, groups: list, exponents: list, out: np.ndarray) -> None:
    """out (float) = ints * 2^-e per group."""
    for g, e in zip(groups, exponents):
        out[g] = np.nan if e is NONFINITE else np.ldexp(ints[g].astype(np.float64), -e)
