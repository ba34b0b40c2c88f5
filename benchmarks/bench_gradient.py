"""Gradient-pass speed per rank: rows/s and GB/s of X read, for each model, float32 and float64,
beside two memory-bound references measured in the same run on the same X:
  - copy:   np.copyto(dst, X)          (reads X once, writes it once)
  - read:   X @ ones                   (a streaming read of X: one matrix-vector product)
The gradient pass of a linear model reads X twice in NumPy's obvious form (X w, then X^T r); the
C kernel (csrc/cgrad.c) reads it once. Both are measured, and their ratio to `read` shows how
far each is from the one-pass memory limit.

    python benchmarks/bench_gradient.py [--rows 1000000] [--features 100] [--threads 1]
"""
import argparse
import os
import sys
import time


def parse():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--rows", type=int, default=1_000_000)
    p.add_argument("--features", type=int, default=100)
    p.add_argument("--classes", type=int, default=10, help="softmax classes")
    p.add_argument("--repeats", type=int, default=5, help="best of this many")
    p.add_argument("--threads", type=int, default=1, help="BLAS threads (1 = one rank's share)")
    return p.parse_args()


def best_time(fn, repeats):
    fn()  # warm up: page faults, BLAS thread start
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return min(times)


def main():
    args = parse()
    for var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ[var] = str(args.threads)  # before NumPy loads its BLAS
    import numpy as np

    sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))
    from mpireg.models import make_model
    from mpireg.models.base import _cgrad

    rng = np.random.default_rng(0)
    print(f"gradient pass, {args.rows:,} rows x {args.features} features, {args.threads} BLAS thread(s), "
          f"best of {args.repeats}")
    header = f"{'dtype':8} {'pass':30} {'ms':>8} {'Mrows/s':>9} {'GB/s of X':>10} {'vs read':>8}"
    print(header)
    print("-" * len(header))
    for dtype in (np.float32, np.float64):
        X = rng.standard_normal((args.rows, args.features)).astype(dtype)
        dst = np.empty_like(X)
        ones = np.ones(args.features, dtype=dtype)
        gb = X.nbytes / 1e9
        results = [("copy (memory limit)", best_time(lambda: np.copyto(dst, X), args.repeats)),
                   ("read (X @ ones)", best_time(lambda: X @ ones, args.repeats))]
        del dst
        for kind, k in (("linear", 0), ("logistic", 2), ("softmax", args.classes)):
            model = make_model(kind, args.features, k, l2=1e-4)
            y = model.prepare_targets(rng.standard_normal(args.rows) if kind == "linear"
                                      else rng.integers(0, max(k, 2), args.rows))
            if kind == "linear":
                y = y.astype(dtype)
            params = (rng.standard_normal(model.layout.size) * 0.01).astype(dtype)
            grad = np.empty_like(params)
            label = f"{kind}" + (f" (K={k})" if kind == "softmax" else "")
            native = model.one_pass and np.dtype(dtype) in model.one_pass_dtypes  # the default path
            results.append((f"{label}, NumPy 2-pass" + ("" if native else " *"),
                            best_time(lambda: model.loss_grad_xp(params, X, y, grad), args.repeats)))
            if hasattr(model, "_loss_grad_native") and _cgrad is not None and kind != "softmax":
                results.append((f"{label}, C 1-pass" + (" *" if native else ""),
                                best_time(lambda: model._loss_grad_native(params, X, y, grad), args.repeats)))
        read = results[1][1]
        for name, t in results:
            print(f"{np.dtype(dtype).name:8} {name:30} {t * 1e3:8.1f} {args.rows / t / 1e6:9.1f} "
                  f"{gb / t:10.2f} {read / t:8.2f}")
        del X
    print("* = the path training uses by default for this model and dtype")


if __name__ == "__main__":
    main()
