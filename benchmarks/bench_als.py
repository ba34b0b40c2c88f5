"""ALS for explicit ratings: mpireg (1 and 2 ranks, factor rows allgathered or pulled) against a
plain NumPy ALS, the `implicit` package's ALS, and SGD-MF through the asynchronous parameter
server, on the same ratings.

    python benchmarks/bench_als.py [--users 6000] [--items 3000] [--ratings 1000000] [--rank 10]
                                   [--epochs 5] [--l2 0.05]

Synthetic ratings (`mpireg.data synth --task ratings`: mean 3.5 + a rank-`--rank` signal of
unit variance + noise s.d. 0.5, the held-out RMSE floor), a tenth held out. The NumPy reference
is the textbook loop (for every user, then every item: gather its factor rows, solve
(F^T F + l2 n I) x = F^T r with np.linalg.solve), the same objective and the same seeded start,
so its RMSE per iteration should equal mpireg's. Printed side by side: seconds per iteration
(mean of all but the first), the whole command's wall time, and held-out RMSE after each
iteration.
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from mpi_launch import ROOT, mpiexec

NOISE = 0.5


def make_data(root: Path, args) -> Path:
    out = root / "ratings"
    subprocess.run([sys.executable, "-m", "mpireg.data", "synth", "--task", "ratings",
                    "--users", str(args.users), "--items", str(args.items), "--rank", str(args.rank),
                    "--rows", str(args.ratings), "--test-rows", str(args.ratings // 10),
                    "--noise", str(NOISE), "--shards", "4", "--out", str(out)],
                   check=True, cwd=ROOT, stdout=subprocess.DEVNULL)
    return out


def run_mpireg(data: Path, root: Path, args, ranks: int, *extra: str) -> dict:
    run_dir = root / f"run-{ranks}-{len(extra)}-{'-'.join(extra).replace('=', '_').replace('.', '_')}"
    job = root / "job.toml"
    job.write_text("")
    sets = [f"data.train={data}", f"data.test={data}/test", "model.kind=mf", f"model.rank={args.rank}",
            f"model.l2={args.l2}", "optimizer.kind=als", f"optimizer.epochs={args.epochs}",
            "optimizer.tol=0", "run.progress=false", *extra]
    cmd = mpiexec(ranks) + [sys.executable, "-m", "mpireg.train", str(job), "--run-dir", str(run_dir)]
    for item in sets:
        cmd += ["--set", item]
    start = time.perf_counter()
    subprocess.run(cmd, check=True, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wall = time.perf_counter() - start
    epochs = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    epochs = [e for e in epochs if e["type"] == "epoch"]
    if not epochs:  # an asynchronous fit has no epoch boundaries: its totals
        summary = json.loads((run_dir / "summary.json").read_text())
        return dict(s_per_iter=summary["train_s"] / args.epochs, wall_s=wall, rmse=[summary["eval"]["rmse"]])
    times = np.diff([0.0] + [e["time_s"] for e in epochs])
    return dict(s_per_iter=float(np.mean(times[1:] if len(times) > 1 else times)), wall_s=wall,
                rmse=[e["eval"]["rmse"] for e in epochs])


def numpy_als(data: Path, args) -> dict:
    """The textbook ALS, one process, written for this comparison (not mpireg's code)."""
    start = time.perf_counter()
    from mpireg.data import ShardReader, read_schema, resolve_paths

    def rows(path):
        schema = read_schema(resolve_paths([path]))
        return ShardReader(schema, 0, 1, 2**34).read(0, schema.n_rows)

    X, y = rows(data)
    X_test, y_test = rows(f"{data}/test")
    mean, k = y.mean(), args.rank
    V = np.random.default_rng([0, 0x1E75]).standard_normal((args.items, k)) / np.sqrt(k)
    V[np.bincount(X[:, 1], minlength=args.items) == 0] = 0
    U = np.zeros((args.users, k))
    groups = [_groups(X[:, c], n) for c, n in ((0, args.users), (1, args.items))]
    r = y - mean
    times, rmse = [], []
    for _ in range(args.epochs):
        t = time.perf_counter()
        for solve, other, (order, starts), col in ((U, V, groups[0], 1), (V, U, groups[1], 0)):
            for row in range(solve.shape[0]):
                mine = order[starts[row]:starts[row + 1]]
                F = other[X[mine, col]]
                A = F.T @ F + args.l2 * len(mine) * np.eye(k)
                solve[row] = np.linalg.solve(A, F.T @ r[mine]) if len(mine) else 0
        times.append(time.perf_counter() - t)
        err = mean + np.einsum("ij,ij->i", U[X_test[:, 0]], V[X_test[:, 1]]) - y_test
        rmse.append(float(np.sqrt(err @ err / len(err))))
    return dict(s_per_iter=float(np.mean(times[1:] if len(times) > 1 else times)),
                wall_s=time.perf_counter() - start, rmse=rmse)


def run_implicit(data: Path, args, threads: int) -> dict | None:
    """The `implicit` package's ALS (C++), timing only: it solves the implicit-feedback
    objective (every unrated cell a zero of confidence 1, ratings as confidences), so its
    factors do not predict ratings and no RMSE is given."""
    try:
        from implicit.cpu.als import AlternatingLeastSquares
        from scipy.sparse import csr_matrix
    except ImportError:
        print("implicit not installed (pip install implicit==0.7.3): its row skipped")
        return None
    from mpireg.data import ShardReader, read_schema, resolve_paths

    start = time.perf_counter()
    schema = read_schema(resolve_paths([data]))
    X, y = ShardReader(schema, 0, 1, 2**34).read(0, schema.n_rows)
    matrix = csr_matrix((y, (X[:, 0], X[:, 1])), shape=(args.users, args.items))
    model = AlternatingLeastSquares(factors=args.rank, regularization=args.l2, iterations=args.epochs,
                                    use_cg=False, num_threads=threads, random_state=0)
    t = time.perf_counter()
    model.fit(matrix, show_progress=False)
    fit_s = time.perf_counter() - t
    return dict(s_per_iter=fit_s / args.epochs, wall_s=time.perf_counter() - start, rmse=[])


def _groups(keys, n):
    order = np.argsort(keys, kind="stable")
    return order, np.searchsorted(keys[order], np.arange(n + 1))


def run_sgd(data: Path, root: Path, args) -> dict:
    """SGD-MF (Adam) through ps-async on 3 ranks (2 workers); an iteration is one pass over
    the ratings, and only the final RMSE is known (no epoch boundaries)."""
    return run_mpireg(data, root, args, 3, "optimizer.kind=adam", "optimizer.lr=0.01",
                      "optimizer.batch_size=1024", "comm.strategy=ps-async")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--users", type=int, default=6000)
    parser.add_argument("--items", type=int, default=3000)
    parser.add_argument("--ratings", type=int, default=1_000_000)
    parser.add_argument("--rank", type=int, default=10)
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--l2", type=float, default=0.05)
    parser.add_argument("--no-sgd", action="store_true", help="skip the SGD-MF row")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        data = make_data(root, args)
        runs = [("mpireg ALS, 1 rank", run_mpireg(data, root, args, 1)),
                ("mpireg ALS, 2 ranks, allgather", run_mpireg(data, root, args, 2, "comm.factor_exchange=allgather")),
                ("mpireg ALS, 2 ranks, pull", run_mpireg(data, root, args, 2, "comm.factor_exchange=pull")),
                ("NumPy ALS (per-row loop), 1 process", numpy_als(data, args))]
        for threads in (1, 2):
            found = run_implicit(data, args, threads)
            if found:
                runs.append((f"implicit 0.7.3 ALS (Cholesky), {threads} thread(s) *", found))
        if not args.no_sgd:
            runs.append(("mpireg SGD-MF, Adam, ps-async, 3 ranks", run_sgd(data, root, args)))
    print(f"\nALS, {args.users} users x {args.items} items, {args.ratings} ratings (+{args.ratings // 10} "
          f"held out), rank {args.rank}, l2 {args.l2}, noise floor {NOISE}")
    print(f"{'':44}{'s/iter':>9}{'whole s':>9}   held-out RMSE after each iteration")
    for name, r in runs:
        print(f"{name:44}{r['s_per_iter']:9.3f}{r['wall_s']:9.2f}   "
              + (" ".join(f"{x:.4f}" for x in r["rmse"]) or "-"))
    if any(name.endswith("*") for name, _ in runs):
        print("* implicit-feedback ALS: every unrated cell counts (a different, denser objective); "
              "timing only")
    reference = runs[3][1]
    print(f"\nNumPy / mpireg 1-rank s/iter: {reference['s_per_iter'] / runs[0][1]['s_per_iter']:.1f}x; "
          f"largest RMSE difference from the NumPy reference: "
          f"{max(abs(a - b) for _, r in runs[:3] for a, b in zip(r['rmse'], reference['rmse'])):.2e}")


if __name__ == "__main__":
    main()
