"""The race against the peers: time to reach the same training loss, on the same data, one run.

Problems (dense float32 synthetic data from `mpireg.data synth`, the same rows for everyone):
    linear     1,000,000 x 100 least squares
    logistic   1,000,000 x 100, l2 = 1e-6 (mean-loss scale; sklearn's C = 1 / (l2 n))
    softmax    scikit-learn's digits (1,797 x 64, 10 classes), l2 = 1e-4
Contestants (those whose package is missing are skipped with the reason; `pip install -e .[bench]`):
    scikit-learn     LinearRegression, SGDRegressor / LogisticRegression (lbfgs), SGDClassifier
    Spark MLlib      LinearRegression / LogisticRegression, local[2]; JVM start and loading apart
    PyTorch DDP      2 processes, gloo, the same model and optimizer (full-batch L-BFGS)
    mpireg           1 and 2 ranks under mpiexec, each strategy; L-BFGS (and, for linear, the
                     normal equations)
Every contestant's final model is scored with one objective function (mpireg's model code, in
float64, on the in-memory data); the target is the best loss found x (1 + 1e-3). Time to target
is taken from a contestant's loss curve where it logs one (mpireg, PyTorch), else its whole fit
time if its final loss reaches the target. Training time is compared with training time; loading
and start-up are reported beside them. A PNG of loss gap against wall time goes to --out.

    python benchmarks/compare_peers.py [--rows 1000000] [--features 100] [--only linear,logistic]
"""
import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from mpi_launch import mpiexec

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

from mpireg.models import make_model  # noqa: E402

RELATIVE_GAP = 1e-3
L2 = {"linear": 0.0, "logistic": 1e-6, "softmax": 1e-4}


def parse():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--rows", type=int, default=1_000_000)
    p.add_argument("--features", type=int, default=100)
    p.add_argument("--only", default="linear,logistic,softmax")
    p.add_argument("--skip", default="", help="contestants to leave out: sklearn,spark,torch,mpireg")
    p.add_argument("--strategies", default="allreduce,ring,hierarchical,ps")
    p.add_argument("--out", default=str(HERE / "out"))
    p.add_argument("--timeout", type=float, default=600, help="seconds per contestant run")
    return p.parse_args()


class Problem:
    def __init__(self, kind, X, y, n_classes, directory, load_s):
        self.kind, self.X, self.y, self.n_classes = kind, X, y, n_classes
        self.directory, self.load_s = directory, load_s
        self.l2 = L2[kind]
        self.model = make_model(kind, X.shape[1], n_classes, l2=self.l2)
        self.X64 = X.astype(np.float64)
        self.targets = self.model.prepare_targets(y.astype(np.float64) if kind != "softmax" else y)

    def objective(self, coef, intercept) -> float:
        """mpireg's objective (mean loss + l2/2 ||coef||^2) of any contestant's coefficients."""
        params = self.model.init_params(np.float64)
        views = self.model.layout.views(params)
        views["coef"][...] = np.asarray(coef, dtype=np.float64).reshape(views["coef"].shape)
        views["intercept"][...] = np.asarray(intercept, dtype=np.float64).reshape(views["intercept"].shape)
        return self.model.loss_sum(params, self.X64, self.targets) / len(self.y) + self.model.penalty(params)


def result(name, problem, train_s, coef=None, intercept=None, curve=None, load_s=None, note="", loss=None):
    loss = problem.objective(coef, intercept) if loss is None else loss
    return {"name": name, "train_s": train_s, "loss": loss, "curve": curve or [], "load_s": load_s, "note": note}


# ----------------------------------------------------------------------------- data
def make_problems(args, root: Path):
    import h5py

    from mpireg.convert.synth import synthesize

    problems = []
    for kind in args.only.split(","):
        directory = root / kind
        if kind == "softmax":
            from sklearn.datasets import load_digits

            from mpireg.data.format import write_shard

            digits = load_digits()
            X, y = digits.data.astype(np.float32) / 16.0, digits.target.astype(np.int64)
            for i, part in enumerate(np.array_split(np.arange(len(y)), 2)):
                write_shard(directory / f"part-{i:05d}.h5", X[part], y[part], "multiclass", 10)
        else:
            synthesize(kind, args.rows, args.features, directory, shards=2, seed=1)
        start = time.perf_counter()
        parts = sorted(directory.glob("part-*.h5"))
        arrays = []
        for part in parts:
            with h5py.File(part, "r") as f:
                arrays.append((f["X"][()], f["y"][()]))
        X = np.concatenate([a for a, _ in arrays])
        y = np.concatenate([b for _, b in arrays])
        problems.append(Problem(kind, X, y, 10 if kind == "softmax" else (2 if kind == "logistic" else 0),
                                directory, time.perf_counter() - start))
    return problems


