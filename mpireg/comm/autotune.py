"""`comm.strategy = "auto"`: a short alpha-beta probe picks the strategy and the fusion size.

Each collective candidate (allreduce, ring, hierarchical) reduces a few message sizes around the
model's step buffer; a least-squares fit of t(n) = alpha + beta n per candidate (Hockney's model)
predicts the time of one reduction of the buffer. The fastest prediction wins. The fusion size
matters only when the model overlaps its reduction with its gradient (softmax): with k buckets
the exposed time is about k alpha + (n / k) beta (every bucket pays the latency once; only the last
bucket's transfer is left after the computation), smallest at k = sqrt(n beta / alpha). The
choice and its predicted time are logged; benchmarks/bench_autotune.py checks it against every
fixed setting. The probe takes well under a second on one node.
"""
from __future__ import annotations

import math
import time
from dataclasses import dataclass, replace

import numpy as np
from mpi4py import MPI

from .. import log

CANDIDATES = ("allreduce", "ring", "hierarchical")
REPEATS = 5


@dataclass(frozen=True)
class Fit:
    name: str
    alpha: float  # seconds per message
    beta: float   # seconds per byte

    def predict(self, nbytes: float, buckets: int = 1) -> float:
        return buckets * self.alpha + nbytes / buckets * self.beta if buckets > 1 else self.alpha + nbytes * self.beta


def probe_sizes(nbytes: int) -> list[int]:
    """Message sizes around the step buffer: from 4 KiB to twice its size (at most 64 MiB)."""
    top = int(min(max(2 * nbytes, 64 << 10), 64 << 20))
    sizes = sorted({4 << 10, 64 << 10, max(top // 16, 4 << 10), max(top // 4, 4 << 10), top})
    return [s - s % 8 for s in sizes]


def measure(strategy, nbytes: int) -> float:
    """Median seconds of one in-place float64 reduction of `nbytes` (the same on every rank)."""
    buf = np.ones(max(1, nbytes // 8))
    times = []
    for _ in range(REPEATS):
        strategy.comm.Barrier()
        t = time.perf_counter()
        strategy.allreduce(buf)
        times.append(time.perf_counter() - t)
    times = np.array(times)
    strategy.comm.Allreduce(MPI.IN_PLACE, times, op=MPI.MAX)  # the slowest rank sets the pace
    return float(np.median(times))


def fit(name: str, sizes, seconds) -> Fit:
    A = np.column_stack([np.ones(len(sizes)), np.asarray(sizes, dtype=float)])
    (alpha, beta), *_ = np.linalg.lstsq(A, np.asarray(seconds), rcond=None)
    return Fit(name, max(alpha, 1e-7), max(beta, 1e-13))


def best_buckets(fit_: Fit, nbytes: int, overlaps: bool) -> int:
    if not overlaps or fit_.name != "allreduce":  # only MPI's Iallreduce overlaps (allreduce.py)
        return 1
    return max(1, min(64, round(math.sqrt(nbytes * fit_.beta / fit_.alpha))))


def autotune(settings, comm, nbytes: int, overlaps: bool, make):
    """(the strategy chosen by the probe, the fits); `make(settings)` builds a candidate."""
    fits = []
    for name in CANDIDATES:
        candidate = make(replace(settings, strategy=name))
        sizes = probe_sizes(nbytes)
        candidate.allreduce(np.ones(16))  # warm-up: connections, windows
        fits.append(fit(name, sizes, [measure(candidate, s) for s in sizes]))
        candidate.finish()
    best = min(fits, key=lambda f: f.predict(nbytes, best_buckets(f, nbytes, overlaps)))
    buckets = best_buckets(best, nbytes, overlaps)
    fusion = max(8, -(-nbytes // buckets))
    chosen = replace(settings, strategy=best.name, fusion_bytes=int(fusion))
    table = ", ".join(f"{f.name} {f.predict(nbytes, best_buckets(f, nbytes, overlaps)) * 1e6:.0f} us "
                      f"(alpha {f.alpha * 1e6:.1f} us, beta {1 / f.beta / 1e9:.2f} GB/s)" for f in fits)
    log.info(f"comm.strategy = auto: {best.name}, fusion {fusion} bytes ({buckets} bucket"
             f"{'s' if buckets > 1 else ''}) for a {nbytes}-byte step buffer; predicted "
             f"{best.predict(nbytes, buckets) * 1e6:.0f} us per reduction; probed: {table}")
    return make(chosen), fits

