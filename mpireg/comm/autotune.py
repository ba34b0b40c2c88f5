"""`comm.strategy = "auto"`: a short alpha-beta probe measures the reducers and the fusion size
(the plan, fit/plan.py, asks it and decides).

Each collective candidate (allreduce, ring, hierarchical) reduces a few message sizes around the
model's step buffer; a least-squares fit of t(n) = alpha + beta n per candidate (Hockney's model)
predicts the time of one reduction of the buffer, and the fastest prediction wins. Splitting the
buffer into k buckets costs k alpha + n beta and can only pay off where the reductions progress
while the gradient is computed. MPICH (the PyPI wheel) moves a non-blocking reduction only inside
MPI calls, so the overlap it achieves is partial and the extra latencies dominate: measured in
benchmarks/bench_autotune.py, one bucket was the best fixed setting for every model tried. The
tuner therefore keeps the whole step buffer in one bucket unless the probe measures an overlap
benefit (`overlap_gain`, a fraction of n beta hidden per extra bucket; 0 here). The choice and
its predicted time are written into the plan's reasons; the benchmark checks the pick against
every fixed setting.
"""
from __future__ import annotations

import math
import time
from dataclasses import dataclass

import numpy as np
from mpi4py import MPI


CANDIDATES = ("allreduce", "ring", "hierarchical")
REPEATS = 5
OVERLAP_BUCKET = 256 << 10  # across nodes, a model that reports its gradient layer by layer
NODE_AWARE_FROM = 1 << 20  # across nodes with several ranks each: the hierarchy, without a probe


@dataclass(frozen=True)
class Fit:
    name: str
    alpha: float  # seconds per message
    beta: float   # seconds per byte

    def predict(self, nbytes: float, buckets: int = 1, overlap_gain: float = 0.0) -> float:
        hidden = overlap_gain * (buckets - 1) / buckets
        return buckets * self.alpha + nbytes * self.beta * (1 - hidden)


