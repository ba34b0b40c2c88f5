"""One IRLS/Newton pass of the GLM per rank (models/glm.py `newton_sums`): the NumPy reference
against the one-read C pass (csrc/cglm.c) on the same rows, beside the floor the pass cannot go
under in this layout, measured in the same run:
  - syrk:   BLAS's X^T X on the same rows in float64, chunk by chunk (the Gram matrix alone,
            the part of the pass that is arithmetic: n d^2 FMAs)
  - read:   X @ ones (one streaming read of X)
The candidates are timed in turn, round after round, each keeping its best round.

    python benchmarks/bench_glm_pass.py [--rows 1000000] [--features 60] [--threads 1]
"""
import argparse
import os
import sys

from bench_gradient import race  # each candidate's best round, the candidates in turn


def parse():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--rows", type=int, default=1_000_000)
    p.add_argument("--features", type=int, default=60)
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--threads", type=int, default=1, help="BLAS threads (1 = one rank's share)")
    p.add_argument("--dtype", default="float32")
    return p.parse_args()


def main():
    args = parse()
    for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ[var] = str(args.threads)
    import numpy as np
    from scipy.linalg import blas

    from mpireg.models import glm, make_model

    rng = np.random.default_rng(0)
    n, d = args.rows, args.features
    X = (rng.standard_normal((n, d)) * 0.1).astype(args.dtype)
    print(f"{n} rows x {d} features, {args.dtype}, {args.threads} BLAS thread(s); best of {args.repeats}")
    print(f"{'pass':<28} {'ms':>8} {'vs syrk':>8} {'GFLOP/s':>8}")

    def syrk():
        H = np.zeros((d, d), order="F")
        for lo in range(0, n, glm.CHUNK_ROWS):
            rows = np.asarray(X[lo:lo + glm.CHUNK_ROWS], dtype=np.float64)
            H = blas.dsyrk(1.0, rows.T, beta=1.0, c=H, trans=0, overwrite_c=1)

    ones = np.ones(d, dtype=X.dtype)
    floors = race([("syrk", syrk), ("read", lambda: X @ ones)], args.repeats)
    flops = n * d * d  # syrk's multiply-adds, counted as 2 flops each over the upper triangle
    for name, seconds in floors.items():
        print(f"{'floor: ' + name:<28} {seconds * 1e3:8.1f} {seconds / floors['syrk']:8.2f} "
              f"{flops / seconds / 1e9 if name == 'syrk' else float('nan'):8.1f}")
    for family, link, draw in (("poisson", "log", lambda mu: rng.poisson(mu).astype(float)),
                               ("gamma", "log", lambda mu: rng.gamma(2.0, mu / 2.0)),
                               ("tweedie", "log", lambda mu: rng.poisson(mu) * rng.gamma(2.0, 0.5, n))):
        model = make_model("glm", d, family=family, link=link, power=1.5)
        params = np.zeros(model.layout.size)
        params[-1] = 0.3
        targets = model.prepare_targets(draw(np.exp(0.3 + X @ np.zeros(d, dtype=X.dtype))))
        sums = glm.NewtonSums(model.layout.size)

        def run(native):
            saved = glm._cglm
            glm._cglm = saved if native else None
            try:
                sums.buffer[:] = 0
                model.newton_sums(params, X, targets, sums)
            finally:
                glm._cglm = saved

        if glm._cglm is None:
            sys.exit("mpireg._cglm is not built (python -m pip install -e .)")
        times = race([("numpy", lambda: run(False)), ("c", lambda: run(True))], args.repeats)
        for name, seconds in times.items():
            print(f"{family + ' ' + link + ': ' + name:<28} {seconds * 1e3:8.1f} {seconds / floors['syrk']:8.2f}")
        print(f"{family + ' ' + link + ': C / NumPy':<28} {times['numpy'] / times['c']:8.2f}x")


if __name__ == "__main__":
    main()
