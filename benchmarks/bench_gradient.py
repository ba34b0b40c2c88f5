"""Gradient-pass speed per rank: rows/s and GB/s of X read, for each model, float32 and float64,
beside two memory-bound references measured in the same run on the same X:
  - copy:   np.copyto(dst, X)          (reads X once, writes it once)
  - read:   X @ ones                   (a streaming read of X: one matrix-vector product, one
                                        stream; the kernels read four at once, csrc/streams.h,
                                        and may beat it)
NumPy's obvious gradient of a linear model reads X twice (X w, then X^T r); the C kernels
(csrc/cgrad.c, csrc/csoftmax.c) read it once. For float32 X, "f64 params" is the same pass with
float64 parameters and sums, what the full-batch solvers (L-BFGS) run. The candidates are timed
in turn, round after round, and each keeps its best round, so a drift in the host's memory
bandwidth hits all of them alike; `vs read` is the ratio to the streaming read of the same X in
the same run.

    python benchmarks/bench_gradient.py [--rows 1000000] [--features 100,1000] [--threads 1]
"""
import argparse
import os
import sys
import time


def parse():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--rows", type=int, default=1_000_000, help="rows at the first feature count; "
                   "other counts keep X's size")
    p.add_argument("--features", default="100,1000", help="comma-separated feature counts")
    p.add_argument("--classes", default="3,10", help="comma-separated softmax class counts")
    p.add_argument("--repeats", type=int, default=5, help="rounds; each candidate keeps its best")
    p.add_argument("--threads", type=int, default=1, help="BLAS threads (1 = one rank's share)")
    p.add_argument("--dtypes", default="float32,float64")
    return p.parse_args()


def race(candidates, repeats):
    """{name: best seconds}, timing the candidates in turn, round after round."""
    for _, fn in candidates:
        fn()  # warm up: page faults, BLAS thread start
    best = {name: float("inf") for name, _ in candidates}
    for _ in range(repeats):
        for name, fn in candidates:
            t = time.perf_counter()
            fn()
            best[name] = min(best[name], time.perf_counter() - t)
    return best


def candidates_for(np, X, args, rng):
    from mpireg.models import make_model

    dst = np.empty_like(X)
    ones = np.ones(X.shape[1], dtype=X.dtype)
    out = [("copy (memory limit)", lambda: np.copyto(dst, X)), ("read (X @ ones)", lambda: X @ ones)]
    models = [("linear", 0), ("logistic", 2)] + [("softmax", int(k)) for k in args.classes.split(",")]
    for kind, k in models:
        model = make_model(kind, X.shape[1], k, l2=1e-4)
        y = rng.standard_normal(len(X)) if kind == "linear" else rng.integers(0, max(k, 2), len(X))
        y = model.prepare_targets(y.astype(X.dtype) if kind == "linear" else y)
        params = (rng.standard_normal(model.layout.size) * 0.01).astype(X.dtype)
        grad = np.empty_like(params)
        label = kind + (f" (K={k})" if kind == "softmax" else "")
        native = model.one_pass and model._native_ok(params, X, grad)  # what training uses
        two_pass = getattr(model, "loss_grad_whole", model.loss_grad_xp)
        passes = [("NumPy 2-pass", lambda m=two_pass, p=params, y=y, g=grad: m(p, X, y, g))]
        if kind == "softmax":
            passes.append(("NumPy blocked", lambda m=model, p=params, y=y, g=grad: m.loss_grad_xp(p, X, y, g)))
        if model.one_pass:
            passes.append(("C 1-pass", lambda m=model, p=params, y=y, g=grad: m._loss_grad_native(p, X, y, g)))
        if model.one_pass and X.dtype == np.float32:  # float64 parameters: what L-BFGS runs
            p64, g64 = params.astype(np.float64), np.empty(grad.shape, np.float64)
            passes.append(("C 1-pass, f64 params",
                           lambda m=model, p=p64, y=y, g=g64: m._loss_grad_native(p, X, y, g)))
        names = [name for name, _ in passes]
        default = names.index("C 1-pass") if native else (1 if kind == "softmax" else 0)
        out += [(f"{label}, {name}" + (" *" if i == default else ""), fn) for i, (name, fn) in enumerate(passes)]
    return out


def main():
    args = parse()
    for var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ[var] = str(args.threads)  # before NumPy loads its BLAS
    import numpy as np

    sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))
    rng = np.random.default_rng(0)
    counts = [int(f) for f in args.features.split(",")]
    print(f"gradient pass, {args.threads} BLAS thread(s), best of {args.repeats} interleaved rounds")
    header = f"{'features':>8} {'dtype':8} {'pass':38} {'ms':>8} {'Mrows/s':>9} {'GB/s of X':>10} {'vs read':>8}"
    print(header)
    print("-" * len(header))
    for d in counts:
        rows = args.rows * counts[0] // d
        for dtype in args.dtypes.split(","):
            X = rng.standard_normal((rows, d)).astype(dtype)
            best = race(candidates_for(np, X, args, rng), args.repeats)
            read = best["read (X @ ones)"]
            for name, t in best.items():
                print(f"{d:8} {dtype:8} {name:38} {t * 1e3:8.1f} {rows / t / 1e6:9.2f} "
                      f"{X.nbytes / 1e9 / t:10.2f} {read / t:8.2f}", flush=True)
            del X
    print("* = the path training uses by default for this model and dtype")


if __name__ == "__main__":
    main()