def probe_sizes(nbytes: int, across_nodes: bool = False) -> list[int]:
    """Message sizes around the step buffer, the buffer's own size among them (at most 64 MiB).
    Across nodes the probe's bytes cross the link the training needs: three sizes up to the
    buffer's own, at most 4 MiB (the five sizes up to 4x the buffer sent 135 MB across a
    4 Gbit/s link for a 1.6 MB MLP gradient, half an epoch's traffic)."""
    if across_nodes:
        top = int(min(nbytes, 4 << 20))
        return sorted({8, max(top // 8 - top // 8 % 8, 8), max(8, top - top % 8)})
    top = int(min(4 * nbytes, 64 << 20))
    sizes = {8, min(nbytes, 64 << 20), max(top // 16, 8), max(top // 4, 8), top}
    return sorted(max(8, s - s % 8) for s in sizes)


def measure(reducer, nbytes: int, repeats: int = REPEATS) -> float:
    """Median seconds of one reduction of a `nbytes` step buffer (the slowest rank's)."""
    buf = reducer.step_buffer(max(1, nbytes // 8), np.float64)  # where a step's buffer lives
    times = []
    for _ in range(repeats):
        reducer.comm.Barrier()
        t = time.perf_counter()
        reducer.allreduce(buf)
        times.append(time.perf_counter() - t)
    times = np.array(times)
    reducer.comm.Allreduce(MPI.IN_PLACE, times, op=MPI.MAX)
    return float(np.median(times))


def fit(name: str, sizes, seconds) -> Fit:
    """Least squares in relative error, so the latency-bound small sizes weigh as much as the big."""
    t = np.asarray(seconds)
    A = np.column_stack([np.ones(len(sizes)), np.asarray(sizes, dtype=float)]) / t[:, None]
    (alpha, beta), *_ = np.linalg.lstsq(A, np.ones(len(t)), rcond=None)
    return Fit(name, max(alpha, 1e-7), max(beta, 1e-13))


def best_buckets(fit_: Fit, nbytes: int, overlaps: bool, overlap_gain: float = 0.0) -> int:
    """k minimising k alpha + n beta (1 - gain (k - 1) / k); k = 1 without a measured gain."""
    if not overlaps or fit_.name != "allreduce" or overlap_gain <= 0:  # only Iallreduce overlaps
        return 1
    return max(1, min(64, round(math.sqrt(overlap_gain * nbytes * fit_.beta / fit_.alpha))))


@dataclass(frozen=True)
class Choice:
    strategy: str
    fusion_bytes: int
    reason: str
    fits: tuple


def autotune(settings, comm, nbytes: int, overlaps: bool, make, links=None) -> Choice:
    """The probe's pick among CANDIDATES for a `nbytes` step buffer; `make(name)` builds a
    candidate reducer (freed here). `links` (comm/links.py): with one rank a node there is no
    hierarchy for the node-aware reduction to use, and across nodes the probe is kept small.
    Collective."""
    if overlaps and links is not None and links.nodes > 1 and not links.hierarchy and nbytes > OVERLAP_BUCKET:
        return Choice("allreduce", OVERLAP_BUCKET, (
            f"comm.strategy = auto: allreduce in buckets of {OVERLAP_BUCKET} bytes, reduced while the "
            f"model computes the rest of its gradient (one rank a node: no hierarchy, and ring and "
            f"allreduce moved the same bytes within 5 %; across 2 nodes this beat one bucket 1.13x/1.25x "
            f"against 1.20x/2.01x the larger of computation and link time at 1/4 Gbit/s, "
            f"benchmarks/bench_multinode_mlp.py); not probed"), ())
    if links is not None and links.nodes > 1 and links.hierarchy and nbytes >= NODE_AWARE_FROM:
        return Choice("hierarchical", int(settings.fusion_bytes), (
            f"comm.strategy = auto: hierarchical for a {nbytes}-byte step buffer: on {links.nodes} nodes "
            f"of up to {links.ranks_per_node} ranks it reduces inside each node first and crosses the links "
            f"once per node (on 2 nodes x 2 ranks it beat MPI's Allreduce at every size from 1 MiB, at 1 "
            f"and 4 Gbit/s and uncapped; the probe, capped at 4 MiB across a link, mispicked at 256 MiB: "
            f"benchmarks/bench_multinode.py); not probed"), ())
    fits = []
    candidates, skipped = _candidates(links)
    across = links is not None and links.nodes > 1
    for name in candidates:
        candidate = make(name)
        sizes = probe_sizes(nbytes, across)
        candidate.allreduce(np.ones(16))  # warm-up: connections, windows
        fits.append(fit(name, sizes, [measure(candidate, s, 3 if across else REPEATS) for s in sizes]))
        candidate.finish()
    best = min(fits, key=lambda f: f.predict(nbytes, best_buckets(f, nbytes, overlaps)))
    buckets = best_buckets(best, nbytes, overlaps)
    fusion = max(8, -(-nbytes // buckets))
    table = ", ".join(f"{f.name} {f.predict(nbytes, best_buckets(f, nbytes, overlaps)) * 1e6:.0f} us "
                      f"(alpha {f.alpha * 1e6:.1f} us, {_bandwidth(f)})" for f in fits)
    reason = (f"comm.strategy = auto: {best.name}, fusion {fusion} bytes ({buckets} bucket"
              f"{'s' if buckets > 1 else ''}) for a {nbytes}-byte step buffer; predicted "
              f"{best.predict(nbytes, buckets) * 1e6:.0f} us per reduction; probed: {table}{skipped}")
    return Choice(best.name, int(fusion), reason, tuple(fits))


def _candidates(links) -> tuple[list, str]:
    """The reducers worth probing on these links, and why any is left out. One rank a node: no
    hierarchy to use. Several of each: a ring over all p ranks placed node by node crosses the
    node links with N (p - 1) / (p (N - 1)) times the bytes of the node-aware reduction (1.5x on
    2 nodes x 2 ranks, measured by benchmarks/bench_multinode.py) and lost to it at every size."""
    if links is None or links.nodes < 2:
        return list(CANDIDATES), ""
    if not links.hierarchy:
        return [c for c in CANDIDATES if c != "hierarchical"], "; hierarchical not probed: one rank a node"
    p = links.nodes * links.ranks_per_node
    extra = links.nodes * (p - 1) / (p * (links.nodes - 1))
    return ([c for c in CANDIDATES if c != "ring"],
            f"; ring not probed: over all ranks it crosses the node links with {extra:.2f}x the bytes")


def _bandwidth(f: Fit) -> str:
    if f.beta <= 1e-13:  # the clamp: messages this small are all latency
        return "bandwidth not resolved at these sizes"
    return f"{1 / f.beta / 1e9:.2f} GB/s"
