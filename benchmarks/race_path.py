"""The path race: whole-process time to a k-fold cross-validated elastic-net path (l1_ratio 0.5)
on one grid of penalties, every contestant its own process timed from start to exit.

    python benchmarks/race_path.py [--rows 200000] [--features 40] [--alphas 30] [--folds 5]
                                   [--only logistic,poisson] [--skip h2o] [--timeout 900]
    python benchmarks/race_path.py --sparse --only logistic [--hash-bits 20] [--nnz 39] ...

Problems (`mpireg.data synth`, float32 rows, written as shards for mpireg and as .npy for the
others, not timed):
    logistic  binary labels from a logistic model (`--task logistic`)
    poisson   claim frequency with offset log(exposure) (`--task poisson --exposure`)
    --sparse  logistic on hashed CSR rows (`--task logistic --sparse`, Criteo-like), mpireg's
              first-order path (optimizer.kind = "lbfgs"); the others get the CSR matrix
The grid: mpireg's alpha_max on the data (a one-penalty run, not timed) down to 1e-3 of it,
geometrically, handed to every contestant. Contestants:
    mpireg        mpiexec -n 2 python -m mpireg.train, optimizer.path with that grid, optimizer.cv
                  (all folds in one pass per Newton round; the refit and its standard errors);
                  "1 path": the same without cross-validation, for its passes
    glum          GeneralizedLinearRegressorCV (each fold's path, then the refit)
    scikit-learn  LogisticRegressionCV (saga, elastic net, scoring neg_log_loss; logistic only)
    h2o           H2O's GLM, lambda over the grid, the folds as its fold_column (its JVM start timed)
    glmnet        python-glmnet's LogitNet (glmnet's Fortran; logistic only), run with
                  $GLMNET_PYTHON where it is built apart (contestants/path_glmnet.py says how)
Every contestant holds out the same rows: mpireg's folds (a hash of the row index) are written
beside the arrays and handed to each as its splits. Each reports its chosen alpha; `steps` is how
many grid steps it lies from mpireg's.
"""
from __future__ import annotations

import argparse
import importlib.util
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from mpi_launch import ROOT, mpiexec
from race_glm import make_data

HERE = Path(__file__).resolve().parent
FAMILY = {"logistic": "binomial", "poisson": "poisson"}
L1_RATIO = 0.5


SOLVER = "irls"  # the first-order "lbfgs" where the race is sparse (--sparse): nothing d x d


MEMORY_MB = 6144  # per rank: every row resident, as the other contestants hold theirs (the default
                  # 1 GiB would stream 10M hashed rows, 2 GiB a rank, from disk on every pass)


def job_text(task: str, shards: Path, path: str, folds: int) -> str:
    return (f'[data]\ntrain = "{shards}"\nmemory_budget_mb = {MEMORY_MB}\n[model]\nkind = "glm"\n'
            f'family = "{FAMILY[task]}"\n[optimizer]\nkind = "{SOLVER}"\ntol = 1e-6\ncv = {folds}\npath = {path}\n'
            f'[run]\nprogress = false\n')


def make_sparse_data(task: str, rows: int, hash_bits: int, nnz: int, root: Path) -> Path:
    """Hashed sparse rows (`mpireg.data synth --sparse`: power-law column frequencies, one-valued
    entries) as CSR shards under root/task and, for the others, root/task.npy/X.npz (CSR), y, w, offset."""
    import h5py
    from scipy import sparse

    shards = root / task
    subprocess.run([sys.executable, "-m", "mpireg.data", "synth", "--task", task, "--sparse", "--rows", str(rows),
                    "--hash-bits", str(hash_bits), "--nnz", str(nnz), "--shards", "4", "--test-rows", "0",
                    "--out", str(shards)], check=True, cwd=ROOT, capture_output=True)
    parts = []
    for p in sorted(shards.glob("*.h5")):
        with h5py.File(p, "r") as f:
            n = len(f["y"])
            parts.append((sparse.csr_matrix((f["data"][:], f["indices"][:], f["indptr"][:]),
                                            shape=(n, 2 ** hash_bits)), f["y"][:].astype(np.float64)))
    (root / f"{task}.npy").mkdir(exist_ok=True)
    sparse.save_npz(root / f"{task}.npy" / "X.npz", sparse.vstack([X for X, _ in parts], format="csr"),
                    compressed=False)
    y = np.concatenate([y for _, y in parts])
    np.save(root / f"{task}.npy" / "y.npy", y)
    np.save(root / f"{task}.npy" / "w.npy", np.ones(len(y)))
    np.save(root / f"{task}.npy" / "offset.npy", np.zeros(len(y)))
    return shards


def grid(task: str, shards: Path, root: Path, n_alphas: int, ranks: int) -> np.ndarray:
    """mpireg's alpha_max on the data (a path of one penalty, not timed), to 1e-3 of it."""
    out = root / f"{task}-grid"
    job = out.with_suffix(".toml")
    job.write_text(job_text(task, shards, f"{{n_alphas = 1, l1_ratio = [{L1_RATIO}]}}", 0))
    subprocess.run([*mpiexec(ranks), sys.executable, "-m", "mpireg.train", str(job), "--run-dir", str(out)],
                   check=True, capture_output=True, cwd=ROOT, env=dict(os.environ, OMP_NUM_THREADS="1"))
    alpha_max = json.loads((out / "summary.json").read_text())["path"]["paths"][0]["alphas"][0]
    return alpha_max * np.geomspace(1.0, 1e-3, n_alphas)


