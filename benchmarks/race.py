"""Whole-process time to the optimum: each contestant is its own process, timed from its start
to its exit, and its model is scored by one float64 objective on the same rows.

    python benchmarks/race.py [--rows 1000000] [--features 100] [--only logistic,linear,softmax]

Problems (float32 rows from `mpireg.data synth`, written as shards for mpireg and as .npy for
the others; the writing is not timed): logistic, linear least squares and softmax (3 classes),
no penalty. A
contestant "reaches the optimum" when its objective is within a relative gap of 1e-6 of the best
any contestant reached. Contestants, each skipped with its reason where it is not installed:
    mpireg          mpiexec -n 2: L-BFGS (tol 1e-9) and, for linear, the normal equations
    scikit-learn    LogisticRegression(lbfgs, tol 1e-9) / LinearRegression
    glum            GeneralizedLinearRegressor (binomial / normal, alpha 0, its default solver)
Not yet raced (issue 12 lists them): snapml, daal4py under mpiexec, heat, dask-ml, Spark MLlib.
"""
from __future__ import annotations

import argparse
import importlib.util
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from mpi_launch import ROOT, mpiexec

GAP = 1e-6

SKLEARN = r'''
import sys, numpy as np
X = np.load(sys.argv[1]); y = np.load(sys.argv[2]); out = sys.argv[4]
if sys.argv[3] in ("logistic", "softmax"):
    from sklearn.linear_model import LogisticRegression
    m = LogisticRegression(C=1e30, tol=1e-9, max_iter=10000).fit(X, y)
    np.save(out, np.concatenate([m.coef_.T.ravel(), m.intercept_]))  # (d, k) then k, as mpireg
else:
    from sklearn.linear_model import LinearRegression
    m = LinearRegression().fit(X, y)
    np.save(out, np.concatenate([np.ravel(m.coef_), [m.intercept_]]))
'''

GLUM = r'''
import sys, numpy as np
from glum import GeneralizedLinearRegressor
X = np.load(sys.argv[1]); y = np.load(sys.argv[2]); out = sys.argv[4]
family = "binomial" if sys.argv[3] == "logistic" else "normal"
# gradient_tol 1e-6 reaches the 1e-6 gap; 1e-9 took 21-173 s for nothing more (measured)
m = GeneralizedLinearRegressor(family=family, alpha=0, gradient_tol=1e-6).fit(X, y)
np.save(out, np.concatenate([np.ravel(m.coef_), [m.intercept_]]))
'''


def objective(task: str, X, y, params) -> float:
    """Mean loss in float64 (log-loss, cross-entropy, or squared error / 2); params as mpireg
    lays them out: coef (d, or d x k row-major), then the intercept(s)."""
    d = X.shape[1]
    if task == "softmax":
        k = params.size // (d + 1)
        z = X.astype(np.float64) @ params[:d * k].reshape(d, k) + params[d * k:]
        z -= z.max(axis=1, keepdims=True)
        lse = np.log(np.exp(z).sum(axis=1))
        return float(np.mean(lse - z[np.arange(len(y)), y.astype(np.int64)]))
    z = X.astype(np.float64) @ params[:-1] + params[-1]
    if task == "logistic":
        return float(np.mean(np.logaddexp(0, z) - y * z))
    return float(0.5 * np.mean((z - y) ** 2))


def make_data(root: Path, task: str, rows: int, features: int):
    out = root / task
    subprocess.run([sys.executable, "-m", "mpireg.data", "synth", "--task", task, "--rows", str(rows),
                    "--classes", "3",
                    "--features", str(features), "--shards", "2", "--test-rows", "0", "--out", str(out)],
                   check=True, cwd=ROOT, stdout=subprocess.DEVNULL)
    sys.path.insert(0, str(ROOT))
    from mpireg.data import ShardReader, read_schema, resolve_paths

    schema = read_schema(resolve_paths([out]))
    X, y = ShardReader(schema, 0, 1, 2**36).read(0, schema.n_rows)
    np.save(root / f"{task}-X.npy", X)
    np.save(root / f"{task}-y.npy", y)
    return out, X, y.astype(np.float64)


def timed(cmd, **kw) -> float:
    start = time.perf_counter()
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, **kw)
    return time.perf_counter() - start


def run_mpireg(data: Path, root: Path, task: str, optimizer: str) -> tuple[float, np.ndarray]:
    run_dir = root / f"mpireg-{task}-{optimizer}"
    job = root / "job.toml"
    job.write_text("")
    cmd = mpiexec(2) + [sys.executable, "-m", "mpireg.train", str(job), "--run-dir", str(run_dir)]
    for item in (f"data.train={data}", f"model.kind={task}", f"optimizer.kind={optimizer}",
                 "optimizer.tol=1e-9", "optimizer.max_iter=1000", "run.progress=false"):
        cmd += ["--set", item]
    wall = timed(cmd, cwd=ROOT)
    from mpireg.model_io import load_model

    _, params, _ = load_model(run_dir / "model.h5")
    return wall, params.astype(np.float64)


def run_script(code: str, root: Path, name: str, task: str) -> tuple[float, np.ndarray]:
    script = root / f"race_{name}.py"  # not {name}.py: it would shadow the package
    script.write_text(code)
    out = root / f"{name}-{task}.npy"
    wall = timed([sys.executable, str(script), root / f"{task}-X.npy", root / f"{task}-y.npy", task, out])
    return wall, np.load(out)


def race(root: Path, task: str, args) -> list:
    data, X, y = make_data(root, task, args.rows, args.features)
    entries = [("mpireg, 2 ranks, L-BFGS", lambda: run_mpireg(data, root, task, "lbfgs"))]
    if task == "linear":
        entries.append(("mpireg, 2 ranks, normal equations", lambda: run_mpireg(data, root, task, "normal")))
    for name, module, code in (("scikit-learn", "sklearn", SKLEARN), ("glum", "glum", GLUM)):
        if module == "glum" and task == "softmax":
            continue  # glum fits no multinomial model
        if importlib.util.find_spec(module) is None:
            print(f"{name} not installed: skipped")
            continue
        entries.append((name, lambda code=code, module=module: run_script(code, root, module, task)))
    results = []
    for name, run in entries:
        try:
            wall, params = run()
        except subprocess.CalledProcessError as exc:
            print(f"{name}: failed ({(exc.stderr or b'').decode().strip().splitlines()[-1:]})")
            continue
        results.append((name, wall, objective(task, X, y, params)))
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--features", type=int, default=100)
    parser.add_argument("--only", default="logistic,linear,softmax")
    args = parser.parse_args()
    tables = {}
    with tempfile.TemporaryDirectory() as tmp:
        for task in args.only.split(","):
            tables[task] = race(Path(tmp), task, args)
    for task, results in tables.items():
        best = min(loss for _, _, loss in results)
        mine = next((wall for name, wall, loss in results if name.startswith("mpireg")
                     and (loss - best) / abs(best) <= GAP), None)
        print(f"\n{task}, {args.rows} x {args.features} float32, no penalty; the optimum: {best:.10g}")
        print(f"{'':38}{'whole s':>9}{'relative gap':>14}{'reached':>9}{'s / mpireg':>12}")
        for name, wall, loss in results:
            gap = (loss - best) / abs(best)
            ratio = f"{wall / mine:12.2f}" if mine else f"{'-':>12}"
            print(f"{name:38}{wall:9.2f}{gap:14.2e}{'yes' if gap <= GAP else 'no':>9}{ratio}")


if __name__ == "__main__":
    main()