# ----------------------------------------------------------------------------- scikit-learn
def run_sklearn(problem):
    """Default settings, except SGD's epochs capped at 20 (its tol rarely stops it on 1M rows)."""
    import warnings

    from sklearn.exceptions import ConvergenceWarning
    from sklearn.linear_model import (LinearRegression, LogisticRegression, SGDClassifier,
                                      SGDRegressor)

    n = len(problem.y)
    if problem.kind == "linear":
        models = [("sklearn LinearRegression", LinearRegression()),
                  ("sklearn SGDRegressor", SGDRegressor(alpha=0.0, penalty=None, max_iter=20, tol=1e-6,
                                                          random_state=0))]
    else:
        C = 1.0 / (problem.l2 * n)
        models = [("sklearn LogisticRegression lbfgs", LogisticRegression(C=C, max_iter=1000)),
                  ("sklearn LogisticRegression lbfgs tol=1e-8",
                   LogisticRegression(C=C, max_iter=1000, tol=1e-8)),
                  ("sklearn SGDClassifier", SGDClassifier(loss="log_loss", alpha=problem.l2, max_iter=20,
                                                          tol=1e-6, random_state=0))]
    out = []
    for name, est in models:
        start = time.perf_counter()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            est.fit(problem.X, problem.y)
        train_s = time.perf_counter() - start
        coef, intercept = np.asarray(est.coef_), np.asarray(est.intercept_)
        if problem.kind == "softmax":
            coef = coef.T  # sklearn: (classes, features); mpireg: (features, classes)
        elif problem.kind == "logistic":
            coef, intercept = coef.ravel(), intercept.ravel()[0]
        out.append(result(name, problem, train_s, coef, intercept))
    return out


# ----------------------------------------------------------------------------- Spark MLlib
def run_spark(problem, root: Path):
    import pyarrow as pa
    import pyarrow.parquet as pq
    from pyspark.ml.classification import LogisticRegression
    from pyspark.ml.feature import VectorAssembler
    from pyspark.ml.regression import LinearRegression
    from pyspark.sql import SparkSession

    path = root / f"{problem.kind}.parquet"
    columns = {f"f{j}": problem.X[:, j] for j in range(problem.X.shape[1])}
    columns["label"] = problem.y.astype(np.float64)
    pq.write_table(pa.table(columns), path)

    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    first = SparkSession.getActiveSession() is None and not getattr(run_spark, "started", False)
    run_spark.started = True
    start = time.perf_counter()
    spark = (SparkSession.builder.master("local[2]").appName("mpireg-compare")
             .config("spark.driver.memory", "8g").config("spark.ui.enabled", "false")
             .config("spark.ui.showConsoleProgress", "false").getOrCreate())
    spark.sparkContext.setLogLevel("ERROR")
    jvm_s = time.perf_counter() - start
    start = time.perf_counter()
    frame = spark.read.parquet(str(path))
    frame = VectorAssembler(inputCols=list(columns)[:-1], outputCol="features").transform(frame)
    frame = frame.select("features", "label").cache()
    frame.count()
    load_s = time.perf_counter() - start
    if problem.kind == "linear":
        est = LinearRegression(regParam=0.0, standardization=False, maxIter=100, tol=1e-9)
    else:
        est = LogisticRegression(regParam=problem.l2, elasticNetParam=0.0, standardization=False,
                                 maxIter=1000, tol=1e-9, family="multinomial" if problem.kind == "softmax"
                                 else "binomial")
    start = time.perf_counter()
    fitted = est.fit(frame)
    train_s = time.perf_counter() - start
    if problem.kind == "softmax":
        coef, intercept = fitted.coefficientMatrix.toArray().T, fitted.interceptVector.toArray()
        # Softmax is invariant to a shift of all classes' logits; any representative scores the same.
    else:
        coef, intercept = fitted.coefficients.toArray(), fitted.intercept
    spark.stop()
    return [result("Spark MLlib local[2]", problem, train_s, coef, intercept, load_s=load_s,
                   note=f"JVM start {jvm_s:.1f} s" if first else "JVM already running")]


