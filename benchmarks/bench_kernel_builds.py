"""The one-pass gradient kernel of this checkout against the same kernel at another commit,
side by side in one process: both builds run on the same X, interleaved round after round, once
with X far larger than the caches (where prefetching matters) and once with X in cache (where
only the instructions do). A change to csrc/cgrad.c is measured with this before it lands.

    python benchmarks/bench_kernel_builds.py [--rev HEAD~1] [--features 100,1000]

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
    return p.parse_args()


def load(path: Path, name: str):
    spec = importlib.util.spec_from_file_location("_cgrad", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    module.label = name
    return module


def build(rev: str, workdir: Path):
    """The `_cgrad` of commit `rev`, built by that commit's own setup.py (so with its flags)."""
    archive = subprocess.run(["git", "archive", rev], cwd=ROOT, check=True, capture_output=True).stdout
    subprocess.run(["tar", "-x", "-C", str(workdir)], input=archive, check=True)
    subprocess.run([sys.executable, "setup.py", "-q", "build_ext", "--inplace"], cwd=workdir, check=True,
                   capture_output=True)
    built = sorted((workdir / "mpireg").glob("_cgrad*.so"))
    if not built:
        sys.exit(f"{rev}: its setup.py built no mpireg._cgrad")
    return load(built[0], rev)


def race(np, builds, d, dtype, megabytes, repeats):
    """GB/s of X for each build and model, best of the interleaved rounds."""
    rng = np.random.default_rng(0)
    n = max(4, int(megabytes * 1e6) // (d * np.dtype(dtype).itemsize))
    X = rng.standard_normal((n, d)).astype(dtype)
    y = (rng.random(n) > 0.5).astype(dtype)
    w = (rng.standard_normal(d + 1) * 0.01).astype(dtype)
    g = np.empty_like(w)
    calls = max(1, int(400e6 // X.nbytes))  # small X: several calls per timing
    runs = {(m.label, kind): (lambda m=m, kind=kind: getattr(m, kind)(X, y, w, g, True))
            for m in builds for kind in ("linear", "logistic")}
    best = dict.fromkeys(runs, float("inf"))
    for _ in range(repeats):
        for key, fn in runs.items():
            t = time.perf_counter()
            for _ in range(calls):
                fn()
            best[key] = min(best[key], time.perf_counter() - t)
    return {key: X.nbytes * calls / seconds / 1e9 for key, seconds in best.items()}


def main():
    args = parse()
    sys.path.insert(0, str(ROOT))
    import numpy as np

    from mpireg.models.base import _cgrad
    if _cgrad is None:
        sys.exit("the C extension of this checkout is not built: pip install -e . first")
    _cgrad.label = "this checkout"
    with tempfile.TemporaryDirectory() as tmp:
        builds = [_cgrad, build(args.rev, Path(tmp))]
        print(f"gradient kernel, GB/s of X, best of {args.repeats} interleaved rounds")
        print(f"{'features':>8} {'dtype':8} {'X':>8} {'model':9} " + " ".join(f"{m.label:>14}" for m in builds)
              + "   ratio")
        for d in map(int, args.features.split(",")):
            for dtype in ("float32", "float64"):
                for megabytes in (args.memory_mb, args.cache_mb):
                    rates = race(np, builds, d, dtype, megabytes, args.repeats)
                    for kind in ("linear", "logistic"):
                        ours, theirs = rates[(builds[0].label, kind)], rates[(builds[1].label, kind)]
                        print(f"{d:>8} {dtype:8} {megabytes:>6g}MB {kind:9} {ours:>14.2f} {theirs:>14.2f}"
                              f"   {ours / theirs:5.2f}")


if __name__ == "__main__":
    main()