def run_mpireg(task, shards, root, alphas, folds, ranks, timeout):
    out = root / f"{task}-mpireg-{folds}"
    job = out.with_suffix(".toml")
    job.write_text(job_text(task, shards, f"{{alphas = [{', '.join(map(repr, alphas.tolist()))}], "
                                          f"l1_ratio = [{L1_RATIO}]}}", folds))
    start = time.perf_counter()
    subprocess.run([*mpiexec(ranks), sys.executable, "-m", "mpireg.train", str(job), "--run-dir", str(out)],
                   check=True, capture_output=True, cwd=ROOT, env=dict(os.environ, OMP_NUM_THREADS="1"),
                   timeout=timeout)
    seconds = time.perf_counter() - start
    path = json.loads((out / "summary.json").read_text())["path"]
    return seconds, path["alpha"], f"{path['passes']} passes + {path['refit_passes']}"


def interpreter(name: str) -> str | None:
    """The Python that has the contestant's package: python-glmnet is built in its own venv
    (numpy < 1.27 for its Fortran build), named by $GLMNET_PYTHON; the rest are importable here."""
    if name == "glmnet" and os.environ.get("GLMNET_PYTHON"):
        return os.environ["GLMNET_PYTHON"]
    return sys.executable if importlib.util.find_spec(name) is not None else None


def write_folds(task: str, root: Path, folds: int) -> None:
    from mpireg.fit.folds import fold_of

    n = len(np.load(root / f"{task}.npy" / "y.npy", mmap_mode="r"))
    np.save(root / f"{task}.npy" / "folds.npy", fold_of(np.arange(n), folds, seed=0))


def run_peer(name, task, root, alphas, folds, timeout):
    np.save(root / "alphas.npy", alphas)
    out = root / f"{task}-{name}.json"
    start = time.perf_counter()
    subprocess.run([interpreter(name), str(HERE / "contestants" / f"path_{name}.py"), str(root / f"{task}.npy"),
                    FAMILY[task], str(root / "alphas.npy"), str(folds), str(out)],
                   check=True, capture_output=True, cwd=HERE / "contestants", timeout=timeout)
    return time.perf_counter() - start, json.loads(out.read_text())["alpha"], ""


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--rows", type=int, default=200_000)
    p.add_argument("--features", type=int, default=40)
    p.add_argument("--alphas", type=int, default=30)
    p.add_argument("--folds", type=int, default=5)
    p.add_argument("--only", default="logistic,poisson")
    p.add_argument("--skip", default="", help="contestants to leave out: glum, sklearn, h2o, glmnet, 1path")
    p.add_argument("--ranks", type=int, default=2)
    p.add_argument("--timeout", type=float, default=900.0, help="seconds a contestant may take")
    p.add_argument("--sparse", action="store_true", help="hashed CSR rows (logistic), mpireg's first-order path")
    p.add_argument("--hash-bits", type=int, default=20, help="--sparse: 2^bits columns")
    p.add_argument("--nnz", type=int, default=39, help="--sparse: entries a row")
    args = p.parse_args()
    global SOLVER
    SOLVER = "lbfgs" if args.sparse else "irls"
    skip = set(filter(None, args.skip.split(",")))
    peers = [n for n in ("glum", "sklearn", "h2o", "glmnet") if n not in skip and interpreter(n) is not None]
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        for task in args.only.split(","):
            shards = (make_sparse_data(task, args.rows, args.hash_bits, args.nnz, root) if args.sparse else
                      make_data(task, args.rows, args.features, root, exposure=task == "poisson"))
            write_folds(task, root, args.folds)
            alphas = grid(task, shards, root, args.alphas, args.ranks)
            shape = (f"2^{args.hash_bits} hashed CSR columns, {args.nnz} a row" if args.sparse else
                     f"{args.features} float32 columns")
            print(f"\n{task}: {args.rows:,} rows x {shape}; {args.folds} folds x "
                  f"{args.alphas} penalties, l1_ratio {L1_RATIO}; {os.cpu_count()} cores", flush=True)
            runs = [("mpireg", lambda: run_mpireg(task, shards, root, alphas, args.folds, args.ranks, args.timeout))]
            if "1path" not in skip:  # (its passes: what the k folds add)
                runs.append(("mpireg, 1 path", lambda: run_mpireg(task, shards, root, alphas, 0, args.ranks, args.timeout)))
            runs += [(n, lambda n=n: run_peer(n, task, root, alphas, args.folds, args.timeout)) for n in peers
                     if not (n in ("sklearn", "glmnet") and task != "logistic")]
            results = {}
            for name, fn in runs:
                try:
                    results[name] = fn()
                except subprocess.TimeoutExpired:
                    results[name] = (float("inf"), float("nan"), f"stopped after {args.timeout:.0f} s")
                except subprocess.CalledProcessError as exc:
                    print(f"  {name}: failed: {exc.stderr.decode(errors='replace')[-400:]}")
            ours_seconds, ours_alpha, _ = results["mpireg"]
            index = {float(a): i for i, a in enumerate(alphas)}
            print(f"  {'contestant':12} {'seconds':>9} {'x mpireg':>9} {'alpha':>11} {'steps':>6}  note")
            for name, (seconds, alpha, note) in sorted(results.items(), key=lambda kv: kv[1][0]):
                steps = (abs(np.argmin(np.abs(np.log(alphas) - np.log(alpha))) - index[float(ours_alpha)])
                         if np.isfinite(alpha) else "-")
                print(f"  {name:12} {seconds:9.2f} {seconds / ours_seconds:9.2f} {alpha:11.4g} {steps!s:>6}  {note}",
                      flush=True)


if __name__ == "__main__":
    main()