# ----------------------------------------------------------------------------- PyTorch DDP
def _torch_worker(rank, world, problem_file, out_file, l2, kind, classes, max_iter):
    import torch
    import torch.distributed as dist

    torch.set_num_threads(1)
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=os.environ.get("MPIREG_BENCH_PORT", "29533"))
    dist.init_process_group("gloo", rank=rank, world_size=world)
    data = np.load(problem_file, mmap_mode="r")
    n = data["y"].shape[0]
    lo, hi = rank * n // world, (rank + 1) * n // world
    X = torch.from_numpy(np.ascontiguousarray(data["X"][lo:hi]))
    y = torch.from_numpy(np.ascontiguousarray(data["y"][lo:hi]))
    out_features = classes if kind == "softmax" else 1
    model = torch.nn.parallel.DistributedDataParallel(torch.nn.Linear(X.shape[1], out_features))
    torch.nn.init.zeros_(model.module.weight)
    torch.nn.init.zeros_(model.module.bias)
    if kind == "linear":
        data_loss = lambda z: 0.5 * ((z.squeeze(1) - y) ** 2).mean()  # noqa: E731
    elif kind == "logistic":
        data_loss = lambda z: torch.nn.functional.binary_cross_entropy_with_logits(z.squeeze(1), y.float())  # noqa: E731
    else:
        y = y.long()
        data_loss = lambda z: torch.nn.functional.cross_entropy(z, y)  # noqa: E731
    optimizer = torch.optim.LBFGS(model.parameters(), lr=1, max_iter=max_iter, max_eval=2 * max_iter,
                                  history_size=10, line_search_fn="strong_wolfe", tolerance_grad=1e-9,
                                  tolerance_change=1e-12)
    curve = []

    def closure():
        optimizer.zero_grad()
        # DDP averages gradients over the ranks; the loss is averaged the same way by hand.
        loss = data_loss(model(X)) + 0.5 * l2 * (model.module.weight ** 2).sum()
        loss.backward()
        total = loss.detach().clone()
        dist.all_reduce(total)
        curve.append((time.perf_counter() - start, float(total) / world))  # every evaluation
        return total / world

    dist.barrier()
    start = time.perf_counter()
    optimizer.step(closure)
    curve.append((time.perf_counter() - start, curve[-1][1]))
    if rank == 0:
        w = model.module.weight.detach().numpy().astype(np.float64)
        b = model.module.bias.detach().numpy().astype(np.float64)
        np.savez(out_file, curve=np.array(curve), weight=w, bias=b, train_s=curve[-1][0])
    dist.destroy_process_group()


def run_torch(problem, root: Path, max_iter=500):
    import torch.multiprocessing as mp

    problem_file, out_file = root / f"{problem.kind}.npz", root / f"{problem.kind}-torch.npz"
    start = time.perf_counter()
    np.savez(problem_file, X=problem.X, y=problem.y.astype(np.float32 if problem.kind != "softmax" else np.int64))
    mp.spawn(_torch_worker, args=(2, str(problem_file), str(out_file), problem.l2, problem.kind,
                                  problem.n_classes, max_iter), nprocs=2, join=True)
    wall = time.perf_counter() - start
    got = np.load(out_file)
    coef = got["weight"].T if problem.kind == "softmax" else got["weight"].ravel()
    intercept = got["bias"] if problem.kind == "softmax" else got["bias"][0]
    curve = [tuple(p) for p in got["curve"]]
    train_s = float(got["train_s"])
    return [result("PyTorch DDP gloo, 2 procs, LBFGS", problem, train_s, coef, intercept, curve=curve,
                   note=f"start-up and loading {wall - train_s:.1f} s")]


# ----------------------------------------------------------------------------- mpireg
def run_mpireg(problem, root: Path, ranks, strategy, optimizer, timeout):
    run_dir = root / f"mpireg-{problem.kind}-{ranks}-{strategy}-{optimizer}"
    job = root / f"{run_dir.name}.toml"
    job.write_text(f"""name = "compare"
[data]
train = ["{problem.directory}"]
[model]
kind = "{problem.kind}"
l2 = {problem.l2}
[optimizer]
kind = "{optimizer}"
max_iter = 300
tol = 1e-10
[comm]
strategy = "{strategy}"
[run]
dir = "{run_dir}"
progress = false
""")
    command = [*mpiexec(ranks), sys.executable, "-m", "mpireg.train", str(job)]
    start = time.perf_counter()
    done = subprocess.run(command, capture_output=True, text=True, timeout=timeout,
                          env={**os.environ, "OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1"})
    wall = time.perf_counter() - start
    if done.returncode:
        raise RuntimeError(done.stderr.strip().splitlines()[-1] if done.stderr.strip() else "failed")
    records = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    summary = next(r for r in records if r["type"] == "summary")
    curve = [(r["time_s"], r["loss"]) for r in records if r["type"] == "iteration"]
    from mpireg.model_io import load_model

    model, params, _ = load_model(run_dir / "model.h5")
    views = model.layout.views(params)
    label = f"mpireg {ranks} rank{'s' if ranks > 1 else ''} {strategy} {optimizer}"
    return [result(label, problem, summary["train_s"], views["coef"], views["intercept"], curve=curve,
                   load_s=summary["wall_s"] - summary["train_s"],
                   note=f"{summary['dtype']}; mpiexec wall {wall:.1f} s")]


