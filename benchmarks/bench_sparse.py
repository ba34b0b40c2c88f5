"""Sparse logistic regression, Criteo-like: mpireg's averaged adaptive passes against Vowpal
Wabbit and scikit-learn's SGDClassifier on the same rows, each run as its own process.

    python benchmarks/bench_sparse.py [--rows 1800000] [--hash-bits 22] [--nnz 39] [--passes 1]

Data: `mpireg.data synth --task logistic --sparse` (power-law column frequencies, one-valued
entries, a known weight vector), a tenth more rows held out. VW (PyPI `vowpalwabbit`) reads
the same rows as VW text written beforehand (not timed), `--loss_function logistic -b BITS`,
its defaults otherwise (adaptive, normalized, invariant updates). SGDClassifier reads the CSR
shards (timed) and makes `--passes` epochs. mpireg: `optimizer.kind = "adagrad"`, 1 and 2 ranks.
Printed side by side: the whole command's seconds and the held-out log-loss.
"""
from __future__ import annotations

import argparse
import importlib.util
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from mpi_launch import ROOT, mpiexec

SKLEARN = r'''
import sys, time, numpy as np
sys.path.insert(0, sys.argv[3])
from mpireg.data import ShardReader, read_schema, resolve_paths
from sklearn.linear_model import SGDClassifier
from sklearn.metrics import log_loss
def rows(p):
    s = read_schema(resolve_paths([p])); return ShardReader(s, 0, 1, 2**36).read(0, s.n_rows)
X, y = rows(sys.argv[1]); Xt, yt = rows(sys.argv[1] + "/test")
m = SGDClassifier(loss="log_loss", max_iter=int(sys.argv[2]), tol=None, random_state=0).fit(X, y)
print("RESULT", log_loss(yt, m.predict_proba(Xt)[:, 1]))
'''

VW = r'''
import sys, numpy as np
from vowpalwabbit import Workspace
train, test, bits, passes, model = sys.argv[1:6]
extra = f" --passes {passes} -c -k" if int(passes) > 1 else ""
vw = Workspace(f"-d {train} --loss_function logistic -b {bits} --quiet -f {model}{extra}")
vw.finish()
vw = Workspace(f"-t -i {model} --quiet --link logistic")
p, y = [], []
with open(test) as f:
    for line in f:
        y.append(line[0] == "1"); p.append(vw.predict(line))
vw.finish()
p = np.clip(np.array(p), 1e-15, 1 - 1e-15); y = np.array(y)
print("RESULT", float(-np.mean(y * np.log(p) + (1 - y) * np.log(1 - p))))
'''


