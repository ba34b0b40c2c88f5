"""Fused packing speed: GB/s of pack and unpack for 1, 10, 100 and 1,000 arrays of mixed sizes,
the C extension next to the NumPy fallback and a plain memory copy of the same bytes, measured
in the same run. Source bytes per second (the float32 gradient read), best of N.

    python benchmarks/bench_pack.py [--mbytes 64] [--repeats 7]
"""
import argparse
import os
import sys
import time

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))
from mpireg.comm import packing  # noqa: E402


def best(fn, repeats):
    fn()
    out = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        out.append(time.perf_counter() - t)
    return min(out)


def mixed_arrays(n_arrays, total_bytes, rng):
    weights = rng.lognormal(0, 1.0, n_arrays)
    counts = np.maximum(1, (weights / weights.sum() * total_bytes / 4).astype(int))
    return [rng.standard_normal(c).astype(np.float32) for c in counts]


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--mbytes", type=float, default=64)
    p.add_argument("--repeats", type=int, default=7)
    args = p.parse_args()
    rng = np.random.default_rng(0)
    impls = [("C", packing.C), ("NumPy", packing.NUMPY)] if packing.C else [("NumPy", packing.NUMPY)]
    print(packing.describe())
    print(f"{args.mbytes:g} MB of float32 gradients in N arrays; GB/s of source bytes, best of {args.repeats}")
    head = f"{'arrays':>6} {'codec':>5} {'memcpy':>7} | " + " | ".join(f"{n + ' pack':>10} {n + ' unpack':>12}" for n, _ in impls)
    print(head + " | C/memcpy  C/NumPy")
    print("-" * (len(head) + 20))
    for n_arrays in (1, 10, 100, 1000):
        arrays = mixed_arrays(n_arrays, args.mbytes * 1e6, rng)
        total = sum(a.size for a in arrays)
        nbytes = total * 4
        flat, twin = np.empty(total, np.float32), np.empty(total, np.float32)
        memcpy = nbytes / best(lambda: np.copyto(twin, flat), args.repeats) / 1e9
        for codec in ("none", "fp16", "bf16"):
            wire = np.empty(total, np.float32 if codec == "none" else np.uint16)
            rates = {}
            for name, impl in impls:
                rates[name] = (nbytes / best(lambda: impl.pack(arrays, wire, 0.5, codec), args.repeats) / 1e9,
                               nbytes / best(lambda: impl.unpack(wire, arrays, 2.0, codec), args.repeats) / 1e9)
            cells = " | ".join(f"{rates[n][0]:10.2f} {rates[n][1]:12.2f}" for n, _ in impls)
            ratio = ""
            if "C" in rates:
                ratio = f" | {rates['C'][0] / memcpy:8.2f} {rates['C'][0] / rates['NumPy'][0]:8.2f}"
            print(f"{n_arrays:>6} {codec:>5} {memcpy:7.2f} | {cells}{ratio}")


if __name__ == "__main__":
    main()