# ----------------------------------------------------------------------------- the race
def time_to_target(entry, target):
    for t, loss in entry["curve"]:
        if loss <= target:
            return t
    return entry["train_s"] if entry["loss"] <= target else None


def contestants(problem, args, root):
    skip = set(filter(None, args.skip.split(",")))
    jobs = []
    if "sklearn" not in skip:
        jobs.append(("scikit-learn", lambda: run_sklearn(problem)))
    if "spark" not in skip:
        jobs.append(("Spark", lambda: run_spark(problem, root)))
    if "torch" not in skip:
        jobs.append(("PyTorch", lambda: run_torch(problem, root)))
    if "mpireg" not in skip:
        for ranks in (1, 2):
            for strategy in (["allreduce"] if ranks == 1 else args.strategies.split(",")):
                jobs.append((f"mpireg {strategy}", lambda r=ranks, s=strategy:
                             run_mpireg(problem, root, r, s, "lbfgs", args.timeout)))
            if problem.kind == "linear":
                jobs.append(("mpireg normal", lambda r=ranks: run_mpireg(problem, root, r, "allreduce",
                                                                        "normal", args.timeout)))
    return jobs


def race(problem, args, root):
    entries = []
    for who, run in contestants(problem, args, root):
        try:
            entries += run()
        except ImportError as exc:
            print(f"  {who}: skipped ({exc.name or exc} not installed; pip install -e .[bench])")
        except Exception as exc:  # noqa: BLE001 - one failed peer must not end the race
            print(f"  {who}: failed ({type(exc).__name__}: {str(exc)[:200]})")
    best = min(e["loss"] for e in entries)
    target = best * (1 + RELATIVE_GAP)
    for e in entries:
        e["to_target_s"] = time_to_target(e, target)
    return entries, best, target


def print_table(problem, entries, best, target):
    print(f"\n{problem.kind}: {len(problem.y):,} x {problem.X.shape[1]}, l2 = {problem.l2}; best loss "
          f"{best:.8g}, target {target:.8g} (+{RELATIVE_GAP:g}); in-memory load {problem.load_s:.2f} s")
    header = f"  {'contestant':38} {'train s':>8} {'to target s':>11} {'final loss':>13} {'load s':>7}  note"
    print(header)
    print("  " + "-" * (len(header) + 10))
    for e in sorted(entries, key=lambda e: (e["to_target_s"] is None, e["to_target_s"] or 0)):
        reach = f"{e['to_target_s']:11.3f}" if e["to_target_s"] is not None else f"{'not reached':>11}"
        load = f"{e['load_s']:7.2f}" if e["load_s"] is not None else f"{'-':>7}"
        print(f"  {e['name']:38} {e['train_s']:8.3f} {reach} {e['loss']:13.8g} {load}  {e['note']}")


def plot(problems_entries, out: Path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(problems_entries), figsize=(6 * len(problems_entries), 4.5), squeeze=False)
    for ax, (problem, entries, best, _) in zip(axes[0], problems_entries):
        for e in entries:
            gap = lambda loss: max((loss - best) / abs(best), 1e-9)  # noqa: E731
            if e["curve"]:
                t, loss = zip(*e["curve"])
                ax.plot(t, [gap(v) for v in loss], marker=".", label=e["name"])
            else:
                ax.scatter([e["train_s"]], [gap(e["loss"])], marker="x", s=60, label=e["name"])
        ax.axhline(RELATIVE_GAP, color="grey", linestyle="--", linewidth=1)
        ax.set(xscale="log", yscale="log", xlabel="training wall time (s)",
               ylabel="(loss - best) / best", title=f"{problem.kind}, {len(problem.y):,} rows")
        ax.legend(fontsize=6)
    fig.tight_layout()
    out.mkdir(parents=True, exist_ok=True)
    fig.savefig(out / "compare_peers.png", dpi=120)
    print(f"\nplot: {out / 'compare_peers.png'}")


def main():
    args = parse()
    results = []
    with tempfile.TemporaryDirectory(prefix="mpireg-peers-") as tmp:
        root = Path(tmp)
        for problem in make_problems(args, root):
            entries, best, target = race(problem, args, root)
            print_table(problem, entries, best, target)
            results.append((problem, entries, best, target))
    try:
        plot(results, Path(args.out))
    except ImportError:
        print("matplotlib not installed: no plot")


if __name__ == "__main__":
    main()
