"""The one-pass gradient kernels of this checkout against the same kernels at another commit,
side by side in one process: both builds run on the same X, interleaved round after round, once
with X far larger than the caches (where prefetching matters) and once with X in cache (where
only the instructions do): the linear and logistic kernels (csrc/cgrad.c) and the softmax pass
(csrc/csoftmax.c) for each class count. A change to csrc/ is measured with this before it lands.

    python benchmarks/bench_kernel_builds.py [--rev HEAD~1] [--features 100,1000] [--classes 3,10]

The other build is that commit's tree (`git archive REV`) built by its own setup.py.
"""
import argparse
import importlib.util
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def parse():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--rev", default="HEAD~1", help="the commit to compare with")
    p.add_argument("--features", default="100,1000")
    p.add_argument("--memory-mb", type=int, default=400, help="X's size for the from-memory case")
    p.add_argument("--cache-mb", type=float, default=4, help="X's size for the in-cache case")
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--classes", default="3,10", help="softmax class counts (empty: none)")
    return p.parse_args()


class Build:
    """One build's kernel modules, under a label."""

    def __init__(self, label, cgrad, csoftmax):
        self.label, self.cgrad, self.csoftmax = label, cgrad, csoftmax


def load(path: Path, name: str):
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def build(rev: str, workdir: Path, names):
    """The kernels `names` of commit `rev`, built by that commit's own setup.py (so with its flags)."""
    archive = subprocess.run(["git", "archive", rev], cwd=ROOT, check=True, capture_output=True).stdout
    subprocess.run(["tar", "-x", "-C", str(workdir)], input=archive, check=True)
    subprocess.run([sys.executable, "setup.py", "-q", "build_ext", "--inplace"], cwd=workdir, check=True,
                   capture_output=True)
    modules = {}
    for name in names:
        built = sorted((workdir / "mpireg").glob(f"{name}*.so"))
        if not built:
            sys.exit(f"{rev}: its setup.py built no mpireg.{name}")
        modules[name] = load(built[0], name)
    return Build(rev, modules["_cgrad"], modules.get("_csoftmax"))


def passes(np, rng, X, dtype, classes):
    """{model: fn(build)}: the linear and logistic kernels, and softmax for each class count."""
    n, d = X.shape
    y = (rng.random(n) > 0.5).astype(dtype)
    w = (rng.standard_normal(d + 1) * 0.01).astype(dtype)
    g = np.empty_like(w)
    runs = {kind: (lambda b, kind=kind: getattr(b.cgrad, kind)(X, y, w, g, True))
            for kind in ("linear", "logistic")}
    for K in classes:
        labels = rng.integers(0, K, n)
        W = (rng.standard_normal((d + 1) * K) * 0.01).astype(dtype)
        G = np.empty_like(W)
        runs[f"softmax{K}"] = (lambda b, K=K, labels=labels, W=W, G=G:
                               b.csoftmax.loss_grad(X, labels, W, G, K, True))
    return runs


def race(np, builds, d, dtype, megabytes, repeats, classes):
    """GB/s of X for each build and model, best of the interleaved rounds."""
    rng = np.random.default_rng(0)
    n = max(4, int(megabytes * 1e6) // (d * np.dtype(dtype).itemsize))
    X = rng.standard_normal((n, d)).astype(dtype)
    calls = max(1, int(400e6 // X.nbytes))  # small X: several calls per timing
    runs = {(b.label, model): (lambda b=b, fn=fn: fn(b))
            for model, fn in passes(np, rng, X, dtype, classes).items() for b in builds}
    best = dict.fromkeys(runs, float("inf"))
    for _ in range(repeats):
        for key, fn in runs.items():
            t = time.perf_counter()
            for _ in range(calls):
                fn()
            best[key] = min(best[key], time.perf_counter() - t)
    models = list(dict.fromkeys(model for _, model in runs))
    return {key: X.nbytes * calls / seconds / 1e9 for key, seconds in best.items()}, models


def main():
    args = parse()
    sys.path.insert(0, str(ROOT))
    import numpy as np

    try:
        from mpireg import _cgrad, _csoftmax
    except ImportError:
        sys.exit("the C extensions of this checkout are not built: pip install -e . first")
    classes = [int(k) for k in args.classes.split(",") if k]
    names = ("_cgrad", "_csoftmax") if classes else ("_cgrad",)  # a commit before _csoftmax: --classes ""
    with tempfile.TemporaryDirectory() as tmp:
        builds = [Build("this checkout", _cgrad, _csoftmax), build(args.rev, Path(tmp), names)]
        print(f"gradient kernel, GB/s of X, best of {args.repeats} interleaved rounds")
        print(f"{'features':>8} {'dtype':8} {'X':>8} {'model':9} " + " ".join(f"{b.label:>14}" for b in builds)
              + "   ratio")
        for d in map(int, args.features.split(",")):
            for dtype in ("float32", "float64"):
                for megabytes in (args.memory_mb, args.cache_mb):
                    rates, models = race(np, builds, d, dtype, megabytes, args.repeats, classes)
                    for kind in models:
                        ours, theirs = rates[(builds[0].label, kind)], rates[(builds[1].label, kind)]
                        print(f"{d:>8} {dtype:8} {megabytes:>6g}MB {kind:9} {ours:>14.2f} {theirs:>14.2f}"
                              f"   {ours / theirs:5.2f}")


if __name__ == "__main__":
    main()