def make_data(root: Path, args) -> Path:
    out = root / "clicks"
    subprocess.run([sys.executable, "-m", "mpireg.data", "synth", "--task", "logistic", "--sparse",
                    "--rows", str(args.rows), "--hash-bits", str(args.hash_bits), "--nnz", str(args.nnz),
                    "--test-rows", str(args.rows // 10), "--shards", "4", "--out", str(out)],
                   check=True, cwd=ROOT, stdout=subprocess.DEVNULL)
    return out


def write_vw(data: Path, out: Path) -> None:
    """The shards as VW text: `1 |f j:v ...` / `-1 |f ...` (labels in {-1, 1})."""
    sys.path.insert(0, str(ROOT))
    from mpireg.data import ShardReader, read_schema, resolve_paths

    schema = read_schema(resolve_paths([data]))
    reader = ShardReader(schema, 0, 1, 2**28)
    with open(out, "w") as f:
        for i in range(len(reader.block_sizes)):
            X, y = reader.block(i)
            for r in range(X.shape[0]):
                cols = X.indices[X.indptr[r]:X.indptr[r + 1]]
                vals = X.data[X.indptr[r]:X.indptr[r + 1]]
                f.write(("1" if y[r] else "-1") + " |f " + " ".join(f"{c}:{v:g}" for c, v in zip(cols, vals)) + "\n")


def timed(cmd, **kw) -> tuple[float, str]:
    start = time.perf_counter()
    out = subprocess.run(cmd, check=True, capture_output=True, text=True, **kw).stdout
    return time.perf_counter() - start, out


def run_mpireg(data: Path, root: Path, ranks: int, args) -> dict:
    run_dir = root / f"run{ranks}"
    job = root / "job.toml"
    job.write_text("")
    sets = [f"data.train={data}", f"data.test={data}/test", "model.kind=logistic", "optimizer.kind=adagrad",
            f"optimizer.lr={args.lr}", f"optimizer.epochs={args.passes}", "model.l2=0", "run.progress=false"]
    cmd = mpiexec(ranks) + [sys.executable, "-m", "mpireg.train", str(job), "--run-dir", str(run_dir)]
    for item in sets:
        cmd += ["--set", item]
    wall, _ = timed(cmd, cwd=ROOT)
    summary = json.loads((run_dir / "summary.json").read_text())
    return dict(wall_s=wall, log_loss=summary["eval"]["log_loss"], train_s=summary["train_s"])


def run_script(code: str, root: Path, name: str, *argv) -> dict | None:
    script = root / f"{name}.py"
    script.write_text(code)
    try:
        wall, out = timed([sys.executable, str(script), *map(str, argv)])
    except subprocess.CalledProcessError as exc:
        print(f"{name}: failed ({exc.stderr.strip().splitlines()[-1] if exc.stderr else exc})")
        return None
    line = next(l for l in out.splitlines() if l.startswith("RESULT"))
    return dict(wall_s=wall, log_loss=float(line.split()[1]))


def gradient_rates(data: Path, repeats: int = 5) -> dict:
    """Non-zeros per second of one logistic loss-and-gradient pass over the training rows, one
    process: mpireg's CSR loop against SciPy's two products (X @ w, then X^T r), beside a
    streaming read of the same CSR arrays. Best of `repeats`."""
    sys.path.insert(0, str(ROOT))
    import numpy as np

    from mpireg.data import ShardReader, read_schema, resolve_paths
    from mpireg.models import make_model

    schema = read_schema(resolve_paths([data]))
    X, y = ShardReader(schema, 0, 1, 2**36).read(0, schema.n_rows)
    model = make_model("logistic", schema.n_features, 2, True, task="binary")
    w = np.random.default_rng(0).normal(size=model.layout.size) * 0.01
    g, y = np.empty_like(w), y.astype(np.float64)

    def best(fn):
        times = []
        for _ in range(repeats):
            start = time.perf_counter()
            fn()
            times.append(time.perf_counter() - start)
        return X.nnz / min(times)

    rates = dict(read=best(lambda: (X.data.sum(), X.indices.sum(), X.indptr.sum())),
                 mpireg=best(lambda: model.loss_grad_sum(w, X, y, g)),
                 scipy=best(lambda: model.loss_grad_xp(w, X, y, g)))
    k = 10  # softmax over 10 classes drawn at random: the same rows, 10 values per column
    labels = np.random.default_rng(1).integers(0, k, X.shape[0])
    softmax = make_model("softmax", schema.n_features, k, True, task="multiclass")
    W = np.random.default_rng(0).normal(size=softmax.layout.size) * 0.01
    G = np.empty_like(W)
    rates.update(softmax_mpireg=best(lambda: softmax.loss_grad_sum(W, X, labels, G)),
                 softmax_scipy=best(lambda: softmax.loss_grad_xp(W, X, labels, G)))
    return rates


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=1_800_000)
    parser.add_argument("--hash-bits", type=int, default=22)
    parser.add_argument("--nnz", type=int, default=39)
    parser.add_argument("--passes", type=int, default=1)
    parser.add_argument("--lr", type=float, default=0.1)
    parser.add_argument("--rates-only", action="store_true", help="only the gradient-pass table")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        data = make_data(root, args)
        if args.rates_only:
            return print_rates(gradient_rates(data))
        runs = [(f"mpireg adagrad, {p} rank(s)", run_mpireg(data, root, p, args)) for p in (1, 2)]
        if importlib.util.find_spec("vowpalwabbit") is None:
            print("vowpalwabbit not installed (pip install vowpalwabbit): its row skipped")
        else:
            write_vw(data, root / "train.vw")
            write_vw(data / "test", root / "test.vw")
            runs.append(("Vowpal Wabbit 9 (1 process)", run_script(VW, root, "vw", root / "train.vw", root / "test.vw",
                                                                    args.hash_bits, args.passes, root / "vw.model")))
        runs.append(("scikit-learn SGDClassifier", run_script(SKLEARN, root, "sgd", data, args.passes, ROOT)))
        rates = gradient_rates(data)
    print(f"\nSparse logistic, {args.rows} rows (+{args.rows // 10} held out), 2^{args.hash_bits} columns, "
          f"{args.nnz} entries a row, {args.passes} pass(es)")
    print(f"{'':36}{'whole s':>9}{'held-out log-loss':>19}")
    for name, r in runs:
        if r:
            print(f"{name:36}{r['wall_s']:9.2f}{r['log_loss']:19.4f}")

    print_rates(rates)


def print_rates(rates) -> None:
    print("\nLogistic loss-and-gradient pass over the training rows, one process, non-zeros/s:")
    print(f"  streaming read of the CSR arrays {rates['read']:12.4g}")
    print(f"  mpireg's CSR loop (csparse.c)     {rates['mpireg']:12.4g}  ({rates['mpireg'] / rates['read']:.2f}x the read)")
    print(f"  SciPy: X @ w, then X^T r          {rates['scipy']:12.4g}  ({rates['scipy'] / rates['read']:.2f}x the read)")
    print(f"  mpireg / SciPy: {rates['mpireg'] / rates['scipy']:.2f}x")
    print("Softmax, 10 classes, the same rows:")
    print(f"  mpireg's CSR loop (csparse.c)     {rates['softmax_mpireg']:12.4g}")
    print(f"  SciPy: X @ W, then X^T R          {rates['softmax_scipy']:12.4g}")
    print(f"  mpireg / SciPy: {rates['softmax_mpireg'] / rates['softmax_scipy']:.2f}x")


if __name__ == "__main__":
    main()
